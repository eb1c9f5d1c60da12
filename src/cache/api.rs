// SPDX-License-Identifier: GPL-3.0-only
//! The safe side of the C API (`xcsave_cache_init`, `_teardown`, `_stats` in `capi.rs`).

use super::config::{clear_override, set_override, CacheConfig};
use super::stats::{CacheStats, REGISTRY};

/// Sets the cache configuration of every later save in this process (0 = default for each
/// number). Nothing changes if a value is invalid; the error says which.
pub fn init(
    enabled: bool,
    budget_bytes: u64,
    bucket_bytes: u64,
    max_age: u32,
) -> Result<(), String> {
    let (cfg, warnings) = CacheConfig::from_args(enabled, budget_bytes, bucket_bytes, max_age);
    if let Some(w) = warnings.into_iter().next() {
        return Err(w);
    }
    set_override(cfg);
    Ok(())
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
