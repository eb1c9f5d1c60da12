// SPDX-License-Identifier: GPL-3.0-only
//! The cache behind the engine's [`PageSource`]: one [`DomainCache`] per save, mapping through
//! the Xen layer's safe `map_foreign`, checking coherence before every batch while the guest
//! runs and at every suspend.

use super::config::CacheConfig;
use super::domain::DomainCache;
use super::mapper::{ReadOnly, XenMapper};
use super::policy::Admit;
use super::stats::REGISTRY;
use super::whole::{plan, reserve, reserved, Dom0, Grant};
use crate::error::Errno;
use crate::hv::{DomInfo, DomainSignals, GuestMemory};
use crate::pages::{BatchError, PageRef, PageSource};

/// The save's mapper: read-only.
type Mapper<'a, H> = XenMapper<'a, H, ReadOnly>;

/// The page source of one save: the persistent mapping cache, or (with `XCSAVE_CACHE=off`)
/// the same per-batch pattern as the stock saver, with counters either way.
pub struct CachedPages<M> {
    cfg: CacheConfig,
    cache: Option<DomainCache<M>>,
    /// A suspend has been seen: from then on every batch is sent with the guest suspended,
    /// right after a check (the engine sends nothing live after the first checkpoint).
    suspended_once: bool,
    /// The stream is checkpointed (Remus, COLO): whole-guest mode may apply (`whole.rs`).
    checkpointed: bool,
    /// This save's share of the process's whole-guest allowance, while it maps whole.
    whole: Option<Grant>,
}

impl<M> CachedPages<M> {
    /// A source with the save's cache settings (`settings::Settings::cache`).
    pub fn new(cfg: CacheConfig) -> Self {
        CachedPages {
            cfg,
            cache: None,
            suspended_once: false,
            checkpointed: false,
            whole: None,
        }
    }

    /// The domain's cache, created on first use with the coherence baseline read now.
    fn cache<H: GuestMemory<Mapping = M>>(&mut self, xen: &H, dom: u32) -> &mut DomainCache<M> {
        let cfg = self.cfg;
        let whole = &mut self.whole;
        let checkpointed = self.checkpointed;
        self.cache
            .get_or_insert_with(|| new_cache(cfg, checkpointed, xen, dom, whole))
    }

    /// Reads the coherence counters and lets the cache judge them.
    fn check<H: GuestMemory<Mapping = M>>(&mut self, xen: &H, dom: u32, suspended: bool) {
        check(self.cache(xen, dom), xen, dom, suspended);
    }
}

/// A domain's cache (a save's or a restore's), with the coherence baseline read now and
/// whole-guest mode where it applies (its grant goes to `whole`); caching off if the counters
/// cannot be read.
pub(super) fn new_cache<H: GuestMemory, M>(
    cfg: CacheConfig,
    checkpointed: bool,
    xen: &H,
    dom: u32,
    whole: &mut Option<Grant>,
) -> DomainCache<M> {
    if !cfg.enabled {
        // Off: no counter is read, so the hypercalls are exactly stock's.
        return DomainCache::new(cfg, dom, Default::default(), &REGISTRY);
    }
    match xen.p2m_signals(dom) {
        Ok(s) => {
            let (cfg, grant) = whole_guest(cfg, checkpointed, xen, dom, &s);
            *whole = grant;
            DomainCache::new(cfg, dom, s, &REGISTRY)
        }
        Err(e) => {
            log::info!("d{dom}: mapping cache off: coherence counters unreadable ({e:?})");
            let off = CacheConfig {
                enabled: false,
                ..cfg
            };
            DomainCache::new(off, dom, Default::default(), &REGISTRY)
        }
    }
}

