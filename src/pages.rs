// SPDX-License-Identifier: GPL-3.0-only
//! Obtaining mapped guest pages for a batch.
//!
//! The engine asks a [`PageSource`] for the pages of one PAGE_DATA batch and writes them while
//! the source keeps them mapped. [`PerBatch`] maps and unmaps every batch, as the stock saver
//! does. A caching source can keep mappings across batches, iterations and checkpoints behind
//! the same trait: it is told about every suspended checkpoint and about the end of the save.
//!
//! The receiving side has the mirror image: the restore engine writes the pages of a
//! PAGE_DATA batch through a [`PageTarget`]. [`PerBatchWrites`] maps and unmaps every batch
//! writable, as the stock restore does; the mapping cache's `CachedWrites` keeps them mapped
//! across checkpoints (docs/restore.md, B.5).

use crate::error::Errno;
use crate::hv::{DomInfo, DomainBuild, GuestMemory, PageMapping, PageMappingMut};

/// One page of a batch: its contents, or the map error (a negative errno) Xen gave for it.
pub type PageRef<'a> = Result<&'a [u8], i32>;

/// Why a batch could not be sent.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchError {
    /// The mapping call itself failed.
    Map(Errno),
    /// The consumer of the pages failed (its error, already logged).
    Consumer(Errno),
}

