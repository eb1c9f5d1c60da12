// SPDX-License-Identifier: GPL-3.0-only
//! The persistent cache of foreign guest-page mappings (issue 4, docs/coherence.md).
//!
//! Guest frames are mapped in aligned buckets, one VMA each, and stay mapped across batches,
//! iterations and checkpoints, within a budget of mapped bytes. A bucket is mapped only on
//! evidence that it pays (density or reuse, `policy.rs`); eviction is LRU among the buckets
//! the current pass has not used. A batch pins the buckets it uses until the engine has
//! written them. Pages the cache does not serve (a full pass, sparse and new, over budget,
//! caching off, PoD) are mapped per batch exactly as the stock saver does.
//! Coherence comes from cheap signals checked at every suspended checkpoint, per-batch page
//! types, and a bounded bucket age. This module has no `unsafe`: it sees mappings only
//! through the `BucketMapper` and `PageMapping` traits.

mod api;
mod bucket;
mod checkpoint;
mod coherence;
mod config;
mod domain;
mod lru;
mod mapper;
mod policy;
mod slots;
mod source;
mod stats;

#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

pub use api::{init, stats, teardown};
pub use config::{current_override, CacheConfig, Limits, DEFAULT_MAX_MAP_COUNT};
pub use source::CachedPages;
