// SPDX-License-Identifier: GPL-3.0-only
//! Unit tests of the cache against the mock guest and mapper.

use std::cell::RefCell;
use std::rc::Rc;

use super::mock::{Calls, Guest, Mapper};
use super::*;

const XTAB: u32 = 0xf << 28;
const BUCKET: u32 = 16;

fn cfg(buckets: u64) -> CacheConfig {
    CacheConfig {
        enabled: true,
        budget_bytes: (MAX_BATCH_PAGES as u64 + buckets * BUCKET as u64) * PAGE_SIZE,
        bucket_pages: BUCKET,
        max_age: 1000,
    }
}

struct Fx {
    guest: Rc<RefCell<Guest>>,
    calls: Rc<RefCell<Calls>>,
    cache: DomainCache<Mapper>,
    out: Vec<PageData>,
}

impl Fx {
    fn new(pages: u64, cfg: CacheConfig) -> Fx {
        Fx::with_guest(Guest::new(pages), cfg, 1)
    }

    fn with_guest(guest: Rc<RefCell<Guest>>, cfg: CacheConfig, domid: u32) -> Fx {
        let (mapper, calls) = Mapper::new(&guest);
        let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
        let signals = guest.borrow().signals();
        let cache = DomainCache::new(mapper, cfg, domid, signals, registry);
        Fx {
            guest,
            calls,
            cache,
            out: Vec::new(),
        }
    }

    /// One batch as the engine runs it: types from the guest, map, check, release.
    fn batch(&mut self, pfns: &[u64]) {
        self.open(pfns);
        self.cache.end_batch().unwrap();
    }

    /// Maps a batch and checks that every page shows the frame the guest has there now.
    fn open(&mut self, pfns: &[u64]) {
        let types: Vec<u32> = {
            let g = self.guest.borrow();
            let t = |&p: &u64| if g.frame_at(p).is_some() { 0 } else { XTAB };
            pfns.iter().map(t).collect()
        };
        self.cache.map_batch(pfns, &types, &mut self.out).unwrap();
        let g = self.guest.borrow();
        for (&pfn, d) in pfns.iter().zip(&self.out) {
            match *d {
                PageData::Mapped(p) => assert_eq!(g.frame_of(p), g.frame_at(pfn), "pfn {pfn}"),
                PageData::NoData => assert_eq!(g.frame_at(pfn), None),
                PageData::Failed(e) => panic!("pfn {pfn} failed {e}"),
            }
        }
    }

    fn observe(&mut self) -> Verdict {
        let s = self.guest.borrow().signals();
        self.cache.observe(s, true).unwrap()
    }

    fn stats(&self) -> CacheStats {
        self.cache.stats()
    }
}

#[test]
fn hits_misses_and_warm_batches_map_nothing() {
    let mut fx = Fx::new(64, cfg(4));
    fx.batch(&[0, 1, 2, 17]);
    let s = fx.stats();
    assert_eq!((s.misses, s.hits, s.maps, s.vmas), (2, 2, 2, 2));
    assert_eq!(s.bytes_sent, 4 * PAGE_SIZE);
    assert_eq!(s.bytes_mapped, 32 * PAGE_SIZE);
    fx.observe();
    fx.batch(&[0, 1, 2, 17]);
    let s = fx.stats();
    assert_eq!((s.misses, s.hits, s.maps, s.unmaps), (2, 6, 2, 0));
    assert_eq!(fx.cache.registry.get(1), Some(s));
}

#[test]
fn invalid_page_that_gains_data_remaps_the_whole_bucket() {
    let g = Guest::new(64);
    g.borrow_mut().remove(5);
    let mut fx = Fx::with_guest(g, cfg(4), 1);
    fx.batch(&[4, 5]);
    assert_eq!(fx.out[1], PageData::NoData);
    fx.guest.borrow_mut().populate(5);
    fx.batch(&[5]);
    let s = fx.stats();
    assert_eq!((s.maps, s.unmaps, s.invalidations), (2, 1, 1));
    assert_eq!(fx.calls.borrow().log[1], (0..16).collect::<Vec<_>>());
}

