// SPDX-License-Identifier: GPL-3.0-only
//! The mapping cache of one domain during one save (or restore: nothing here says which):
//! batches with pinning, the budget and LRU eviction, admission by the pass's rule
//! (`policy.rs`), coherence at checkpoints (`coherence.rs`), deferred maps, teardown
//! requests and the end of its life. The buckets live in the [`Store`]; the counters in
//! [`CacheStats`]. Every field is private: the adapter (`adapter.rs`) and the tests go
//! through methods.

use std::io;

use super::coherence::Verdict;
use super::config::{CacheConfig, PAGE_BYTES};
use super::mapper::BucketMapper;
use super::patrol::{changed_pages, Patrol};
use super::policy::{fits, Admit, History};
use super::stats::{CacheStats, Registry};
use super::store::{Bucket, Store};
use crate::abi::xen::{page_type_has_data, MAX_BATCH_SIZE};
use crate::fallible;
use crate::hv::{DomainSignals, PageMapping, PageMappingMut};

/// One page of a batch as the engine receives it: its bytes, or the map call's negative errno.
pub type Page<'a> = Result<&'a [u8], i32>;

/// Where a batch page was found (internal; turned into [`Page`]s for the consumer).
#[derive(Clone, Copy)]
enum Loc {
    Cached { slot: u32, page: u32 },
    Transient(u32),
    Failed(i32),
}

/// Largest bucket index and history, in bytes (12 a bucket): 16 MiB, about 1.4 M buckets or
/// 1.3 TiB of guest with 1 MiB buckets (docs/coherence.md §8.4). Pfns past it go per batch.
const INDEX_CAP_BYTES: u64 = 16 << 20;