/// A source of mapped guest pages.
pub trait PageSource<H: GuestMemory> {
    /// Map `gfns` of `dom` for reading and call `consume` with one [`PageRef`] per gfn, in
    /// order. The pages stay mapped until `consume` returns.
    fn with_batch(
        &mut self,
        xen: &H,
        dom: u32,
        gfns: &[u64],
        consume: &mut dyn FnMut(&[PageRef<'_>]) -> Result<(), Errno>,
    ) -> Result<(), BatchError>;

    /// A pass over the dirty bitmap starts: a live iteration, a checkpoint, or a non-live
    /// save. `full` says the pass sends every page (live iteration 0, a non-live save): no
    /// evidence of reuse, except that a plain live migration's later iterations resend pages
    /// the guest dirtied meanwhile. `checkpointed` says the stream goes on with checkpoints
    /// (Remus, COLO), so that pages sent now are likely sent again many times; a plain
    /// migration has a few passes left at most.
    fn start_pass(&mut self, _xen: &H, _dom: u32, _full: bool, _checkpointed: bool) {}

    /// A checkpoint's pages are sent and the guest is still paused: called before the
    /// callbacks that end the downtime (COLO's checkpoint, then postcopy). A cache that
    /// unmapped anything since [`PageSource::suspended`] takes the coherence counters read
    /// now as its next baseline: they moved by its own releases only.
    fn downtime_ends(&mut self, _xen: &H, _dom: u32) {}

    /// The guest runs again after a checkpoint (postcopy returned): a cache may do work here
    /// that it kept out of the downtime.
    fn resumed(&mut self, _xen: &H, _dom: u32) {}

    /// A source that keeps mappings checks them against fresh ones and calls `resend` with
    /// every gfn it may have served from a frame the guest no longer has there; the engine
    /// sends those gfns in its next pass (its deferred bitmap). Called after each
    /// checkpoint's postcopy, after [`PageSource::resumed`], and, with `whole`, once a plain
    /// live save's precopy has ended, before [`PageSource::before_suspend`] (the last
    /// chance: the last pass follows). Returns whether it visited any mapping: the guest ran
    /// on meanwhile, so after a `whole` visit the engine sends one more live round before the
    /// suspend, and the downtime does not pay for what the guest dirtied during the visit.
    fn revalidate(
        &mut self,
        _xen: &H,
        _dom: u32,
        _whole: bool,
        _resend: &mut dyn FnMut(u64),
    ) -> bool {
        false
    }

    /// A plain (not checkpointed) live save has ended its precopy: the guest is about to be
    /// suspended for the last pass. Called after the precopy policy chose stop-and-copy and
    /// before the suspend callback, while the guest still runs; never for Remus or COLO. A
    /// cache releases here what the last pass will not use, so that the downtime does not
    /// pay for unmapping it.
    fn before_suspend(&mut self, _xen: &H, _dom: u32) {}

    /// The `getpageframeinfo3` types of a batch (`types[i]` for `gfns[i]`), before its data
    /// pages are asked for. A cache drops mappings of gfns that no longer hold RAM.
    fn batch_types(&mut self, _gfns: &[u64], _types: &[u64]) {}

    /// The domain is suspended for a checkpoint (or the final round); `info` is its fresh
    /// domain information and `p2m_size` the p2m size. A cache checks its coherence here.
    fn suspended(&mut self, xen: &H, dom: u32, info: &DomInfo, p2m_size: u64);

    /// The save is over (success, failover or error): release every mapping.
    fn teardown(&mut self);
}

/// Stock's behaviour: one mapping per batch, unmapped as soon as the batch is written.
#[derive(Debug, Default)]
pub struct PerBatch;

impl<H: GuestMemory> PageSource<H> for PerBatch {
    fn with_batch(
        &mut self,
        xen: &H,
        dom: u32,
        gfns: &[u64],
        consume: &mut dyn FnMut(&[PageRef<'_>]) -> Result<(), Errno>,
    ) -> Result<(), BatchError> {
        let mut errs = vec![0i32; gfns.len()];
        let mapping = xen
            .map_foreign(dom, gfns, &mut errs)
            .map_err(BatchError::Map)?;
        let pages: Vec<PageRef<'_>> = errs
            .iter()
            .enumerate()
            .map(|(i, &e)| if e == 0 { Ok(mapping.page(i)) } else { Err(e) })
            .collect();
        consume(&pages).map_err(BatchError::Consumer)
        // `mapping` is dropped here: unmapped.
    }

    fn suspended(&mut self, _xen: &H, _dom: u32, _info: &DomInfo, _p2m_size: u64) {}

    fn teardown(&mut self) {}
}

/// One page of a restore batch, writable, or the map error (a negative errno) Xen gave for it.
pub type PageMut<'a> = Result<&'a mut [u8], i32>;

/// Where a restore writes guest pages: the receiving side's [`PageSource`]. The engine
/// tells it what it does to the p2m (its own populates) and where a checkpoint starts and
/// ends, so that a target that keeps mappings can keep them coherent (docs/coherence.md,
/// "The receiving side").
pub trait PageTarget<H> {
    /// Map `gfns` of `dom` writable and call `write(i, page)` for each gfn, in order, while
    /// the pages are mapped; the first error of `write` stops the batch and is returned.
    fn with_batch_mut(
        &mut self,
        xen: &H,
        dom: u32,
        gfns: &[u64],
        write: &mut dyn FnMut(usize, PageMut<'_>) -> Result<(), Errno>,
    ) -> Result<(), BatchError>;

    /// The restore has just populated `pfns` (each now has a frame it may not have had, or a
    /// new one): a mapping of them is stale.
    fn populated(&mut self, _xen: &H, _dom: u32, _pfns: &[u64]) {}

    /// Zero the page at `pfn` (the special pages of HVM_PARAMS), ignoring a map error as
    /// stock's `xc_clear_domain_page` is ignored. False if this target does not: the caller
    /// clears it as stock does (one map call).
    fn clear_page(&mut self, _xen: &H, _dom: u32, _pfn: u64) -> bool {
        false
    }

    /// A complete checkpoint is about to be applied (the guest is paused).
    fn start_checkpoint(&mut self, _xen: &H, _dom: u32) {}

    /// The checkpoint is applied: a COLO secondary has been resumed (postcopy returned), a
    /// Remus secondary goes back to reading. Work kept out of the primary's downtime goes
    /// here.
    fn resumed(&mut self, _xen: &H, _dom: u32) {}

    /// A COLO secondary has been suspended again after running: whatever it did to its p2m
    /// is judged now, before the next checkpoint is written.
    fn suspended(&mut self, _xen: &H, _dom: u32) {}

    /// The restore is over (success, failover or error): release every mapping.
    fn teardown(&mut self);
}

/// Stock's restore: one writable mapping per batch, unmapped as soon as it is written.
#[derive(Debug, Default)]
pub struct PerBatchWrites;

impl<H: DomainBuild> PageTarget<H> for PerBatchWrites {
    fn with_batch_mut(
        &mut self,
        xen: &H,
        dom: u32,
        gfns: &[u64],
        write: &mut dyn FnMut(usize, PageMut<'_>) -> Result<(), Errno>,
    ) -> Result<(), BatchError> {
        let mut errs = vec![0i32; gfns.len()];
        let mut mapping = xen
            .map_foreign_rw(dom, gfns, &mut errs)
            .map_err(BatchError::Map)?;
        for (i, &e) in errs.iter().enumerate() {
            let page = if e == 0 {
                Ok(mapping.page_mut(i))
            } else {
                Err(e)
            };
            write(i, page).map_err(BatchError::Consumer)?;
        }
        Ok(())
        // `mapping` is dropped here: unmapped.
    }

    fn teardown(&mut self) {}
}
