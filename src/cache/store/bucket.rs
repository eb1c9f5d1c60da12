// SPDX-License-Identifier: GPL-3.0-only
//! One cached bucket: an aligned run of guest frames in one VMA, and which of its pages the
//! map call could not map.

/// A mapped bucket: its VMA, and which pages the map call could not map (with their errno).
/// Its heap cost is a few words plus 8 bytes per failed page.
pub(in crate::cache) struct Bucket<M> {
    /// Bucket number (first pfn >> bucket shift).
    pub(in crate::cache) number: u64,
    /// The VMA.
    pub(in crate::cache) mapping: M,
    /// Pages in the VMA.
    pages: u32,
    /// (page, negative errno) of each page the map call failed, in page order.
    errors: Vec<(u32, i32)>,
    /// Checkpoint epoch when mapped.
    pub(in crate::cache) epoch: u64,
    /// Batch in which it was mapped.
    pub(in crate::cache) mapped_batch: u64,
    /// Last batch that used it; while that batch is open, the bucket must stay mapped.
    pub(in crate::cache) pinned_batch: u64,
    /// Last pass over the dirty bitmap that used it (not evicted for another in that pass).
    pub(in crate::cache) used_pass: u32,
    /// Found stale while pinned: serve nothing more from it, unmap at the end of the batch.
    pub(in crate::cache) doomed: bool,
}

impl<M> Bucket<M> {
    /// Wraps a fresh mapping and its per-page errors.
    pub(in crate::cache) fn new(
        number: u64,
        mapping: M,
        errs: &[i32],
        (epoch, batch, pass): (u64, u64, u32),
    ) -> Self {
        let errors = errs
            .iter()
            .enumerate()
            .filter(|(_, &e)| e != 0)
            .map(|(j, &e)| (j as u32, e))
            .collect();
        Bucket {
            number,
            mapping,
            pages: errs.len() as u32,
            errors,
            epoch,
            mapped_batch: batch,
            pinned_batch: batch,
            used_pass: pass,
            doomed: false,
        }
    }

    /// Number of pages in the VMA.
    pub(in crate::cache) fn pages(&self) -> u64 {
        u64::from(self.pages)
    }

    /// Map error of page `j` (0 if it is mapped).
    pub(in crate::cache) fn err(&self, j: u32) -> i32 {
        self.errors
            .binary_search_by_key(&j, |&(p, _)| p)
            .map_or(0, |k| self.errors[k].1)
    }
}
