// SPDX-License-Identifier: GPL-3.0-only
//! The domain counters the mapping cache checks at every suspend (docs/coherence.md):
//! `getdomaininfo`, `XENMEM_maximum_gpfn` and `XENMEM_get_pod_target`.

use super::check;
use crate::cache::DomainSignals;
use crate::error::{Errno, Result};
use xenctrl_sys as sys;

/// Reads the counters of `dom` through a live handle.
pub(super) fn read(xch: *mut sys::xc_interface, dom: u32) -> Result<DomainSignals> {
    let mut info = sys::xc_dominfo_t::default();
    // SAFETY: xch is live (XenCtrl::new contract); info is a valid out-parameter for one entry.
    let n = check(unsafe { sys::xc_domain_getinfo(xch, dom, 1, &mut info) })?;
    if n != 1 || info.domid != dom {
        return Err(Errno(libc::ESRCH));
    }
    let mut gpfn: sys::xen_pfn_t = 0;
    // SAFETY: as above; gpfn is a valid out-parameter.
    check(unsafe { sys::xc_domain_maximum_gpfn(xch, dom, &mut gpfn) })?;
    let (mut tot, mut pod_cache, mut pod_entries) = (0u64, 0u64, 0u64);
    // SAFETY: as above; the three out-parameters are valid.
    check(unsafe {
        sys::xc_domain_get_pod_target(xch, dom, &mut tot, &mut pod_cache, &mut pod_entries)
    })?;
    Ok(DomainSignals {
        tot_pages: info.nr_pages,
        max_pages: info.max_memkb / 4,
        shr_pages: info.nr_shared_pages,
        paged_pages: info.nr_paged_pages,
        max_gpfn: gpfn,
        pod_entries,
        pod_cache_pages: pod_cache,
    })
}
