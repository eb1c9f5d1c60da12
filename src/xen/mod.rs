// SPDX-License-Identifier: GPL-3.0-only
//! Xen access: the only place that calls into libxenctrl/libxenguest (and the OS calls that
//! go with them: munmap of foreign mappings, the caller's file descriptors).
//!
//! The engine and the cache see Xen through the narrow traits of `hv` (domain control, guest
//! memory, HVM state, reporting), so that their logic can be driven by a fake in tests.
//! [`XenCtrl`] implements all four over a caller's `xc_interface *`.

mod dominfo;
pub mod extra;
pub mod fdio;
mod features;
mod mapping;
mod signals;

pub use mapping::{ForeignMapping, WritableMapping};

use crate::abi::xen::{
    shadow_op, Level, XcInterfacePrefix, CPUID_LEAF_BYTES, MSR_ENTRY_BYTES, XC_INTERNAL_ERROR,
};
use crate::error::{Errno, Result};
use crate::hv::{
    CpuPolicy, DirtyBitmap, DomInfo, DomainBuild, DomainControl, DomainSignals, GuestMemory,
    HvmState, LogDirtyOp, Report, ShadowStats, TscInfo,
};
use extra::*;
use std::cell::RefCell;
use std::ffi::CString;
use std::os::raw::{c_int, c_uint, c_ulong};
use xenctrl_sys as sys;

/// Turn a message into a C string, replacing any NUL.
fn cstring(msg: &str) -> CString {
    CString::new(msg.replace('\0', "\\0")).expect("NULs were replaced")
}

/// Where the `log` facade sends lines: one caller's `xc_interface`. Copyable handle; valid
/// while the save call that created it runs.
#[derive(Clone, Copy)]
pub struct LogTarget {
    xch: *mut sys::xc_interface,
}

impl LogTarget {
    /// Emit one line at `level` through the handle's logger.
    pub fn emit(&self, level: Level, msg: &str) {
        let c = cstring(msg);
        // SAFETY: a LogTarget exists only while the save call that owns the live
        // `xc_interface` runs (see `logging::scope`); the logger pointer is read at the
        // documented 4.17 offset and may be NULL only if the handle is broken, checked here.
        unsafe {
            let lg = (*(self.xch as *const XcInterfacePrefix)).error_handler;
            if lg.is_null() {
                return;
            }
            xc_report(self.xch, lg, level as c_uint, 0, c"%s".as_ptr(), c.as_ptr());
        }
    }
}

/// The real hypervisor behind a caller's `xc_interface *`.
pub struct XenCtrl {
    xch: *mut sys::xc_interface,
    prefix: RefCell<Option<CString>>,
    /// The hypercall buffer of `getpageframeinfo3` and `gethvmcontext`, kept for the whole
    /// save. libxenctrl's wrappers bounce through a fresh buffer per call, and libxencall
    /// caches single pages only: a batch's 1024 types (8 KiB) or an HVM context (about
    /// 5 KiB) cost an mmap and a munmap of the hypercall device at every call.
    scratch: RefCell<Option<ScratchBuf>>,
}

/// A hypercall buffer of `npages` pages.
struct ScratchBuf {
    hbuf: Box<sys::xc_hypercall_buffer_t>,
    npages: c_int,
}

/// How often `getpageframeinfo3` is retried after EFAULT, as `xc_get_pfn_type_batch` does
/// (Xen's "tools/libxc: retry hypercall in case of EFAULT": up to 2 times, for user-memory
/// hypercall buffers the kernel may be migrating).
const PFINFO_EFAULT_RETRIES: u32 = 2;

impl XenCtrl {
    /// Wrap a caller's handle.
    ///
    /// # Safety
    /// `xch` must be a live handle from `xc_interface_open` that outlives this value.
    pub unsafe fn new(xch: *mut sys::xc_interface) -> XenCtrl {
        XenCtrl {
            xch,
            prefix: RefCell::new(None),
            scratch: RefCell::new(None),
        }
    }

