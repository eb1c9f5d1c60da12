// SPDX-License-Identifier: GPL-3.0-only
//! One domain's information from libxenctrl, the way the chosen Xen release's saver asks:
//! - 4.17: `xc_domain_getinfo(xch, dom, 1, &info)`, which answers with the first domain whose
//!   id is >= `dom` (the caller checks the id);
//! - 4.20: `xc_domain_getinfo_single(xch, dom, &info)`, exactly `dom` or -1 with errno (ESRCH);
//!   4.20 has no `xc_domain_getinfo` and no `xc_dominfo_t`.

use super::check;
#[cfg(xen = "4.20")]
use crate::abi::xen::dominf;
use crate::error::Result;
use xenctrl_sys as sys;

/// What xcsave reads of a domain's information.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct RawInfo {
    /// The domain the hypervisor answered for (4.17 may answer for a later one).
    pub domid: u32,
    /// HVM (or PVH) guest.
    pub hvm: bool,
    /// Shut down.
    pub shutdown: bool,
    /// SHUTDOWN_* reason, meaningful when shut down.
    pub shutdown_reason: u32,
    /// Pages allocated.
    pub nr_pages: u64,
    /// Maximum memory in KiB.
    pub max_memkb: u64,
    /// Shared pages.
    pub shr_pages: u64,
    /// Paged-out pages.
    pub paged_pages: u64,
}

/// `Ok(None)`: 4.17 found no domain with an id >= `dom`.
#[cfg(xen = "4.17")]
pub(super) fn get(xch: *mut sys::xc_interface, dom: u32) -> Result<Option<RawInfo>> {
    let mut info = sys::xc_dominfo_t::default();
    // SAFETY: xch is live (XenCtrl::new contract); info is a valid out-parameter for one entry.
    let n = check(unsafe { sys::xc_domain_getinfo(xch, dom, 1, &mut info) })?;
    if n != 1 {
        return Ok(None);
    }
    Ok(Some(RawInfo {
        domid: info.domid,
        hvm: info.hvm() != 0,
        shutdown: info.shutdown() != 0,
        shutdown_reason: info.shutdown_reason,
        nr_pages: info.nr_pages,
        max_memkb: info.max_memkb,
        shr_pages: info.nr_shared_pages,
        paged_pages: info.nr_paged_pages,
    }))
}

/// Never `Ok(None)`: 4.20 answers for exactly `dom` or fails (ESRCH).
#[cfg(xen = "4.20")]
pub(super) fn get(xch: *mut sys::xc_interface, dom: u32) -> Result<Option<RawInfo>> {
    let mut info = sys::xc_domaininfo_t::default();
    // SAFETY: xch is live (XenCtrl::new contract); info is a valid out-parameter.
    check(unsafe { sys::xc_domain_getinfo_single(xch, dom, &mut info) })?;
    Ok(Some(RawInfo {
        domid: u32::from(info.domain),
        hvm: info.flags & dominf::HVM_GUEST != 0,
        shutdown: info.flags & dominf::SHUTDOWN != 0,
        shutdown_reason: (info.flags >> dominf::SHUTDOWN_SHIFT) & dominf::SHUTDOWN_MASK,
        nr_pages: info.tot_pages,
        // As 4.17's xc_domain_getinfo computed it: max_pages << (PAGE_SHIFT - 10).
        max_memkb: info.max_pages << 2,
        shr_pages: info.shr_pages,
        paged_pages: info.paged_pages,
    }))
}
