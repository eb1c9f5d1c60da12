// SPDX-License-Identifier: GPL-3.0-only
//! The error value carried through xcsave: an errno, as the C ABI reports it.

use std::fmt;

/// An errno value. Every failure inside xcsave ends as `-1` with this errno set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's current `errno`, or `EIO` if it is 0 (a failure needs a cause).
    pub fn last() -> Errno {
        match std::io::Error::last_os_error().raw_os_error() {
            Some(e) if e != 0 => Errno(e),
            _ => Errno(libc::EIO),
        }
    }

    /// The calling thread's current `errno` as it is, 0 included.
    pub fn raw_last() -> Errno {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The errno of an I/O error (`EIO` when it has none).
    pub fn from_io(e: &std::io::Error) -> Errno {
        match e.raw_os_error() {
            Some(e) if e != 0 => Errno(e),
            _ => Errno(libc::EIO),
        }
    }

    /// The C library's description of this errno (as `strerror` gives it).
    pub fn describe(self) -> String {
        let s = std::io::Error::from_raw_os_error(self.0).to_string();
        match s.rfind(" (os error ") {
            Some(i) => s[..i].to_string(),
            None => s,
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}", self.0, self.describe())
    }
}

/// Result type of xcsave's internals.
pub type Result<T> = std::result::Result<T, Errno>;

/// The message of a caught panic's payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
