// SPDX-License-Identifier: GPL-3.0-only
//! What the cache needs from the Xen layer: map a list of guest frames into one
//! foreign-mapping VMA, with the mapper's protection: `PROT_READ` for a save (`adapter.rs`,
//! over `GuestMemory::map_foreign`), `PROT_READ|PROT_WRITE` for a restore (`writes.rs`, over
//! `DomainBuild::map_foreign_rw`, whose mappings give `&mut` pages). Dropping the mapping
//! unmaps it. Implemented over privcmd by the Xen layer and by a mock in the unit tests, so
//! that nothing here needs Xen.

use crate::hv::PageMapping;
use std::io;

/// Maps guest frames of one domain.
pub trait BucketMapper {
    /// The mapping handle.
    type Mapping: PageMapping;

    /// Maps `pfns` with the mapper's protection, in order, into one new VMA (one `mmap` plus one `MMAPBATCH`).
    /// Per-page failures are written to `errs[i]` (a negative errno, 0 for success) and do not
    /// fail the call. `errs.len() == pfns.len()`.
    fn map(&mut self, pfns: &[u64], errs: &mut [i32]) -> io::Result<Self::Mapping>;
}