/// The mapping cache of one domain during one save. Dropping it unmaps everything.
pub struct DomainCache<M> {
    cfg: CacheConfig,
    registry: &'static Registry,
    domid: u32,
    store: Store<M>,
    /// The open batch's number; a bucket whose `pinned_batch` equals it stays mapped.
    batch: u64,
    /// Slots the open batch pinned.
    pinned: Vec<u32>,
    /// The per-batch mapping of the pages the cache did not serve.
    transient: Option<(M, u64)>,
    /// Suspended checkpoints so far (a bucket's age is counted in them).
    epoch: u64,
    /// The last coherence observation.
    signals: DomainSignals,
    disabled: bool,
    seen_teardown: u64,
    stats: CacheStats,
    locs: Vec<Loc>,
    want: Vec<usize>,
    pfn_buf: Vec<u64>,
    err_buf: Vec<i32>,
    /// Cap on cached pages learnt from a map call refused with ENOMEM.
    enomem_cap: u64,
    /// Passes over the dirty bitmap started so far (the current one's number).
    pass: u32,
    /// Which missing buckets the current pass maps whole.
    admission: Admit,
    /// Bucket number -> what the recent passes asked of it (the admission policy's input).
    seen: Vec<History>,
    /// Admitted buckets are mapped after the pass, once the guest runs again (the pass is in
    /// a checkpoint's downtime); their pages go per batch meanwhile.
    defer: bool,
    /// Buckets admitted during the pass, to map when the guest runs again.
    deferred: Vec<u64>,
    /// The patrol (`None`: off).
    patrol: Option<Patrol>,
    /// Pfns to send again at the next checkpoint: served from a bucket that went before the
    /// patrol visited it, or found changed by a visit ([`DomainCache::revalidate`]).
    resend: Vec<u64>,
    /// The (tot_pages, max_pages) at which the guest was last found at its limit and every
    /// bucket released: the rule sleeps until they change (docs/coherence.md §8.3).
    at_limit: Option<(u64, u64)>,
    /// Buckets of one patrol visit.
    visit_buf: Vec<u64>,
    /// The open batch maps its buckets whole whatever the pass's rule (the restore's special
    /// pages, cleared at every checkpoint).
    force_admit: bool,
    /// Old mappings (and their pages) that patrol visits replaced while the guest ran, kept
    /// until the next suspended check because they may hold frames the guest released
    /// (docs/coherence.md §8.7).
    parked: Vec<(M, u64)>,
    /// `stats.unmaps` when the last suspended check judged the counters.
    unmaps_at_check: u64,
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
            store: Store::new(cfg.bucket_pages),
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
            patrol: Patrol::new(cfg.patrol, cfg.patrol_buckets()),
            resend: Vec::new(),
            at_limit: None,
            visit_buf: Vec::new(),
            force_admit: false,
            parked: Vec::new(),
            unmaps_at_check: 0,
        };
        if !disabled {
            // Caching off needs no index: nothing is looked up (`p2m_size` stays 0).
            c.size_index(signals.max_gpfn.saturating_add(1));
        }
        c.publish();
        c
    }

    /// The domain this cache maps.
    pub fn domid(&self) -> u32 {
        self.domid
    }

    /// The counters so far.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    // ---- batches -------------------------------------------------------------------------

    /// Tells the cache the `getpageframeinfo3` types of a batch (`types[i]` for `pfns[i]`).
    /// A pfn the cache holds mapped but whose type now carries no data (a hole, a broken
    /// page) no longer has that frame: its bucket is dropped.
    pub fn note_types(&mut self, pfns: &[u64], types: &[u64]) {
        for (&pfn, &t) in pfns.iter().zip(types) {
            if page_type_has_data(t) || pfn >= self.store.p2m_size() {
                continue;
            }
            let Some(slot) = self.store.slot_of(self.store.bucket_of(pfn)) else {
                continue;
            };
            if self.store.get(slot).err(self.store.page_in_bucket(pfn)) == 0 {
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

    /// The restore's batch: maps `pfns` writable through the cache (the mapper maps
    /// `PROT_READ|PROT_WRITE`) and calls `write(i, page)` for each, in order, stopping at its
    /// first error. As [`DomainCache::with_batch`] otherwise; with `admit`, a missing bucket is
    /// mapped whole (or, in a checkpoint, after it) whatever the pass's rule.
    pub fn with_batch_mut<X, E>(
        &mut self,
        mapper: &mut X,
        pfns: &[u64],
        admit: bool,
        mut write: impl FnMut(usize, Result<&mut [u8], i32>) -> Result<(), E>,
    ) -> io::Result<Result<(), E>>
    where
        X: BucketMapper<Mapping = M>,
        M: PageMappingMut,
    {
        if pfns.len() > MAX_BATCH_SIZE {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "batch too big"));
        }
        self.check_teardown();
        self.batch += 1;
        self.force_admit = admit;
        let mapped = self.locate(mapper, pfns);
        self.force_admit = false;
        let r = mapped.map(|()| {
            for i in 0..self.locs.len() {
                let page = match self.locs[i] {
                    Loc::Cached { slot, page } => {
                        Ok(self.store.get_mut(slot).mapping.page_mut(page as usize))
                    }
                    Loc::Transient(k) => {
                        let (m, _) = self.transient.as_mut().expect("per-batch mapping");
                        Ok(m.page_mut(k as usize))
                    }
                    Loc::Failed(e) => Err(e),
                };
                if page.is_ok() {
                    self.stats.bytes_sent += PAGE_BYTES;
                }
                write(i, page)?;
            }
            Ok(())
        });
        self.end_batch();
        r
    }

    /// The restore populated `pfns` (docs/coherence.md, "The receiving side"): the counters
    /// expected at the next check move as Xen moves them for a populate, and a cached bucket
    /// holding one of them is unmapped (its mapping shows the pfn's old frame, or a hole);
    /// it is mapped whole again when a batch next asks for it. Called between batches.
    pub fn note_populated(&mut self, pfns: &[u64]) {
        self.signals.after_own_populate(pfns);
        for &pfn in pfns {
            if pfn >= self.store.p2m_size() {
                continue;
            }
            if let Some(slot) = self.store.slot_of(self.store.bucket_of(pfn)) {
                self.stats.invalidations += 1;
                self.drop_slot(slot);
            }
        }
        self.publish();
    }

    fn page_of(&self, l: Loc) -> Page<'_>
    where
        M: PageMapping,
    {
        match l {
            Loc::Cached { slot, page } => Ok(self.store.get(slot).mapping.page(page as usize)),
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
                let b = self.store.bucket_of(pfn);
                demand = pfns[i..]
                    .iter()
                    .take_while(|&&p| self.store.bucket_of(p) == b)
                    .count();
                run_end = i + demand;
            }
            let loc = if self.disabled || pfn >= self.store.p2m_size() {
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
        self.stats.note_map(n * PAGE_BYTES);
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
        let b = self.store.bucket_of(pfn);
        let page = self.store.page_in_bucket(pfn);
        let mut admitted = false;
        if let Some(slot) = self.store.slot_of(b) {
            let batch = self.batch;
            let bk = self.store.get_mut(slot);
            if bk.doomed {
                return Ok(None);
            }
            let err = bk.err(page);
            if err == 0 || bk.mapped_batch == batch {
                // A mapped page, or a bucket mapped in this batch, whose errors are current.
                self.pin(slot);
                self.stats.hits += 1;
                return Ok(Some(self.served(slot, page, err)));
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
        if !(admitted || self.force_admit || self.admit(b, demand)) {
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
        let err = self.store.get(slot).err(page);
        Ok(Some(self.served(slot, page, err)))
    }

    /// Where page `page` of the bucket in `slot` is, given its map error; a mapped page is
    /// noted as served.
    fn served(&mut self, slot: u32, page: u32, err: i32) -> Loc {
        if err == 0 {
            self.store.get_mut(slot).mark_served(page);
            Loc::Cached { slot, page }
        } else {
            Loc::Failed(err)
        }
    }

    /// Unpins the batch's buckets; unmaps the per-batch mapping and buckets found stale.
    fn end_batch(&mut self) {
        for slot in std::mem::take(&mut self.pinned) {
            if self.store.try_get(slot).is_some_and(|b| b.doomed) {
                self.drop_slot(slot);
            }
        }
        if let Some((m, n)) = self.transient.take() {
            drop(m);
            self.stats.note_unmap(n * PAGE_BYTES);
        }
        // A new batch id: nothing is pinned between batches.
        self.batch += 1;
        if self.store.cached_pages() > self.enomem_cap {
            self.evict_while(self.enomem_cap, None);
        }
        self.publish();
    }

    fn pin(&mut self, slot: u32) {
        let (batch, pass) = (self.batch, self.pass);
        let bk = self.store.get_mut(slot);
        bk.used_pass = pass;
        let b = bk.number;
        if bk.pinned_batch != batch {
            bk.pinned_batch = batch;
            self.pinned.push(slot);
        }
        if self.admission.tracks_use() {
            self.seen[b as usize].ask(self.pass, 1);
        }
        self.store.touch(slot);
    }

    // ---- budget, mapping and unmapping ---------------------------------------------------

    /// Pages the cached buckets may hold: the budget less the batch reserve, or less after a
    /// refused map (ENOMEM).
    fn capacity(&self) -> u64 {
        self.cfg.cache_capacity_pages().min(self.enomem_cap)
    }

    /// Evicts buckets the current pass has not used, least recently used first, until bucket
    /// `b` fits (scan resistance: see `policy.rs`).
    fn make_room(&mut self, b: u64) -> bool {
        let need = self.store.bucket_len(b);
        let cap = self.capacity();
        need <= cap && self.evict_while(cap - need, Some(self.pass))
    }

    /// True if bucket `b` fits in the cache without evicting anything.
    fn has_room(&self, b: u64) -> bool {
        self.store.cached_pages() + self.store.bucket_len(b) <= self.capacity()
    }

    /// Evicts unpinned buckets not used in pass `protect`, least recently used first, until
    /// at most `pages` stay cached; false if the rest cannot go.
    fn evict_while(&mut self, pages: u64, protect: Option<u32>) -> bool {
        while self.store.cached_pages() > pages {
            let batch = self.batch;
            let victim = self
                .store
                .find_lru(|bk| bk.pinned_batch != batch && Some(bk.used_pass) != protect);
            let Some(v) = victim else {
                return false;
            };
            self.drop_slot(v);
            self.stats.evictions += 1;
        }
        true
    }

    /// A bucket map was refused with ENOMEM: the system cannot back more foreign mappings
    /// (a PVH dom0 out of frames, or the process out of VMAs). Every frame the cache holds is
    /// one the per-batch mappings, ours and other processes', may need: from now on cache
    /// nothing, as stock. Buckets the open batch pinned go when it ends.
    fn give_up_after_enomem(&mut self) {
        if self.enomem_cap != 0 {
            log::info!(
                "dom{}: mapping cache emptied: a bucket map failed with ENOMEM",
                self.domid
            );
        }
        self.enomem_cap = 0;
        self.evict_while(0, None);
    }

    fn map_bucket<X: BucketMapper<Mapping = M>>(
        &mut self,
        mapper: &mut X,
        b: u64,
    ) -> io::Result<u32> {
        let m = self.map_whole(mapper, b)?;
        Ok(self.insert_mapped(b, m))
    }

    /// Maps every page of bucket `b` into one VMA (per-page errors in `err_buf`).
    fn map_whole<X: BucketMapper<Mapping = M>>(&mut self, mapper: &mut X, b: u64) -> io::Result<M> {
        let first = self.store.first_pfn(b);
        let n = self.store.bucket_len(b);
        self.pfn_buf.clear();
        self.pfn_buf.extend(first..first + n);
        self.err_buf.clear();
        self.err_buf.resize(n as usize, 0);
        let m = mapper.map(&self.pfn_buf, &mut self.err_buf)?;
        self.stats.note_map(n * PAGE_BYTES);
        Ok(m)
    }

    /// Stores `m`, bucket `b` just mapped by [`Self::map_whole`], pinned by the open batch.
    fn insert_mapped(&mut self, b: u64, m: M) -> u32 {
        let bk = Bucket::new(b, m, &self.err_buf, (self.epoch, self.batch, self.pass));
        let slot = self.store.insert(bk);
        self.pinned.push(slot);
        slot
    }

    /// Unmaps the bucket in `slot` and forgets it. The pages it served since the patrol last
    /// visited it are sent again at the next checkpoint: one may have come from a frame the
    /// guest no longer has, and no visit will compare it now (docs/coherence.md §8.1).
    fn drop_slot(&mut self, slot: u32) {
        if let Some(bk) = self.store.remove(slot) {
            let n = bk.pages();
            let first = self.store.first_pfn(bk.number);
            let served = bk.served().count();
            // Not a fault-injection point (`fallible`): running short here does not fail the
            // save; the pages that do not fit are not sent again, with a warning.
            if served != 0 && self.resend.try_reserve(served).is_err() {
                log::warn!(
                    "dom{}: no memory to note {served} pages to send again",
                    self.domid
                );
            }
            let room = self.resend.capacity() - self.resend.len();
            self.resend
                .extend(bk.served().take(room).map(|j| first + u64::from(j)));
            drop(bk);
            self.stats.note_unmap(n * PAGE_BYTES);
        }
    }

    // ---- the patrol (patrol.rs) ----------------------------------------------------------

    /// After a checkpoint's postcopy (the guest runs): visits the patrol's share of the cached
    /// buckets, or every one with `whole` (a plain live save's precopy has ended: this is the
    /// last chance), and calls `resend` with every pfn to send again at the next checkpoint
    /// (or in the last round): pages a visit found changed, and pages served by buckets that
    /// went unvisited. With `whole`, every bucket is unmapped afterwards. Returns whether any
    /// bucket was visited.
    pub fn revalidate<X: BucketMapper<Mapping = M>>(
        &mut self,
        mapper: &mut X,
        whole: bool,
        resend: &mut dyn FnMut(u64),
    ) -> bool
    where
        M: PageMapping,
    {
        let mut visited = false;
        self.check_teardown();
        let want = match (&self.patrol, whole) {
            (_, true) => u64::MAX,
            (Some(p), false) => p.share(),
            (None, false) => 0,
        };
        if !self.disabled && want != 0 && self.store.cached_pages() != 0 {
            let mut todo = std::mem::take(&mut self.visit_buf);
            let store = &self.store;
            let mut walk = Patrol::new(2, 1).expect("a patrol of N = 2");
            let p = self.patrol.as_mut().unwrap_or(&mut walk);
            p.next_buckets(
                want,
                store.buckets(),
                |b| store.slot_of(b).is_some(),
                &mut todo,
            );
            self.batch += 1;
            visited = !todo.is_empty();
            for &b in &todo {
                if let Err(e) = self.visit(mapper, b) {
                    if e.raw_os_error() == Some(libc::ENOMEM) {
                        self.give_up_after_enomem();
                        break;
                    }
                    log::debug!("dom{}: patrol visit of bucket {b} failed: {e}", self.domid);
                    if let Some(slot) = self.store.slot_of(b) {
                        self.drop_slot(slot);
                    }
                }
            }
            self.batch += 1;
            self.visit_buf = todo;
        }
        if whole {
            self.release_before_suspend();
        }
        for pfn in self.resend.drain(..) {
            resend(pfn);
        }
        self.publish();
        visited
    }

    /// One patrol visit of bucket `b` (cached): maps it afresh, notes the pages whose content
    /// changed, and keeps the fresh mapping in place of the old one.
    fn visit<X: BucketMapper<Mapping = M>>(&mut self, mapper: &mut X, b: u64) -> io::Result<()>
    where
        M: PageMapping,
    {
        let first = self.store.first_pfn(b);
        let n = self.store.bucket_len(b);
        let fresh = self.map_whole(mapper, b)?;
        let slot = self.store.slot_of(b).expect("a visited bucket is cached");
        let bk = self.store.get(slot);
        let before = self.resend.len();
        let mut changed = 0u64;
        changed_pages(
            &bk.mapping,
            |j| bk.err(j),
            &fresh,
            &self.err_buf,
            |j| {
                changed += 1;
                if self.resend.try_reserve(1).is_ok() {
                    self.resend.push(first + u64::from(j));
                }
            },
        );
        if self.resend.len() - before != changed as usize {
            log::warn!(
                "dom{}: no memory to note changed pages to send again",
                self.domid
            );
        }
        if changed != 0 {
            log::debug!(
                "dom{}: patrol: {changed} page(s) of bucket {b} changed under the cache",
                self.domid
            );
        }
        // A page mapped in the old mapping and not in the fresh one was released; one that
        // changed may have a new frame. Either way the old mapping may hold the only
        // reference to a frame the guest let go, which is still counted in tot_pages: it
        // waits for the next suspended check, so that its release is not taken for the
        // guest's (docs/coherence.md §8.7).
        let released = (0..n as usize).any(|j| bk.err(j as u32) == 0 && self.err_buf[j] != 0);
        let old = self.store.get_mut(slot).refresh(fresh, &self.err_buf);
        if (changed != 0 || released) && self.parked.try_reserve(1).is_ok() {
            self.parked.push((old, n));
        } else {
            drop(old);
            self.stats.note_unmap(n * PAGE_BYTES);
        }
        Ok(())
    }

    /// Unmaps the old mappings that patrol visits kept ([`DomainCache::visit`]).
    fn release_parked(&mut self) {
        for (old, n) in self.parked.drain(..) {
            drop(old);
            self.stats.note_unmap(n * PAGE_BYTES);
        }
    }

    /// Sizes the bucket index and history, once, for the `p2m_size` pfns the guest has when
    /// the cache starts, capped at [`INDEX_CAP_BYTES`] (docs/coherence.md §8.4): they never
    /// grow on the guest's say-so, and a pfn past them is mapped per batch, as stock. Both are
    /// allocated fallibly (`fallible.rs`, one counted allocation each): if either fails,
    /// caching is off for the rest of the save and `p2m_size` is 0, so no lookup indexes the
    /// empty index or history (the save goes on, mapped per batch).
    fn size_index(&mut self, p2m_size: u64) {
        let per_bucket = (std::mem::size_of::<u32>() + std::mem::size_of::<History>()) as u64;
        let cap_pfns =
            (INDEX_CAP_BYTES / per_bucket).saturating_mul(u64::from(self.cfg.bucket_pages));
        let p2m_size = p2m_size.min(cap_pfns);
        let n = self.store.buckets_for(p2m_size);
        let sized = self.store.new_index(p2m_size).and_then(|index| {
            let mut seen = fallible::try_with_capacity(n)?;
            seen.resize(n, History::default());
            Ok((index, seen))
        });
        match sized {
            Ok((index, seen)) => {
                self.store.set_index(index, p2m_size);
                self.seen = seen;
            }
            Err(_) => {
                self.deferred.clear();
                self.disable("no memory for the bucket index");
            }
        }
    }

    fn publish(&self) {
        self.registry.publish(self.domid, &self.stats);
    }

    // ---- passes and admission (policy.rs) ------------------------------------------------

    /// True if the guest's populated pages fit in the cache with 1/8 of it to spare.
    pub fn guest_fits(&self) -> bool {
        self.caching() && (self.cfg.whole_guest || fits(self.signals.tot_pages, self.capacity()))
    }

    /// True if the cache holds a bucket or may map one in this pass. When it is false the
    /// batches of the pass are mapped per batch, as stock, and need no coherence check.
    pub fn may_map(&self) -> bool {
        self.caching() && (self.store.cached_pages() > 0 || self.admission != Admit::Nothing)
    }

    /// A new pass over the dirty bitmap starts, with admission rule `admit`.
    pub fn start_pass(&mut self, admit: Admit) {
        self.pass = self.pass.saturating_add(1);
        self.admission = admit;
    }

    /// Decides whether bucket `b`, not cached, is mapped whole for a batch that asks for
    /// `demand` of its pages (the page at hand is one of them, and is counted).
    fn admit(&mut self, b: u64, demand: u64) -> bool {
        let rule = self.admission;
        match rule {
            // Room without evicting: O(1), so a full cache costs a miss nothing more.
            Admit::Everything => self.has_room(b),
            Admit::Nothing => false,
            Admit::Hot | Admit::DenseOrReused => {
                let h = &mut self.seen[b as usize];
                h.ask(self.pass, 1);
                let (pages, age) = (
                    u64::from(self.cfg.bucket_pages),
                    u64::from(self.cfg.max_age),
                );
                rule.admits(h.prev(), demand, pages, age)
            }
        }
    }

    /// Unmaps every bucket: the guest is about to be suspended for a plain migration's last
    /// pass, which caches nothing and sends a few pages per batch, as stock. Unmapping now
    /// keeps that work out of the downtime. Called between batches (nothing pinned).
    pub fn release_before_suspend(&mut self) {
        self.deferred.clear();
        self.finish();
    }

    /// Whether buckets admitted from now on are mapped only when the guest runs again
    /// ([`DomainCache::map_deferred`]): the passes of a checkpointed stream after its first
    /// suspend run inside the downtime, which should not pay for whole buckets.
    pub fn defer_maps(&mut self, defer: bool) {
        self.defer = defer;
    }

    /// Notes that bucket `b` is admitted, to map after the pass. At most what the cache can
    /// hold is remembered.
    fn defer_map(&mut self, b: u64) {
        let room = self.cfg.cache_capacity_pages() / u64::from(self.cfg.bucket_pages);
        if self.deferred.last() != Some(&b) && (self.deferred.len() as u64) < room {
            self.deferred.push(b);
        }
    }

    /// Maps the buckets admitted during the last pass (the guest runs: outside the
    /// downtime), within the budget, evicting only buckets that pass did not use. A mapping
    /// made now is checked like any other at the next suspend (docs/coherence.md §7).
    pub fn map_deferred<X: BucketMapper<Mapping = M>>(&mut self, mapper: &mut X)
    where
        M: PageMapping,
    {
        let todo = std::mem::take(&mut self.deferred);
        self.check_teardown();
        if self.disabled || todo.is_empty() {
            return;
        }
        self.batch += 1;
        for &b in &todo {
            if b >= self.store.buckets() {
                continue;
            }
            if let Some(old) = self.store.slot_of(b) {
                if self.cfg.whole_guest && self.expired(old) {
                    self.refresh(mapper, b, old);
                }
                continue;
            }
            if !self.make_room(b) {
                break;
            }
            match self.map_bucket(mapper, b) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => {
                    self.give_up_after_enomem();
                    break;
                }
                Err(e) => {
                    // The next batch that needs these pages maps them, and reports errors.
                    log::debug!("dom{}: deferred bucket map failed: {e}", self.domid);
                    break;
                }
            }
        }
        self.end_batch();
        self.deferred = todo;
        self.deferred.clear();
    }

    // ---- coherence at checkpoints (coherence.rs), lifetime --------------------------------

    /// Compares `signals` with the last observation and drops whatever may be stale
    /// (docs/coherence.md). Call it at every suspended checkpoint with `suspended = true`,
    /// which also ages the buckets and unmaps those that reached the maximum age; it may also
    /// be called at other quiet points with `suspended = false`.
    pub fn observe(&mut self, signals: DomainSignals, suspended: bool) -> Verdict {
        self.check_teardown();
        let verdict = signals.judge(&self.signals);
        self.signals = signals;
        if suspended {
            self.unmaps_at_check = self.stats.unmaps;
        }
        match verdict {
            Verdict::Keep => {}
            Verdict::Flush(why) => {
                log::debug!("dom{}: mapping cache flushed: {why} changed", self.domid);
                // A moved max gpfn flushes too, but the index keeps the size it was given.
                if self.cfg.whole_guest {
                    // Mapped again when the guest runs (map_deferred), from the new p2m.
                    self.deferred = self.mapped_buckets();
                }
                self.flush(true);
            }
            Verdict::Disable(why) => self.disable(why),
        }
        self.release_at_limit();
        if suspended {
            // The counters are judged: the frames the parked mappings hold can go now, while
            // the guest is paused ([`DomainCache::unmapped_since_check`]).
            self.release_parked();
            self.epoch += 1;
            self.stats.checkpoints += 1;
            self.expire();
        }
        self.publish();
        verdict
    }

    /// Takes `signals` as the baseline without judging them. For counters read right after
    /// a flush while the guest is still paused (the receiving side's check, docs/coherence.md
    /// §10): they differ from the last observation only by the frames the flush released,
    /// which the next check would otherwise take for a change and flush again.
    pub fn rebaseline(&mut self, signals: DomainSignals) {
        self.signals = signals;
        self.unmaps_at_check = self.stats.unmaps;
    }

    /// True if the cache unmapped anything since the last suspended check judged the
    /// counters ([`DomainCache::observe`]). Asked while the guest is still paused after that
    /// check (a checkpoint's data sent, the guest not yet resumed): the frames the cache alone
    /// held for pfns the guest had released are free now, and the counters dropped by them
    /// alone. The caller then reads them again for [`DomainCache::rebaseline`], so that the
    /// next check does not take the cache's own release for the guest's and flush again
    /// (docs/coherence.md §8.7).
    pub fn unmapped_since_check(&self) -> bool {
        self.caching() && self.stats.unmaps != self.unmaps_at_check
    }

    /// A guest at its `max_pages` cannot populate a page, and frames the cache holds may be
    /// the reason (a released frame stays counted while mapped): every bucket is unmapped.
    /// The rule then sleeps until `tot_pages` or `max_pages` changes, so a guest that sits
    /// at its limit is not flushed at every check (docs/coherence.md §8.3).
    fn release_at_limit(&mut self) {
        let s = (self.signals.tot_pages, self.signals.max_pages);
        if s.0 < s.1 || self.at_limit == Some(s) || self.store.cached_pages() == 0 {
            return;
        }
        log::debug!(
            "dom{}: at max_pages ({}): every bucket released",
            self.domid,
            s.1
        );
        self.at_limit = Some(s);
        self.flush(true);
    }

    /// True while the cache keeps mappings across batches.
    pub fn caching(&self) -> bool {
        !self.disabled
    }

    /// Counts a checkpoint without checking anything (caching is off).
    pub fn count_checkpoint(&mut self, suspended: bool) {
        if suspended {
            self.stats.checkpoints += 1;
            self.publish();
        }
    }

    /// Stops caching for the rest of the save: everything is unmapped, and every later batch
    /// is mapped and unmapped on its own, as the stock saver does.
    pub fn disable(&mut self, why: &str) {
        if !self.disabled {
            log::info!("dom{}: mapping cache disabled: {why}", self.domid);
        }
        self.flush(true);
        self.disabled = true;
        self.stats.disabled = 1;
        self.publish();
    }

    /// Unmaps everything (END, failover, error, teardown). The counters stay published.
    pub fn finish(&mut self) {
        self.flush(false);
        self.publish();
    }

    /// Honours a teardown request made since the last check.
    fn check_teardown(&mut self) {
        let g = self.registry.teardown_generation();
        if g != self.seen_teardown {
            self.seen_teardown = g;
            self.flush(true);
        }
    }

    /// Unmaps every cached bucket; counts them as invalidations if `invalidate`.
    fn flush(&mut self, invalidate: bool) {
        self.release_parked();
        for slot in 0..self.store.slot_count() {
            if self.store.try_get(slot).is_some() {
                if invalidate {
                    self.stats.invalidations += 1;
                }
                self.drop_slot(slot);
            }
        }
    }

    /// Unmaps buckets mapped `max_age` or more checkpoints ago; a whole-guest cache queues
    /// them for a visit instead (with the patrol on, its visits refresh them: nothing expires).
    fn expire(&mut self) {
        if self.cfg.whole_guest && self.patrol.is_some() {
            // The patrol's visits refresh every bucket of a whole-guest cache, in a share per
            // checkpoint: expiring them too would map the whole guest again in one burst
            // (docs/coherence.md §8.1). Nothing to walk inside the downtime.
            return;
        }
        for slot in 0..self.store.slot_count() {
            if !self.expired(slot) {
                continue;
            }
            if self.cfg.whole_guest {
                // Visited when the guest runs (map_deferred): mapped again, compared, and the
                // old mapping unmapped, so the whole guest stays mapped (docs/coherence.md
                // §8.6) and only pages that changed are sent again.
                let b = self.store.get(slot).number;
                self.deferred.push(b);
            } else {
                self.stats.expirations += 1;
                self.drop_slot(slot);
            }
        }
    }

    /// True if the bucket in `slot` was mapped `max_age` or more checkpoints ago.
    fn expired(&self, slot: u32) -> bool {
        let max_age = u64::from(self.cfg.max_age.max(1));
        self.store
            .try_get(slot)
            .is_some_and(|b| self.epoch - b.epoch >= max_age)
    }

    /// The numbers of the buckets mapped now.
    fn mapped_buckets(&self) -> Vec<u64> {
        (0..self.store.slot_count())
            .filter_map(|slot| self.store.try_get(slot).map(|b| b.number))
            .collect()
    }

    /// A whole-guest cache's expiry of bucket `b` in `old` (the patrol off): a visit, which
    /// maps it again, notes the pages whose content changed to send again, and then unmaps
    /// the old mapping, so the bucket is never without a mapping; its age starts again. A
    /// failed map keeps the old one, to expire at the next checkpoint.
    fn refresh<X: BucketMapper<Mapping = M>>(&mut self, mapper: &mut X, b: u64, old: u32)
    where
        M: PageMapping,
    {
        match self.visit(mapper, b) {
            Ok(()) => {
                self.stats.expirations += 1;
                self.store.get_mut(old).epoch = self.epoch;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => self.give_up_after_enomem(),
            // Kept as it is: still expired, it is tried again after the next checkpoint.
            Err(e) => log::debug!(
                "dom{}: expired bucket {b} not mapped again: {e}",
                self.domid
            ),
        }
    }
}

/// What the unit tests look at inside.
#[cfg(test)]
impl<M> DomainCache<M> {
    pub(super) fn config(&self) -> &CacheConfig {
        &self.cfg
    }
    pub(super) fn registry(&self) -> &'static Registry {
        self.registry
    }
    pub(super) fn pass(&self) -> u32 {
        self.pass
    }
    pub(super) fn history_mut(&mut self) -> &mut [History] {
        &mut self.seen
    }
    pub(super) fn p2m_size(&self) -> u64 {
        self.store.p2m_size()
    }
    pub(super) fn index_capacity(&self) -> usize {
        self.store.index_capacity()
    }
    pub(super) fn history_capacity(&self) -> usize {
        self.seen.capacity()
    }
    pub(super) fn room_for(&self, b: u64) -> bool {
        self.has_room(b)
    }
}

impl<M> Drop for DomainCache<M> {
    fn drop(&mut self) {
        self.finish();
    }
}