    /// Run `f` with the scratch hypercall buffer, at least `bytes` long (grown, never shrunk).
    fn with_scratch<T>(&self, bytes: usize, f: impl FnOnce(*mut u8) -> Result<T>) -> Result<T> {
        let mut slot = self.scratch.borrow_mut();
        let need = bytes.div_ceil(4096).max(1);
        if slot.as_ref().is_some_and(|b| (b.npages as usize) < need) {
            self.free_scratch(slot.take());
        }
        if slot.is_none() {
            let npages = c_int::try_from(need).map_err(|_| Errno(libc::E2BIG))?;
            let mut hbuf: Box<sys::xc_hypercall_buffer_t> = Box::default();
            // SAFETY: hbuf is a zeroed hypercall-buffer descriptor that lives (boxed) as long
            // as the allocation; the library fills hbuf.hbuf.
            let p = unsafe { sys::xc__hypercall_buffer_alloc_pages(self.xch, &mut *hbuf, npages) };
            if p.is_null() {
                return Err(Errno::last());
            }
            *slot = Some(ScratchBuf { hbuf, npages });
        }
        let buf = slot.as_ref().expect("allocated above");
        f(buf.hbuf.hbuf as *mut u8)
    }

    fn free_scratch(&self, buf: Option<ScratchBuf>) {
        if let Some(mut b) = buf {
            // SAFETY: allocated by xc__hypercall_buffer_alloc_pages on this handle with this
            // page count (with_scratch), and freed once (it was taken out of its slot).
            unsafe { sys::xc__hypercall_buffer_free_pages(self.xch, &mut *b.hbuf, b.npages) }
        }
    }

    /// `xc_domctl`, retried up to `retries` times while it fails with EFAULT.
    fn domctl(&self, d: &mut sys::xen_domctl, mut retries: u32) -> Result<c_int> {
        loop {
            // SAFETY: xch is live (XenCtrl::new contract); d is a complete domctl whose
            // guest handles point into the scratch hypercall buffer.
            let rc = unsafe { sys::xc_domctl(self.xch, d) };
            if rc >= 0 {
                return Ok(rc);
            }
            let e = Errno::last();
            if e.0 != libc::EFAULT || retries == 0 {
                return Err(e);
            }
            retries -= 1;
        }
    }

    /// The handle's logger, for the `log` facade.
    /// Maps `gfns` of `dom` into one fresh VMA with `prot` (`xc_map_foreign_bulk`), with a
    /// per-page error in `errs`. The caller owns the returned `gfns.len()` pages and must
    /// munmap them (`ForeignMapping` or `WritableMapping`).
    fn map_bulk(&self, dom: u32, gfns: &[u64], errs: &mut [i32], prot: c_int) -> Result<*mut u8> {
        assert_eq!(gfns.len(), errs.len(), "one error slot per gfn");
        let n = c_uint::try_from(gfns.len()).map_err(|_| Errno(libc::E2BIG))?;
        // SAFETY: gfns/errs have n entries each; the result is a fresh mapping of n pages
        // (or NULL), handed to the caller, who owns it from here on.
        let p = unsafe {
            xc_map_foreign_bulk(self.xch, dom, prot, gfns.as_ptr(), errs.as_mut_ptr(), n)
        };
        if p.is_null() {
            return Err(Errno::last());
        }
        Ok(p as *mut u8)
    }

    pub fn log_target(&self) -> LogTarget {
        LogTarget { xch: self.xch }
    }
}

impl Drop for XenCtrl {
    fn drop(&mut self) {
        // Never leave libxenctrl pointing at our freed prefix string; a wrapper that set
        // none leaves the handle's progress state alone (a save refused because another
        // one runs on the same handle must not clear that save's prefix).
        if self.prefix.borrow().is_some() {
            self.set_progress_prefix(None);
        }
        let buf = self.scratch.borrow_mut().take();
        self.free_scratch(buf);
    }
}

/// Dirty bitmap in a hypercall buffer.
pub struct HcBitmap {
    xch: *mut sys::xc_interface,
    hbuf: Box<sys::xc_hypercall_buffer_t>,
    words: usize,
    npages: c_int,
}

