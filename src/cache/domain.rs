// SPDX-License-Identifier: GPL-3.0-only
//! The per-domain cache: O(1) bucket lookup, batches with pinning, budget and LRU eviction.
//! Slot bookkeeping is in `slots.rs`; checkpoint-time coherence and lifetime in `checkpoint.rs`.

use std::io;

use super::bucket::Bucket;
use super::config::{CacheConfig, PAGE_BYTES};
use super::lru::Lru;
use super::mapper::BucketMapper;
use super::policy::{Admit, History};
use super::stats::{CacheStats, Registry};
use crate::abi::xen::{page_type_has_data, MAX_BATCH_SIZE};
use crate::hv::{DomainSignals, PageMapping};

pub(super) const NIL: u32 = u32::MAX;

/// One page of a batch as the engine receives it: its bytes, or the map call's negative errno.
pub type Page<'a> = Result<&'a [u8], i32>;

/// Where a batch page was found (internal; turned into [`Page`]s for the consumer).
#[derive(Clone, Copy)]
enum Loc {
    Cached { slot: u32, page: u32 },
    Transient(u32),
    Failed(i32),
}

/// The mapping cache of one domain during one save. Dropping it unmaps everything.
pub struct DomainCache<M> {
    pub(super) cfg: CacheConfig,
    pub(super) registry: &'static Registry,
    pub(super) domid: u32,
    pub(super) shift: u32,
    pub(super) p2m_size: u64,
    /// Bucket number -> slot (or [`NIL`]).
    pub(super) index: Vec<u32>,
    pub(super) slots: Vec<Option<Bucket<M>>>,
    pub(super) free: Vec<u32>,
    pub(super) lru: Lru,
    /// Pages held by cached buckets.
    pub(super) cached_pages: u64,
    pub(super) batch: u64,
    pub(super) pinned: Vec<u32>,
    /// The per-batch mapping of the pages the cache did not serve.
    transient: Option<(M, u64)>,
    pub(super) epoch: u64,
    pub(super) signals: DomainSignals,
    pub(super) disabled: bool,
    pub(super) seen_teardown: u64,
    pub(super) stats: CacheStats,
    locs: Vec<Loc>,
    want: Vec<usize>,
    pub(super) pfn_buf: Vec<u64>,
    pub(super) err_buf: Vec<i32>,
    /// Cap on cached pages learnt from a map call refused with ENOMEM.
    pub(super) enomem_cap: u64,
    /// Passes over the dirty bitmap started so far (the current one's number).
    pub(super) pass: u32,
    /// Which missing buckets the current pass maps whole.
    pub(super) admission: Admit,
    /// Bucket number -> what the recent passes asked of it (the admission policy's input).
    pub(super) seen: Vec<History>,
    /// Admitted buckets are mapped after the pass, once the guest runs again (the pass is in
    /// a checkpoint's downtime); their pages go per batch meanwhile.
    pub(super) defer: bool,
    /// Buckets admitted during the pass, to map when the guest runs again.
    pub(super) deferred: Vec<u64>,
}

impl<M> DomainCache<M> {
    /// A cache for `domid`, with `signals` read before any page is mapped as the baseline of
    /// the coherence checks. A budget left to its default follows the guest's populated pages
    /// then ([`CacheConfig::for_guest`]). Resets the domain's published counters.
    pub fn new(
        cfg: CacheConfig,
        domid: u32,
        signals: DomainSignals,
        registry: &'static Registry,
    ) -> Self {
        let cfg = cfg.for_guest(signals.tot_pages, signals.max_gpfn.saturating_add(1));
        let disabled = !cfg.enabled
            || signals.unsafe_to_cache().is_some()
            || cfg.cache_capacity_pages() < u64::from(cfg.bucket_pages);
        let mut c = DomainCache {
            cfg,
            registry,
            domid,
            shift: cfg.bucket_pages.trailing_zeros(),
            p2m_size: 0,
            index: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            lru: Lru::new(),
            cached_pages: 0,
            batch: 0,
            pinned: Vec::new(),
            transient: None,
            epoch: 0,
            signals,
            disabled,
            seen_teardown: registry.teardown_generation(),
            stats: CacheStats {
                disabled: u64::from(disabled),
                ..Default::default()
            },
            locs: Vec::new(),
            want: Vec::new(),
            pfn_buf: Vec::new(),
            err_buf: Vec::new(),
            enomem_cap: u64::MAX,
            pass: 0,
            admission: Admit::DenseOrReused,
            seen: Vec::new(),
            defer: false,
            deferred: Vec::new(),
        };
        if !disabled {
            // Caching off needs no index: nothing is looked up (`p2m_size` stays 0).
            c.resize(signals.max_gpfn.saturating_add(1));
        }
        c.publish();
        c
    }

