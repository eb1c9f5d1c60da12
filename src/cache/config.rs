// SPDX-License-Identifier: GPL-3.0-only
//! Cache settings: defaults, their documented bounds, one validation for every source (the
//! `XCSAVE_CACHE*` environment and `xcsave_cache_init`, both parsed by `settings`), and the
//! `xcsave_cache_init` override, which wins over the environment until teardown.
//!
//! Bounds (README "Settings"): a bucket is a power-of-two number of pages from 64 KiB to
//! 32 MiB; the budget is at least one batch's reserve plus one bucket, at most what the
//! process's VMA limit allows (half of `vm.max_map_count` buckets), and, once the guest is
//! known, at most 1.25 times its p2m (more could never be mapped); the maximum age is 1 to
//! 4096 checkpoints; the patrol bound is 0 (off) or 2 to 4096 checkpoints. A value out of range
//! is clamped to the nearest bound, with a warning.

use std::sync::Mutex;

use super::whole::WholeConfig;
use crate::abi::xen::{MAX_BATCH_SIZE, PAGE_SIZE};

/// Guest page size, as the byte counts here use it.
pub(crate) const PAGE_BYTES: u64 = PAGE_SIZE as u64;
/// The budget keeps one batch's pages in reserve for the pages that do not fit in the cache.
const RESERVE_PAGES: u64 = MAX_BATCH_SIZE as u64;
/// Smallest default budget: 256 MiB (docs/coherence.md §2).
pub(crate) const DEFAULT_BUDGET_MIN_BYTES: u64 = 256 << 20;
/// Largest default budget: 1 GiB, reached by guests of 8 GiB and more (docs/coherence.md §2).
pub(crate) const DEFAULT_BUDGET_MAX_BYTES: u64 = 1 << 30;
/// The default budget is the guest's populated memory divided by this, within
/// [`DEFAULT_BUDGET_MIN_BYTES`, `DEFAULT_BUDGET_MAX_BYTES`].
pub(crate) const DEFAULT_BUDGET_DIVISOR: u64 = 8;
/// Default bucket: 256 pages (1 MiB), as QEMU's Xen map cache.
pub(crate) const DEFAULT_BUCKET_PAGES: u32 = 256;
/// Smallest bucket accepted: 16 pages (64 KiB). Smaller buckets cost a VMA per few pages
/// (4 KiB buckets: ~64.5k VMAs for 256 MiB, beyond `vm.max_map_count`'s default 65,530).
pub(crate) const MIN_BUCKET_PAGES: u32 = 16;
/// Largest bucket accepted: 8192 pages (32 MiB).
pub(crate) const MAX_BUCKET_PAGES: u32 = 8192;
/// Default bound on a bucket's age, in suspended checkpoints.
pub(crate) const DEFAULT_MAX_AGE: u32 = 64;
/// Largest maximum age: 4096 checkpoints (under an hour at COLO's fastest rates). Without a
/// bound a stale mapping the signals miss would live for the whole stream.
pub(crate) const MAX_MAX_AGE: u32 = 4096;
/// Default patrol bound N, in checkpoints (docs/coherence.md §8.1, docs/decisions.md).
pub(crate) const DEFAULT_PATROL: u32 = 64;
/// The patrol's share is sized for at most this many bytes of cache, the largest default
/// budget: a whole-guest cache bigger than it is visited at the same cost per checkpoint as a
/// 1 GiB one, and its cycle grows with the guest (docs/coherence.md §8.1, docs/decisions.md
/// "The patrol's share is capped").
pub(crate) const PATROL_SIZED_BYTES: u64 = DEFAULT_BUDGET_MAX_BYTES;
/// Smallest patrol bound: each visit covers `ceil(B_max / (N - 1))` buckets, so N >= 2.
pub(crate) const MIN_PATROL: u32 = 2;
/// Largest patrol bound, as for the maximum age.
pub(crate) const MAX_PATROL: u32 = 4096;
/// `vm.max_map_count`'s default, used when /proc cannot be read.
pub const DEFAULT_MAX_MAP_COUNT: u64 = 65_530;