#[test]
fn cached_page_reported_as_hole_drops_its_bucket() {
    let mut fx = Fx::new(64, cfg(4));
    fx.batch(&[3, 4]);
    fx.guest.borrow_mut().remove(3);
    fx.batch(&[3, 4]);
    let s = fx.stats();
    assert_eq!((s.invalidations, s.maps, s.unmaps), (1, 2, 1));
    // Same, but the bucket is pinned by an earlier page of the batch: dropped at its end.
    fx.guest.borrow_mut().populate(3);
    fx.batch(&[3]);
    fx.guest.borrow_mut().remove(3);
    fx.open(&[4, 3, 5]); // 5 goes to a per-batch mapping: its bucket is doomed
    assert_eq!(fx.stats().unmaps, 2);
    fx.cache.end_batch().unwrap();
    let s = fx.stats();
    assert_eq!((s.invalidations, s.unmaps, s.vmas), (3, 4, 0)); // bucket and per-batch map
}

#[test]
fn lru_eviction_keeps_within_budget() {
    let mut fx = Fx::new(80, cfg(3));
    for b in [0, 1, 2, 0, 3] {
        fx.batch(&[b * 16]);
    }
    let s = fx.stats();
    assert_eq!((s.maps, s.evictions), (4, 1));
    fx.batch(&[0]); // bucket 1 was the least recently used, not bucket 0
    assert_eq!(fx.stats().maps, 4);
    fx.batch(&[16]);
    assert_eq!(fx.stats().evictions, 2);
    let budget_pages = fx.cache.cfg.budget_bytes / PAGE_SIZE;
    assert!(fx.calls.borrow().peak_live_pages <= budget_pages);
    assert!(fx.stats().peak_mapped_bytes <= fx.cache.cfg.budget_bytes);
}

#[test]
fn pinned_buckets_are_not_evicted_overflow_maps_per_batch() {
    let mut fx = Fx::new(96, cfg(3));
    let pfns = [0, 16, 32, 48, 64, 1];
    fx.open(&pfns);
    let s = fx.stats();
    assert_eq!((s.maps, s.evictions, s.vmas), (4, 0, 4));
    assert_eq!(fx.calls.borrow().log[3], vec![48, 64]);
    fx.cache.end_batch().unwrap();
    assert_eq!(fx.stats().vmas, 3);
    let budget_pages = fx.cache.cfg.budget_bytes / PAGE_SIZE;
    assert!(fx.calls.borrow().peak_live_pages <= budget_pages);
}

#[test]
fn each_signal_invalidates() {
    let mut fx = Fx::new(64, cfg(4));
    let changes: [fn(&mut Guest); 3] = [
        |g| g.max_pages += 1,
        |g| g.shr_pages += 1,
        |g| g.populate(70), // tot_pages and max_gpfn
    ];
    for (n, change) in changes.iter().enumerate() {
        fx.batch(&[1, 20]);
        change(&mut fx.guest.borrow_mut());
        assert!(matches!(fx.observe(), Verdict::Flush(_)));
        let s = fx.stats();
        assert_eq!(s.invalidations, 2 * (n as u64 + 1));
        assert_eq!(s.vmas, 0);
    }
    fx.batch(&[1, 69, 70]); // the index grew with max_gpfn
    assert_eq!(fx.stats().vmas, 2);
    assert_eq!(fx.observe(), Verdict::Keep);
}

#[test]
fn pod_disables_caching_for_the_domain() {
    let mut fx = Fx::new(64, cfg(4));
    fx.batch(&[1, 20]);
    fx.guest.borrow_mut().pod_entries = 5;
    assert!(matches!(fx.observe(), Verdict::Disable(_)));
    fx.guest.borrow_mut().pod_entries = 0;
    fx.observe();
    fx.batch(&[1, 20]);
    fx.batch(&[1, 20]);
    let s = fx.stats();
    assert_eq!((s.disabled, s.maps, s.unmaps, s.vmas), (1, 4, 4, 0));
}

#[test]
fn balloon_out_and_in_of_a_cached_pfn_is_detected() {
    // The pinned old frame stays counted, so the new one raises tot_pages.
    let mut fx = Fx::new(64, cfg(4));
    fx.batch(&[7]);
    let before = fx.guest.borrow().frame_at(7);
    {
        let mut g = fx.guest.borrow_mut();
        g.remove(7);
        g.populate(7);
    }
    assert_eq!(fx.observe(), Verdict::Flush("tot_pages"));
    fx.batch(&[7]); // checks the pointer shows the new frame
    assert_ne!(fx.guest.borrow().frame_at(7), before);
}

