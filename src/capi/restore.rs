// SPDX-License-Identifier: GPL-3.0-only
//! The receiving side's exports: `xc_domain_restore` (libxenguest's symbol and version node)
//! and `xcsave_domain_restore`, inside the one panic boundary.
//!
//! Whether xcsave or the stock restore handles a call is decided before the first byte of
//! `io_fd` is read (bytes taken from a pipe or socket cannot be given back), from what is
//! known beforehand: `XCSAVE_DISABLE`, `XCSAVE_RESTORE=off`, the target domain's type (stock
//! keys on it too), and whether this build applies streams for it (docs/restore.md, B.1).
//! The hand-over is logged at info level through the caller's logger.

use super::{boundary, next_symbol, set_errno, XcStreamType};
use crate::abi::c::RestoreCallbacks;
use crate::abi::xen::{Level, StreamType};
use crate::cache::CachedWrites;
use crate::hv::{DomainControl, Report};
use crate::logging;
use crate::pages::PageTarget;
use crate::receive::{self, RestoreArgs, Tuning};
use crate::settings::Settings;
use crate::stream::Sink;
use crate::xen::fdio::{FdReader, FdSink};
use crate::xen::XenCtrl;
use std::ffi::c_void;
use std::os::raw::{c_int, c_uint, c_ulong};
use xenctrl_sys::xc_interface;

type RestoreFn = unsafe extern "C" fn(
    *mut xc_interface,
    c_int,
    u32,
    c_uint,
    *mut c_ulong,
    u32,
    c_uint,
    *mut c_ulong,
    u32,
    XcStreamType,
    *mut RestoreCallbacks,
    c_int,
) -> c_int;

/// The stock `xc_domain_restore` of the next object in symbol search order, if it is not us.
fn stock_restore() -> Option<RestoreFn> {
    let ours = [
        xc_domain_restore as RestoreFn as usize,
        xcsave_domain_restore as RestoreFn as usize,
    ];
    let p = next_symbol(c"xc_domain_restore", &ours)?;
    // SAFETY: the symbol is libxenguest's xc_domain_restore, whose type is RestoreFn.
    Some(unsafe { std::mem::transmute::<*mut c_void, RestoreFn>(p) })
}

/// The arguments of one `xc_domain_restore` call, as the caller passed them.
#[derive(Clone, Copy)]
struct RestoreCall {
    xch: *mut xc_interface,
    io_fd: c_int,
    dom: u32,
    store_evtchn: c_uint,
    store_mfn: *mut c_ulong,
    store_domid: u32,
    console_evtchn: c_uint,
    console_mfn: *mut c_ulong,
    console_domid: u32,
    stream_type: XcStreamType,
    callbacks: *mut RestoreCallbacks,
    send_back_fd: c_int,
}

/// The caller's restore callbacks behind the engine's safe trait.
struct CRestoreCallbacks<'a> {
    cb: &'a RestoreCallbacks,
}

impl CRestoreCallbacks<'_> {
    fn call(&self, f: Option<unsafe extern "C" fn(*mut c_void) -> c_int>) -> i32 {
        set_errno(0);
        match f {
            // SAFETY: a callback the caller supplied, called with the caller's data pointer,
            // as xc_domain_restore's contract promises.
            Some(f) => unsafe { f(self.cb.data) },
            None => -1, // presence is checked before the restore starts
        }
    }
}

impl receive::RestoreCallbacks for CRestoreCallbacks<'_> {
    fn static_data_done(&mut self, missing: u32) -> Option<i32> {
        set_errno(0);
        // SAFETY: as in `call`.
        self.cb
            .static_data_done
            .map(|f| unsafe { f(missing, self.cb.data) })
    }
    fn checkpoint(&mut self) -> i32 {
        self.call(self.cb.checkpoint)
    }
    fn suspend(&mut self) -> i32 {
        self.call(self.cb.suspend)
    }
    fn postcopy(&mut self) -> i32 {
        self.call(self.cb.postcopy)
    }
    fn wait_checkpoint(&mut self) -> i32 {
        self.call(self.cb.wait_checkpoint)
    }
    fn restore_results(&mut self, store_gfn: u64, console_gfn: u64) {
        if let Some(f) = self.cb.restore_results {
            // SAFETY: as in `call`.
            unsafe { f(store_gfn, console_gfn, self.cb.data) }
        }
    }
}

/// Who handles a restore, decided before the stream is touched.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// xcsave's engine (an x86 HVM/PVH domain).
    Xcsave,
    /// The stock restore, for this logged reason.
    Stock(String),
    /// Refused: -1 with this errno and logged reason (stock would assert or crash).
    Refuse(i32, String),
}