/// Effective cache settings for one save.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Cache mappings across batches; `false` reproduces stock's per-batch map/unmap.
    pub enabled: bool,
    /// Bound on mapped guest memory, in bytes (cached buckets plus one batch's reserve).
    /// Until the guest is known ([`CacheConfig::for_guest`]) a default budget holds the
    /// smallest default, 256 MiB.
    pub budget_bytes: u64,
    /// The budget was not set (`XCSAVE_CACHE_MB`, `xcsave_cache_init`): it follows the
    /// guest's size ([`default_budget_bytes`]) once the cache knows it.
    pub budget_from_guest: bool,
    /// Pages per bucket: a power of two, one VMA each.
    pub bucket_pages: u32,
    /// A bucket is remapped after this many suspended checkpoints (at least 1).
    pub max_age: u32,
    /// The patrol's bound N (`XCSAVE_CACHE_PATROL`): every cached bucket is compared with a
    /// fresh mapping at least once in N - 1 checkpoints, so the secondary holds a cached
    /// pfn's current content within N checkpoints of any p2m change (docs/coherence.md §8).
    /// 0 turns the checkpoint patrol off.
    pub patrol: u32,
    /// Whole-guest mode's process-wide caps and dom0 facts (`whole.rs`).
    pub whole: WholeConfig,
    /// This save maps the whole guest (set by the cache when it decides, never by a
    /// setting): the first pass maps every bucket, expired buckets are remapped before they
    /// are unmapped and a flush is followed by a remap of what was mapped.
    pub whole_guest: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            budget_bytes: DEFAULT_BUDGET_MIN_BYTES,
            budget_from_guest: true,
            bucket_pages: DEFAULT_BUCKET_PAGES,
            max_age: DEFAULT_MAX_AGE,
            patrol: DEFAULT_PATROL,
            whole: WholeConfig::default(),
            whole_guest: false,
        }
    }
}

/// What a setting needs to be checked against: the process's VMA limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `vm.max_map_count`.
    pub max_map_count: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_map_count: DEFAULT_MAX_MAP_COUNT,
        }
    }
}

impl CacheConfig {
    /// Validates settings given as numbers, 0 meaning "default" for each. An invalid value
    /// (a bucket that is not a power-of-two number of pages) gives the default, a value out
    /// of range the nearest bound; each with a warning in the returned list.
    pub fn validated(
        enabled: bool,
        budget_bytes: u64,
        bucket_bytes: u64,
        max_age: u64,
        limits: Limits,
    ) -> (Self, Vec<String>) {
        let mut warn = Vec::new();
        let d = CacheConfig::default();
        let mut c = CacheConfig { enabled, ..d };
        if bucket_bytes != 0 {
            let pages = bucket_bytes / PAGE_BYTES;
            if !bucket_bytes.is_multiple_of(PAGE_BYTES) || !pages.is_power_of_two() {
                warn.push(format!(
                    "cache bucket of {bucket_bytes} bytes is not a power-of-two number of \
                     pages; using {} KiB",
                    u64::from(d.bucket_pages) * PAGE_BYTES / 1024
                ));
            } else {
                let lo = u64::from(MIN_BUCKET_PAGES);
                let hi = u64::from(MAX_BUCKET_PAGES);
                let clamped = pages.clamp(lo, hi);
                if clamped != pages {
                    warn.push(format!(
                        "cache bucket of {} KiB is outside {}..={} KiB; using {} KiB",
                        bucket_bytes / 1024,
                        lo * PAGE_BYTES / 1024,
                        hi * PAGE_BYTES / 1024,
                        clamped * PAGE_BYTES / 1024
                    ));
                }
                c.bucket_pages = clamped as u32;
            }
        }
        if max_age != 0 {
            let clamped = max_age.min(u64::from(MAX_MAX_AGE));
            if clamped != max_age {
                warn.push(format!(
                    "cache max age {max_age} is above {MAX_MAX_AGE} checkpoints; using {clamped}"
                ));
            }
            c.max_age = clamped as u32;
        }
        if budget_bytes != 0 {
            c.budget_from_guest = false;
            let (lo, hi) = (c.min_budget_bytes(), c.max_budget_bytes(limits));
            c.budget_bytes = budget_bytes.clamp(lo, hi);
            if c.budget_bytes != budget_bytes {
                let why = if budget_bytes < lo {
                    "below the minimum (one batch plus one bucket)"
                } else {
                    "above what vm.max_map_count allows (half of it in buckets)"
                };
                warn.push(format!(
                    "cache budget {budget_bytes} bytes is {why}; using {}",
                    c.budget_bytes
                ));
            }
        }
        (c, warn)
    }

