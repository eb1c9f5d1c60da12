// SPDX-License-Identifier: GPL-3.0-only
//! An owned foreign mapping: a contiguous run of mapped guest pages, unmapped on drop.

use crate::abi::xen::PAGE_SIZE;
use crate::hv::{PageMapping, PageMappingMut};
use std::ptr::NonNull;

/// A contiguous mapping of guest pages (read-only, or writable for the restore), unmapped
/// (munmap) when dropped.
///
/// Pages whose map error was non-zero are not backed: never read them (callers only hand
/// out pages whose error slot is 0).
pub struct ForeignMapping {
    ptr: NonNull<u8>,
    pages: usize,
}

impl ForeignMapping {
    /// Take ownership of a mapping.
    ///
    /// # Safety
    /// `ptr` must be a page-aligned mapping of exactly `pages` pages (from privcmd or mmap),
    /// owned by nobody else.
    pub(crate) unsafe fn from_raw(ptr: *mut u8, pages: usize) -> ForeignMapping {
        ForeignMapping {
            ptr: NonNull::new(ptr).expect("mapping pointer is not NULL"),
            pages,
        }
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// Page `i`'s contents. Only valid for pages that mapped without error.
    pub fn page(&self, i: usize) -> &[u8] {
        assert!(
            i < self.pages,
            "page {i} outside a mapping of {}",
            self.pages
        );
        // SAFETY: the range lies within the mapping, which stays mapped while &self lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(i * PAGE_SIZE), PAGE_SIZE) }
    }
}

impl PageMapping for ForeignMapping {
    fn page(&self, idx: usize) -> &[u8] {
        ForeignMapping::page(self, idx)
    }
}

/// A writable mapping (from `map_foreign_rw`).
pub struct WritableMapping(ForeignMapping);

impl WritableMapping {
    /// Take ownership of a mapping made with `PROT_READ | PROT_WRITE`.
    ///
    /// # Safety
    /// As [`ForeignMapping::from_raw`], and the range must be mapped writable.
    pub(crate) unsafe fn from_raw(ptr: *mut u8, pages: usize) -> WritableMapping {
        // SAFETY: the caller's contract is from_raw's.
        WritableMapping(unsafe { ForeignMapping::from_raw(ptr, pages) })
    }
}

impl PageMapping for WritableMapping {
    fn page(&self, idx: usize) -> &[u8] {
        self.0.page(idx)
    }
}

impl PageMappingMut for WritableMapping {
    fn page_mut(&mut self, idx: usize) -> &mut [u8] {
        let m = &mut self.0;
        assert!(idx < m.pages, "page {idx} outside a mapping of {}", m.pages);
        // SAFETY: the range lies within a writable mapping (from_raw contract) that stays
        // mapped while &mut self lives, and nothing else in this process aliases it.
        unsafe { std::slice::from_raw_parts_mut(m.ptr.as_ptr().add(idx * PAGE_SIZE), PAGE_SIZE) }
    }
}

impl Drop for ForeignMapping {
    fn drop(&mut self) {
        // SAFETY: we own exactly this range (from_raw contract) and unmap it once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.pages * PAGE_SIZE) };
    }
}
