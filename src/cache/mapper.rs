// SPDX-License-Identifier: GPL-3.0-only
//! The two operations the cache needs from the Xen layer: map a list of guest frames into one
//! read-only foreign-mapping VMA, and unmap it. Implemented over privcmd by the Xen-access
//! module and by a mock in the unit tests, so that nothing here needs Xen.

use std::io;

/// A live foreign mapping of `n` guest frames in one VMA.
pub trait PageMapping {
    /// Address of page `idx` (0-based, in the order the frames were requested).
    ///
    /// Only meaningful for pages whose per-page map error was 0. The address stays valid until
    /// the mapping is handed back to [`BucketMapper::unmap`].
    fn page_ptr(&self, idx: usize) -> *const u8;
}

/// Maps and unmaps guest frames of one domain.
pub trait BucketMapper {
    /// The mapping handle.
    type Mapping: PageMapping;

    /// Maps `pfns` read-only, in order, into one new VMA (one `mmap` plus one `MMAPBATCH`).
    ///
    /// Per-page failures are written to `errs[i]` (a negative errno, 0 for success) and do not
    /// fail the call. `errs.len() == pfns.len()`.
    fn map(&mut self, pfns: &[u64], errs: &mut [i32]) -> io::Result<Self::Mapping>;

    /// Unmaps a mapping made by [`BucketMapper::map`], releasing the guest frames it pins.
    fn unmap(&mut self, mapping: Self::Mapping) -> io::Result<()>;
}