    /// The settings for a guest of `tot_pages` populated pages and a p2m of `p2m_pages`
    /// frames: a budget that was not set becomes [`default_budget_bytes`] of the guest; an
    /// explicit one is capped at 1.25 times the p2m plus the batch reserve (more could never
    /// be mapped, and a guest "fits" only by its real size), with a warning.
    pub fn for_guest(self, tot_pages: u64, p2m_pages: u64) -> Self {
        if self.budget_from_guest {
            return CacheConfig {
                budget_bytes: default_budget_bytes(tot_pages),
                ..self
            };
        }
        let cap = p2m_pages
            .saturating_add(p2m_pages / 4)
            .saturating_add(RESERVE_PAGES + u64::from(self.bucket_pages))
            .saturating_mul(PAGE_BYTES)
            .max(self.min_budget_bytes());
        if self.budget_bytes <= cap {
            return self;
        }
        log::warn!(
            "xcsave: cache budget {} bytes is above 1.25 times the guest's {} pages; using {cap}",
            self.budget_bytes,
            p2m_pages
        );
        CacheConfig {
            budget_bytes: cap,
            ..self
        }
    }

    /// The patrol bound `n` (`XCSAVE_CACHE_PATROL`; `None`: unset, the default): 0 is off, 1
    /// becomes 2 and values above 4096 become 4096, each with a warning.
    pub fn with_patrol(self, n: Option<u64>) -> (Self, Option<String>) {
        let Some(n) = n else {
            return (self, None);
        };
        let lo = u64::from(MIN_PATROL);
        let hi = u64::from(MAX_PATROL);
        let clamped = if n == 0 { 0 } else { n.clamp(lo, hi) };
        let warn = (clamped != n).then(|| {
            format!(
                "cache patrol {n} is outside 0 (off) or {lo}..={hi} checkpoints; using {clamped}"
            )
        });
        let c = CacheConfig {
            patrol: clamped as u32,
            ..self
        };
        (c, warn)
    }

    /// Buckets the cache can hold at most.
    pub fn max_buckets(&self) -> u64 {
        self.cache_capacity_pages() / u64::from(self.bucket_pages)
    }

    /// The patrol's `B_max`: the buckets the cache can hold, counted up to
    /// [`PATROL_SIZED_BYTES`] of them.
    pub fn patrol_buckets(&self) -> u64 {
        let sized = PATROL_SIZED_BYTES / (u64::from(self.bucket_pages) * PAGE_BYTES);
        self.max_buckets().min(sized.max(1))
    }

    /// Smallest usable budget: one batch's reserve plus one bucket.
    pub fn min_budget_bytes(&self) -> u64 {
        (RESERVE_PAGES + u64::from(self.bucket_pages)) * PAGE_BYTES
    }

