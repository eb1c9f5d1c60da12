// SPDX-License-Identifier: GPL-3.0-only
//! The C surface of the mapping cache: configuration, teardown, counters. No logic.

use super::boundary::{ffi_boundary, log_to_stderr};
use super::set_errno;
use crate::abi::c::XcsaveCacheStats;
use crate::cache;
use crate::settings::cache_from_args;
use std::os::raw::c_int;

/// Configure the mapping cache of every later `xc_domain_save` in this process; this wins
/// over the `XCSAVE_CACHE*` environment until `xcsave_cache_teardown`. Zero selects the
/// default for each number: `budget_bytes` an eighth of the saved guest's memory, at least
/// 256 MiB and at most 1 GiB (bound on mapped guest memory; an explicit value must be at
/// least 4 MiB plus one bucket, and at most half of `vm.max_map_count` buckets; a save caps
/// it at 1.25 times the guest), `bucket_bytes` 1 MiB (a power-of-two number of 4 KiB pages,
/// 64 KiB to 32 MiB), `max_age` 64 checkpoints (at most 4096). `enable` 0 reproduces the
/// stock per-batch map/unmap pattern. The values go through the same validation as the
/// environment's; where the environment would be clamped or replaced by a default, this
/// returns -1 with errno EINVAL and changes nothing. EIO for an internal error.
#[no_mangle]
pub extern "C" fn xcsave_cache_init(
    budget_bytes: u64,
    bucket_bytes: u64,
    enable: c_int,
    max_age: u32,
) -> c_int {
    let body = || {
        let (cfg, warnings) = cache_from_args(enable != 0, budget_bytes, bucket_bytes, max_age);
        if !warnings.is_empty() {
            // Invalid or out of range: the environment would be clamped (with a warning in
            // the save's log); an API caller gets the error at once and nothing changes.
            set_errno(libc::EINVAL);
            return -1;
        }
        cache::init(cfg);
        0
    };
    ffi_boundary(-1, body, log_to_stderr("xcsave_cache_init"))
}

/// Release every cached foreign mapping of this process: a save that is running drops its
/// cache at its next batch or checkpoint; saves that have returned hold none. Also forgets
/// the `xcsave_cache_init` settings. Counters stay readable. Returns 0 (-1 with errno EIO for
/// an internal error).
#[no_mangle]
pub extern "C" fn xcsave_cache_teardown() -> c_int {
    let body = || {
        cache::teardown();
        0
    };
    ffi_boundary(-1, body, log_to_stderr("xcsave_cache_teardown"))
}

/// Copy the mapping-cache counters of `domid`'s most recent (or running) save in this process
/// into `*out`. Returns 0, or -1 with errno EINVAL (`out` is NULL), ENOENT (no save of
/// `domid` yet) or EIO (an internal error).
///
/// # Safety
/// `out` must be NULL or point to writable memory for one `XcsaveCacheStats`.
#[no_mangle]
pub unsafe extern "C" fn xcsave_cache_stats(domid: u32, out: *mut XcsaveCacheStats) -> c_int {
    let body = || {
        if out.is_null() {
            set_errno(libc::EINVAL);
            return -1;
        }
        let Some(s) = cache::stats(domid) else {
            set_errno(libc::ENOENT);
            return -1;
        };
        // SAFETY: out is non-NULL and, by the caller's contract, valid for one write.
        unsafe { out.write(s) };
        0
    };
    ffi_boundary(-1, body, log_to_stderr("xcsave_cache_stats"))
}
