// SPDX-License-Identifier: GPL-3.0-only
//! One cached bucket: an aligned run of guest frames in one VMA, with what the map call and
//! the engine's type queries told us about each page.

use super::mapper::PageMapping;

/// Type nibble not yet seen for a page.
pub(crate) const TYPE_UNKNOWN: u8 = 0xff;

const PFINFO_SHIFT: u32 = 28;
const PFINFO_BROKEN: u8 = 0xd;
const PFINFO_XALLOC: u8 = 0xe;
const PFINFO_XTAB: u8 = 0xf;

/// The `XEN_DOMCTL_PFINFO_*` type of a `getpageframeinfo3` result, as a 4-bit nibble.
pub(crate) fn type_nibble(t: u32) -> u8 {
    ((t >> PFINFO_SHIFT) & 0xf) as u8
}

/// True if a page of type `t` carries data in the stream (stock's `page_type_has_stream_data`).
pub fn type_has_data(t: u32) -> bool {
    !matches!(type_nibble(t), PFINFO_XTAB | PFINFO_XALLOC | PFINFO_BROKEN)
}

const KNOWN: u8 = 0x10;
const FAILED: u8 = 0x20;

/// A mapped bucket. Per page it keeps one byte (type nibble, "type known", "map failed"),
/// and the errno of failed pages in a short side list, so that its heap cost stays near
/// 1/4096 of the memory it maps.
pub(crate) struct Bucket<M> {
    /// Bucket number (first pfn >> bucket shift).
    pub(crate) number: u64,
    /// The VMA.
    pub(crate) mapping: M,
    /// Per page state byte.
    state: Box<[u8]>,
    /// (page, negative errno) of each page the map call failed.
    errors: Vec<(u32, i32)>,
    /// Checkpoint epoch when mapped.
    pub(crate) epoch: u64,
    /// Batch in which it was mapped.
    pub(crate) mapped_batch: u64,
    /// Last batch that used it; while that batch is open, the bucket must stay mapped.
    pub(crate) pinned_batch: u64,
    /// Found stale while pinned: serve nothing more from it, unmap at the end of the batch.
    pub(crate) doomed: bool,
}

impl<M: PageMapping> Bucket<M> {
    /// Wraps a fresh mapping and its per-page errors.
    pub(crate) fn new(number: u64, mapping: M, errs: &[i32], epoch: u64, batch: u64) -> Self {
        let mut errors = Vec::new();
        let state = errs
            .iter()
            .enumerate()
            .map(|(j, &e)| {
                if e == 0 {
                    0
                } else {
                    errors.push((j as u32, e));
                    FAILED
                }
            })
            .collect();
        Bucket {
            number,
            mapping,
            state,
            errors,
            epoch,
            mapped_batch: batch,
            pinned_batch: batch,
            doomed: false,
        }
    }

    /// Number of pages in the VMA.
    pub(crate) fn pages(&self) -> u64 {
        self.state.len() as u64
    }

    /// Map error of page `j` (0 if it is mapped).
    pub(crate) fn err(&self, j: usize) -> i32 {
        if self.state[j] & FAILED == 0 {
            return 0;
        }
        self.errors
            .iter()
            .find(|(p, _)| *p as usize == j)
            .map_or(-libc::EINVAL, |(_, e)| *e)
    }

    /// Last type nibble seen for page `j`, or [`TYPE_UNKNOWN`].
    pub(crate) fn ty(&self, j: usize) -> u8 {
        let s = self.state[j];
        if s & KNOWN == 0 {
            TYPE_UNKNOWN
        } else {
            s & 0xf
        }
    }

    /// Records the type nibble the engine reported for page `j`.
    pub(crate) fn set_ty(&mut self, j: usize, nibble: u8) {
        self.state[j] = (self.state[j] & FAILED) | KNOWN | (nibble & 0xf);
    }

    /// Address of page `j`.
    pub(crate) fn ptr(&self, j: usize) -> *const u8 {
        self.mapping.page_ptr(j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        assert!(type_has_data(0));
        assert!(type_has_data(1 << 28));
        assert!(!type_has_data(0xf << 28));
        assert!(!type_has_data(0xe << 28));
        assert!(!type_has_data(0xd << 28));
        assert_eq!(type_nibble(0xf000_0000), 0xf);
    }
}