    /// Largest budget the VMA limit allows: half of `vm.max_map_count` buckets (the rest is
    /// the process's own, and the per-batch mappings'), plus the batch reserve.
    pub fn max_budget_bytes(&self, limits: Limits) -> u64 {
        let buckets = (limits.max_map_count / 2).max(1);
        buckets
            .saturating_mul(u64::from(self.bucket_pages))
            .saturating_add(RESERVE_PAGES)
            .saturating_mul(PAGE_BYTES)
            .max(self.min_budget_bytes())
    }

    /// Pages the cached buckets may occupy: the budget less one batch's reserve.
    pub fn cache_capacity_pages(&self) -> u64 {
        (self.budget_bytes / PAGE_BYTES).saturating_sub(RESERVE_PAGES)
    }
}

/// The default budget for a guest of `tot_pages` populated pages: an eighth of its memory,
/// at least 256 MiB and at most 1 GiB, in whole MiB (docs/coherence.md §2, docs/decisions.md).
/// An eighth keeps the guest from ever fitting in the cache "with 1/8 to spare", so a full
/// pass over a guest above 220 MiB maps per batch as before (docs/performance.md, "Cache
/// policy").
pub fn default_budget_bytes(tot_pages: u64) -> u64 {
    let eighth = tot_pages.saturating_mul(PAGE_BYTES) / DEFAULT_BUDGET_DIVISOR;
    eighth.clamp(DEFAULT_BUDGET_MIN_BYTES, DEFAULT_BUDGET_MAX_BYTES) & !((1 << 20) - 1)
}

static OVERRIDE: Mutex<Option<CacheConfig>> = Mutex::new(None);

/// Sets the configuration used by every later save (C API `xcsave_cache_init`).
pub fn set_override(cfg: CacheConfig) {
    *OVERRIDE.lock().unwrap_or_else(|e| e.into_inner()) = Some(cfg);
}