/// Reads the coherence counters of `dom` and lets `cache` judge them (a checkpoint is counted
/// either way when `suspended`).
pub(super) fn check<H: GuestMemory, M>(
    cache: &mut DomainCache<M>,
    xen: &H,
    dom: u32,
    suspended: bool,
) {
    if !cache.caching() {
        cache.count_checkpoint(suspended);
        return;
    }
    match xen.p2m_signals(dom) {
        Ok(s) => {
            cache.observe(s, suspended);
        }
        Err(e) => cache.disable(&format!("coherence counters unreadable ({e:?})")),
    }
}

/// After a suspended check, while the guest is still paused: if `cache` unmapped anything
/// since the check, the counters dropped by the frames it alone held, and only by them; they
/// are read again as the baseline of the next check ([`DomainCache::unmapped_since_check`]).
/// If they cannot be read, the next check reads them, and judges the drop as a change.
pub(super) fn rebaseline_if_unmapped<H: GuestMemory, M>(
    cache: &mut DomainCache<M>,
    xen: &H,
    dom: u32,
) {
    if cache.unmapped_since_check() {
        if let Ok(s) = xen.p2m_signals(dom) {
            cache.rebaseline(s);
        }
    }
}

impl<M: crate::hv::PageMapping, H: GuestMemory<Mapping = M>> PageSource<H> for CachedPages<M> {
    fn with_batch(
        &mut self,
        xen: &H,
        dom: u32,
        gfns: &[u64],
        consume: &mut dyn FnMut(&[PageRef<'_>]) -> Result<(), Errno>,
    ) -> Result<(), BatchError> {
        let mut mapper = Mapper::new(xen, dom);
        if !self.suspended_once && self.cache.as_ref().is_some_and(|c| c.may_map()) {
            // The guest runs: check before each batch, so that a mapping is never older
            // than the batch, as stock's are. (A full pass with nothing cached maps per batch
            // only, as stock, and makes stock's hypercalls.)
            self.check(xen, dom, false);
        }
        self.cache(xen, dom)
            .with_batch(&mut mapper, gfns, |pages| consume(pages))
            .map_err(|e| BatchError::Map(Errno(e.raw_os_error().unwrap_or(libc::EIO))))?
            .map_err(BatchError::Consumer)
    }

    fn start_pass(&mut self, xen: &H, dom: u32, full: bool, checkpointed: bool) {
        // The first pass of a save sends the whole guest whatever its count says (a
        // checkpointed save's first round): no evidence of reuse either.
        let full = full || self.cache.is_none();
        let suspended = self.suspended_once;
        self.checkpointed = checkpointed;
        let cache = self.cache(xen, dom);
        let admit = Admit::for_pass(full, checkpointed, suspended, cache.guest_fits());
        cache.start_pass(admit);
        // Every later pass of a checkpointed stream runs inside a checkpoint's downtime.
        cache.defer_maps(checkpointed && suspended);
    }

    fn resumed(&mut self, xen: &H, dom: u32) {
        if let Some(c) = self.cache.as_mut() {
            c.map_deferred(&mut Mapper::new(xen, dom));
            // Outside the downtime, at checkpoints 1, 2, 4, 8, ...: a checkpointed stream that
            // ends at failover (its process killed) still leaves counters in the log.
            let n = c.stats().checkpoints;
            if n.is_power_of_two() {
                log_stats(dom);
            }
        }
    }

    fn downtime_ends(&mut self, xen: &H, dom: u32) {
        if let Some(c) = self.cache.as_mut() {
            rebaseline_if_unmapped(c, xen, dom);
        }
    }

    fn revalidate(&mut self, xen: &H, dom: u32, whole: bool, resend: &mut dyn FnMut(u64)) -> bool {
        self.cache
            .as_mut()
            .is_some_and(|c| c.revalidate(&mut Mapper::new(xen, dom), whole, resend))
    }

    fn before_suspend(&mut self, _xen: &H, _dom: u32) {
        // The last pass maps nothing whole (`Admit::Nothing`): every bucket goes now.
        if let Some(c) = self.cache.as_mut() {
            c.release_before_suspend();
        }
    }

    fn batch_types(&mut self, gfns: &[u64], types: &[u64]) {
        if let Some(c) = self.cache.as_mut() {
            c.note_types(gfns, types);
        }
    }

    fn suspended(&mut self, xen: &H, dom: u32, _info: &DomInfo, _p2m_size: u64) {
        self.suspended_once = true;
        self.check(xen, dom, true);
    }

    fn teardown(&mut self) {
        release(&mut self.cache, &mut self.whole);
    }
}

/// The cache settings of a save: whole-guest (`whole.rs`) where dom0 can afford it and the
/// process's allowance has room, else `cfg` as given (the bounded policy). Only a
/// checkpointed stream with a budget left to its default, whose counters allow caching, asks
/// the hypervisor. One log line says which, and why.
fn whole_guest<H: GuestMemory>(
    cfg: CacheConfig,
    checkpointed: bool,
    xen: &H,
    dom: u32,
    s: &DomainSignals,
) -> (CacheConfig, Option<Grant>) {
    if !checkpointed || !cfg.budget_from_guest || s.unsafe_to_cache().is_some() {
        return (cfg, None);
    }
    if cfg.whole.cap_bytes == 0 {
        log::info!("d{dom}: mapping cache bounded: whole-guest mode off (XCSAVE_CACHE_WHOLE_MB=0)");
        return (cfg, None);
    }
    let dom0 = Dom0::classify(xen.dom0_auto_translated().ok(), cfg.whole.unpopulated_alloc);
    let p2m = s.max_gpfn.saturating_add(1);
    let why = if !dom0.affordable() {
        format!("dom0 is {}", dom0.name())
    } else {
        match plan(cfg.bucket_pages, p2m, s.tot_pages, cfg.whole.max_vmas) {
            None => format!(
                "{p2m} pages need more than {} VMAs even in 32 MiB buckets",
                cfg.whole.max_vmas
            ),
            Some(p) => match reserve(&p, &cfg.whole) {
                Ok(g) => {
                    let (bytes, vmas) = reserved();
                    log::info!(
                        "d{dom}: mapping cache maps the whole guest: dom0 {}, {} buckets of \
                         {} KiB ({} MiB); the process holds {} of {} MiB, {} of {} VMAs",
                        dom0.name(),
                        p.buckets,
                        u64::from(p.bucket_pages) * 4,
                        p.bytes >> 20,
                        bytes >> 20,
                        cfg.whole.cap_bytes >> 20,
                        vmas,
                        cfg.whole.max_vmas
                    );
                    return (p.config(cfg), Some(g));
                }
                Err(e) => e,
            },
        }
    };
    log::info!("d{dom}: mapping cache bounded: {why}");
    (cfg, None)
}

/// Ends a save's or a restore's cache: unmaps everything and publishes the final counters
/// (dropping the cache), gives its whole-guest share back to the process cap, and logs the
/// counters. Nothing happens when the cache is already gone.
pub(super) fn release<M>(cache: &mut Option<DomainCache<M>>, whole: &mut Option<Grant>) {
    if let Some(c) = cache.take() {
        let dom = c.domid();
        drop(c);
        *whole = None;
        log_stats(dom);
    }
}

/// One debug line with a domain's counters, through the caller's logger: how a toolstack log
/// shows that xcsave and its cache ran (`docs/real-xen.md`, check 4).
pub(super) fn log_stats(dom: u32) {
    if let Some(s) = REGISTRY.get(dom) {
        log::debug!(
            "xcsave: d{dom} mapping cache stats: hits {} misses {} maps {} unmaps {} \
             evictions {} invalidations {} checkpoints {} peak mapped {} KiB{}",
            s.hits,
            s.misses,
            s.maps,
            s.unmaps,
            s.evictions,
            s.invalidations,
            s.checkpoints,
            s.peak_mapped_bytes / 1024,
            if s.disabled != 0 {
                " (caching off)"
            } else {
                ""
            }
        );
    }
}
