// SPDX-License-Identifier: GPL-3.0-only
//! Facts of the Xen release xcsave is built for: constants from Xen's public and tools
//! headers, libxenctrl's private handle layout, the symbol version node `xc_domain_save` is
//! exported under, and what differs between 4.17 and 4.20.
//!
//! build.rs chooses the release (`XCSAVE_XEN_VERSION`, else `pkg-config --modversion
//! xenguest`), sets `cfg(xen = "...")` and the `XCSAVE_XEN_*` build variables; this is the one
//! place in `src/` that reads them. A built library serves exactly one release: its imports
//! carry that release's nodes and it needs that release's libxenctrl SONAME
//! (docs/decisions.md, "One tree, two Xen releases").

use std::os::raw::c_int;
use xenctrl_sys::xentoollog_logger;

/// The Xen release, `major.minor` (`4.17` or `4.20`).
pub const XEN_VERSION: &str = env!("XCSAVE_XEN_VERSION");

/// The symbol version node of libxenguest's `xc_domain_save`: what xcsave exports it under
/// (the version script build.rs writes from `xcsave.map.in`) and what it looks the stock saver
/// up by: `VERS_4.17.0` (4.17), `libxenguest_4.20.0` (4.20).
pub const SYMBOL_VERSION: &std::ffi::CStr =
    match std::ffi::CStr::from_bytes_with_nul(concat!(env!("XCSAVE_XEN_NODE"), "\0").as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("XCSAVE_XEN_NODE has no NUL"),
    };

/// The first value stock prints in "Domain has not been suspended: shutdown %d, reason %d"
/// when the domain is shut down: 4.17 prints `dominfo.shutdown` (1), 4.20 prints
/// `flags & XEN_DOMINF_shutdown` (4).
#[cfg(xen = "4.17")]
pub const SHUTDOWN_SHOWN: i32 = 1;
/// See the 4.17 variant.
#[cfg(xen = "4.20")]
pub const SHUTDOWN_SHOWN: i32 = 1 << 2;

/// The bytes a COLO secondary writes before the body of its CHECKPOINT_DIRTY_PFN_LIST on the
/// back channel. Xen 4.18+'s restore (`send_checkpoint_dirty_pfn_list` since commit
/// efe8de1f91) writes its whole in-memory `struct xc_sr_record` as the header: type, length and
/// the NULL `data` pointer, 16 bytes, where the stream format (and 4.17) has 8. Stock 4.20's
/// saver reads 8 and fails at the next record; xcsave's 4.20 saver reads all 16 (the pointer's
/// 8 bytes must be zero), and xcsave's 4.20 restore writes the 16 that stock 4.20's restore
/// writes, so either side can stand in for stock (docs/decisions.md).
#[cfg(xen = "4.17")]
pub const BACKCHANNEL_HEADER_LEN: usize = 8;
/// See the 4.17 variant.
#[cfg(xen = "4.20")]
pub const BACKCHANNEL_HEADER_LEN: usize = 16;

/// `XEN_DOMINF_*` bits of `xen_domctl_getdomaininfo.flags` (`public/domctl.h`), read directly
/// on 4.20, which has no `xc_dominfo_t`.
#[cfg(xen = "4.20")]
pub mod dominf {
    /// The domain is an HVM (or PVH) guest.
    pub const HVM_GUEST: u32 = 1 << 1;
    /// The domain is shut down.
    pub const SHUTDOWN: u32 = 1 << 2;
    /// Shift of the SHUTDOWN_* reason.
    pub const SHUTDOWN_SHIFT: u32 = 16;
    /// Mask of the SHUTDOWN_* reason (after the shift).
    pub const SHUTDOWN_MASK: u32 = 255;
}

/// Page shift of x86.
pub const PAGE_SHIFT: u32 = 12;
/// Page size of x86.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// Pages per PAGE_DATA record (stock's `MAX_BATCH_SIZE`): the largest batch the engine hands
/// to a page source.
pub const MAX_BATCH_SIZE: usize = 1024;

/// `__HYPERVISOR_xen_version` (xen/include/public/xen.h).
pub const HYPERVISOR_XEN_VERSION: u32 = 17;
/// `XENVER_get_features`: `xen_feature_info_t { unsigned int submap_idx; uint32_t submap; }`.
pub const XENVER_GET_FEATURES: u64 = 6;
/// `XENFEAT_auto_translated_physmap` (public/features.h): the caller's memory is
/// auto-translated (a PVH or HVM dom0). Same bit in 4.17 and 4.20.
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;

/// Page type values (`XEN_DOMCTL_PFINFO_*`) relevant to an x86 saver.
pub mod pfinfo {
    /// Ordinary RAM.
    pub const NOTAB: u32 = 0x0 << 28;
    /// Page-table type mask (PV).
    pub const LTABTYPE_MASK: u32 = 0x7 << 28;
    /// Pinned page table flag (PV).
    pub const LPINTAB: u32 = 0x1 << 31;
    /// Invalid page (hole).
    pub const XTAB: u32 = 0xf << 28;
    /// Allocate-only page (legacy synthetic type).
    pub const XALLOC: u32 = 0xe << 28;
    /// Broken page.
    pub const BROKEN: u32 = 0xd << 28;
}

