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
//! types, a patrol that compares a share of the cached buckets with fresh mappings after
//! every checkpoint, and a bounded bucket age. This module has no `unsafe`: it sees mappings only
//! through the `BucketMapper` and `PageMapping` traits.
//!
//! Files, one concept each (every field private to its file):
//! - `store/`: the buckets of one domain: index (bucket -> slot), slots, LRU order;
//! - `policy.rs`: which buckets to map whole: pure functions over what the passes asked;
//! - `coherence.rs`: the per-checkpoint signals and what a change in them means;
//! - `patrol.rs`: the patrol's cursor and the page comparison of a visit (the bound on the
//!   secondary's divergence for p2m changes no signal sees);
//! - `config.rs`: settings, their bounds, the `xcsave_cache_init` override;
//! - `whole.rs`: whole-guest mode: what dom0 can afford, bucket growth, the process cap;
//! - `stats.rs`: the counters and the process-wide registry that publishes them;
//! - `domain.rs`: `DomainCache`, which applies the above to batches, passes, checkpoints;
//! - `mapper.rs`: the one call the cache makes (map frames into one VMA), and the Xen
//!   layer's mapper with its protection: read-only for a save, read-write for a restore;
//! - `adapter.rs`: `CachedPages`, the `PageSource` the engine uses, over `hv::GuestMemory`;
//! - `writes.rs`: `CachedWrites`, the `PageTarget` the restore engine uses: the same cache
//!   mapping `PROT_READ|PROT_WRITE` through `hv::DomainBuild`, told of the restore's own
//!   populates and checked once per COLO checkpoint;
//! - `api.rs`: the safe side of the C API.
//!
//! Nothing in `store/`, `policy.rs`, `coherence.rs` or `DomainCache` is specific to saving:
//! `DomainCache` is generic over the mapping type, and the restore (`writes.rs`) uses it with
//! the writable mappings of `hv::DomainBuild`.

mod adapter;
mod api;
mod coherence;
mod config;
mod domain;
mod mapper;
mod patrol;
mod policy;
mod stats;
mod store;
mod whole;
mod writes;

#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

pub use adapter::CachedPages;
pub use api::{init, stats, teardown};
pub use config::{current_override, CacheConfig, Limits, DEFAULT_MAX_MAP_COUNT};
pub use whole::{WholeConfig, DEFAULT_WHOLE_CAP_BYTES};
pub use writes::CachedWrites;
