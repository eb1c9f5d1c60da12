// SPDX-License-Identifier: GPL-3.0-only
//! xcsave: a drop-in replacement for Xen 4.17 libxenguest's `xc_domain_save()` for x86 HVM
//! and PVH guests, writing the same migration stream (v2, revision 3).
//!
//! Rooms, one concern each, from the top down; a room names only rooms below it
//! (docs/architecture.md, checked by `scripts/check-layers.sh`):
//! - [`capi`]: the exported C functions, the one panic boundary, pointer checks;
//! - [`settings`]: every `XCSAVE_*` setting, read once per save and validated;
//! - [`logging`]: the `log` facade routed to the caller's xentoollog logger;
//! - [`engine`]: the `xc_domain_save` state machine and the per-guest-type `SaveOps`;
//! - [`receive`]: the `xc_domain_restore` engine (x86 HVM/PVH) over [`restore`]'s reader;
//! - [`cache`]: the persistent cache of guest mappings, behind [`pages::PageSource`];
//! - [`xen`]: the only place that talks to libxenctrl/libxenguest (and the caller's fds);
//! - [`pages`]: the page-source trait (a batch's mapped pages) and the per-batch source;
//! - [`backchannel`]: pure, untrusted COLO back-channel parsing;
//! - [`restore`]: the receiving side's pure parts: untrusted stream reader, checkpoint model;
//! - `testkit`: the one fake hypervisor (unit tests; the fuzz target with feature `testkit`);
//! - [`hv`]: the traits Xen is seen through (domain control, guest memory, HVM state,
//!   reporting);
//! - [`stream`]: pure record encoding;
//! - [`fallible`]: allocations that fail with ENOMEM instead of aborting;
//! - [`faults`]: `XCSAVE_TEST_*` fault injection, in test builds only;
//! - [`abi`], [`error`]: every C layout and Xen-version fact; the errno type.

// Only `capi` and `abi::c` are scanned for the C header: cbindgen ignores the other rooms.
pub mod abi;
/// cbindgen:ignore
pub mod backchannel;
/// cbindgen:ignore
pub mod cache;
pub mod capi;
/// cbindgen:ignore
pub mod engine;
/// cbindgen:ignore
pub mod error;
/// cbindgen:ignore
pub mod fallible;
/// cbindgen:ignore
pub mod faults;
/// cbindgen:ignore
pub mod hv;
/// cbindgen:ignore
pub mod logging;
/// cbindgen:ignore
pub mod pages;
/// cbindgen:ignore
pub mod receive;
/// cbindgen:ignore
pub mod restore;
/// cbindgen:ignore
pub mod settings;
/// cbindgen:ignore
pub mod stream;
/// cbindgen:ignore
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
/// cbindgen:ignore
pub mod xen;
