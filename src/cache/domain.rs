// SPDX-License-Identifier: GPL-3.0-only
//! The per-domain cache: O(1) bucket lookup, batches with pinning, budget and LRU eviction.
//! Checkpoint-time coherence and lifetime are in `checkpoint.rs`.

use std::io;

use super::bucket::{type_has_data, type_nibble, Bucket, TYPE_UNKNOWN};
use super::coherence::DomainSignals;
use super::config::{CacheConfig, MAX_BATCH_PAGES, PAGE_SIZE};
use super::lru::Lru;
use super::mapper::{BucketMapper, PageMapping};
use super::stats::{CacheStats, Registry};

pub(super) const NIL: u32 = u32::MAX;

/// What the cache hands the engine for one pfn of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageData {
    /// The page's type carries no data (hole, broken, ...): nothing to send.
    NoData,
    /// The page is mapped at this address until [`DomainCache::end_batch`].
    Mapped(*const u8),
    /// The map call failed for this page with this negative errno.
    Failed(i32),
}

/// The mapping cache of one domain during one save. Dropping it unmaps everything.
pub struct DomainCache<X: BucketMapper> {
    pub(super) mapper: X,
    pub(super) cfg: CacheConfig,
    pub(super) registry: &'static Registry,
    pub(super) domid: u32,
    pub(super) shift: u32,
    pub(super) p2m_size: u64,
    /// Bucket number -> slot (or [`NIL`]).
    pub(super) index: Vec<u32>,
    pub(super) slots: Vec<Option<Bucket<X::Mapping>>>,
    pub(super) free: Vec<u32>,
    pub(super) lru: Lru,
    /// Pages held by cached buckets.
    pub(super) cached_pages: u64,
    pub(super) batch: u64,
    pub(super) in_batch: bool,
    pub(super) pinned: Vec<u32>,
    /// The per-batch mapping of pages the cache did not serve, and its page count.
    pub(super) transient: Option<(X::Mapping, u64)>,
    pub(super) epoch: u64,
    pub(super) signals: DomainSignals,
    pub(super) disabled: bool,
    pub(super) seen_teardown: u64,
    pub(super) stats: CacheStats,
    want: Vec<usize>,
    pfn_buf: Vec<u64>,
    err_buf: Vec<i32>,
}

impl<X: BucketMapper> DomainCache<X> {
    /// A cache for `domid`, with `signals` read at setup (before any page is mapped) as the
    /// baseline for coherence checks. Resets the domain's published counters.
    pub fn new(
        mapper: X,
        cfg: CacheConfig,
        domid: u32,
        signals: DomainSignals,
        registry: &'static Registry,
    ) -> Self {
        let disabled = !cfg.enabled
            || signals.pod_in_use()
            || cfg.cache_capacity_pages() < cfg.bucket_pages as u64;
        let mut c = DomainCache {
            mapper,
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
            in_batch: false,
            pinned: Vec::new(),
            transient: None,
            epoch: 0,
            signals,
            disabled,
            seen_teardown: registry.teardown_generation(),
            stats: CacheStats {
                disabled: disabled as u64,
                ..Default::default()
            },
            want: Vec::new(),
            pfn_buf: Vec::new(),
            err_buf: Vec::new(),
        };
        c.resize(signals.max_gpfn.saturating_add(1));
        c.publish();
        c
    }

    /// Maps the data pages of a batch. `types` are the batch's `getpageframeinfo3` results.
    /// `out[i]` tells the engine where page `pfns[i]` is; every pointer stays valid until
    /// [`DomainCache::end_batch`], and the buckets behind them cannot be evicted before then.
    pub fn map_batch(
        &mut self,
        pfns: &[u64],
        types: &[u32],
        out: &mut Vec<PageData>,
    ) -> io::Result<()> {
        if pfns.len() != types.len() || pfns.len() > MAX_BATCH_PAGES {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad batch"));
        }
        if self.in_batch {
            return Err(io::Error::other("previous batch still open"));
        }
        self.check_teardown()?;
        self.batch += 1;
        self.in_batch = true;
        out.clear();
        out.resize(pfns.len(), PageData::NoData);
        let r = self.fill(pfns, types, out);
        if r.is_err() {
            let _ = self.end_batch();
        }
        r
    }