impl DirtyBitmap for HcBitmap {
    fn words(&self) -> &[u64] {
        // SAFETY: hbuf.hbuf points at npages*4096 zero-initialised bytes owned by this value
        // (allocated in alloc_bitmap, freed in drop), and words*8 <= npages*4096.
        unsafe { std::slice::from_raw_parts(self.hbuf.hbuf as *const u64, self.words) }
    }
    fn words_mut(&mut self) -> &mut [u64] {
        // SAFETY: as in `words`; &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.hbuf.hbuf as *mut u64, self.words) }
    }
}

impl Drop for HcBitmap {
    fn drop(&mut self) {
        // SAFETY: the buffer was allocated by xc__hypercall_buffer_alloc_pages with the same
        // handle and page count, and is freed once.
        unsafe { sys::xc__hypercall_buffer_free_pages(self.xch, &mut *self.hbuf, self.npages) }
    }
}

/// Run a libxenctrl call returning a negative value on failure; map it to errno.
fn check(rc: c_int) -> Result<c_int> {
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(rc)
    }
}

impl DomainControl for XenCtrl {
    type Bitmap = HcBitmap;

    fn domain_info(&self, dom: u32) -> Result<Option<DomInfo>> {
        Ok(dominfo::get(self.xch, dom)?.map(|info| DomInfo {
            domid: info.domid,
            hvm: info.hvm,
            shutdown: info.shutdown,
            shutdown_reason: info.shutdown_reason,
            nr_pages: info.nr_pages,
            max_memkb: info.max_memkb,
        }))
    }

    fn xen_version(&self) -> Result<u32> {
        // SAFETY: XENVER_version takes no argument buffer.
        let v = check(unsafe { sys::xc_version(self.xch, 0, std::ptr::null_mut()) })?;
        Ok(v as u32)
    }

    fn nr_gpfns(&self, dom: u32) -> Result<u64> {
        let mut n: sys::xen_pfn_t = 0;
        // SAFETY: n is a valid out-parameter.
        check(unsafe { sys::xc_domain_nr_gpfns(self.xch, dom, &mut n) })?;
        Ok(n as u64)
    }

    fn shadow_off(&self, dom: u32) -> Result<()> {
        let op = shadow_op::OFF;
        // SAFETY: OFF takes no buffer (mb may be NULL).
        check(unsafe { sys::xc_shadow_control(self.xch, dom, op, std::ptr::null_mut(), 0) })
            .map(|_| ())
    }

    fn enable_logdirty(&self, dom: u32) -> Result<()> {
        let op = shadow_op::ENABLE_LOGDIRTY;
        // SAFETY: ENABLE_LOGDIRTY takes no buffer.
        check(unsafe { sys::xc_shadow_control(self.xch, dom, op, std::ptr::null_mut(), 0) })
            .map(|_| ())
    }

    fn alloc_bitmap(&self, bits: u64) -> Result<HcBitmap> {
        let words = bits.div_ceil(64) as usize;
        let npages = (words * 8).div_ceil(4096).max(1);
        let npages_c = c_int::try_from(npages).map_err(|_| Errno(libc::E2BIG))?;
        let mut hbuf: Box<sys::xc_hypercall_buffer_t> = Box::default();
        // SAFETY: hbuf is a zeroed hypercall-buffer descriptor that lives (boxed) as long as
        // the allocation; the library fills hbuf.hbuf.
        let p = unsafe { sys::xc__hypercall_buffer_alloc_pages(self.xch, &mut *hbuf, npages_c) };
        if p.is_null() {
            return Err(Errno::last());
        }
        // SAFETY: p points at npages*4096 writable bytes just allocated.
        unsafe { std::ptr::write_bytes(p as *mut u8, 0, npages * 4096) };
        Ok(HcBitmap {
            xch: self.xch,
            hbuf,
            words,
            npages: npages_c,
        })
    }

    fn logdirty(
        &self,
        dom: u32,
        op: LogDirtyOp,
        bitmap: &mut HcBitmap,
        pages: u64,
        final_round: bool,
    ) -> Result<ShadowStats> {
        let sop: c_uint = match op {
            LogDirtyOp::Clean => shadow_op::CLEAN,
            LogDirtyOp::Peek => shadow_op::PEEK,
        };
        let mut stats = sys::xc_shadow_op_stats_t::default();
        // SAFETY: bitmap.hbuf describes a live hypercall buffer of at least `pages` bits.
        let rc = unsafe {
            sys::xc_logdirty_control(
                self.xch,
                dom,
                sop,
                &mut *bitmap.hbuf,
                pages as c_ulong,
                final_round as c_uint,
                &mut stats,
            )
        };
        if rc != pages as i64 {
            let e = Errno::last();
            return Err(if rc >= 0 { Errno(libc::EIO) } else { e });
        }
        Ok(ShadowStats {
            fault_count: stats.fault_count,
            dirty_count: stats.dirty_count,
        })
    }

