// SPDX-License-Identifier: GPL-3.0-only
//! The Xen release this library is built for, and the facts that follow from it.
//!
//! build.rs chooses the release (`XCSAVE_XEN_VERSION`, else `pkg-config --modversion
//! xenguest`) and sets `cfg(xen = "...")`; this is the one place in `src/` that reads it.
//! A built library serves exactly one release: its imports carry that release's nodes and it
//! needs that release's libxenctrl SONAME (docs/decisions.md, "One tree, two Xen releases").

use std::ffi::CStr;

/// The Xen release, `major.minor` (`4.17` or `4.20`).
pub const XEN_VERSION: &str = env!("XCSAVE_XEN_VERSION");

/// The version node of stock libxenguest's `xc_domain_save`, which xcsave exports and under
/// which it looks the stock saver up: `VERS_4.17.0` (4.17), `libxenguest_4.20.0` (4.20).
pub const NODE: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("XCSAVE_XEN_NODE"), "\0").as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("XCSAVE_XEN_NODE has no NUL"),
    };

/// The first value stock prints in "Domain has not been suspended: shutdown %d, reason %d"
/// when the domain is shut down: 4.17 prints `dominfo.shutdown` (1), 4.20 prints
/// `flags & XEN_DOMINF_shutdown` (4).
#[cfg(xen = "4.17")]
pub const SHUTDOWN_SHOWN: i32 = 1;
/// See the 4.17 variant.
#[cfg(xen = "4.20")]
pub const SHUTDOWN_SHOWN: i32 = 1 << 2;