/// Whether `t` is a page type the stream format knows.
pub fn is_known_page_type(t: u32) -> bool {
    use pfinfo::*;
    match t {
        XTAB | XALLOC | BROKEN => true,
        _ => {
            let level = (t & LTABTYPE_MASK) >> 28;
            let rest = t & !(LTABTYPE_MASK | LPINTAB);
            rest == 0 && level <= 4 && !(level == 0 && t & LPINTAB != 0)
        }
    }
}

/// Whether a page of type `t` (as `getpageframeinfo3` wrote it, low 32 bits) carries data
/// in PAGE_DATA (stock's `page_type_has_stream_data`): a known type that is not a hole, an
/// allocate-only or a broken page.
pub fn page_type_has_data(t: u64) -> bool {
    use pfinfo::*;
    let t = t as u32;
    !matches!(t, XTAB | XALLOC | BROKEN) && is_known_page_type(t)
}

/// `SHUTDOWN_suspend` from `xen/sched.h`.
pub const SHUTDOWN_SUSPEND: u32 = 2;

/// `XCFLAGS_LIVE`.
pub const XCFLAGS_LIVE: u32 = 1 << 0;
/// `XCFLAGS_DEBUG`.
pub const XCFLAGS_DEBUG: u32 = 1 << 1;

/// `XGS_POLICY_ABORT`.
pub const XGS_POLICY_ABORT: i32 = -1;
/// `XGS_POLICY_CONTINUE_PRECOPY`.
pub const XGS_POLICY_CONTINUE_PRECOPY: i32 = 0;
/// `XGS_POLICY_STOP_AND_COPY`.
pub const XGS_POLICY_STOP_AND_COPY: i32 = 1;

/// `XEN_DOMCTL_SHADOW_OP_*` used by the saver.
pub mod shadow_op {
    /// Turn shadow/log-dirty mode off.
    pub const OFF: u32 = 0;
    /// Enable log-dirty mode.
    pub const ENABLE_LOGDIRTY: u32 = 2;
    /// Copy and clear the log-dirty bitmap.
    pub const CLEAN: u32 = 11;
    /// Copy the log-dirty bitmap without clearing it.
    pub const PEEK: u32 = 12;
}

/// `xen_cpuid_leaf_t`: bytes per serialised CPUID leaf.
pub const CPUID_LEAF_BYTES: usize = 24;
/// `xen_msr_entry_t`: bytes per serialised MSR entry.
pub const MSR_ENTRY_BYTES: usize = 16;

/// `XC_INTERNAL_ERROR`, the code stock's ERROR/PERROR macros report with.
pub const XC_INTERNAL_ERROR: c_int = 1;

/// xentoollog levels (`xentoollog.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum Level {
    /// XTL_DEBUG.
    Debug = 1,
    /// XTL_VERBOSE.
    Verbose = 2,
    /// XTL_DETAIL (stock's DPRINTF).
    Detail = 3,
    /// XTL_INFO (stock's IPRINTF).
    Info = 5,
    /// XTL_WARN.
    Warn = 7,
    /// XTL_ERROR.
    Error = 8,
}

/// Opaque `xc_cpu_policy_t` from `xenguest.h`.
#[repr(C)]
pub struct XcCpuPolicy {
    _opaque: [u8; 0],
}

/// The public prefix of libxenctrl's internal `struct xc_interface_core` at 4.17.x
/// (`tools/libs/ctrl/xc_private.h`): `int flags; xentoollog_logger *error_handler; ...`.
/// This is a 4.17-ABI dependency: reading the logger at this offset is the only way to log
/// through the caller's logger below error level, as libxenguest's own code does.
#[repr(C)]
pub struct XcInterfacePrefix {
    /// `XC_OPENFLAG_*` flags.
    pub flags: c_int,
    /// The logger every `xc_report*` call of this handle goes to.
    pub error_handler: *mut xentoollog_logger,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_types() {
        assert!(page_type_has_data(pfinfo::NOTAB as u64));
        assert!(page_type_has_data(1 << 28));
        assert!(page_type_has_data(((4 << 28) | pfinfo::LPINTAB) as u64));
        for t in [pfinfo::XTAB, pfinfo::XALLOC, pfinfo::BROKEN] {
            assert!(is_known_page_type(t));
            assert!(!page_type_has_data(t as u64));
        }
        assert!(!is_known_page_type(5 << 28));
        assert!(!is_known_page_type(pfinfo::LPINTAB));
        assert!(!is_known_page_type(1));
    }

    #[test]
    fn symbol_version_follows_the_release() {
        let node = SYMBOL_VERSION.to_str().expect("ASCII");
        match XEN_VERSION {
            "4.17" => assert_eq!(node, "VERS_4.17.0"),
            v => assert_eq!(node, format!("libxenguest_{v}.0")),
        }
        assert!(include_str!("../../xcsave.map.in").contains("@XEN_NODE@ {"));
    }
}

/// `xc_stream_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    /// XC_STREAM_PLAIN.
    Plain,
    /// XC_STREAM_REMUS.
    Remus,
    /// XC_STREAM_COLO.
    Colo,
}

impl StreamType {
    /// From the C enum value.
    pub fn from_raw(v: u32) -> Option<StreamType> {
        match v {
            0 => Some(StreamType::Plain),
            1 => Some(StreamType::Remus),
            2 => Some(StreamType::Colo),
            _ => None,
        }
    }
}