    /// Tells the cache the `getpageframeinfo3` types of a batch (`types[i]` for `pfns[i]`).
    /// A pfn the cache holds mapped but whose type now carries no data (a hole, a broken
    /// page) no longer has that frame: its bucket is dropped.
    pub fn note_types(&mut self, pfns: &[u64], types: &[u64]) {
        for (&pfn, &t) in pfns.iter().zip(types) {
            if page_type_has_data(t) || pfn >= self.p2m_size {
                continue;
            }
            let slot = self.index[(pfn >> self.shift) as usize];
            if slot != NIL && self.bucket(slot).err(self.page_in_bucket(pfn)) == 0 {
                self.stats.invalidations += 1;
                self.drop_slot(slot);
            }
        }
    }

    /// Maps the data pages `pfns` of one batch and calls `consume` with one [`Page`] per pfn,
    /// in order. The buckets behind the pages are pinned (never evicted) until `consume`
    /// returns. Pages the cache cannot serve are mapped together in one per-batch mapping, as
    /// the stock saver maps a batch, and unmapped afterwards.
    pub fn with_batch<X, R>(
        &mut self,
        mapper: &mut X,
        pfns: &[u64],
        consume: impl FnOnce(&[Page<'_>]) -> R,
    ) -> io::Result<R>
    where
        X: BucketMapper<Mapping = M>,
        M: PageMapping,
    {
        if pfns.len() > MAX_BATCH_SIZE {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "batch too big"));
        }
        self.check_teardown();
        self.batch += 1;
        let mapped = self.locate(mapper, pfns);
        let r = mapped.map(|()| {
            let sent = self
                .locs
                .iter()
                .filter(|l| !matches!(l, Loc::Failed(_)))
                .count();
            self.stats.bytes_sent += sent as u64 * PAGE_BYTES;
            let pages: Vec<Page<'_>> = self.locs.iter().map(|&l| self.page_of(l)).collect();
            consume(&pages)
        });
        self.end_batch();
        r
    }

    fn page_of(&self, l: Loc) -> Page<'_>
    where
        M: PageMapping,
    {
        match l {
            Loc::Cached { slot, page } => Ok(self.bucket(slot).mapping.page(page as usize)),
            Loc::Transient(k) => {
                let (m, _) = self.transient.as_ref().expect("per-batch mapping");
                Ok(m.page(k as usize))
            }
            Loc::Failed(e) => Err(e),
        }
    }

    /// Finds or maps every page of the batch, filling `self.locs`.
    fn locate<X: BucketMapper<Mapping = M>>(
        &mut self,
        mapper: &mut X,
        pfns: &[u64],
    ) -> io::Result<()> {
        self.locs.clear();
        self.want.clear();
        // Pages the batch asks for in the bucket of pfns[i] (the engine's batches are in
        // ascending pfn order, so a bucket's pages are one run).
        let (mut run_end, mut demand) = (0, 0);
        for (i, &pfn) in pfns.iter().enumerate() {
            if i >= run_end {
                let b = pfn >> self.shift;
                demand = pfns[i..]
                    .iter()
                    .take_while(|&&p| p >> self.shift == b)
                    .count();
                run_end = i + demand;
            }
            let loc = if self.disabled || pfn >= self.p2m_size {
                None
            } else {
                self.serve(mapper, pfn, demand as u64)?
            };
            match loc {
                Some(l) => self.locs.push(l),
                None => {
                    self.want.push(i);
                    self.locs.push(Loc::Failed(0));
                }
            }
        }
        if self.want.is_empty() {
            return Ok(());
        }
        self.pfn_buf.clear();
        self.pfn_buf.extend(self.want.iter().map(|&i| pfns[i]));
        self.err_buf.clear();
        self.err_buf.resize(self.want.len(), 0);
        let m = mapper.map(&self.pfn_buf, &mut self.err_buf)?;
        let n = self.want.len() as u64;
        self.note_map(n);
        self.stats.misses += n;
        for (k, &i) in self.want.iter().enumerate() {
            let e = self.err_buf[k];
            self.locs[i] = if e == 0 {
                Loc::Transient(k as u32)
            } else {
                Loc::Failed(e)
            };
        }
        self.transient = Some((m, n));
        Ok(())
    }

