// SPDX-License-Identifier: GPL-3.0-only
//! `XENVER_get_features` submap 0 of the calling domain (dom0), through libxencall with a
//! buffer we fill ourselves: libxenctrl 4.17's `xc_version` bounces the struct out only, so
//! the `submap_idx` Xen reads would be whatever its buffer held (docs/dom0-cost.md §4).

use crate::abi::xen::{
    HYPERVISOR_XEN_VERSION, XENFEAT_AUTO_TRANSLATED_PHYSMAP, XENVER_GET_FEATURES,
};
use crate::error::{Errno, Result};
use std::os::raw::{c_int, c_uint, c_void};

#[repr(C)]
struct XencallHandle {
    _private: [u8; 0],
}

/// `xen_feature_info_t`.
#[repr(C)]
struct FeatureInfo {
    submap_idx: c_uint,
    submap: u32,
}

#[link(name = "xencall")]
extern "C" {
    fn xencall_open(logger: *mut c_void, flags: c_uint) -> *mut XencallHandle;
    fn xencall_close(h: *mut XencallHandle) -> c_int;
    fn xencall_alloc_buffer(h: *mut XencallHandle, size: usize) -> *mut c_void;
    fn xencall_free_buffer(h: *mut XencallHandle, p: *mut c_void);
    fn xencall2(h: *mut XencallHandle, op: c_uint, a1: u64, a2: u64) -> c_int;
}

/// Submap 0 of the caller's Xen features. Leaves the thread's errno as it was.
fn submap0() -> Result<u32> {
    let saved = Errno::last();
    let r = query();
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = saved.0 };
    r
}

fn query() -> Result<u32> {
    // SAFETY: a NULL logger is allowed (libxencall logs to stderr then); flags 0.
    let h = unsafe { xencall_open(std::ptr::null_mut(), 0) };
    if h.is_null() {
        return Err(Errno::last());
    }
    // SAFETY: h is a live handle; the buffer is freed on the same handle before it closes.
    let buf = unsafe { xencall_alloc_buffer(h, std::mem::size_of::<FeatureInfo>()) };
    let r = if buf.is_null() {
        Err(Errno::last())
    } else {
        let info = buf as *mut FeatureInfo;
        // SAFETY: buf is a fresh hypercall buffer of at least size_of::<FeatureInfo>() bytes,
        // suitably aligned (page aligned); Xen writes submap and reads submap_idx.
        let rc = unsafe {
            info.write(FeatureInfo {
                submap_idx: 0,
                submap: 0,
            });
            xencall2(h, HYPERVISOR_XEN_VERSION, XENVER_GET_FEATURES, buf as u64)
        };
        // SAFETY: info is still the live buffer; read before it is freed.
        let out = if rc < 0 {
            Err(Errno::last())
        } else {
            Ok(unsafe { (*info).submap })
        };
        // SAFETY: buf came from xencall_alloc_buffer on h and is freed once.
        unsafe { xencall_free_buffer(h, buf) };
        out
    };
    // SAFETY: h is live and closed once.
    unsafe { xencall_close(h) };
    r
}

/// Whether dom0 is auto-translated (`XENFEAT_auto_translated_physmap`).
pub(super) fn dom0_auto_translated() -> Result<bool> {
    Ok(submap0()? & (1 << XENFEAT_AUTO_TRANSLATED_PHYSMAP) != 0)
}
