// SPDX-License-Identifier: GPL-3.0-only
//! Cache settings: defaults, the `XCSAVE_CACHE*` environment, and the override set through
//! the C API (`xcsave_cache_init`), which wins over the environment until teardown.

use std::sync::Mutex;

/// Guest page size.
pub(crate) const PAGE_SIZE: u64 = 4096;
/// Largest batch the engine may hand to the cache (stock's `MAX_BATCH_SIZE`). The budget keeps
/// this many pages in reserve for a batch's pages that do not fit in the cache.
pub(crate) const MAX_BATCH_PAGES: usize = 1024;
/// Default budget of mapped guest memory: 256 MiB (see docs/coherence.md for why).
pub(crate) const DEFAULT_BUDGET_BYTES: u64 = 256 << 20;
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
    pub budget_bytes: u64,
    /// Pages per bucket: a power of two, one VMA each.
    pub bucket_pages: u32,
    /// A bucket is remapped after this many suspended checkpoints (at least 1).
    pub max_age: u32,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            budget_bytes: DEFAULT_BUDGET_BYTES,
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

    /// Smallest usable budget: one batch's reserve plus one bucket.
    pub fn min_budget_bytes(&self) -> u64 {
        (MAX_BATCH_PAGES as u64 + self.bucket_pages as u64) * PAGE_SIZE
    }

    /// Pages the cached buckets may occupy: the budget less one batch's reserve.
    pub fn cache_capacity_pages(&self) -> u64 {
        (self.budget_bytes / PAGE_SIZE).saturating_sub(MAX_BATCH_PAGES as u64)
    }
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
                bucket_pages: 16,
                max_age: 3
            }
        );
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
