// SPDX-License-Identifier: GPL-3.0-only
//! Obtaining mapped guest pages for a batch.
//!
//! The engine asks a [`PageSource`] for the pages of one PAGE_DATA batch and writes them while
//! the source keeps them mapped. [`PerBatch`] maps and unmaps every batch, as the stock saver
//! does. A caching source can keep mappings across batches, iterations and checkpoints behind
//! the same trait: it is told about every suspended checkpoint and about the end of the save.

use crate::error::Errno;
use crate::hv::{DomInfo, GuestMemory, PageMapping};

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

    /// The guest runs again after a checkpoint (postcopy returned): a cache may do work here
    /// that it kept out of the downtime.
    fn resumed(&mut self, _xen: &H, _dom: u32) {}

    /// A source that keeps mappings checks them against fresh ones and calls `resend` with
    /// every gfn it may have served from a frame the guest no longer has there; the engine
    /// sends those gfns in its next pass (its deferred bitmap). Called after each
    /// checkpoint's postcopy, after [`PageSource::resumed`], and, with `whole`, once a plain
    /// live save's precopy has ended, before [`PageSource::before_suspend`] (the last
    /// chance: the last pass follows).
    fn revalidate(&mut self, _xen: &H, _dom: u32, _whole: bool, _resend: &mut dyn FnMut(u64)) {}

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