    fn pfn_types(&self, dom: u32, arr: &mut [u64]) -> Result<()> {
        // xc_get_pfn_type_batch's domctl, with the array in the kept hypercall buffer.
        let dom = sys::domid_t::try_from(dom).map_err(|_| Errno(libc::EINVAL))?;
        let bytes = std::mem::size_of_val(arr);
        self.with_scratch(bytes, |buf| {
            // SAFETY: buf holds at least `bytes` bytes (with_scratch) and does not overlap arr.
            unsafe { std::ptr::copy_nonoverlapping(arr.as_ptr() as *const u8, buf, bytes) };
            let mut d = sys::xen_domctl {
                cmd: sys::XEN_DOMCTL_getpageframeinfo3,
                domain: dom,
                ..Default::default()
            };
            d.u.getpageframeinfo3 = sys::xen_domctl_getpageframeinfo3 {
                num: arr.len() as u64,
                array: sys::__guest_handle_xen_pfn_t {
                    p: buf as *mut sys::xen_pfn_t,
                },
            };
            self.domctl(&mut d, PFINFO_EFAULT_RETRIES)?;
            // SAFETY: as above; Xen overwrote the entries in place.
            unsafe { std::ptr::copy_nonoverlapping(buf, arr.as_mut_ptr() as *mut u8, bytes) };
            Ok(())
        })
    }
}

impl GuestMemory for XenCtrl {
    type Mapping = ForeignMapping;

    fn map_foreign(&self, dom: u32, gfns: &[u64], errs: &mut [i32]) -> Result<ForeignMapping> {
        let p = self.map_bulk(dom, gfns, errs, libc::PROT_READ)?;
        // SAFETY: p is a mapping of exactly gfns.len() pages that nobody else owns.
        Ok(unsafe { ForeignMapping::from_raw(p, gfns.len()) })
    }

    fn p2m_signals(&self, dom: u32) -> Result<DomainSignals> {
        signals::read(self.xch, dom)
    }

    fn dom0_auto_translated(&self) -> Result<bool> {
        features::dom0_auto_translated()
    }
}

impl DomainBuild for XenCtrl {
    type WritableMapping = WritableMapping;

    fn map_foreign_rw(&self, dom: u32, gfns: &[u64], errs: &mut [i32]) -> Result<WritableMapping> {
        let p = self.map_bulk(dom, gfns, errs, libc::PROT_READ | libc::PROT_WRITE)?;
        // SAFETY: p is a writable mapping of exactly gfns.len() pages that nobody else owns.
        Ok(unsafe { WritableMapping::from_raw(p, gfns.len()) })
    }

    fn populate(&self, dom: u32, pfns: &[u64]) -> Result<()> {
        let mut list = pfns.to_vec();
        // SAFETY: list has exactly pfns.len() entries, which Xen may overwrite.
        check(unsafe {
            sys::xc_domain_populate_physmap_exact(
                self.xch,
                dom,
                list.len() as c_ulong,
                0,
                0,
                list.as_mut_ptr(),
            )
        })?;
        Ok(())
    }

    fn set_tsc_info(&self, dom: u32, t: &TscInfo) -> Result<()> {
        // SAFETY: plain values.
        check(unsafe {
            sys::xc_domain_set_tsc_info(self.xch, dom, t.mode, t.nsec, t.khz, t.incarnation)
        })?;
        Ok(())
    }

    fn set_hvm_param(&self, dom: u32, index: u32, value: u64) -> Result<()> {
        // SAFETY: plain values.
        check(unsafe { sys::xc_hvm_param_set(self.xch, dom, index, value) })?;
        Ok(())
    }

