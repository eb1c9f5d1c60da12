// SPDX-License-Identifier: GPL-3.0-only
//! The few libxenctrl/libxenguest entry points that `xenctrl-sys` does not bind.
//!
//! All of them are exported by Debian's Xen 4.17.7 libraries under `VERS_4.17.0`; some are
//! declared only in Xen's private headers (`xc_private.h`), which is why bindgen never sees them.

use crate::abi::xen::XcCpuPolicy;
use std::os::raw::{c_char, c_int, c_uint, c_ulong, c_void};
use xenctrl_sys::{xc_interface, xentoollog_logger};

#[link(name = "xenctrl")]
extern "C" {
    /// Log one message through `lg` (private API, exported).
    pub fn xc_report(
        xch: *mut xc_interface,
        lg: *mut xentoollog_logger,
        level: c_uint,
        code: c_int,
        fmt: *const c_char,
        ...
    );
    /// Log an error through the handle's logger and record it as the last error.
    pub fn xc_report_error(xch: *mut xc_interface, code: c_int, fmt: *const c_char, ...);
    /// Set the prefix of step progress reports; the string is borrowed, not copied.
    pub fn xc_set_progress_prefix(xch: *mut xc_interface, doing: *const c_char) -> *const c_char;
    /// Report one-off progress.
    pub fn xc_report_progress_single(xch: *mut xc_interface, doing: *const c_char);
    /// Report step progress under the current prefix.
    pub fn xc_report_progress_step(xch: *mut xc_interface, done: c_ulong, total: c_ulong);
    /// Overwrite each pfn of `arr` with its XEN_DOMCTL_PFINFO type.
    pub fn xc_get_pfn_type_batch(
        xch: *mut xc_interface,
        dom: u32,
        num: c_uint,
        arr: *mut u64,
    ) -> c_int;
    /// Map `num` gfns of `dom` contiguously; per-page errors go to `err`.
    pub fn xc_map_foreign_bulk(
        xch: *mut xc_interface,
        dom: u32,
        prot: c_int,
        arr: *const u64,
        err: *mut c_int,
        num: c_uint,
    ) -> *mut c_void;
}

#[link(name = "xenguest")]
extern "C" {
    /// Seed the grant table of a domain being built or restored.
    pub fn xc_dom_gnttab_seed(
        xch: *mut xc_interface,
        guest_domid: u32,
        is_hvm: bool,
        console_gfn: u64,
        xenstore_gfn: u64,
        console_domid: u32,
        xenstore_domid: u32,
    ) -> c_int;
    /// Apply serialised CPUID leaves and MSR entries to a domain.
    pub fn xc_set_domain_cpu_policy(
        xch: *mut xc_interface,
        domid: u32,
        nr_leaves: u32,
        leaves: *mut c_void,
        nr_msrs: u32,
        msrs: *mut c_void,
        err_leaf_p: *mut u32,
        err_subleaf_p: *mut u32,
        err_msr_p: *mut u32,
    ) -> c_int;
    /// Allocate an empty CPU policy object.
    pub fn xc_cpu_policy_init() -> *mut XcCpuPolicy;
    /// Free a CPU policy object (NULL is fine).
    pub fn xc_cpu_policy_destroy(policy: *mut XcCpuPolicy);
    /// Fetch a domain's CPU policy.
    pub fn xc_cpu_policy_get_domain(
        xch: *mut xc_interface,
        domid: u32,
        policy: *mut XcCpuPolicy,
    ) -> c_int;
    /// Serialise a policy into CPUID leaves (24 bytes each) and MSR entries (16 bytes each).
    pub fn xc_cpu_policy_serialise(
        xch: *mut xc_interface,
        policy: *const XcCpuPolicy,
        leaves: *mut c_void,
        nr_leaves: *mut u32,
        msrs: *mut c_void,
        nr_msrs: *mut u32,
    ) -> c_int;
    /// Maximum number of leaves and MSRs of any policy.
    pub fn xc_cpu_policy_get_size(
        xch: *mut xc_interface,
        nr_leaves: *mut u32,
        nr_msrs: *mut u32,
    ) -> c_int;
}
