// SPDX-License-Identifier: GPL-3.0-only
//! The ABI room: every `#[repr(C)]` type xcsave shares with C, and every fact that depends on
//! the Xen version (constants, private layouts, the symbol version node). It imports nothing
//! from the crate; every other room may import it. A Xen port (4.20) edits this room first.
//!
//! - [`c`]: the C surface's types (`struct save_callbacks`, `struct precopy_stats`,
//!   `xcsave_cache_stats`), the only part cbindgen scans;
//! - [`xen`]: Xen facts: page size, batch size, page types and which carry data, flags,
//!   policies, shadow ops, log levels, the symbol version node and libxenctrl's private
//!   handle layout.

pub mod c;
/// cbindgen:ignore
pub mod xen;
