// SPDX-License-Identifier: GPL-3.0-only
//! Cache settings: defaults, the `XCSAVE_CACHE*` environment, and the override set through
//! the C API (`xcsave_cache_init`), which wins over the environment until teardown.

use std::sync::Mutex;

/// Guest page size.
pub(crate) const PAGE_SIZE: u64 = 4096;
/// Largest batch the engine may hand to the cache (stock's `MAX_BATCH_SIZE`). The budget keeps
/// this many pages in reserve for a batch's pages that do not fit in the cache.
pub(crate) const MAX_BATCH_PAGES: usize = 1024;
/// Smallest default budget of mapped guest memory: 256 MiB (docs/coherence.md §2).
pub(crate) const DEFAULT_BUDGET_MIN_BYTES: u64 = 256 << 20;
/// Largest default budget: 1 GiB, reached by guests of 8 GiB and more (docs/coherence.md §2).
pub(crate) const DEFAULT_BUDGET_MAX_BYTES: u64 = 1 << 30;
/// The default budget is the guest's populated memory divided by this, within
/// [`DEFAULT_BUDGET_MIN_BYTES`, `DEFAULT_BUDGET_MAX_BYTES`].
pub(crate) const DEFAULT_BUDGET_DIVISOR: u64 = 8;
/// Default bucket: 256 pages (1 MiB), as QEMU's Xen map cache.
pub(crate) const DEFAULT_BUCKET_PAGES: u32 = 256;
/// Default bound on a bucket's age, in suspended checkpoints.
pub(crate) const DEFAULT_MAX_AGE: u32 = 64;
/// Largest bucket accepted: 8192 pages (32 MiB).
pub(crate) const MAX_BUCKET_PAGES: u32 = 8192;

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
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            budget_bytes: DEFAULT_BUDGET_MIN_BYTES,
            budget_from_guest: true,
            bucket_pages: DEFAULT_BUCKET_PAGES,
            max_age: DEFAULT_MAX_AGE,
        }
    }
}

impl CacheConfig {
    /// Builds a configuration from C-API arguments, 0 meaning "default" for each number.
    /// Invalid values are replaced by defaults; the returned strings say which.
    pub fn from_args(
        enabled: bool,
        budget_bytes: u64,
        bucket_bytes: u64,
        max_age: u32,
    ) -> (Self, Vec<String>) {
        let mut warn = Vec::new();
        let d = CacheConfig::default();
        let mut c = CacheConfig { enabled, ..d };
        if budget_bytes != 0 {
            c.budget_bytes = budget_bytes;
            c.budget_from_guest = false;
        }
        if bucket_bytes != 0 {
            let pages = bucket_bytes / PAGE_SIZE;
            if !bucket_bytes.is_multiple_of(PAGE_SIZE)
                || !pages.is_power_of_two()
                || pages > MAX_BUCKET_PAGES as u64
            {
                warn.push(format!(
                    "cache bucket of {bucket_bytes} bytes is not a power-of-two number of pages \
                     up to {MAX_BUCKET_PAGES}; using {} pages",
                    d.bucket_pages
                ));
            } else {
                c.bucket_pages = pages as u32;
            }
        }
        if max_age != 0 {
            c.max_age = max_age;
        }
        let min = c.min_budget_bytes();
        if c.budget_bytes < min {
            warn.push(format!(
                "cache budget {} bytes is below the minimum {min} (one batch plus one bucket); \
                 using the minimum",
                c.budget_bytes
            ));
            c.budget_bytes = min;
        }
        (c, warn)
    }