/// The callbacks a stream type needs (stock's asserts in `xc_domain_restore`).
fn check_callbacks(cb: Option<&RestoreCallbacks>, stream_type: XcStreamType) -> Result<(), String> {
    let Some(st) = StreamType::from_raw(stream_type) else {
        return Err(format!("Bad stream_type {stream_type}"));
    };
    let Some(cb) = cb else {
        return Err("xc_domain_restore called without callbacks".into());
    };
    let mut missing = Vec::new();
    if st != StreamType::Plain && cb.checkpoint.is_none() {
        missing.push("checkpoint");
    }
    if st == StreamType::Colo {
        for (name, present) in [
            ("suspend", cb.suspend.is_some()),
            ("postcopy", cb.postcopy.is_some()),
            ("wait_checkpoint", cb.wait_checkpoint.is_some()),
            ("restore_results", cb.restore_results.is_some()),
        ] {
            if !present {
                missing.push(name);
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{st:?} restore without the {} callback(s)",
            missing.join(", ")
        ))
    }
}

impl RestoreCall {
    /// Decide who restores: the settings, the callbacks, then the domain.
    fn route(&self, xen: &XenCtrl, settings: &Settings) -> Route {
        if settings.disable {
            return Route::Stock("XCSAVE_DISABLE is set".into());
        }
        if !settings.restore {
            return Route::Stock("XCSAVE_RESTORE is off".into());
        }
        // SAFETY: a non-NULL callbacks pointer is the caller's live struct for this call.
        let cb = unsafe { self.callbacks.as_ref() };
        if let Err(why) = check_callbacks(cb, self.stream_type) {
            return Route::Refuse(libc::EINVAL, format!("xcsave: {why}"));
        }
        match xen.domain_info(self.dom) {
            Ok(Some(info)) if info.domid == self.dom && !info.hvm => {
                Route::Stock(format!("dom{} is an x86 PV guest", self.dom))
            }
            Ok(Some(info)) if info.domid == self.dom => Route::Xcsave,
            // Stock reports a missing domain in its own words.
            _ => Route::Stock(format!("dom{} was not found", self.dom)),
        }
    }

    /// Hand the call to the stock restore, or fail with EOPNOTSUPP if it cannot be reached.
    fn delegate(&self, xen: &XenCtrl, reason: &str) -> c_int {
        let Some(f) = stock_restore() else {
            xen.report_error(&format!(
                "xcsave: {reason}, and the stock xc_domain_restore is not reachable \
                 (preload xcsave ahead of libxenguest to reach it)"
            ));
            set_errno(libc::EOPNOTSUPP);
            return -1;
        };
        xen.log(
            Level::Info,
            &format!("xcsave: {reason}: handing over to the stock xc_domain_restore"),
        );
        let c = self;
        // SAFETY: the caller's own arguments, passed on unchanged to the function they were
        // meant for.
        unsafe {
            f(
                c.xch,
                c.io_fd,
                c.dom,
                c.store_evtchn,
                c.store_mfn,
                c.store_domid,
                c.console_evtchn,
                c.console_mfn,
                c.console_domid,
                c.stream_type,
                c.callbacks,
                c.send_back_fd,
            )
        }
    }

    /// The restore, inside the panic boundary.
    fn run(&self) -> c_int {
        // SAFETY: xch is the caller's live handle (checked non-NULL) for this call.
        let xen = unsafe { XenCtrl::new(self.xch) };
        let (settings, warnings) = Settings::for_save();
        for w in warnings {
            xen.log(Level::Warn, &format!("xcsave: {w}"));
        }
        let _scope = logging::scope(xen.log_target(), settings.log_level);
        match self.route(&xen, &settings) {
            Route::Xcsave => self.apply(&xen, &settings),
            Route::Stock(reason) => self.delegate(&xen, &reason),
            Route::Refuse(errno, why) => {
                xen.report_error(&why);
                set_errno(errno);
                -1
            }
        }
    }

    /// xcsave's own restore of an x86 HVM/PVH domain.
    fn apply(&self, xen: &XenCtrl, settings: &Settings) -> c_int {
        // SAFETY: route() checked the pointer and the callbacks the stream type needs.
        let Some(cb_ref) = (unsafe { self.callbacks.as_ref() }) else {
            set_errno(libc::EINVAL);
            return -1;
        };
        let stream_type = StreamType::from_raw(self.stream_type).unwrap_or(StreamType::Plain);
        let args = RestoreArgs {
            dom: self.dom,
            stream_type,
            store_evtchn: self.store_evtchn,
            store_domid: self.store_domid,
            console_evtchn: self.console_evtchn,
            console_domid: self.console_domid,
        };
        // Info, as the hand-over line: `xl remus` runs the backup's receiver at xl's default
        // verbosity, where a debug line is filtered out (check-xen's receiving proof).
        xen.log(
            Level::Info,
            &format!(
                "xcsave: restoring dom{} with xcsave ({stream_type:?})",
                self.dom
            ),
        );
        let mut cb = CRestoreCallbacks { cb: cb_ref };
        let mut back = FdSink::new(self.send_back_fd);
        let back: Option<&mut dyn Sink> =
            (stream_type == StreamType::Colo).then_some(&mut back as &mut dyn Sink);
        // The secondary's guest is written through the save side's mapping cache, writable
        // (docs/restore.md, B.5); dropped, so unmapped, on every path.
        let mut pages = CachedWrites::new(settings.cache);
        let tuning = Tuning {
            buffer_bytes: settings.restore_buffer,
        };
        let io = FdReader::new(self.io_fd);
        let res = receive::domain_restore_with(xen, io, back, &mut cb, args, &mut pages, tuning);
        PageTarget::<XenCtrl>::teardown(&mut pages);
        match res {
            Ok(out) => {
                xen.log(
                    Level::Info,
                    &format!(
                        "XenStore: mfn {:#x}, dom {}, evt {}",
                        out.store_gfn, self.store_domid, self.store_evtchn
                    ),
                );
                xen.log(
                    Level::Info,
                    &format!(
                        "Console: mfn {:#x}, dom {}, evt {}",
                        out.console_gfn, self.console_domid, self.console_evtchn
                    ),
                );
                // SAFETY: non-NULL output pointers are the caller's, writable (contract).
                unsafe {
                    if let Some(p) = self.store_mfn.as_mut() {
                        *p = out.store_gfn as c_ulong;
                    }
                    if let Some(p) = self.console_mfn.as_mut() {
                        *p = out.console_gfn as c_ulong;
                    }
                }
                0
            }
            Err(e) => {
                xen.report_error("Restore failed");
                set_errno(e.0);
                -1
            }
        }
    }