    /// Serves one page from the cache, mapping its bucket if the policy admits it (the batch
    /// asks for `demand` of its pages); `None` sends it to the per-batch mapping.
    fn serve<X: BucketMapper<Mapping = M>>(
        &mut self,
        mapper: &mut X,
        pfn: u64,
        demand: u64,
    ) -> io::Result<Option<Loc>> {
        let b = pfn >> self.shift;
        let page = self.page_in_bucket(pfn);
        let slot = self.index[b as usize];
        let mut admitted = false;
        if slot != NIL {
            let batch = self.batch;
            let bk = self.bucket_mut(slot);
            if bk.doomed {
                return Ok(None);
            }
            let err = bk.err(page);
            if err == 0 || bk.mapped_batch == batch {
                // A mapped page, or a bucket mapped in this batch, whose errors are current.
                self.pin(slot);
                self.stats.hits += 1;
                return Ok(Some(Self::loc(slot, page, err)));
            }
            // The page had no frame when the bucket was mapped and now has data: the bucket
            // must be remapped whole (privcmd cannot refresh part of a VMA).
            let pinned = bk.pinned_batch == batch;
            bk.doomed = pinned;
            self.stats.invalidations += 1;
            if pinned {
                return Ok(None);
            }
            self.drop_slot(slot);
            admitted = true;
        }
        if !(admitted || self.admit(b, demand)) {
            return Ok(None);
        }
        if self.defer {
            self.defer_map(b);
            return Ok(None);
        }
        if !self.make_room(b) {
            return Ok(None);
        }
        let slot = match self.map_bucket(mapper, b) {
            Ok(slot) => slot,
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => {
                // Out of dom0 frames (PVH) or VMAs: stop caching, as stock would map.
                self.give_up_after_enomem();
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        self.stats.misses += 1;
        let err = self.bucket(slot).err(page);
        Ok(Some(Self::loc(slot, page, err)))
    }

    fn loc(slot: u32, page: u32, err: i32) -> Loc {
        if err == 0 {
            Loc::Cached { slot, page }
        } else {
            Loc::Failed(err)
        }
    }

    /// Unpins the batch's buckets; unmaps the per-batch mapping and buckets found stale.
    pub(super) fn end_batch(&mut self) {
        for slot in std::mem::take(&mut self.pinned) {
            if self.slots[slot as usize].as_ref().is_some_and(|b| b.doomed) {
                self.drop_slot(slot);
            }
        }
        if let Some((m, n)) = self.transient.take() {
            drop(m);
            self.note_unmap(n);
        }
        // A new batch id: nothing is pinned between batches.
        self.batch += 1;
        if self.cached_pages > self.enomem_cap {
            self.evict_to(self.enomem_cap);
        }
        self.publish();
    }

    fn pin(&mut self, slot: u32) {
        let (batch, pass) = (self.batch, self.pass);
        let bk = self.bucket_mut(slot);
        bk.used_pass = pass;
        let b = bk.number;
        if bk.pinned_batch != batch {
            bk.pinned_batch = batch;
            self.pinned.push(slot);
        }
        self.note_use(b);
        self.lru.touch(slot);
    }
}
