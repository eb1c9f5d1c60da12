// SPDX-License-Identifier: GPL-3.0-only
//! The one panic boundary of every export, in the manner of rustls-ffi's
//! `ffi_panic_boundary!`: a panic never unwinds into C. The body runs under `catch_unwind`;
//! on a panic everything the body owned has been dropped by unwinding (every mapping is
//! released: a mapping's owner unmaps it on drop), `on_panic` logs a line (and may undo
//! state outside the process, such as log-dirty mode), errno is set to EIO and the export
//! returns its documented failure value.

use crate::error::panic_message;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Run `body`; on a panic, call `on_panic` with its message, set errno to EIO and return
/// `failure`.
pub(crate) fn ffi_boundary<T>(
    failure: T,
    body: impl FnOnce() -> T,
    on_panic: impl FnOnce(&str),
) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(payload) => {
            let what = panic_message(&*payload);
            // A panic in the logger itself must not escape either.
            let _ = catch_unwind(AssertUnwindSafe(|| on_panic(&what)));
            super::set_errno(libc::EIO);
            failure
        }
    }
}

/// The log line of an export that has no caller's logger (the cache API): standard error,
/// where libxenctrl's default logger writes too.
pub(crate) fn log_to_stderr(export: &str) -> impl FnOnce(&str) + '_ {
    move |what| eprintln!("xcsave: internal error in {export}: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_failure_value_with_eio() {
        let mut logged = String::new();
        let r = ffi_boundary(-1, || -> i32 { panic!("boom") }, |w| logged = w.to_string());
        assert_eq!(r, -1);
        assert_eq!(logged, "boom");
        assert_eq!(crate::error::Errno::raw_last().0, libc::EIO);
        assert_eq!(ffi_boundary(-1, || 3, |_| unreachable!()), 3);
    }
}