    fn set_hvm_context(&self, dom: u32, blob: &[u8]) -> Result<()> {
        let len = u32::try_from(blob.len()).map_err(|_| Errno(libc::E2BIG))?;
        let mut copy = blob.to_vec();
        // SAFETY: copy holds len bytes; libxenctrl bounces it into a hypercall buffer.
        check(unsafe { sys::xc_domain_hvm_setcontext(self.xch, dom, copy.as_mut_ptr(), len) })?;
        Ok(())
    }

    fn set_cpu_policy(&self, dom: u32, p: &CpuPolicy) -> std::result::Result<(), (Errno, String)> {
        let mut cpuid = p.cpuid.clone();
        let mut msrs = p.msrs.clone();
        let (mut leaf, mut subleaf, mut msr) = (!0u32, !0u32, !0u32);
        let ptr = |v: &mut Vec<u8>| {
            if v.is_empty() {
                std::ptr::null_mut()
            } else {
                v.as_mut_ptr().cast()
            }
        };
        // SAFETY: each array holds the number of whole entries passed with it (the reader
        // checked the lengths); the error out-parameters are valid.
        let rc = unsafe {
            xc_set_domain_cpu_policy(
                self.xch,
                dom,
                (cpuid.len() / CPUID_LEAF_BYTES) as u32,
                ptr(&mut cpuid),
                (msrs.len() / MSR_ENTRY_BYTES) as u32,
                ptr(&mut msrs),
                &mut leaf,
                &mut subleaf,
                &mut msr,
            )
        };
        if rc != 0 {
            return Err((
                Errno::last(),
                format!(
                    "Failed to set CPUID policy: leaf {leaf:08x}, subleaf {subleaf:08x}, msr {msr:08x}"
                ),
            ));
        }
        Ok(())
    }

    fn clear_page(&self, dom: u32, pfn: u64) -> Result<()> {
        // SAFETY: plain values.
        check(unsafe { sys::xc_clear_domain_pages(self.xch, dom, pfn as c_ulong, 1) })?;
        Ok(())
    }

    fn gnttab_seed(
        &self,
        dom: u32,
        console_gfn: u64,
        store_gfn: u64,
        console_domid: u32,
        store_domid: u32,
    ) -> Result<()> {
        // SAFETY: plain values.
        check(unsafe {
            xc_dom_gnttab_seed(
                self.xch,
                dom,
                true,
                console_gfn,
                store_gfn,
                console_domid,
                store_domid,
            )
        })?;
        Ok(())
    }
}

impl HvmState for XenCtrl {
    fn hvm_context_size(&self, dom: u32) -> Result<usize> {
        // SAFETY: a NULL buffer with size 0 asks for the size only.
        let n = check(unsafe {
            sys::xc_domain_hvm_getcontext(self.xch, dom, std::ptr::null_mut(), 0)
        })?;
        Ok(n as usize)
    }

    fn hvm_context(&self, dom: u32, buf: &mut [u8]) -> Result<usize> {
        // xc_domain_hvm_getcontext's domctl, into the kept hypercall buffer.
        let len = u32::try_from(buf.len()).map_err(|_| Errno(libc::E2BIG))?;
        let dom = sys::domid_t::try_from(dom).map_err(|_| Errno(libc::EINVAL))?;
        self.with_scratch(buf.len(), |hb| {
            let mut d = sys::xen_domctl {
                cmd: sys::XEN_DOMCTL_gethvmcontext,
                domain: dom,
                ..Default::default()
            };
            d.u.hvmcontext = sys::xen_domctl_hvmcontext {
                size: len,
                buffer: sys::__guest_handle_uint8 { p: hb },
            };
            // No retry, as xc_domain_hvm_getcontext.
            self.domctl(&mut d, 0)?;
            // SAFETY: reading a union member that this domctl's answer wrote.
            let used = (unsafe { d.u.hvmcontext.size } as usize).min(buf.len());
            // SAFETY: hb holds at least buf.len() bytes (with_scratch), of which Xen wrote
            // `used`; it does not overlap buf.
            unsafe { std::ptr::copy_nonoverlapping(hb, buf.as_mut_ptr(), used) };
            Ok(used)
        })
    }

