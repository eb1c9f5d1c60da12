// SPDX-License-Identifier: GPL-3.0-only
//! The domain counters the mapping cache checks at every suspend (docs/coherence.md):
//! `getdomaininfo`, `XENMEM_maximum_gpfn` and `XENMEM_get_pod_target`.

use super::check;
use crate::error::{Errno, Result};
use crate::hv::DomainSignals;
use std::sync::atomic::{AtomicBool, Ordering};
use xenctrl_sys as sys;

/// The hypervisor answered ENOSYS to `XENMEM_get_pod_target`: it has no PoD.
static NO_POD_OP: AtomicBool = AtomicBool::new(false);

/// Reads the counters of `dom` through a live handle. The thread's errno is left as it was:
/// a failing query must not become the errno a later callback-ended save reports.
pub(super) fn read(xch: *mut sys::xc_interface, dom: u32) -> Result<DomainSignals> {
    let saved = Errno::last();
    let r = query(xch, dom);
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = saved.0 };
    r
}

fn query(xch: *mut sys::xc_interface, dom: u32) -> Result<DomainSignals> {
    let info = match super::dominfo::get(xch, dom)? {
        Some(info) if info.domid == dom => info,
        _ => return Err(Errno(libc::ESRCH)),
    };
    let mut gpfn: sys::xen_pfn_t = 0;
    // SAFETY: as above; gpfn is a valid out-parameter.
    check(unsafe { sys::xc_domain_maximum_gpfn(xch, dom, &mut gpfn) })?;
    let (mut tot, mut pod_cache, mut pod_entries) = (0u64, 0u64, 0u64);
    if !NO_POD_OP.load(Ordering::Relaxed) {
        // SAFETY: as above; the three out-parameters are valid.
        let pod = check(unsafe {
            sys::xc_domain_get_pod_target(xch, dom, &mut tot, &mut pod_cache, &mut pod_entries)
        });
        match pod {
            // A hypervisor without XENMEM_get_pod_target (Xen on Arm, a simulator) has no
            // populate-on-demand: nothing can be in use. Do not ask it again.
            Err(Errno(libc::ENOSYS)) => {
                NO_POD_OP.store(true, Ordering::Relaxed);
                (pod_cache, pod_entries) = (0, 0);
            }
            r => {
                r?;
            }
        }
    }
    Ok(DomainSignals {
        tot_pages: info.nr_pages,
        max_pages: info.max_memkb / 4,
        shr_pages: info.shr_pages,
        paged_pages: info.paged_pages,
        max_gpfn: gpfn,
        pod_entries,
        pod_cache_pages: pod_cache,
    })
}
