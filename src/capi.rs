// SPDX-License-Identifier: GPL-3.0-only
//! The C surface: exported functions, the panic boundary and pointer checks. No logic.
//! Every export runs its whole body (settings, delegation, teardown included) inside
//! `boundary::ffi_boundary`.

pub use crate::abi::c::{PrecopyStats, RestoreCallbacks, SaveCallbacks, XcStreamType};
use crate::abi::xen::{Level, SYMBOL_VERSION};
use crate::cache::CachedPages;
use crate::engine::{self, Callback, Callbacks, Outcome, SaveArgs};
use crate::faults;
use crate::hv::{DomainControl, Report};
use crate::logging;
use crate::settings::Settings;
use crate::xen::fdio::{FdReader, FdSink};
use crate::xen::XenCtrl;
use inflight::Claim;
use std::cell::RefCell;
use std::ffi::c_void;
use std::os::raw::{c_int, c_uint};
use xenctrl_sys::xc_interface;

mod boundary;
pub(crate) mod cache;
mod inflight;
pub mod restore;

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

/// `name` at libxenguest's version node in the next object in symbol search order (the stock
/// library when xcsave is preloaded or linked ahead of it), unless it is one of `ours`.
fn next_symbol(name: &std::ffi::CStr, ours: &[usize]) -> Option<*mut c_void> {
    // SAFETY: dlvsym with RTLD_NEXT and NUL-terminated names only looks a symbol up.
    let p = unsafe { libc::dlvsym(libc::RTLD_NEXT, name.as_ptr(), SYMBOL_VERSION.as_ptr()) };
    (!p.is_null() && !ours.contains(&(p as usize))).then_some(p)
}

/// The stock `xc_domain_save` of the next object in symbol search order, if it is not us.
fn stock_save() -> Option<SaveFn> {
    let ours = [
        xc_domain_save as SaveFn as usize,
        xcsave_domain_save as SaveFn as usize,
    ];
    let p = next_symbol(c"xc_domain_save", &ours)?;
    // SAFETY: the symbol is libxenguest's xc_domain_save, whose type is SaveFn.
    Some(unsafe { std::mem::transmute::<*mut c_void, SaveFn>(p) })
}

/// The arguments of one `xc_domain_save` call, as the caller passed them.
#[derive(Clone, Copy)]
struct SaveCall {
    xch: *mut xc_interface,
    io_fd: c_int,
    dom: u32,
    flags: u32,
    callbacks: *mut SaveCallbacks,
    stream_type: XcStreamType,
    recv_fd: c_int,
}

impl SaveCall {
    /// Hand the call to the stock saver, or fail with EOPNOTSUPP if it cannot be reached.
    fn delegate(&self, xen: &XenCtrl, reason: &str) -> c_int {
        match stock_save() {
            Some(f) => {
                xen.log(
                    Level::Info,
                    &format!("xcsave: {reason}: handing over to the stock xc_domain_save"),
                );
                let c = self;
                // SAFETY: the caller's own arguments, passed on unchanged to the function they
                // were meant for.
                unsafe {
                    f(
                        c.xch,
                        c.io_fd,
                        c.dom,
                        c.flags,
                        c.callbacks,
                        c.stream_type,
                        c.recv_fd,
                    )
                }
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

    /// The save, inside the panic boundary: argument checks, the claim on the domain and the
    /// handle (kept in `held` until the boundary is left), settings, delegation, the engine
    /// and teardown.
    fn run(&self, held: &RefCell<Option<Claim<'static>>>) -> c_int {
        // SAFETY: xch is the caller's live handle (checked non-NULL) for this call.
        let xen = unsafe { XenCtrl::new(self.xch) };
        // Before anything is handed on: the stock saver dereferences NULL callbacks.
        // SAFETY: a non-NULL callbacks pointer is the caller's live struct for this call.
        let Some(cb_ref) = (unsafe { self.callbacks.as_ref() }) else {
            xen.report_error("xcsave: xc_domain_save called without callbacks");
            set_errno(libc::EINVAL);
            return -1;
        };
        match inflight::SAVES.claim(self.dom, self.xch as usize) {
            Ok(c) => *held.borrow_mut() = Some(c),
            Err(busy) => {
                xen.report_error(&busy.message());
                set_errno(libc::EBUSY);
                return -1;
            }
        }
        let (settings, warnings) = Settings::for_save();
        for w in warnings {
            xen.log(Level::Warn, &format!("xcsave: {w}"));
        }
        let _scope = logging::scope(xen.log_target(), settings.log_level);
        if settings.disable {
            return self.delegate(&xen, "XCSAVE_DISABLE is set");
        }
        let outcome = {
            let _faults = faults::arm_from_env();
            let mut sink = FdSink::new(self.io_fd);
            let mut recv = FdReader::with_timeout(self.recv_fd, settings.backchannel_timeout);
            let mut pages = CachedPages::new(settings.cache);
            let mut cb = CCallbacks { cb: cb_ref };
            let io = engine::Io {
                sink: &mut sink,
                recv: &mut recv,
                pages: &mut pages,
                cb: &mut cb,
            };
            let args = SaveArgs {
                dom: self.dom,
                flags: self.flags,
                stream_type: self.stream_type,
                io_fd: self.io_fd,
            };
            engine::domain_save(&xen, io, &args)
            // The page source is dropped here, on a panic too: every mapping released.
        };
        match outcome {
            Outcome::Done { rc, errno } => {
                if rc != 0 {
                    set_errno(errno.0);
                }
                rc
            }
            Outcome::Unsupported(reason) => self.delegate(&xen, &reason),
        }
    }

    /// After a panic escaped [`SaveCall::run`] (everything it held is dropped, so every
    /// mapping is released): report it through the caller's logger and, if this call holds
    /// the domain's claim (so no other save of it runs), leave log-dirty off.
    fn after_panic(&self, what: &str, claimed: bool) {
        // SAFETY: xch is the caller's live handle for this call (checked non-NULL); this is
        // a fresh wrapper, the one `run` made was dropped by unwinding.
        let xen = unsafe { XenCtrl::new(self.xch) };
        xen.report_error(&format!("xcsave: internal error, save aborted: {what}"));
        if claimed {
            let _ = xen.shadow_off(self.dom);
        }
    }
}

fn save_entry(call: SaveCall) -> c_int {
    if call.xch.is_null() {
        set_errno(libc::EINVAL);
        return -1;
    }
    // The claim outlives the boundary's panic handling, which may still touch the domain;
    // it is released when `held` goes, on every path.
    let held = RefCell::new(None);
    boundary::ffi_boundary(
        -1,
        || call.run(&held),
        |what| call.after_panic(what, held.borrow().is_some()),
    )
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
    save_entry(SaveCall {
        xch,
        io_fd,
        dom,
        flags,
        callbacks,
        stream_type,
        recv_fd,
    })
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
    save_entry(SaveCall {
        xch,
        io_fd,
        dom,
        flags,
        callbacks,
        stream_type,
        recv_fd,
    })
}
