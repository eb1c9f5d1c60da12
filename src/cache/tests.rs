// SPDX-License-Identifier: GPL-3.0-only
//! Unit tests of the cache against the mock guest and mapper.

use std::cell::RefCell;
use std::rc::Rc;

use super::coherence::Verdict;
use super::config::{CacheConfig, PAGE_BYTES as PAGE_SIZE};
use super::domain::DomainCache;
use super::mock::{Calls, Guest, Mapper, Mapping};
use super::policy::{Admit, History};
use super::stats::{CacheStats, Registry};
use crate::abi::xen::page_type_has_data as type_has_data;
use crate::abi::xen::MAX_BATCH_SIZE as MAX_BATCH_PAGES;
use crate::hv::DomainSignals;

const XTAB: u64 = 0xf << 28;
const BUCKET: u32 = 16;

fn cfg(buckets: u64) -> CacheConfig {
    CacheConfig {
        enabled: true,
        budget_bytes: (MAX_BATCH_PAGES as u64 + buckets * u64::from(BUCKET)) * PAGE_SIZE,
        budget_from_guest: false,
        bucket_pages: BUCKET,
        max_age: 1000,
        patrol: 0,
        ..CacheConfig::default()
    }
}

struct Fx {
    guest: Rc<RefCell<Guest>>,
    calls: Rc<RefCell<Calls>>,
    mapper: Mapper,
    cache: DomainCache<Mapping>,
}

impl Fx {
    fn new(pages: u64, cfg: CacheConfig) -> Fx {
        Fx::with_guest(Guest::new(pages), cfg)
    }

    /// A cache whose every bucket the previous (non-full) pass asked for whole, so that the
    /// admission policy maps any bucket on first use in this pass: the tests of the
    /// mechanics below.
    fn with_guest(guest: Rc<RefCell<Guest>>, cfg: CacheConfig) -> Fx {
        let mut fx = Fx::fresh(guest, cfg);
        fx.cache.start_pass(Admit::DenseOrReused);
        let pass = fx.cache.pass();
        for h in fx.cache.history_mut() {
            h.ask(pass, u64::from(BUCKET));
        }
        fx.cache.start_pass(Admit::DenseOrReused);
        fx
    }

    /// A cache with no history: the admission policy as a save starts.
    fn fresh(guest: Rc<RefCell<Guest>>, cfg: CacheConfig) -> Fx {
        let (mapper, calls) = Mapper::new(&guest);
        let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
        let signals = guest.borrow().signals();
        let cache = DomainCache::new(cfg, 1, signals, registry);
        Fx {
            guest,
            calls,
            mapper,
            cache,
        }
    }

    /// One batch as the engine runs it: types, then the data pages, each of which must show
    /// the frame the guest has at that pfn now (what the stock saver would read).
    fn batch(&mut self, pfns: &[u64]) {
        let types: Vec<u64> = {
            let g = self.guest.borrow();
            let t = |&p: &u64| if g.frame_at(p).is_some() { 0 } else { XTAB };
            pfns.iter().map(t).collect()
        };
        self.cache.note_types(pfns, &types);
        let data: Vec<u64> = pfns
            .iter()
            .zip(&types)
            .filter(|(_, &t)| type_has_data(t))
            .map(|(&p, _)| p)
            .collect();
        let g = self.guest.clone();
        let n = self
            .cache
            .with_batch(&mut self.mapper, &data, |pages| {
                let g = g.borrow();
                for (&pfn, page) in data.iter().zip(pages) {
                    let page = page.unwrap_or_else(|e| panic!("pfn {pfn} failed {e}"));
                    assert_eq!(g.frame_of(page.as_ptr()), g.frame_at(pfn), "pfn {pfn}");
                }
                pages.len()
            })
            .unwrap();
        assert_eq!(n, data.len());
    }

    /// A suspended checkpoint: the coherence check, then the checkpoint's (non-full) pass.
    fn observe(&mut self) -> Verdict {
        let s = self.guest.borrow().signals();
        let v = self.cache.observe(s, true);
        self.cache.start_pass(Admit::DenseOrReused);
        v
    }

    fn stats(&self) -> CacheStats {
        *self.cache.stats()
    }

