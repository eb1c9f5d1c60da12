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
    /// Pages served since the bucket was mapped or last visited by the patrol, one bit each:
    /// if it goes unvisited, they are sent again (docs/coherence.md §8.1).
    served: Vec<u64>,
}

impl<M> Bucket<M> {
    /// Wraps a fresh mapping and its per-page errors.
    pub(in crate::cache) fn new(
        number: u64,
        mapping: M,
        errs: &[i32],
        (epoch, batch, pass): (u64, u64, u32),
    ) -> Self {
        let errors = Self::failed(errs).collect();
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
            served: vec![0; errs.len().div_ceil(64)],
        }
    }

    /// Puts a fresh mapping of the same pages in place (a patrol visit) and returns the old
    /// one, to drop (unmap). Nothing is served from it since.
    pub(in crate::cache) fn refresh(&mut self, mapping: M, errs: &[i32]) -> M {
        self.errors.clear();
        self.errors.extend(Self::failed(errs));
        self.served.iter_mut().for_each(|w| *w = 0);
        std::mem::replace(&mut self.mapping, mapping)
    }

    /// Notes that page `j` was served.
    pub(in crate::cache) fn mark_served(&mut self, j: u32) {
        self.served[(j / 64) as usize] |= 1 << (j % 64);
    }

    /// The pages served since the bucket was mapped or last visited, in order.
    pub(in crate::cache) fn served(&self) -> impl Iterator<Item = u32> + '_ {
        self.served.iter().enumerate().flat_map(|(i, &w)| {
            (0..64u32)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| i as u32 * 64 + b)
        })
    }

    /// (page, errno) of each failed page of a map call's errors.
    fn failed(errs: &[i32]) -> impl Iterator<Item = (u32, i32)> + '_ {
        errs.iter()
            .enumerate()
            .filter(|(_, &e)| e != 0)
            .map(|(j, &e)| (j as u32, e))
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
