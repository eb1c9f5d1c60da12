// SPDX-License-Identifier: GPL-3.0-only
//! Per-domain counters, and the process-wide registry that keeps them readable after a save
//! ends and carries teardown requests to live caches.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters of one domain's most recent (or running) save.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Data pages served from a bucket that was already mapped.
    pub hits: u64,
    /// Data pages that needed a map call (bucket miss, or a per-batch mapping).
    pub misses: u64,
    /// Map calls (each one VMA).
    pub maps: u64,
    /// Unmap calls.
    pub unmaps: u64,
    /// Buckets unmapped to stay within the budget.
    pub evictions: u64,
    /// Buckets unmapped because they might be stale (coherence signals, teardown).
    pub invalidations: u64,
    /// Buckets unmapped because they reached the maximum age.
    pub expirations: u64,
    /// Bytes of guest memory mapped, summed over all map calls.
    pub bytes_mapped: u64,
    /// Bytes of page data handed to the engine for sending.
    pub bytes_sent: u64,
    /// Guest memory mapped now, in bytes.
    pub mapped_bytes: u64,
    /// Highest `mapped_bytes` seen.
    pub peak_mapped_bytes: u64,
    /// VMAs held now.
    pub vmas: u64,
    /// Highest `vmas` seen.
    pub peak_vmas: u64,
    /// Suspended checkpoints observed.
    pub checkpoints: u64,
    /// 1 when caching is off for this domain (configuration or PoD), else 0.
    pub disabled: u64,
}

/// Process-wide state shared by every domain cache: published counters and teardown requests.
pub struct Registry {
    stats: Mutex<BTreeMap<u32, CacheStats>>,
    teardown_gen: AtomicU64,
}

impl Registry {
    /// An empty registry.
    pub const fn new() -> Self {
        Registry {
            stats: Mutex::new(BTreeMap::new()),
            teardown_gen: AtomicU64::new(0),
        }
    }

    /// Records the current counters of `domid`.
    pub fn publish(&self, domid: u32, s: &CacheStats) {
        self.lock().insert(domid, *s);
    }

    /// The last published counters of `domid`.
    pub fn get(&self, domid: u32) -> Option<CacheStats> {
        self.lock().get(&domid).copied()
    }

    /// Asks every live cache to unmap everything at its next batch or checkpoint boundary.
    pub fn request_teardown(&self) {
        self.teardown_gen.fetch_add(1, Ordering::SeqCst);
    }

    /// Number of teardown requests so far.
    pub fn teardown_generation(&self) -> u64 {
        self.teardown_gen.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, CacheStats>> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

/// The registry of this process.
pub(crate) static REGISTRY: Registry = Registry::new();