    fn budget_pages(&self) -> u64 {
        self.cache.config().budget_bytes / PAGE_SIZE
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
    assert_eq!(fx.cache.registry().get(1), Some(s));
}

#[test]
fn page_that_gains_a_frame_remaps_its_whole_bucket() {
    let g = Guest::new(64);
    g.borrow_mut().remove(5);
    let mut fx = Fx::with_guest(g, cfg(4));
    fx.batch(&[4, 5]);
    fx.guest.borrow_mut().populate(5);
    fx.batch(&[5]);
    let s = fx.stats();
    assert_eq!((s.maps, s.unmaps, s.invalidations), (2, 1, 1));
    assert_eq!(fx.calls.borrow().log[1], (0..16).collect::<Vec<_>>());
}

#[test]
fn stale_bucket_pinned_by_the_batch_goes_per_batch_then_is_dropped() {
    let g = Guest::new(64);
    g.borrow_mut().remove(5);
    let mut fx = Fx::with_guest(g, cfg(4));
    fx.batch(&[4]);
    fx.guest.borrow_mut().populate(5);
    fx.batch(&[4, 5, 6]); // 4 pins bucket 0; 5 cannot be served from it
    assert_eq!(fx.calls.borrow().log[1], vec![5, 6]);
    let s = fx.stats();
    assert_eq!((s.invalidations, s.unmaps, s.vmas), (1, 2, 0));
    fx.batch(&[5]);
    assert_eq!(fx.stats().maps, 3);
}

#[test]
fn cached_page_reported_as_hole_drops_its_bucket() {
    let mut fx = Fx::new(64, cfg(4));
    fx.batch(&[3, 4]);
    fx.guest.borrow_mut().remove(3);
    fx.cache.start_pass(Admit::DenseOrReused);
    fx.batch(&[3, 4]);
    let s = fx.stats();
    assert_eq!((s.invalidations, s.maps, s.unmaps), (1, 2, 1));
}

#[test]
fn lru_eviction_keeps_within_budget() {
    // One pass per batch (eviction within a pass is the next test's), dense batches.
    let mut fx = Fx::new(80, cfg(3));
    for b in [0, 1, 2, 0, 3] {
        fx.cache.start_pass(Admit::DenseOrReused);
        fx.batch(&[b * 16, b * 16 + 1]);
    }
    let s = fx.stats();
    assert_eq!((s.maps, s.evictions), (4, 1));
    fx.cache.start_pass(Admit::DenseOrReused);
    fx.batch(&[0]); // bucket 1 was the least recently used, not bucket 0
    assert_eq!(fx.stats().maps, 4);
    fx.cache.start_pass(Admit::DenseOrReused);
    fx.batch(&[16, 17]);
    assert_eq!(fx.stats().evictions, 2);
    assert!(fx.calls.borrow().peak_live_pages <= fx.budget_pages());
    assert!(fx.stats().peak_mapped_bytes <= fx.cache.config().budget_bytes);
}

#[test]
fn pinned_buckets_are_not_evicted_overflow_maps_per_batch() {
    let mut fx = Fx::new(96, cfg(3));
    fx.batch(&[0, 16, 32, 48, 64, 1]);
    let s = fx.stats();
    assert_eq!((s.maps, s.evictions, s.vmas, s.peak_vmas), (4, 0, 3, 4));
    assert_eq!(fx.calls.borrow().log[3], vec![48, 64]);
    assert!(fx.calls.borrow().peak_live_pages <= fx.budget_pages());
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
    // The index keeps its setup size (64 pfns): 70, past it, goes per batch however often
    // it is asked for (69 is a hole, 1 is cached again).
    fx.batch(&[1, 69, 70]);
    assert_eq!(fx.stats().vmas, 1);
    assert_eq!(fx.calls.borrow().log.last(), Some(&vec![70]));
    assert_eq!(fx.observe(), Verdict::Keep);
    fx.batch(&[70]);
    assert_eq!(fx.stats().vmas, 1);
    assert_eq!(fx.calls.borrow().log.last(), Some(&vec![70]));
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
    {
        let mut g = fx.guest.borrow_mut();
        g.remove(7);
        g.populate(7);
    }
    assert_eq!(fx.observe(), Verdict::Flush("tot_pages"));
    fx.batch(&[7]); // checks that the page shows the new frame
}

#[test]
fn masked_exchange_is_bounded_by_age() {
    // The residual case of docs/coherence.md: an uncached pfn released in the same interval
    // hides the re-populate from tot_pages. The bounded age ends the staleness.
    let mut c = cfg(4);
    c.max_age = 2;
    let mut fx = Fx::new(64, c);
    fx.batch(&[6, 7]); // dense enough to map with so short an age
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

impl Fx {
    /// The patrol after a postcopy (`whole`: at the end of a plain precopy); the pfns to send
    /// again, sorted.
    fn revalidate(&mut self, whole: bool) -> Vec<u64> {
        let mut out = Vec::new();
        self.cache
            .revalidate(&mut self.mapper, whole, &mut |p| out.push(p));
        out.sort_unstable();
        out
    }
}

#[test]
fn the_patrol_finds_a_masked_exchange_and_releases_held_frames() {
    let mut c = cfg(4);
    c.patrol = 2; // every cached bucket at every visit
    let mut fx = Fx::new(64, c);
    fx.batch(&[6, 7, 8, 20, 21]); // buckets 0 and 1
    assert_eq!(fx.revalidate(false), Vec::<u64>::new()); // nothing changed: nothing to send
    let tot = fx.guest.borrow().signals().tot_pages;
    {
        let mut g = fx.guest.borrow_mut();
        g.remove(7); // out and in: a new frame; 40 (not cached) out: tot_pages unchanged
        g.populate(7);
        g.remove(40);
        g.remove(21); // released, held by bucket 1
    }
    assert_eq!(fx.observe(), Verdict::Keep);
    assert_eq!(fx.guest.borrow().signals().tot_pages, tot);
    // The visit sends 7 again (new frame, different bytes), not 21 (released: no data) nor
    // the unchanged pages. The old mappings hold the released frames until the next check.
    assert_eq!(fx.revalidate(false), vec![7]);
    assert_eq!(fx.guest.borrow().signals().tot_pages, tot);
    assert_eq!(fx.stats().vmas, 4);
    // The fresh mappings show the current frames (checked by batch).
    fx.batch(&[6, 7, 8, 20]);
    // The check judges the counters, then drops the held frames with the old mappings.
    assert_eq!(fx.observe(), Verdict::Keep);
    assert_eq!(fx.guest.borrow().signals().tot_pages, tot - 2);
    assert_eq!(fx.stats().vmas, 2);
}

impl Fx {
    /// The end of a checkpoint's downtime, as the adapter runs it (the guest still paused):
    /// the counters again as the baseline if the cache unmapped anything since the check.
    fn downtime_ends(&mut self) {
        if self.cache.unmapped_since_check() {
            let s = self.guest.borrow().signals();
            self.cache.rebaseline(s);
        }
    }
}

#[test]
fn the_caches_own_releases_are_not_taken_for_the_guests() {
    let mut c = cfg(4);
    c.patrol = 2;
    let mut fx = Fx::new(64, c);
    fx.batch(&[6, 7, 20, 21]);
    fx.guest.borrow_mut().remove(21); // held: tot_pages unchanged
    assert_eq!(fx.observe(), Verdict::Keep);
    fx.downtime_ends();
    assert!(fx.revalidate(false).is_empty());
    assert_eq!(fx.observe(), Verdict::Keep); // judged, then the held frame released
    assert!(fx.cache.unmapped_since_check());
    fx.downtime_ends();
    assert!(!fx.cache.unmapped_since_check());
    // Without the new baseline, this check would take the release for the guest's and flush.
    assert_eq!(fx.observe(), Verdict::Keep);
    assert_eq!(fx.stats().invalidations, 0);
    // Expiry and flushes in the downtime are the cache's own too.
    fx.guest.borrow_mut().max_pages += 1;
    assert!(matches!(fx.observe(), Verdict::Flush(_)));
    fx.downtime_ends();
    fx.batch(&[6, 7]);
    assert_eq!(fx.observe(), Verdict::Keep);
}

#[test]
fn a_visits_release_cannot_mask_an_exchange() {
    // The patrol releases a frame the guest let go while the guest runs, and the guest
    // gives a cached pfn a new frame: -1 and +1. Released at once, the two would cancel out
    // and the stale mapping of 7 would be served. Held until the check, they cannot.
    let mut c = cfg(4);
    c.patrol = 64; // one bucket per visit: bucket 1 (20, 21) is visited, bucket 0 is not
    let mut fx = Fx::new(64, c);
    fx.batch(&[6, 7, 20, 21]);
    assert_eq!(fx.observe(), Verdict::Keep);
    fx.downtime_ends();
    assert!(fx.revalidate(false).is_empty()); // bucket 0
    assert_eq!(fx.observe(), Verdict::Keep);
    fx.downtime_ends();
    fx.guest.borrow_mut().remove(21);
    assert!(fx.revalidate(false).is_empty()); // bucket 1: 21 released
    {
        let mut g = fx.guest.borrow_mut();
        g.remove(7); // out and in after the visit: a new frame under a cached pfn
        g.populate(7);
    }
    assert!(matches!(fx.observe(), Verdict::Flush("tot_pages")));
    fx.downtime_ends();
    fx.batch(&[7]); // the current frame (checked by batch)
}

#[test]
fn a_bucket_dropped_before_its_visit_sends_its_served_pages_again() {
    let mut fx = Fx::new(64, cfg(4)); // patrol off
    fx.batch(&[6, 7, 20, 21]);
    fx.batch(&[22]);
    fx.guest.borrow_mut().max_pages += 1; // a flush
    assert!(matches!(fx.observe(), Verdict::Flush(_)));
    assert_eq!(fx.revalidate(false), vec![6, 7, 20, 21, 22]);
    assert_eq!(fx.revalidate(false), Vec::<u64>::new());
    // A plain save's last check visits every bucket, then releases them all.
    fx.batch(&[6, 7]);
    fx.guest.borrow_mut().populate(7);
    assert_eq!(fx.revalidate(true), vec![7]);
    assert_eq!(fx.stats().vmas, 0);
}

#[test]
fn a_guest_at_max_pages_gets_its_released_frames_back() {
    let mut fx = Fx::new(64, cfg(4));
    let tot = fx.guest.borrow().signals().tot_pages;
    fx.guest.borrow_mut().max_pages = tot;
    fx.observe(); // at the limit with nothing cached: nothing to do
    fx.batch(&[6, 7]);
    assert_eq!(fx.stats().vmas, 1);
    fx.guest.borrow_mut().remove(7); // held: tot_pages stays at the limit
    fx.observe();
    assert_eq!(fx.stats().vmas, 0);
    assert_eq!(fx.guest.borrow().signals().tot_pages, tot - 1); // room to populate again
    fx.guest.borrow_mut().populate(7);
    fx.observe(); // tot_pages moved: a flush (nothing cached)
    fx.batch(&[6, 7]);
    fx.observe(); // at the limit again, nothing released since: the rule sleeps
    assert_eq!(fx.stats().vmas, 1);
}

#[test]
fn age_expiry_forces_a_remap() {
    let mut c = cfg(4);
    c.max_age = 2;
    let mut fx = Fx::new(64, c);
    fx.batch(&[1, 2]); // dense enough to map with so short an age
    fx.observe();
    fx.batch(&[1, 2]);
    assert_eq!(fx.stats().maps, 1);
    fx.observe();
    let s = fx.stats();
    assert_eq!((s.expirations, s.vmas, s.checkpoints), (1, 0, 2));
    fx.batch(&[1, 2]);
    assert_eq!(fx.stats().maps, 2);
}

#[test]
fn teardown_request_and_drop_unmap_everything() {
    let mut fx = Fx::new(96, cfg(3));
    fx.batch(&[0, 16, 32]);
    fx.cache.registry().request_teardown();
    fx.batch(&[64]);
    let s = fx.stats();
    assert_eq!((s.vmas, s.invalidations), (1, 3));
    fx.cache.finish();
    let s = fx.cache.registry().get(1).unwrap();
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
    let mut fx = Fx::with_guest(g, c);
    fx.batch(&[3, 9, 40, 2]);
    fx.batch(&[3, 9, 40, 2]);
    let calls = fx.calls.borrow();
    assert_eq!(calls.log, vec![vec![3, 40, 2], vec![3, 40, 2]]);
    assert_eq!((calls.maps, calls.unmaps, calls.live_pages), (2, 2, 0));
    assert_eq!(fx.stats().disabled, 1);
}

#[test]
fn map_failure_unpins_and_leaks_nothing() {
    let mut fx = Fx::new(64, cfg(4));
    fx.batch(&[0]);
    fx.calls.borrow_mut().fail_next = libc::EIO;
    let r = fx.cache.with_batch(&mut fx.mapper, &[0, 20], |_| ());
    assert!(r.is_err());
    fx.batch(&[0, 20]);
    drop(fx.cache);
    let c = fx.calls.borrow();
    assert_eq!((c.maps, c.unmaps, c.live_pages), (2, 2, 0));
}

#[test]
fn enomem_shrinks_the_cache_and_falls_back_to_per_batch_maps() {
    let mut fx = Fx::new(200, cfg(8));
    fx.batch(&[0, 16, 32, 48, 64, 80]); // six buckets cached
    fx.calls.borrow_mut().fail_next = libc::ENOMEM;
    fx.batch(&[96, 100]); // the bucket map fails; the pages go per batch
    let s = fx.stats();
    assert_eq!((s.vmas, s.maps, s.unmaps), (0, 7, 7)); // 6 buckets shrunk away, 1 per-batch
    fx.batch(&[0, 112]); // no more caching
    let c = fx.calls.borrow();
    assert_eq!(c.log.last(), Some(&vec![0, 112]));
    assert_eq!(c.live_pages, 0);
}

#[test]
fn enomem_with_buckets_pinned_drops_them_after_the_batch() {
    let mut fx = Fx::new(200, cfg(8));
    fx.batch(&[0, 16]);
    fx.calls.borrow_mut().fail_next = libc::ENOMEM;
    fx.batch(&[0, 96]); // bucket 0 is pinned when the map of bucket 6 fails
    let s = fx.stats();
    assert_eq!((s.vmas, s.evictions), (0, 2));
}

#[test]
fn failed_page_is_reported_with_its_errno() {
    let g = Guest::new(64);
    g.borrow_mut().remove(5);
    let mut fx = Fx::with_guest(g, cfg(4));
    let r = fx
        .cache
        .with_batch(&mut fx.mapper, &[4, 5], |p| p[1].map(<[u8]>::len));
    assert_eq!(r.unwrap(), Err(-libc::EINVAL));
}

#[test]
fn domains_keep_separate_counters() {
    let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
    let g = Guest::new(32);
    let (mut m, _) = Mapper::new(&g);
    let s = g.borrow().signals();
    let mut one: DomainCache<Mapping> = DomainCache::new(cfg(2), 1, s, registry);
    let two: DomainCache<Mapping> = DomainCache::new(cfg(2), 2, s, registry);
    one.with_batch(&mut m, &[0, 1], |_| ()).unwrap();
    drop((one, two));
    assert_eq!(registry.get(1).unwrap().hits, 1);
    assert_eq!(registry.get(2).unwrap().hits, 0);
}

#[test]
fn index_overhead_is_tiny_for_a_1tib_guest() {
    let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
    let s = DomainSignals {
        max_gpfn: (1 << 28) - 1,
        ..Default::default()
    };
    let c: DomainCache<Mapping> = DomainCache::new(CacheConfig::default(), 1, s, registry);
    let bytes = c.index_capacity() * std::mem::size_of::<u32>()
        + c.history_capacity() * std::mem::size_of::<History>();
    assert!((bytes as u64) < (1u64 << 40) / 1000);
}

// The admission policy (policy.rs), from a cache with no history.

fn fresh(pages: u64, cfg: CacheConfig) -> Fx {
    Fx::fresh(Guest::new(pages), cfg)
}

#[test]
fn full_pass_maps_each_batch_once_as_stock() {
    let mut fx = fresh(64, cfg(4));
    fx.cache.start_pass(Admit::Nothing);
    assert!(!fx.cache.may_map()); // no coherence check needed either
    let all: Vec<u64> = (0..48).collect();
    fx.batch(&all);
    fx.batch(&all); // cached nothing: the same again
    let c = fx.calls.borrow();
    assert_eq!(c.log, vec![all.clone(), all]);
    assert_eq!((c.maps, c.unmaps, c.live_pages), (2, 2, 0));
}

#[test]
fn dense_bucket_is_mapped_at_once_sparse_one_goes_per_batch() {
    let mut fx = fresh(64, cfg(4));
    fx.cache.start_pass(Admit::DenseOrReused);
    fx.batch(&[0, 1, 20]); // 2 of 16 pages is 1/8: dense; 1 of 16 is not
    let s = fx.stats();
    assert_eq!((s.maps, s.vmas), (2, 1));
    assert_eq!(fx.calls.borrow().log[1], vec![20]);
}

#[test]
fn sparse_bucket_is_mapped_when_consecutive_passes_repay_it() {
    let mut fx = fresh(64, cfg(4));
    for pfns in [&[20][..], &[21], &[22]] {
        fx.cache.start_pass(Admit::DenseOrReused);
        fx.batch(pfns);
    }
    // Pass 1: new and sparse, per batch. Pass 2: asked for again, and 2 pages over an age of
    // 1000 checkpoints repay a 16-page map: mapped. Pass 3: a hit.
    let s = fx.stats();
    assert_eq!((s.maps, s.vmas, s.hits), (2, 1, 1));
    assert_eq!(fx.calls.borrow().log[1], (16..32).collect::<Vec<_>>());
}

#[test]
fn sparse_bucket_that_cannot_repay_its_map_stays_per_batch() {
    let mut c = cfg(4);
    c.max_age = 4; // 2 pages over 4 checkpoints do not repay 16
    let mut fx = fresh(64, c);
    for _ in 0..3 {
        fx.cache.start_pass(Admit::DenseOrReused);
        fx.batch(&[20]);
    }
    // Not consecutive: a pass in between that does not ask for it forgets the reuse.
    let mut fx2 = fresh(64, cfg(4));
    for pfns in [&[20][..], &[0, 1], &[20]] {
        fx2.cache.start_pass(Admit::DenseOrReused);
        fx2.batch(pfns);
    }
    assert_eq!(fx.stats().vmas, 0);
    assert_eq!(fx.calls.borrow().log, vec![vec![20]; 3]);
    assert_eq!(fx2.stats().vmas, 1); // bucket 0 only
    assert_eq!(fx2.calls.borrow().log.last(), Some(&vec![20]));
}

#[test]
fn plain_precopy_maps_only_reused_hot_buckets() {
    let mut fx = fresh(64, cfg(4));
    let hot: Vec<u64> = (0..8).collect(); // half of bucket 0
    for _ in 0..2 {
        fx.cache.start_pass(Admit::Hot);
        let mut pfns = hot.clone();
        pfns.extend([20, 21, 22]); // reused but sparse
        fx.batch(&pfns);
    }
    let s = fx.stats();
    assert_eq!((s.maps, s.vmas), (3, 1));
    assert_eq!(fx.calls.borrow().log[2], vec![20, 21, 22]);
    fx.cache.start_pass(Admit::Nothing); // a plain stream's last pass
    fx.batch(&[0, 40, 41, 42, 43]);
    assert_eq!(fx.calls.borrow().log[3], vec![40, 41, 42, 43]);
    assert_eq!(fx.stats().hits, 7 + 1); // the page that mapped bucket 0 was a miss
}

#[test]
fn working_set_over_budget_keeps_what_fits_and_sends_the_rest_per_batch() {
    // 4 dense buckets every pass, room for 3: LRU would evict and remap at every pass; the
    // cache keeps 3 and maps the fourth's pages per batch, one map call per pass.
    let mut fx = fresh(96, cfg(3));
    let set = [0, 1, 16, 17, 32, 33, 48, 49];
    for _ in 0..5 {
        fx.cache.start_pass(Admit::DenseOrReused);
        fx.batch(&set);
    }
    let s = fx.stats();
    assert_eq!((s.maps, s.evictions, s.vmas), (3 + 5, 0, 3));
    assert!(fx.calls.borrow().log[3..]
        .iter()
        .all(|l| l == &vec![48, 49]));
    assert!(fx.calls.borrow().peak_live_pages <= fx.budget_pages());
}

#[test]
fn buckets_of_earlier_passes_are_evicted_least_recent_first() {
    let mut fx = fresh(96, cfg(3));
    for set in [&[0, 1, 16, 17][..], &[32, 33], &[16, 17, 48, 49]] {
        fx.cache.start_pass(Admit::DenseOrReused);
        fx.batch(set);
    }
    // Pass 3 needs room for bucket 3: bucket 0 (pass 1) goes, not bucket 1 (used now).
    let s = fx.stats();
    assert_eq!((s.maps, s.evictions, s.vmas), (4, 1, 3));
    fx.cache.start_pass(Admit::DenseOrReused);
    fx.batch(&[16, 17, 32, 48]);
    assert_eq!(fx.stats().maps, 4);
}

#[test]
fn default_budget_follows_the_guest_but_never_makes_a_big_guest_fit() {
    const MIB: u64 = 1 << 20;
    let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
    for mib in [16, 128, 220, 221, 256, 1024, 2048, 2304, 4096, 8192, 65536] {
        let tot_pages = mib * MIB / PAGE_SIZE;
        let signals = DomainSignals {
            tot_pages,
            max_pages: tot_pages,
            max_gpfn: tot_pages - 1,
            ..Default::default()
        };
        let cache = DomainCache::<Mapping>::new(CacheConfig::default(), 1, signals, registry);
        let want = (mib / 8).clamp(256, 1024) * MIB;
        assert_eq!(cache.config().budget_bytes, want, "{mib} MiB guest");
        // Only guests that fit in 256 MiB less the batch reserve, with 1/8 to spare, are
        // mapped whole by their full pass: the same guests as with the fixed 256 MiB budget.
        assert_eq!(cache.guest_fits(), mib <= 220, "{mib} MiB guest");
    }
}

#[test]
fn full_pass_over_a_guest_that_fits_maps_it_all_once() {
    let mut fx = fresh(64, cfg(8)); // 64 pages against room for 128
    assert!(fx.cache.guest_fits());
    assert!(!fresh(64, cfg(4)).cache.guest_fits()); // no room to spare for holes
    fx.cache
        .start_pass(Admit::for_pass(true, false, false, true));
    assert!(fx.cache.may_map());
    let all: Vec<u64> = (0..64).collect();
    fx.batch(&all);
    fx.cache.start_pass(Admit::Nothing);
    assert!(fx.cache.may_map()); // it holds buckets
    fx.cache.start_pass(Admit::DenseOrReused);
    fx.batch(&[5, 40]);
    let s = fx.stats();
    assert_eq!((s.maps, s.vmas, s.evictions), (4, 4, 0));
}

#[test]
fn buckets_admitted_in_a_downtime_are_mapped_when_the_guest_runs() {
    let mut fx = fresh(96, cfg(2));
    fx.cache.defer_maps(true);
    for _ in 0..2 {
        fx.cache.start_pass(Admit::DenseOrReused);
        fx.batch(&[0, 1, 16, 17, 32, 33]); // three dense buckets, room for two
    }
    // Both passes sent everything per batch (stock's one call); nothing mapped whole yet.
    assert_eq!(fx.calls.borrow().log, vec![vec![0, 1, 16, 17, 32, 33]; 2]);
    assert_eq!(fx.stats().vmas, 0);
    fx.cache.map_deferred(&mut fx.mapper); // postcopy: the guest runs
    let s = fx.stats();
    assert_eq!((s.maps, s.vmas, s.evictions), (4, 2, 0));
    fx.cache.start_pass(Admit::DenseOrReused);
    fx.batch(&[0, 1, 16, 17, 32, 33]);
    assert_eq!(fx.calls.borrow().log[4], vec![32, 33]); // the overflow, per batch
    assert_eq!(fx.stats().maps, 5);
    fx.cache.map_deferred(&mut fx.mapper); // bucket 2 again: no room, nothing evicted
    assert_eq!((fx.stats().maps, fx.stats().evictions), (5, 0));
    drop(fx.cache);
    assert_eq!(fx.calls.borrow().live_pages, 0);
}

/// Drives a cache whose bucket index could not be allocated: batches (with a hole and pfns
/// past the old p2m), passes of every rule, deferred maps and checkpoints (one growing the
/// p2m) must all go per batch, every page served, nothing left mapped.
fn run_without_index(fx: &mut Fx) {
    assert!(!fx.cache.caching());
    assert_eq!((fx.cache.p2m_size(), fx.cache.index_capacity()), (0, 0));
    assert_eq!(fx.cache.history_capacity(), 0);
    let hits = fx.stats().hits;
    for admit in [Admit::Everything, Admit::Hot, Admit::DenseOrReused] {
        fx.cache.start_pass(admit);
        fx.cache.defer_maps(admit == Admit::Hot);
        fx.batch(&[0, 1, 2, 5, 16, 17, 40]);
        assert_eq!(
            fx.calls.borrow().log.last(),
            Some(&vec![0, 1, 2, 16, 17, 40])
        );
        fx.cache.map_deferred(&mut fx.mapper);
        fx.observe();
    }
    fx.guest.borrow_mut().populate(90); // max_gpfn grows at the next checkpoint
    fx.observe();
    fx.batch(&[1, 89, 90]);
    assert_eq!(fx.calls.borrow().log.last(), Some(&vec![1, 90]));
    assert_eq!(fx.cache.index_capacity(), 0);
    let s = fx.stats();
    assert_eq!((s.disabled, s.vmas, s.hits), (1, 0, hits));
    assert_eq!(s.maps, s.unmaps);
    assert_eq!(fx.calls.borrow().live_pages, 0);
}

#[test]
fn no_memory_for_the_index_turns_caching_off_not_the_save() {
    // Allocation 1 is the index, 2 the history: either failing has the same outcome.
    for n in ["1", "2"] {
        let _armed = crate::faults::arm_from(|k| (k == "XCSAVE_TEST_FAIL_ALLOC").then(|| n.into()));
        let g = Guest::new(64);
        g.borrow_mut().remove(5);
        let mut fx = Fx::with_guest(g, cfg(4));
        run_without_index(&mut fx);
    }
}

#[test]
fn the_index_never_grows_on_the_guests_say_so() {
    // Allocations 1 and 2 are the index and the history; a third would be a resize.
    let _armed = crate::faults::arm_from(|k| (k == "XCSAVE_TEST_FAIL_ALLOC").then(|| "3".into()));
    let g = Guest::new(64);
    g.borrow_mut().remove(5);
    let mut fx = Fx::with_guest(g, cfg(4));
    fx.batch(&[0, 1, 16, 17]);
    assert_eq!(fx.stats().vmas, 2);
    let cap = (fx.cache.index_capacity(), fx.cache.history_capacity());
    fx.guest.borrow_mut().populate(70); // max_gpfn moves: a flush, no resize
    assert!(matches!(fx.observe(), Verdict::Flush(_)));
    assert!(fx.cache.caching());
    assert_eq!(fx.cache.p2m_size(), 64);
    assert_eq!(
        (fx.cache.index_capacity(), fx.cache.history_capacity()),
        cap
    );
    fx.batch(&[0, 1, 16, 17, 70]);
    assert_eq!(fx.calls.borrow().log.last(), Some(&vec![70]));
    assert_eq!(fx.stats().maps, fx.stats().unmaps + 2);
}

#[test]
fn caching_off_allocates_no_index() {
    let mut c = cfg(4);
    c.enabled = false;
    let fx = Fx::new(64, c);
    assert_eq!((fx.cache.p2m_size(), fx.cache.index_capacity()), (0, 0));
}

#[test]
fn plain_live_first_pass_retains_what_fits_and_releases_it_before_the_suspend() {
    // 8 buckets of 16 pages against room for 4: the guest does not fit.
    let mut fx = fresh(128, cfg(4));
    assert!(!fx.cache.guest_fits());
    let admit = Admit::for_pass(true, false, false, false);
    assert_eq!(admit, Admit::Everything);
    fx.cache.start_pass(admit);
    let all: Vec<u64> = (0..128).collect();
    fx.batch(&all);
    // Buckets 0-3 mapped whole, then the cache is full: the rest in one per-batch map,
    // nothing evicted.
    let s = fx.stats();
    assert_eq!((s.maps, s.vmas, s.evictions), (5, 4, 0));
    assert_eq!(fx.calls.borrow().log[4], (64..128).collect::<Vec<_>>());
    assert_eq!(s.hits, 60);
    // A later precopy iteration hits the retained buckets; a sparse page beyond them still
    // goes per batch (not reused).
    fx.cache
        .start_pass(Admit::for_pass(false, false, false, false));
    fx.batch(&[3, 20, 63, 70]);
    let s = fx.stats();
    assert_eq!((s.hits, s.maps, s.vmas), (63, 6, 4));
    assert_eq!(fx.calls.borrow().log[5], vec![70]);
    // Stop-and-copy chosen: everything goes while the guest runs, and the suspended last
    // pass maps per batch, as stock.
    fx.cache.release_before_suspend();
    let s = fx.stats();
    assert_eq!((s.vmas, s.mapped_bytes, s.maps, s.unmaps), (0, 0, 6, 6));
    assert_eq!(fx.calls.borrow().live_pages, 0);
    fx.cache
        .start_pass(Admit::for_pass(false, false, true, false));
    assert!(!fx.cache.may_map());
    fx.batch(&[3, 70]);
    assert_eq!(fx.calls.borrow().log[6], vec![3, 70]);
    assert_eq!(fx.stats().vmas, 0);
}

#[test]
fn full_cache_refuses_a_miss_without_looking_for_a_victim() {
    let mut fx = fresh(128, cfg(4));
    fx.cache.start_pass(Admit::Everything);
    fx.batch(&(0..64).collect::<Vec<_>>());
    assert_eq!(fx.stats().vmas, 4);
    // Unused buckets of an earlier pass could be evicted, but `Everything` takes only room
    // that is free: the cached buckets stay, the miss goes per batch.
    fx.cache.start_pass(Admit::Everything);
    assert!(!fx.cache.room_for(5));
    fx.batch(&[80, 81]);
    let s = fx.stats();
    assert_eq!((s.vmas, s.evictions), (4, 0));
    assert_eq!(fx.calls.borrow().log.last(), Some(&vec![80, 81]));
}

#[test]
fn whole_guest_expiry_maps_again_before_it_unmaps() {
    let mut c = cfg(4);
    c.max_age = 2;
    c.whole_guest = true;
    let mut fx = Fx::fresh(Guest::new(64), c);
    assert!(fx.cache.guest_fits());
    fx.cache.start_pass(Admit::Everything);
    let all: Vec<u64> = (0..64).collect();
    fx.batch(&all);
    assert_eq!((fx.stats().maps, fx.stats().vmas), (4, 4));
    fx.observe();
    fx.batch(&[3, 40]);
    fx.observe();
    // Expired at the second checkpoint, but still mapped: nothing unmapped in the downtime.
    assert_eq!(
        (fx.stats().vmas, fx.stats().unmaps, fx.stats().expirations),
        (4, 0, 0)
    );
    fx.batch(&[3, 40]);
    assert_eq!(fx.stats().maps, 4, "a warm checkpoint made a map call");
    // The guest moves a new frame under page 40 with no counter moving (out 40, in 40, out
    // 41: its frame stays held by the cache).
    {
        let mut g = fx.guest.borrow_mut();
        g.remove(40);
        g.populate(40);
        g.remove(41);
    }
    // After postcopy: each bucket visited (mapped again, compared, its old mapping unmapped).
    // Only the page whose frame changed is sent again, not every page served since the
    // first pass (which would resend the whole guest at every expiry).
    // The old mapping of bucket 2 (pages 32-47) may hold frames the guest let go: it goes
    // at the next check.
    fx.cache.map_deferred(&mut fx.mapper);
    let s = fx.stats();
    assert_eq!((s.maps, s.unmaps, s.vmas, s.expirations), (8, 3, 5, 4));
    assert_eq!(fx.revalidate(false), vec![40]);
    fx.batch(&all);
    assert_eq!(fx.stats().maps, 8);
    // A visit restarts the age: nothing expires at the next checkpoint.
    fx.observe();
    fx.cache.map_deferred(&mut fx.mapper);
    assert_eq!(fx.stats().expirations, 4);
}

#[test]
fn a_whole_guest_cache_with_the_patrol_never_expires_its_buckets() {
    // The patrol refreshes every bucket in shares: an expiry would map the whole guest again
    // in one burst after a postcopy.
    let mut c = cfg(4);
    c.max_age = 2;
    c.patrol = 64;
    c.whole_guest = true;
    let mut fx = Fx::fresh(Guest::new(64), c);
    fx.cache.start_pass(Admit::Everything);
    let all: Vec<u64> = (0..64).collect();
    fx.batch(&all);
    for _ in 0..5 {
        fx.observe();
        fx.batch(&[3, 40]);
        fx.cache.map_deferred(&mut fx.mapper);
        assert_eq!(fx.revalidate(false), Vec::<u64>::new());
    }
    let s = fx.stats();
    // 4 first-pass maps and one visit (share 1) per postcopy.
    assert_eq!((s.expirations, s.maps, s.vmas), (0, 4 + 5, 4));
}

#[test]
fn the_restores_own_populate_drops_its_bucket_and_is_expected() {
    // A restore populates a pfn that had no frame when its bucket was mapped: the bucket goes
    // at once, and the check after the secondary ran sees only what it expected.
    let g = Guest::new(64);
    g.borrow_mut().remove(5);
    let mut fx = Fx::with_guest(g, cfg(4));
    fx.batch(&[4]);
    assert_eq!(fx.observe(), Verdict::Keep); // the baseline: 63 pages
    fx.guest.borrow_mut().populate(5);
    fx.cache.note_populated(&[5]);
    assert_eq!(fx.stats().invalidations, 1);
    assert_eq!(fx.observe(), Verdict::Keep);
    fx.cache.start_pass(Admit::Everything);
    fx.batch(&[5]); // mapped whole again: the page shows its frame
    assert_eq!((fx.stats().maps, fx.stats().vmas), (2, 1));
    // The secondary gives a cached pfn a new frame itself: unexplained, flushed.
    {
        let mut g = fx.guest.borrow_mut();
        g.remove(7);
        g.populate(7);
    }
    assert_eq!(fx.observe(), Verdict::Flush("tot_pages"));
}
