// SPDX-License-Identifier: GPL-3.0-only
//! Per-domain counters, and the process-wide registry that keeps them readable after a save
//! ends and carries teardown requests to live caches.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters of one domain's most recent (or running) save: the C surface's struct, so that
/// they are defined once.
pub use crate::abi::c::XcsaveCacheStats as CacheStats;

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

impl CacheStats {
    /// Counts one map call of `bytes` (one VMA more).
    pub(super) fn note_map(&mut self, bytes: u64) {
        self.maps += 1;
        self.vmas += 1;
        self.bytes_mapped += bytes;
        self.mapped_bytes += bytes;
        self.peak_vmas = self.peak_vmas.max(self.vmas);
        self.peak_mapped_bytes = self.peak_mapped_bytes.max(self.mapped_bytes);
    }

    /// Counts one unmap of `bytes` (one VMA less).
    pub(super) fn note_unmap(&mut self, bytes: u64) {
        self.unmaps += 1;
        self.vmas -= 1;
        self.mapped_bytes -= bytes;
    }
}