#[test]
fn masked_exchange_is_bounded_by_age() {
    // The residual case of docs/coherence.md: an uncached pfn released in the same interval
    // hides the re-populate from tot_pages. The bounded age ends the staleness.
    let mut c = cfg(4);
    c.max_age = 2;
    let mut fx = Fx::new(64, c);
    fx.batch(&[7]);
    {
        let mut g = fx.guest.borrow_mut();
        g.remove(7);
        g.populate(7);
        g.remove(40);
    }
    assert_eq!(fx.observe(), Verdict::Keep);
    fx.observe();
    assert_eq!(fx.stats().expirations, 1);
    fx.batch(&[7]);
}

#[test]
fn age_expiry_forces_a_remap() {
    let mut c = cfg(4);
    c.max_age = 2;
    let mut fx = Fx::new(64, c);
    fx.batch(&[1]);
    fx.observe();
    fx.batch(&[1]);
    assert_eq!(fx.stats().maps, 1);
    fx.observe();
    let s = fx.stats();
    assert_eq!((s.expirations, s.vmas, s.checkpoints), (1, 0, 2));
    fx.batch(&[1]);
    assert_eq!(fx.stats().maps, 2);
}

#[test]
fn teardown_request_and_drop_unmap_everything() {
    let mut fx = Fx::new(96, cfg(3));
    fx.batch(&[0, 16, 32]);
    fx.open(&[48]);
    fx.cache.end_batch().unwrap();
    fx.cache.registry.request_teardown();
    fx.batch(&[64]);
    let s = fx.stats();
    assert_eq!(s.vmas, 1);
    assert_eq!(s.invalidations, 3);
    fx.cache.finish().unwrap();
    let s = fx.cache.registry.get(1).unwrap();
    assert_eq!((s.vmas, s.mapped_bytes), (0, 0));
    fx.batch(&[0, 1]);
    drop(fx.cache);
    let c = fx.calls.borrow();
    assert_eq!(c.maps, c.unmaps);
    assert_eq!(c.live_pages, 0);
}

#[test]
fn off_reproduces_the_per_batch_pattern() {
    let g = Guest::new(64);
    g.borrow_mut().remove(9);
    let mut c = cfg(4);
    c.enabled = false;
    let mut fx = Fx::with_guest(g, c, 1);
    fx.batch(&[3, 9, 40, 2]);
    fx.batch(&[3, 9, 40, 2]);
    let calls = fx.calls.borrow();
    assert_eq!(calls.log, vec![vec![3, 40, 2], vec![3, 40, 2]]);
    assert_eq!((calls.maps, calls.unmaps, calls.live_pages), (2, 2, 0));
    assert_eq!(fx.stats().disabled, 1);
}

#[test]
fn map_failure_leaves_no_batch_open() {
    let mut fx = Fx::new(64, cfg(4));
    fx.batch(&[0]);
    fx.calls.borrow_mut().fail_next = true;
    let mut out = Vec::new();
    assert!(fx.cache.map_batch(&[0, 20], &[0, 0], &mut out).is_err());
    fx.batch(&[0, 20]);
    drop(fx.cache);
    let c = fx.calls.borrow();
    assert_eq!((c.maps, c.unmaps, c.live_pages), (2, 2, 0));
}

#[test]
fn domains_keep_separate_counters() {
    let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
    let mut caches: Vec<_> = [1u32, 2]
        .iter()
        .map(|&d| {
            let g = Guest::new(32);
            let (m, _) = Mapper::new(&g);
            let s = g.borrow().signals();
            (g, DomainCache::new(m, cfg(2), d, s, registry))
        })
        .collect();
    let mut out = Vec::new();
    caches[0].1.map_batch(&[0, 1], &[0, 0], &mut out).unwrap();
    caches[0].1.end_batch().unwrap();
    drop(caches);
    assert_eq!(registry.get(1).unwrap().hits, 1);
    assert_eq!(registry.get(2).unwrap().hits, 0);
}

#[test]
fn index_overhead_is_tiny_for_a_1tib_guest() {
    let g = Guest::new(1);
    let (m, _) = Mapper::new(&g);
    let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
    let s = DomainSignals {
        max_gpfn: (1 << 28) - 1,
        ..Default::default()
    };
    let c = DomainCache::new(m, CacheConfig::default(), 1, s, registry);
    let bytes = c.index.capacity() * std::mem::size_of::<u32>();
    assert!((bytes as u64) < (1u64 << 40) / 1000);
}
