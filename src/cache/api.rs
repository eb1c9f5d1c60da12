// SPDX-License-Identifier: GPL-3.0-only
//! The safe side of the C API (`xcsave_cache_init`, `_teardown`, `_stats` in `capi.rs`).

use super::config::{clear_override, set_override, CacheConfig};
use super::stats::{CacheStats, REGISTRY};

/// Sets the cache configuration of every later save in this process (validated by
/// `settings::cache_from_args`).
pub fn init(cfg: CacheConfig) {
    set_override(cfg);
}

/// Unmaps every cached mapping: a running save drops its cache at its next batch or
/// checkpoint; saves that have returned hold none. Later saves read the environment again.
/// Counters stay readable.
pub fn teardown() {
    REGISTRY.request_teardown();
    clear_override();
}

/// Counters of the most recent (or running) save of `domid` in this process.
pub fn stats(domid: u32) -> Option<CacheStats> {
    REGISTRY.get(domid)
}
