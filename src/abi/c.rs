// SPDX-License-Identifier: GPL-3.0-only
//! The C surface's `#[repr(C)]` types, each defined once. `capi` exports functions that take
//! them; the engine and the cache fill them. cbindgen writes [`XcsaveCacheStats`] into
//! `include/xcsave.h`; the Xen types are renamed to their `<xenguest.h>` names and not
//! emitted (cbindgen.toml).

use std::ffi::c_void;
use std::os::raw::{c_int, c_long, c_uint, c_ulong};

/// Xen's `xc_stream_type_t` (0 plain, 1 Remus, 2 COLO).
pub type XcStreamType = c_uint;

/// Xen's `struct precopy_stats` (`xenguest.h`, 4.17), passed by value to the precopy policy.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrecopyStats {
    /// Completed precopy iterations.
    pub iteration: c_uint,
    /// Pages written so far.
    pub total_written: c_ulong,
    /// Dirty pages of the coming round, -1 if unknown.
    pub dirty_count: c_long,
}

/// Xen's `struct save_callbacks` (`xenguest.h`, 4.17).
#[repr(C)]
pub struct SaveCallbacks {
    /// Suspend the guest; non-zero is success.
    pub suspend: Option<unsafe extern "C" fn(data: *mut c_void) -> c_int>,
    /// Live precopy policy (NULL: stock's default).
    pub precopy_policy:
        Option<unsafe extern "C" fn(stats: PrecopyStats, data: *mut c_void) -> c_int>,
    /// Resume the guest after a checkpoint.
    pub postcopy: Option<unsafe extern "C" fn(data: *mut c_void) -> c_int>,
    /// Checkpoint done.
    pub checkpoint: Option<unsafe extern "C" fn(data: *mut c_void) -> c_int>,
    /// COLO: wait for the next checkpoint.
    pub wait_checkpoint: Option<unsafe extern "C" fn(data: *mut c_void) -> c_int>,
    /// Switch QEMU's log-dirty mode.
    pub switch_qemu_logdirty:
        Option<unsafe extern "C" fn(domid: u32, enable: c_uint, data: *mut c_void) -> c_int>,
    /// Passed to every callback.
    pub data: *mut c_void,
}

/// Xen's `struct restore_callbacks` (`xenguest.h`, byte-identical in 4.17 and 4.20).
#[repr(C)]
pub struct RestoreCallbacks {
    /// STATIC_DATA_END received or inferred; `missing` has `XGR_SDD_MISSING_*` bits.
    pub static_data_done: Option<unsafe extern "C" fn(missing: c_uint, data: *mut c_void) -> c_int>,
    /// COLO: suspend the secondary after a checkpoint.
    pub suspend: Option<unsafe extern "C" fn(data: *mut c_void) -> c_int>,
    /// COLO: resume the secondary.
    pub postcopy: Option<unsafe extern "C" fn(data: *mut c_void) -> c_int>,
    /// A CHECKPOINT record arrived: `XGR_CHECKPOINT_{ERROR,SUCCESS,FAILOVER}`.
    pub checkpoint: Option<unsafe extern "C" fn(data: *mut c_void) -> c_int>,
    /// COLO: wait for the primary's next checkpoint.
    pub wait_checkpoint: Option<unsafe extern "C" fn(data: *mut c_void) -> c_int>,
    /// COLO: the store and console gfns, before the secondary resumes.
    pub restore_results:
        Option<unsafe extern "C" fn(store_gfn: XenPfn, console_gfn: XenPfn, data: *mut c_void)>,
    /// Passed to every callback.
    pub data: *mut c_void,
}

/// Xen's `xen_pfn_t` on x86.
pub type XenPfn = u64;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layouts_match_xenguest_h() {
        // The same figures are asserted against <xenguest.h> in c-tests/header_compat.c.
        assert_eq!(size_of::<SaveCallbacks>(), 56);
        assert_eq!(offset_of!(SaveCallbacks, precopy_policy), 8);
        assert_eq!(offset_of!(SaveCallbacks, switch_qemu_logdirty), 40);
        assert_eq!(offset_of!(SaveCallbacks, data), 48);
        assert_eq!(size_of::<PrecopyStats>(), 24);
        assert_eq!(size_of::<RestoreCallbacks>(), 56);
        assert_eq!(offset_of!(RestoreCallbacks, checkpoint), 24);
        assert_eq!(offset_of!(RestoreCallbacks, restore_results), 40);
        assert_eq!(offset_of!(RestoreCallbacks, data), 48);
        assert_eq!(offset_of!(PrecopyStats, total_written), 8);
        assert_eq!(offset_of!(PrecopyStats, dirty_count), 16);
    }
}