    fn hvm_param(&self, dom: u32, index: u32) -> Result<u64> {
        let mut v = 0u64;
        // SAFETY: v is a valid out-parameter.
        let rc = unsafe { sys::xc_hvm_param_get(self.xch, dom, index, &mut v) };
        if rc != 0 {
            return Err(Errno::last());
        }
        Ok(v)
    }

    fn tsc_info(&self, dom: u32) -> Result<TscInfo> {
        let mut t = TscInfo::default();
        // SAFETY: all four are valid out-parameters.
        check(unsafe {
            sys::xc_domain_get_tsc_info(
                self.xch,
                dom,
                &mut t.mode,
                &mut t.nsec,
                &mut t.khz,
                &mut t.incarnation,
            )
        })?;
        Ok(t)
    }

    fn cpu_policy(&self, dom: u32) -> std::result::Result<CpuPolicy, (Errno, String)> {
        let (mut nr_leaves, mut nr_msrs) = (0u32, 0u32);
        // SAFETY: out-parameters are valid.
        if unsafe { xc_cpu_policy_get_size(self.xch, &mut nr_leaves, &mut nr_msrs) } < 0 {
            return Err((Errno::last(), "Unable to get CPU Policy size".into()));
        }
        let mut cpuid = vec![0u8; nr_leaves as usize * CPUID_LEAF_BYTES];
        let mut msrs = vec![0u8; nr_msrs as usize * MSR_ENTRY_BYTES];
        // SAFETY: allocation of an opaque object, destroyed below on every path.
        let policy = unsafe { xc_cpu_policy_init() };
        if policy.is_null() {
            return Err((
                Errno(libc::ENOMEM),
                "Cannot allocate memory for CPU Policy".into(),
            ));
        }
        // SAFETY: policy is live; buffers are sized by the counts passed with them.
        let result = unsafe {
            if xc_cpu_policy_get_domain(self.xch, dom, policy) != 0 {
                Err((Errno::last(), format!("Unable to get d{dom} CPU Policy")))
            } else if xc_cpu_policy_serialise(
                self.xch,
                policy,
                cpuid.as_mut_ptr().cast(),
                &mut nr_leaves,
                msrs.as_mut_ptr().cast(),
                &mut nr_msrs,
            ) != 0
            {
                Err((
                    Errno::last(),
                    format!("Unable to serialize d{dom} CPU Policy"),
                ))
            } else {
                Ok(())
            }
        };
        // SAFETY: policy came from xc_cpu_policy_init and is destroyed once.
        unsafe { xc_cpu_policy_destroy(policy) };
        result?;
        cpuid.truncate(nr_leaves as usize * CPUID_LEAF_BYTES);
        msrs.truncate(nr_msrs as usize * MSR_ENTRY_BYTES);
        Ok(CpuPolicy { cpuid, msrs })
    }
}

impl Report for XenCtrl {
    fn log(&self, level: Level, msg: &str) {
        self.log_target().emit(level, msg);
    }

    fn report_error(&self, msg: &str) {
        let c = cstring(msg);
        // SAFETY: xch is live; "%s" consumes exactly the one string argument.
        unsafe { xc_report_error(self.xch, XC_INTERNAL_ERROR, c"%s".as_ptr(), c.as_ptr()) };
    }

    fn progress_single(&self, doing: &str) {
        let c = cstring(doing);
        // SAFETY: xch is live; the string outlives the call.
        unsafe { xc_report_progress_single(self.xch, c.as_ptr()) };
    }

    fn set_progress_prefix(&self, prefix: Option<&str>) {
        let new = prefix.map(cstring);
        let ptr = new.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: libxenctrl keeps the pointer; we keep the CString alive in self.prefix
        // until it is replaced (after the library already points at the new one).
        unsafe { xc_set_progress_prefix(self.xch, ptr) };
        *self.prefix.borrow_mut() = new;
    }

    fn progress_step(&self, done: u64, total: u64) {
        if self.prefix.borrow().is_none() {
            return; // libxenctrl asserts a prefix is set.
        }
        // SAFETY: xch is live and a prefix is set.
        unsafe { xc_report_progress_step(self.xch, done as c_ulong, total as c_ulong) };
    }
}