    fn after_panic(&self, what: &str) {
        // SAFETY: xch is the caller's live handle for this call (checked non-NULL); the
        // wrapper `run` made was dropped by unwinding.
        let xen = unsafe { XenCtrl::new(self.xch) };
        xen.report_error(&format!("xcsave: internal error, restore aborted: {what}"));
    }
}

fn restore_entry(call: RestoreCall) -> c_int {
    if call.xch.is_null() {
        set_errno(libc::EINVAL);
        return -1;
    }
    boundary::ffi_boundary(-1, || call.run(), |what| call.after_panic(what))
}

/// Drop-in replacement for libxenguest's `xc_domain_restore` (exported as
/// `xc_domain_restore@@VERS_4.17.0`). Same arguments, return value and errno as stock.
///
/// # Safety
/// The arguments must satisfy stock `xc_domain_restore`'s contract: `xch` a live handle,
/// `store_mfn`/`console_mfn` writable, `callbacks` a live `struct restore_callbacks` with the
/// callbacks the stream type needs.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn xc_domain_restore(
    xch: *mut xc_interface,
    io_fd: c_int,
    dom: u32,
    store_evtchn: c_uint,
    store_mfn: *mut c_ulong,
    store_domid: u32,
    console_evtchn: c_uint,
    console_mfn: *mut c_ulong,
    console_domid: u32,
    stream_type: XcStreamType,
    callbacks: *mut RestoreCallbacks,
    send_back_fd: c_int,
) -> c_int {
    restore_entry(RestoreCall {
        xch,
        io_fd,
        dom,
        store_evtchn,
        store_mfn,
        store_domid,
        console_evtchn,
        console_mfn,
        console_domid,
        stream_type,
        callbacks,
        send_back_fd,
    })
}

/// Restore a domain through xcsave; the same contract as `xc_domain_restore` in
/// `<xenguest.h>`. x86 PV domains, and whatever this build does not apply itself, are handed
/// to the stock restore before the stream is read (logged), or fail with EOPNOTSUPP when it
/// cannot be reached. `XCSAVE_DISABLE=1` or `XCSAVE_RESTORE=off` hand every call over.
///
/// # Safety
/// As `xc_domain_restore`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn xcsave_domain_restore(
    xch: *mut xc_interface,
    io_fd: c_int,
    dom: u32,
    store_evtchn: c_uint,
    store_mfn: *mut c_ulong,
    store_domid: u32,
    console_evtchn: c_uint,
    console_mfn: *mut c_ulong,
    console_domid: u32,
    stream_type: XcStreamType,
    callbacks: *mut RestoreCallbacks,
    send_back_fd: c_int,
) -> c_int {
    restore_entry(RestoreCall {
        xch,
        io_fd,
        dom,
        store_evtchn,
        store_mfn,
        store_domid,
        console_evtchn,
        console_mfn,
        console_domid,
        stream_type,
        callbacks,
        send_back_fd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn one(_: *mut c_void) -> c_int {
        1
    }

    fn callbacks() -> RestoreCallbacks {
        RestoreCallbacks {
            static_data_done: None,
            suspend: None,
            postcopy: None,
            checkpoint: None,
            wait_checkpoint: None,
            restore_results: None,
            data: std::ptr::null_mut(),
        }
    }

    #[test]
    fn stock_asserts_become_refusals() {
        let mut cb = callbacks();
        assert!(check_callbacks(Some(&cb), 0).is_ok());
        assert!(check_callbacks(None, 0).is_err());
        assert!(check_callbacks(Some(&cb), 3)
            .unwrap_err()
            .contains("Bad stream_type"));
        assert!(check_callbacks(Some(&cb), 1)
            .unwrap_err()
            .contains("checkpoint"));
        cb.checkpoint = Some(one);
        assert!(check_callbacks(Some(&cb), 1).is_ok());
        let e = check_callbacks(Some(&cb), 2).unwrap_err();
        assert!(
            e.contains("suspend, postcopy, wait_checkpoint, restore_results"),
            "{e}"
        );
    }
}
