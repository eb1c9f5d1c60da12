// SPDX-License-Identifier: GPL-3.0-only
//! The C surface: exported functions, the panic boundary and pointer checks. No logic.

use crate::cache::CachedPages;
use crate::config::Config;
use crate::engine::{self, Callback, Callbacks, Outcome, PrecopyStats, SaveArgs};
use crate::error::Errno;
use crate::hooks;
use crate::logging;
use crate::xen::fdio::{FdReader, FdSink};
use crate::xen::{Hypervisor, Level, XenCtrl};
use std::ffi::c_void;
use std::os::raw::{c_int, c_uint};
use std::panic::{catch_unwind, AssertUnwindSafe};
use xenctrl_sys::xc_interface;

pub(crate) mod cache;

/// Xen's `xc_stream_type_t` (0 plain, 1 Remus, 2 COLO).
pub type XcStreamType = c_uint;

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

/// The caller's callbacks behind the engine's safe trait.
struct CCallbacks<'a> {
    cb: &'a SaveCallbacks,
}

impl CCallbacks<'_> {
    fn call(&self, f: Option<unsafe extern "C" fn(*mut c_void) -> c_int>) -> i32 {
        // errno 0 going in, so that what a failing callback leaves is its own (not stale).
        set_errno(0);
        match f {
            // SAFETY: a callback the caller supplied, called with the caller's data pointer,
            // as xc_domain_save's contract promises.
            Some(f) => unsafe { f(self.cb.data) },
            None => -1, // presence is checked before the save starts
        }
    }
}

impl Callbacks for CCallbacks<'_> {
    fn has(&self, which: Callback) -> bool {
        match which {
            Callback::Suspend => self.cb.suspend.is_some(),
            Callback::Postcopy => self.cb.postcopy.is_some(),
            Callback::Checkpoint => self.cb.checkpoint.is_some(),
            Callback::WaitCheckpoint => self.cb.wait_checkpoint.is_some(),
            Callback::SwitchQemuLogdirty => self.cb.switch_qemu_logdirty.is_some(),
        }
    }
    fn suspend(&mut self) -> i32 {
        self.call(self.cb.suspend)
    }
    fn precopy_policy(&mut self, stats: PrecopyStats) -> Option<i32> {
        // SAFETY: as in `call`.
        self.cb
            .precopy_policy
            .map(|f| unsafe { f(stats, self.cb.data) })
    }
    fn postcopy(&mut self) -> i32 {
        self.call(self.cb.postcopy)
    }
    fn checkpoint(&mut self) -> i32 {
        self.call(self.cb.checkpoint)
    }
    fn wait_checkpoint(&mut self) -> i32 {
        self.call(self.cb.wait_checkpoint)
    }
    fn switch_qemu_logdirty(&mut self, dom: u32, enable: bool) -> i32 {
        set_errno(0);
        match self.cb.switch_qemu_logdirty {
            // SAFETY: as in `call`.
            Some(f) => unsafe { f(dom, enable as c_uint, self.cb.data) },
            None => -1,
        }
    }
}

