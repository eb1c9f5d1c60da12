// SPDX-License-Identifier: GPL-3.0-only
//! What the cache needs from the Xen layer: map a list of guest frames into one
//! foreign-mapping VMA, with the mapper's protection: `PROT_READ` for a save (`adapter.rs`,
//! over `GuestMemory::map_foreign`), `PROT_READ|PROT_WRITE` for a restore (`writes.rs`, over
//! `DomainBuild::map_foreign_rw`, whose mappings give `&mut` pages). Dropping the mapping
//! unmaps it. Implemented over privcmd by the Xen layer and by a mock in the unit tests, so
//! that nothing here needs Xen.

use crate::hv::{DomainBuild, GuestMemory, PageMapping};
use std::io;
use std::marker::PhantomData;

/// Maps guest frames of one domain.
pub trait BucketMapper {
    /// The mapping handle.
    type Mapping: PageMapping;

    /// Maps `pfns` with the mapper's protection, in order, into one new VMA (one `mmap` plus one `MMAPBATCH`).
    /// Per-page failures are written to `errs[i]` (a negative errno, 0 for success) and do not
    /// fail the call. `errs.len() == pfns.len()`.
    fn map(&mut self, pfns: &[u64], errs: &mut [i32]) -> io::Result<Self::Mapping>;
}

/// `PROT_READ`: a save reads the guest.
pub struct ReadOnly;

/// `PROT_READ|PROT_WRITE`: a restore writes the guest.
pub struct ReadWrite;

/// Maps frames of one domain through the Xen layer, with protection `P` ([`ReadOnly`] over
/// `GuestMemory::map_foreign`, [`ReadWrite`] over `DomainBuild::map_foreign_rw`).
pub struct XenMapper<'a, H, P> {
    xen: &'a H,
    dom: u32,
    prot: PhantomData<P>,
}

impl<'a, H, P> XenMapper<'a, H, P> {
    /// A mapper of `dom`'s frames.
    pub fn new(xen: &'a H, dom: u32) -> Self {
        XenMapper {
            xen,
            dom,
            prot: PhantomData,
        }
    }
}

fn io_error(e: crate::error::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.0)
}

impl<H: GuestMemory> BucketMapper for XenMapper<'_, H, ReadOnly> {
    type Mapping = H::Mapping;

    fn map(&mut self, pfns: &[u64], errs: &mut [i32]) -> io::Result<H::Mapping> {
        self.xen.map_foreign(self.dom, pfns, errs).map_err(io_error)
    }
}

impl<H: DomainBuild> BucketMapper for XenMapper<'_, H, ReadWrite> {
    type Mapping = H::WritableMapping;

    fn map(&mut self, pfns: &[u64], errs: &mut [i32]) -> io::Result<H::WritableMapping> {
        self.xen
            .map_foreign_rw(self.dom, pfns, errs)
            .map_err(io_error)
    }
}