/// Forgets the C-API configuration; later saves read the environment again.
pub fn clear_override() {
    *OVERRIDE.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// The configuration `xcsave_cache_init` set, if any.
pub fn current_override() -> Option<CacheConfig> {
    *OVERRIDE.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(budget: u64, bucket: u64, age: u64) -> (CacheConfig, Vec<String>) {
        CacheConfig::validated(true, budget, bucket, age, Limits::default())
    }

    #[test]
    fn explicit_values_and_defaults() {
        let (c, w) = CacheConfig::validated(false, 64 << 20, 64 << 10, 3, Limits::default());
        assert!(w.is_empty());
        assert_eq!(
            c,
            CacheConfig {
                enabled: false,
                budget_bytes: 64 << 20,
                budget_from_guest: false,
                bucket_pages: 16,
                max_age: 3,
                ..CacheConfig::default()
            }
        );
        // An explicit budget wins over the guest's size when the guest is large enough.
        assert_eq!(c.for_guest(1 << 30, 1 << 30).budget_bytes, 64 << 20);
        let (c, w) = args(300 << 20, 0, 0);
        assert!(w.is_empty());
        assert_eq!(c.for_guest(1 << 20, 1 << 20).budget_bytes, 300 << 20);
        // Zero means the default: guest-relative.
        let (c, _) = args(0, 0, 0);
        assert!(c.budget_from_guest);
        assert_eq!(c.for_guest(1 << 20, 1 << 20).budget_bytes, 512 << 20); // 4 GiB guest
    }

    #[test]
    fn default_budget_follows_the_guest() {
        const MIB: u64 = 1 << 20;
        let pages = |mib: u64| mib * MIB / PAGE_BYTES;
        let budget = |mib: u64| {
            CacheConfig::default()
                .for_guest(pages(mib), pages(mib))
                .budget_bytes
                / MIB
        };
        assert_eq!(budget(0), 256);
        assert_eq!(budget(1024), 256);
        assert_eq!(budget(2048), 256);
        assert_eq!(budget(2304), 288);
        assert_eq!(budget(4096), 512); // 4 GiB / 16384 pages: 254 buckets fit
        assert_eq!(budget(4096 + 3), 512); // whole MiB
        assert_eq!(budget(8192), 1024);
        assert_eq!(budget(1 << 20), 1024); // 1 TiB
        assert_eq!(default_budget_bytes(u64::MAX), DEFAULT_BUDGET_MAX_BYTES);
        // Every default budget is usable with the largest bucket.
        let big = CacheConfig {
            bucket_pages: MAX_BUCKET_PAGES,
            ..CacheConfig::default()
        };
        assert!(default_budget_bytes(0) >= big.min_budget_bytes());
    }

    #[test]
    fn invalid_values_give_defaults_and_out_of_range_values_are_clamped() {
        // Not a power of two: the default bucket.
        let (c, w) = args(0, 12 << 10, 0);
        assert_eq!((c.bucket_pages, w.len()), (DEFAULT_BUCKET_PAGES, 1));
        // 4 KiB and 64 MiB buckets: clamped to 64 KiB and 32 MiB.
        let (c, w) = args(0, 4 << 10, 0);
        assert_eq!((c.bucket_pages, w.len()), (MIN_BUCKET_PAGES, 1));
        let (c, w) = args(0, 64 << 20, 0);
        assert_eq!((c.bucket_pages, w.len()), (MAX_BUCKET_PAGES, 1));
        // Budget below the minimum, above the VMA limit.
        let (c, w) = args(1 << 20, 0, 0);
        assert_eq!((c.budget_bytes, w.len()), (c.min_budget_bytes(), 1));
        let (c, w) = args(u64::MAX, 0, 0);
        assert_eq!(w.len(), 1);
        assert_eq!(c.budget_bytes, c.max_budget_bytes(Limits::default()));
        assert_eq!(c.budget_bytes, (32_765 * 256 + 1024) * PAGE_BYTES);
        let small = Limits { max_map_count: 100 };
        let (c, _) = CacheConfig::validated(true, 1 << 30, 0, 0, small);
        assert_eq!(c.budget_bytes, (50 * 256 + 1024) * PAGE_BYTES);
        // Max age above the sane maximum.
        let (c, w) = args(0, 0, u64::from(u32::MAX) + 5);
        assert_eq!((c.max_age, w.len()), (MAX_MAX_AGE, 1));
        // A huge explicit budget is capped by the guest once it is known.
        let (c, _) = args(4 << 30, 0, 0);
        let g = c.for_guest(1000, 4096);
        assert_eq!(g.budget_bytes, (4096 + 1024 + 1024 + 256) * PAGE_BYTES);
        assert!(!g.budget_from_guest);
    }

    #[test]
    fn the_patrols_share_is_sized_for_at_most_1_gib() {
        let mut c = CacheConfig::default();
        for (budget_mib, bucket_kib, want) in [
            (256u64, 1024u32, 252u64), // 256 MiB less the batch reserve: 252 buckets
            (16 << 10, 1024, 1024),    // a 16 GiB whole-guest cache: sized as 1 GiB
            (64 << 10, 4096, 256),     // 4 MiB buckets: still 1 GiB
        ] {
            c.budget_bytes = budget_mib << 20;
            c.bucket_pages = bucket_kib / 4;
            assert_eq!(c.patrol_buckets(), want, "{budget_mib} MiB");
        }
    }

    #[test]
    fn the_patrol_bound_is_off_or_2_to_4096() {
        let d = CacheConfig::default();
        assert_eq!(d.with_patrol(None), (d, None));
        for (n, want, warns) in [(0, 0, false), (1, 2, true), (2, 2, false), (64, 64, false)] {
            let (c, w) = d.with_patrol(Some(n));
            assert_eq!((c.patrol, w.is_some()), (want, warns), "{n}");
        }
        let (c, w) = d.with_patrol(Some(u64::MAX));
        assert_eq!((c.patrol, w.is_some()), (MAX_PATROL, true));
    }
}