fn set_errno(e: i32) {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

type SaveFn = unsafe extern "C" fn(
    *mut xc_interface,
    c_int,
    u32,
    u32,
    *mut SaveCallbacks,
    XcStreamType,
    c_int,
) -> c_int;

/// The stock `xc_domain_save` of the next object in symbol search order, if it is not us.
fn stock_save() -> Option<SaveFn> {
    // SAFETY: dlvsym with RTLD_NEXT and NUL-terminated names only looks a symbol up.
    let p = unsafe {
        libc::dlvsym(
            libc::RTLD_NEXT,
            c"xc_domain_save".as_ptr(),
            crate::xen::version::NODE.as_ptr(),
        )
    };
    let ours = [
        xc_domain_save as SaveFn as usize,
        xcsave_domain_save as SaveFn as usize,
    ];
    if p.is_null() || ours.contains(&(p as usize)) {
        return None;
    }
    // SAFETY: the symbol is libxenguest's xc_domain_save, whose type is SaveFn.
    Some(unsafe { std::mem::transmute::<*mut c_void, SaveFn>(p) })
}

/// Hand the call to the stock saver, or fail with EOPNOTSUPP if it cannot be reached.
#[allow(clippy::too_many_arguments)]
fn delegate(
    xen: &XenCtrl,
    reason: &str,
    xch: *mut xc_interface,
    io_fd: c_int,
    dom: u32,
    flags: u32,
    callbacks: *mut SaveCallbacks,
    stream_type: XcStreamType,
    recv_fd: c_int,
) -> c_int {
    match stock_save() {
        Some(f) => {
            xen.log(
                Level::Info,
                &format!("xcsave: {reason}: handing over to the stock xc_domain_save"),
            );
            // SAFETY: the caller's own arguments, passed on unchanged to the function they
            // were meant for.
            unsafe { f(xch, io_fd, dom, flags, callbacks, stream_type, recv_fd) }
        }
        None => {
            xen.report_error(&format!(
                "xcsave: {reason}, and the stock xc_domain_save is not reachable \
                 (preload xcsave ahead of libxenguest to reach it)"
            ));
            set_errno(libc::EOPNOTSUPP);
            -1
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn save_entry(
    xch: *mut xc_interface,
    io_fd: c_int,
    dom: u32,
    flags: u32,
    callbacks: *mut SaveCallbacks,
    stream_type: XcStreamType,
    recv_fd: c_int,
) -> c_int {
    if xch.is_null() {
        set_errno(libc::EINVAL);
        return -1;
    }
    let config = Config::from_env();
    // SAFETY: xch is the caller's live handle for the duration of this call.
    let xen = unsafe { XenCtrl::new(xch) };
    let _scope = logging::scope(xen.log_target(), config.log_level);
    if config.disable {
        return delegate(
            &xen,
            "XCSAVE_DISABLE is set",
            xch,
            io_fd,
            dom,
            flags,
            callbacks,
            stream_type,
            recv_fd,
        );
    }
    // SAFETY: a non-NULL callbacks pointer is the caller's live struct for this call.
    let Some(cb_ref) = (unsafe { callbacks.as_ref() }) else {
        xen.report_error("xcsave: xc_domain_save called without callbacks");
        set_errno(libc::EINVAL);
        return -1;
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _hooks = hooks::arm_from_env();
        let mut sink = FdSink::new(io_fd);
        let mut recv = FdReader::new(recv_fd);
        let mut pages = CachedPages::from_settings();
        let mut cb = CCallbacks { cb: cb_ref };
        let io = engine::Io {
            sink: &mut sink,
            recv: &mut recv,
            pages: &mut pages,
            cb: &mut cb,
        };
        let args = SaveArgs {
            dom,
            flags,
            stream_type,
            io_fd,
        };
        engine::domain_save(&xen, io, &args)
    }));
    match result {
        Ok(Outcome::Done { rc, errno }) => {
            if rc != 0 {
                set_errno(errno.0);
            }
            rc
        }
        Ok(Outcome::Unsupported(reason)) => delegate(
            &xen,
            &reason,
            xch,
            io_fd,
            dom,
            flags,
            callbacks,
            stream_type,
            recv_fd,
        ),
        Err(panic) => {
            let what = hooks::panic_message(&*panic);
            xen.report_error(&format!("xcsave: internal error, save aborted: {what}"));
            // Best effort: mappings were released by unwinding; leave log-dirty off.
            let _ = xen.shadow_off(dom);
            set_errno(Errno(libc::EIO).0);
            -1
        }
    }
}

/// Drop-in replacement for libxenguest's `xc_domain_save` (exported as
/// `xc_domain_save@@VERS_4.17.0` on Xen 4.17, `@@libxenguest_4.20.0` on 4.20). Same arguments,
/// return value and errno as stock.
///
/// # Safety
/// The arguments must satisfy stock `xc_domain_save`'s contract: `xch` a live handle,
/// `callbacks` a live `struct save_callbacks` with the callbacks the stream type needs.
#[no_mangle]
pub unsafe extern "C" fn xc_domain_save(
    xch: *mut xc_interface,
    io_fd: c_int,
    dom: u32,
    flags: u32,
    callbacks: *mut SaveCallbacks,
    stream_type: XcStreamType,
    recv_fd: c_int,
) -> c_int {
    save_entry(xch, io_fd, dom, flags, callbacks, stream_type, recv_fd)
}

/// Save a domain with xcsave; the same contract as `xc_domain_save` in `<xenguest.h>`.
/// Returns 0 on success, -1 with errno set on failure (a Remus/COLO callback's own return
/// value when it ends checkpointing, as stock does). x86 PV guests are handed to the stock
/// saver when it can be reached, else they fail with EOPNOTSUPP.
///
/// # Safety
/// As `xc_domain_save`.
#[no_mangle]
pub unsafe extern "C" fn xcsave_domain_save(
    xch: *mut xc_interface,
    io_fd: c_int,
    dom: u32,
    flags: u32,
    callbacks: *mut SaveCallbacks,
    stream_type: XcStreamType,
    recv_fd: c_int,
) -> c_int {
    save_entry(xch, io_fd, dom, flags, callbacks, stream_type, recv_fd)
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
        assert_eq!(offset_of!(PrecopyStats, total_written), 8);
        assert_eq!(offset_of!(PrecopyStats, dirty_count), 16);
    }
}
