// SPDX-License-Identifier: GPL-3.0-only
//! The C surface of the mapping cache: configuration, teardown, counters. No logic.

use super::set_errno;
use crate::cache;
use std::os::raw::c_int;
use std::panic::catch_unwind;

/// Counters of one domain's mapping cache, for its most recent (or running) save in this
/// process. Filled by `xcsave_cache_stats`. Byte counts are of guest memory.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XcsaveCacheStats {
    /// Data pages served from a bucket that was already mapped.
    pub hits: u64,
    /// Data pages that needed a map call (bucket miss, or a per-batch mapping).
    pub misses: u64,
    /// Map calls (one VMA each).
    pub maps: u64,
    /// Unmap calls.
    pub unmaps: u64,
    /// Buckets unmapped to stay within the budget (LRU).
    pub evictions: u64,
    /// Buckets unmapped because they might be stale (coherence signals, page types, teardown).
    pub invalidations: u64,
    /// Buckets unmapped because they reached the maximum age.
    pub expirations: u64,
    /// Bytes mapped, summed over all map calls.
    pub bytes_mapped: u64,
    /// Bytes of page data handed to the stream.
    pub bytes_sent: u64,
    /// Bytes mapped now (0 once the save has returned).
    pub mapped_bytes: u64,
    /// Highest `mapped_bytes` of the save; never above the budget.
    pub peak_mapped_bytes: u64,
    /// Foreign-mapping VMAs held now.
    pub vmas: u64,
    /// Highest `vmas` of the save.
    pub peak_vmas: u64,
    /// Suspended checkpoints (and final rounds) seen.
    pub checkpoints: u64,
    /// 1 if the save ran without caching (XCSAVE_CACHE=off, PoD, counters unreadable).
    pub disabled: u64,
}

/// Configure the mapping cache of every later `xc_domain_save` in this process; this wins
/// over the `XCSAVE_CACHE*` environment until `xcsave_cache_teardown`. Zero selects the
/// default for each number: `budget_bytes` an eighth of the saved guest's memory, at least
/// 256 MiB and at most 1 GiB (bound on mapped guest memory; an explicit value must be at
/// least 4 MiB plus one bucket), `bucket_bytes` 1 MiB (a power-of-two number of 4 KiB
/// pages, at most 32 MiB), `max_age` 64 checkpoints. `enable` 0 reproduces the stock
/// per-batch map/unmap pattern. Returns 0, or -1 with errno EINVAL (and nothing changed) for an
/// invalid value.
#[no_mangle]
pub extern "C" fn xcsave_cache_init(
    budget_bytes: u64,
    bucket_bytes: u64,
    enable: c_int,
    max_age: u32,
) -> c_int {
    match catch_unwind(|| cache::init(enable != 0, budget_bytes, bucket_bytes, max_age)) {
        Ok(Ok(())) => 0,
        _ => {
            set_errno(libc::EINVAL);
            -1
        }
    }
}

/// Release every cached foreign mapping of this process: a save that is running drops its
/// cache at its next batch or checkpoint; saves that have returned hold none. Also forgets
/// the `xcsave_cache_init` settings. Counters stay readable. Returns 0.
#[no_mangle]
pub extern "C" fn xcsave_cache_teardown() -> c_int {
    let _ = catch_unwind(cache::teardown);
    0
}

/// Copy the mapping-cache counters of `domid`'s most recent (or running) save in this process
/// into `*out`. Returns 0, or -1 with errno EINVAL (`out` is NULL) or ENOENT (no save of
/// `domid` yet).
///
/// # Safety
/// `out` must be NULL or point to writable memory for one `XcsaveCacheStats`.
#[no_mangle]
pub unsafe extern "C" fn xcsave_cache_stats(domid: u32, out: *mut XcsaveCacheStats) -> c_int {
    if out.is_null() {
        set_errno(libc::EINVAL);
        return -1;
    }
    let Ok(Some(s)) = catch_unwind(|| cache::stats(domid)) else {
        set_errno(libc::ENOENT);
        return -1;
    };
    // SAFETY: out is non-NULL and, by the caller's contract, valid for one write.
    unsafe { out.write(s) };
    0
}