    /// Releases the batch: unpins its buckets, unmaps its per-batch mapping and any bucket
    /// found stale while pinned.
    pub fn end_batch(&mut self) -> io::Result<()> {
        if !self.in_batch {
            return Ok(());
        }
        let mut res = Ok(());
        for slot in std::mem::take(&mut self.pinned) {
            if self.slots[slot as usize].as_ref().is_some_and(|b| b.doomed) {
                res = res.and(self.drop_slot(slot));
            }
        }
        if let Some((m, n)) = self.transient.take() {
            res = res.and(self.unmap_counted(m, n));
        }
        self.in_batch = false;
        self.publish();
        res
    }

    /// The domain's counters now.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    fn fill(&mut self, pfns: &[u64], types: &[u32], out: &mut [PageData]) -> io::Result<()> {
        self.want.clear();
        for (i, (&pfn, &t)) in pfns.iter().zip(types).enumerate() {
            if !type_has_data(t) {
                self.note_no_data(pfn, t)?;
            } else if self.disabled || pfn >= self.p2m_size {
                self.want.push(i);
            } else if let Some(d) = self.serve(pfn, t)? {
                out[i] = d;
            } else {
                self.want.push(i);
            }
        }
        if !self.want.is_empty() {
            self.map_transient(pfns, out)?;
        }
        let sent = out
            .iter()
            .filter(|d| matches!(d, PageData::Mapped(_)))
            .count() as u64;
        self.stats.bytes_sent += sent * PAGE_SIZE;
        Ok(())
    }

    /// Serves one data page from the cache, mapping its bucket if needed; `None` sends it to
    /// the per-batch mapping.
    fn serve(&mut self, pfn: u64, t: u32) -> io::Result<Option<PageData>> {
        let b = pfn >> self.shift;
        let j = (pfn & ((1 << self.shift) - 1)) as usize;
        let nib = type_nibble(t);
        let slot = self.index[b as usize];
        if slot != NIL {
            let batch = self.batch;
            let bk = self.bucket_mut(slot);
            if bk.doomed {
                return Ok(None);
            }
            let err = bk.err(j);
            let known = bk.ty(j);
            if bk.mapped_batch == batch || (err == 0 && (known == TYPE_UNKNOWN || known == nib)) {
                // Fresh in this batch (its errors are current), or a valid page of an
                // unchanged type.
                if err == 0 {
                    bk.set_ty(j, nib);
                }
                self.pin(slot);
                self.stats.hits += 1;
                return Ok(Some(Self::result(self.bucket_mut(slot), j, err)));
            }
            // Mapped before the page had data, or its type changed: the bucket is stale.
            let pinned = bk.pinned_batch == batch;
            if pinned {
                bk.doomed = true;
            }
            self.stats.invalidations += 1;
            if pinned {
                return Ok(None);
            }
            self.drop_slot(slot)?;
        }
        if !self.make_room(b)? {
            return Ok(None);
        }
        let slot = self.map_bucket(b)?;
        self.stats.misses += 1;
        let bk = self.bucket_mut(slot);
        let err = bk.err(j);
        if err == 0 {
            bk.set_ty(j, nib);
        }
        Ok(Some(Self::result(bk, j, err)))
    }

    fn result(bk: &Bucket<X::Mapping>, j: usize, err: i32) -> PageData {
        if err == 0 {
            PageData::Mapped(bk.ptr(j))
        } else {
            PageData::Failed(err)
        }
    }

    /// The engine says `pfn` has no data now: a valid cached mapping of it shows a frame the
    /// guest no longer has at that pfn.
    fn note_no_data(&mut self, pfn: u64, t: u32) -> io::Result<()> {
        if pfn >= self.p2m_size {
            return Ok(());
        }
        let slot = self.index[(pfn >> self.shift) as usize];
        if slot == NIL {
            return Ok(());
        }
        let j = (pfn & ((1 << self.shift) - 1)) as usize;
        let batch = self.batch;
        let bk = self.bucket_mut(slot);
        if bk.err(j) != 0 || bk.doomed {
            bk.set_ty(j, type_nibble(t));
            return Ok(());
        }
        let pinned = bk.pinned_batch == batch;
        if pinned {
            bk.doomed = true;
        }
        self.stats.invalidations += 1;
        if pinned {
            Ok(())
        } else {
            self.drop_slot(slot)
        }
    }

    fn pin(&mut self, slot: u32) {
        let batch = self.batch;
        let bk = self.bucket_mut(slot);
        if bk.pinned_batch != batch {
            bk.pinned_batch = batch;
            self.pinned.push(slot);
        }
        self.lru.touch(slot);
    }

    /// Evicts unpinned buckets, least recently used first, until bucket `b` fits.
    fn make_room(&mut self, b: u64) -> io::Result<bool> {
        let need = self.bucket_len(b);
        let cap = self.cfg.cache_capacity_pages();
        while self.cached_pages + need > cap {
            let (batch, slots) = (self.batch, &self.slots);
            let victim = self.lru.find_lru(|s| {
                slots[s as usize]
                    .as_ref()
                    .is_some_and(|bk| bk.pinned_batch != batch)
            });
            let Some(v) = victim else {
                return Ok(false);
            };
            self.drop_slot(v)?;
            self.stats.evictions += 1;
        }
        Ok(true)
    }

    fn map_bucket(&mut self, b: u64) -> io::Result<u32> {
        let first = b << self.shift;
        let n = self.bucket_len(b);
        self.pfn_buf.clear();
        self.pfn_buf.extend(first..first + n);
        self.err_buf.clear();
        self.err_buf.resize(n as usize, 0);
        let m = self.mapper.map(&self.pfn_buf, &mut self.err_buf)?;
        self.note_map(n);
        let bk = Bucket::new(b, m, &self.err_buf, self.epoch, self.batch);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.slots[slot as usize] = Some(bk);
        self.index[b as usize] = slot;
        self.cached_pages += n;
        self.pinned.push(slot);
        self.lru.touch(slot);
        Ok(slot)
    }

    /// Maps the batch's pages the cache did not serve in one call, as stock maps a batch.
    fn map_transient(&mut self, pfns: &[u64], out: &mut [PageData]) -> io::Result<()> {
        self.pfn_buf.clear();
        self.pfn_buf.extend(self.want.iter().map(|&i| pfns[i]));
        self.err_buf.clear();
        self.err_buf.resize(self.want.len(), 0);
        let m = self.mapper.map(&self.pfn_buf, &mut self.err_buf)?;
        let n = self.want.len() as u64;
        self.note_map(n);
        self.stats.misses += n;
        for (k, &i) in self.want.iter().enumerate() {
            let e = self.err_buf[k];
            out[i] = if e == 0 {
                PageData::Mapped(m.page_ptr(k))
            } else {
                PageData::Failed(e)
            };
        }
        self.transient = Some((m, n));
        Ok(())
    }

    pub(super) fn bucket_mut(&mut self, slot: u32) -> &mut Bucket<X::Mapping> {
        self.slots[slot as usize]
            .as_mut()
            .expect("indexed slot holds a bucket")
    }

    /// Pages in bucket `b` (the last bucket may be short).
    fn bucket_len(&self, b: u64) -> u64 {
        let first = b << self.shift;
        (1u64 << self.shift).min(self.p2m_size - first)
    }

    /// Unmaps the bucket in `slot` and forgets it.
    pub(super) fn drop_slot(&mut self, slot: u32) -> io::Result<()> {
        let Some(bk) = self.slots[slot as usize].take() else {
            return Ok(());
        };
        self.free.push(slot);
        self.lru.remove(slot);
        self.index[bk.number as usize] = NIL;
        let n = bk.pages();
        self.cached_pages -= n;
        self.unmap_counted(bk.mapping, n)
    }

    fn unmap_counted(&mut self, m: X::Mapping, pages: u64) -> io::Result<()> {
        let r = self.mapper.unmap(m);
        self.stats.unmaps += 1;
        self.stats.vmas -= 1;
        self.stats.mapped_bytes -= pages * PAGE_SIZE;
        r
    }

    fn note_map(&mut self, pages: u64) {
        let s = &mut self.stats;
        s.maps += 1;
        s.vmas += 1;
        s.bytes_mapped += pages * PAGE_SIZE;
        s.mapped_bytes += pages * PAGE_SIZE;
        s.peak_vmas = s.peak_vmas.max(s.vmas);
        s.peak_mapped_bytes = s.peak_mapped_bytes.max(s.mapped_bytes);
    }

    /// Sizes the bucket index for `p2m_size` pfns. Only called with nothing mapped.
    pub(super) fn resize(&mut self, p2m_size: u64) {
        self.p2m_size = p2m_size;
        let n = p2m_size.div_ceil(1 << self.shift) as usize;
        self.index.clear();
        self.index.resize(n, NIL);
        self.index.shrink_to_fit();
    }

    pub(super) fn publish(&self) {
        self.registry.publish(self.domid, &self.stats);
    }
}