    /// Reads `XCSAVE_CACHE` (`on`/`off`), `XCSAVE_CACHE_MB`, `XCSAVE_CACHE_BUCKET_KB` and
    /// `XCSAVE_CACHE_MAX_AGE` through `get`. Unparsable values fall back to defaults.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> (Self, Vec<String>) {
        let mut warn = Vec::new();
        let mut num = |name: &str| -> u64 {
            match get(name) {
                None => 0,
                Some(v) => v.trim().parse::<u64>().unwrap_or_else(|_| {
                    warn.push(format!("ignoring {name}={v:?}: not a number"));
                    0
                }),
            }
        };
        let mb = num("XCSAVE_CACHE_MB");
        let kb = num("XCSAVE_CACHE_BUCKET_KB");
        let age = num("XCSAVE_CACHE_MAX_AGE");
        let enabled = match get("XCSAVE_CACHE").as_deref().map(str::trim) {
            None | Some("") | Some("on") | Some("1") => true,
            Some("off") | Some("0") => false,
            Some(v) => {
                warn.push(format!("ignoring XCSAVE_CACHE={v:?}: want on or off"));
                true
            }
        };
        let (c, w) = CacheConfig::from_args(
            enabled,
            mb.saturating_mul(1 << 20),
            kb.saturating_mul(1 << 10),
            u32::try_from(age).unwrap_or(u32::MAX),
        );
        warn.extend(w);
        (c, warn)
    }

    /// The settings for a guest of `tot_pages` populated pages: a budget that was not set
    /// becomes [`default_budget_bytes`] of the guest; an explicit one stays.
    pub fn for_guest(self, tot_pages: u64) -> Self {
        if !self.budget_from_guest {
            return self;
        }
        CacheConfig {
            budget_bytes: default_budget_bytes(tot_pages),
            ..self
        }
    }

    /// Smallest usable budget: one batch's reserve plus one bucket.
    pub fn min_budget_bytes(&self) -> u64 {
        (MAX_BATCH_PAGES as u64 + self.bucket_pages as u64) * PAGE_SIZE
    }

    /// Pages the cached buckets may occupy: the budget less one batch's reserve.
    pub fn cache_capacity_pages(&self) -> u64 {
        (self.budget_bytes / PAGE_SIZE).saturating_sub(MAX_BATCH_PAGES as u64)
    }
}

/// The default budget for a guest of `tot_pages` populated pages: an eighth of its memory,
/// at least 256 MiB and at most 1 GiB, in whole MiB (docs/coherence.md §2, docs/decisions.md).
/// An eighth keeps the guest from ever fitting in the cache "with 1/8 to spare", so a full
/// pass over a guest above 220 MiB maps per batch as before (docs/performance.md, "Cache
/// policy").
pub fn default_budget_bytes(tot_pages: u64) -> u64 {
    let eighth = tot_pages.saturating_mul(PAGE_SIZE) / DEFAULT_BUDGET_DIVISOR;
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

/// The configuration for a save starting now; ignored environment settings are logged.
pub fn settings_for_save() -> CacheConfig {
    if let Some(c) = *OVERRIDE.lock().unwrap_or_else(|e| e.into_inner()) {
        return c;
    }
    let (c, warnings) = CacheConfig::from_lookup(|k| std::env::var(k).ok());
    for w in warnings {
        log::warn!("xcsave: {w}");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> (CacheConfig, Vec<String>) {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CacheConfig::from_lookup(move |k| {
            owned.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_and_env() {
        assert_eq!(env(&[]), (CacheConfig::default(), vec![]));
        let (c, w) = env(&[
            ("XCSAVE_CACHE", "off"),
            ("XCSAVE_CACHE_MB", "64"),
            ("XCSAVE_CACHE_BUCKET_KB", "64"),
            ("XCSAVE_CACHE_MAX_AGE", "3"),
        ]);
        assert!(w.is_empty());
        assert_eq!(
            c,
            CacheConfig {
                enabled: false,
                budget_bytes: 64 << 20,
                budget_from_guest: false,
                bucket_pages: 16,
                max_age: 3
            }
        );
        // An explicit budget wins over the guest's size, from the environment or the C API.
        assert_eq!(c.for_guest(1 << 30).budget_bytes, 64 << 20);
        let (c, w) = CacheConfig::from_args(true, 300 << 20, 0, 0);
        assert!(w.is_empty());
        assert_eq!(c.for_guest(1 << 30).budget_bytes, 300 << 20);
        // Zero through the C API means the default: guest-relative.
        let (c, _) = CacheConfig::from_args(true, 0, 0, 0);
        assert!(c.budget_from_guest);
        assert_eq!(c.for_guest(1 << 20).budget_bytes, 512 << 20); // 4 GiB guest
    }

    #[test]
    fn default_budget_follows_the_guest() {
        const MIB: u64 = 1 << 20;
        let pages = |mib: u64| mib * MIB / PAGE_SIZE;
        let budget = |mib: u64| CacheConfig::default().for_guest(pages(mib)).budget_bytes / MIB;
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
    fn bad_values_fall_back() {
        let (c, w) = env(&[
            ("XCSAVE_CACHE", "maybe"),
            ("XCSAVE_CACHE_MB", "x"),
            ("XCSAVE_CACHE_BUCKET_KB", "12"),
        ]);
        assert_eq!(c, CacheConfig::default());
        assert_eq!(w.len(), 3);
        let (c, w) = env(&[("XCSAVE_CACHE_MB", "1")]);
        assert_eq!(c.budget_bytes, c.min_budget_bytes());
        assert_eq!(w.len(), 1);
    }
}
