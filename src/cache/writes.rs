// SPDX-License-Identifier: GPL-3.0-only
//! The cache behind the restore engine's [`PageTarget`] (issue 15, docs/restore.md B.5/B.6):
//! the same [`DomainCache`] as a save's, mapping the secondary's guest `PROT_READ|PROT_WRITE`
//! through `hv::DomainBuild`, with the same budget, admission, eviction, statistics,
//! `XCSAVE_CACHE*` settings and whole-guest mode.
//!
//! - **When.** The cache starts at the first checkpoint, when the first pass has populated
//!   the guest (its size sets the budget and the index). Before that, and for a plain
//!   restore, which has no reuse, every batch is mapped and unmapped as stock does.
//! - **Passes.** Each checkpoint's apply is a pass of a checkpointed stream, inside the
//!   primary's downtime: buckets it admits are mapped after it ([`PageTarget::resumed`]),
//!   once the COLO secondary runs again (or the Remus secondary goes back to reading).
//! - **Coherence** (docs/coherence.md, "The receiving side"): the restore's own populates
//!   unmap the buckets they fall in and move the expected counters; a COLO secondary's
//!   counters are read once per checkpoint, after `suspend`, and judged against that
//!   expectation: an unexplained change unmaps every bucket, PoD, paging or unreadable
//!   counters turn caching off. A Remus secondary never runs: only the restore changes it.
//! - **No patrol.** Its finds are pages to send again, which a receiver cannot do; the
//!   residual case (a masked exchange on a COLO secondary) is bounded by `max_age`.

use super::adapter::{check, log_stats, new_cache, rebaseline_if_unmapped, release};
use super::config::CacheConfig;
use super::domain::DomainCache;
use super::mapper::{ReadWrite, XenMapper};
use super::policy::Admit;
use super::whole::Grant;
use crate::error::Errno;
use crate::hv::{DomainBuild, GuestMemory, PageMappingMut};
use crate::pages::{BatchError, PageMut, PageTarget, PerBatchWrites};

/// The restore's mapper: `PROT_READ|PROT_WRITE`.
type Mapper<'a, H> = XenMapper<'a, H, ReadWrite>;

/// The page target of one restore: the mapping cache from the first checkpoint on, stock's
/// per-batch writable mapping before it (and for a plain stream).
pub struct CachedWrites<M> {
    cfg: CacheConfig,
    cache: Option<DomainCache<M>>,
    /// This restore's share of the process's whole-guest allowance, while it maps whole.
    whole: Option<Grant>,
}

impl<M> CachedWrites<M> {
    /// A target with the restore's cache settings (`settings::Settings::cache`). The patrol
    /// is off on this side (module comment).
    pub fn new(cfg: CacheConfig) -> Self {
        CachedWrites {
            cfg: CacheConfig { patrol: 0, ..cfg },
            cache: None,
            whole: None,
        }
    }

    /// The cache, while it keeps mappings.
    fn caching(&self) -> Option<&DomainCache<M>> {
        self.cache.as_ref().filter(|c| c.caching())
    }
}

impl<M, H> PageTarget<H> for CachedWrites<M>
where
    M: PageMappingMut,
    H: DomainBuild<WritableMapping = M> + GuestMemory,
{
    fn with_batch_mut(
        &mut self,
        xen: &H,
        dom: u32,
        gfns: &[u64],
        write: &mut dyn FnMut(usize, PageMut<'_>) -> Result<(), Errno>,
    ) -> Result<(), BatchError> {
        let Some(cache) = self.cache.as_mut() else {
            return PerBatchWrites.with_batch_mut(xen, dom, gfns, write);
        };
        cache
            .with_batch_mut(&mut Mapper::new(xen, dom), gfns, false, write)
            .map_err(|e| BatchError::Map(Errno(e.raw_os_error().unwrap_or(libc::EIO))))?
            .map_err(BatchError::Consumer)
    }

    fn populated(&mut self, _xen: &H, _dom: u32, pfns: &[u64]) {
        if let Some(c) = self.cache.as_mut() {
            c.note_populated(pfns);
        }
    }

    fn clear_page(&mut self, xen: &H, dom: u32, pfn: u64) -> bool {
        if self.caching().is_none() {
            return false;
        }
        let cache = self.cache.as_mut().expect("caching");
        let mut mapper = Mapper::new(xen, dom);
        // The special pages are cleared at every checkpoint: their bucket is mapped whole
        // (after this checkpoint), whatever the pass's rule. A map error is ignored, as stock
        // ignores `xc_clear_domain_page`'s.
        let _ = cache.with_batch_mut(&mut mapper, &[pfn], true, |_, p| {
            if let Ok(page) = p {
                page.fill(0);
            }
            Ok::<(), ()>(())
        });
        true
    }

    fn start_checkpoint(&mut self, xen: &H, dom: u32) {
        let (cfg, whole) = (self.cfg, &mut self.whole);
        let cache = self
            .cache
            .get_or_insert_with(|| new_cache(cfg, true, xen, dom, whole));
        // A guest that fits (or is mapped whole) maps every bucket a checkpoint writes;
        // otherwise the checkpointed stream's rule: dense or reused.
        let fits = cache.guest_fits();
        cache.start_pass(Admit::for_pass(fits, true, true, fits));
        cache.defer_maps(true);
    }

    fn resumed(&mut self, xen: &H, dom: u32) {
        if let Some(c) = self.cache.as_mut() {
            let mut mapper = Mapper::new(xen, dom);
            c.map_deferred(&mut mapper);
            // No patrol (patrol 0): this only forgets the pages unmapped buckets served, which
            // a sender would send again and a receiver has nothing to do with.
            c.revalidate(&mut mapper, false, &mut |_| {});
            let n = c.stats().checkpoints;
            if n.is_power_of_two() {
                log_stats(dom);
            }
        }
    }

    fn suspended(&mut self, xen: &H, dom: u32) {
        let Some(cache) = self.cache.as_mut() else {
            return;
        };
        check(cache, xen, dom, true);
        // A flush or an expiry released the frames the cache held; the secondary is still
        // paused, so the counters read now are the baseline for the next checkpoint.
        rebaseline_if_unmapped(cache, xen, dom);
    }

    fn teardown(&mut self) {
        release(&mut self.cache, &mut self.whole);
    }
}
