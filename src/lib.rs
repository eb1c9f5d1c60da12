// SPDX-License-Identifier: GPL-3.0-only
//! xcsave: a drop-in replacement for Xen 4.17 libxenguest's `xc_domain_save()` for x86 HVM
//! and PVH guests, writing the same migration stream (v2, revision 3).
//!
//! Rooms, one concern each:
//! - [`capi`]: the exported C functions, the panic boundary, pointer checks;
//! - [`xen`]: the only place that talks to libxenctrl/libxenguest (and the caller's fds);
//! - [`stream`]: pure record encoding;
//! - [`backchannel`]: pure, untrusted COLO back-channel parsing;
//! - [`restore`]: the receiving side's pure parts: stream reader, checkpoint model;
//! - [`engine`]: the `xc_domain_save` state machine and the x86 HVM save ops;
//! - [`pages`]: how a batch of guest pages gets mapped;
//! - [`logging`]: the `log` facade routed to the caller's xentoollog logger;
//! - [`config`]: `XCSAVE_*` settings;
//! - [`hooks`]: fallible allocation and the `XCSAVE_TEST_*` fault hooks.

// Only `capi` is scanned for the C header: cbindgen ignores the other rooms.
/// cbindgen:ignore
pub mod backchannel;
mod cache;
pub mod capi;
/// cbindgen:ignore
pub mod config;
/// cbindgen:ignore
pub mod engine;
/// cbindgen:ignore
pub mod error;
/// cbindgen:ignore
pub mod hooks;
/// cbindgen:ignore
pub mod logging;
/// cbindgen:ignore
pub mod pages;
/// cbindgen:ignore
pub mod restore;
/// cbindgen:ignore
pub mod stream;
/// cbindgen:ignore
pub mod xen;
