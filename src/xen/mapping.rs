// SPDX-License-Identifier: GPL-3.0-only
//! An owned foreign mapping: a contiguous run of mapped guest pages, unmapped on drop.

use crate::abi::xen::PAGE_SIZE;
use crate::hv::PageMapping;
use std::ptr::NonNull;

/// A contiguous read-only mapping of guest pages, unmapped (munmap) when dropped.
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

    /// An anonymous zero-filled mapping, standing in for guest pages in tests.
    #[cfg(test)]
    pub fn anonymous(pages: usize) -> ForeignMapping {
        // SAFETY: a fresh private anonymous mapping, owned by the returned value.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                pages.max(1) * PAGE_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED, "anonymous mmap");
            ForeignMapping::from_raw(p as *mut u8, pages.max(1))
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

    /// Page `i`, writable (test fakes fill guest memory through this).
    #[cfg(test)]
    pub fn page_mut(&mut self, i: usize) -> &mut [u8] {
        assert!(i < self.pages);
        // SAFETY: in range; anonymous test mappings are writable; &mut self is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(i * PAGE_SIZE), PAGE_SIZE) }
    }
}

impl PageMapping for ForeignMapping {
    fn page(&self, idx: usize) -> &[u8] {
        ForeignMapping::page(self, idx)
    }
}

impl Drop for ForeignMapping {
    fn drop(&mut self) {
        // SAFETY: we own exactly this range (from_raw contract) and unmap it once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.pages * PAGE_SIZE) };
    }
}
