// SPDX-License-Identifier: GPL-3.0-only
//! Every `XCSAVE_*` setting, read once per save (never at load time: LD_PRELOAD users cannot
//! call a C API, so every setting must be reachable from the environment) into one
//! [`Settings`] value, with one parser for yes/no values and one for numbers (README,
//! "Settings"). An invalid value gives a warning and the default; an out-of-range value is
//! clamped to its documented bound with a warning (`cache/config.rs`). The caller logs the
//! warnings through the caller's logger. `xcsave_cache_init` goes through the same
//! validation ([`cache_from_args`]).

use crate::cache::DEFAULT_WHOLE_CAP_BYTES;
use crate::cache::{current_override, CacheConfig, Limits, WholeConfig, DEFAULT_MAX_MAP_COUNT};
use std::time::Duration;

/// `XCSAVE_BACKCHANNEL_TIMEOUT_MS`'s default: 150 s, above what the secondary's libxl itself
/// allows the step before its answer (docs/decisions.md, issue 14).
pub const BACKCHANNEL_TIMEOUT_DEFAULT_MS: u64 = 150_000;
/// The shortest timeout (a smaller non-zero value is raised to it, with a warning).
pub const BACKCHANNEL_TIMEOUT_MIN_MS: u64 = 1_000;
/// The longest timeout (a larger value is lowered to it, with a warning).
pub const BACKCHANNEL_TIMEOUT_MAX_MS: u64 = 3_600_000;

/// Settings of one save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `XCSAVE_DISABLE`: hand everything (save and restore) to the stock functions.
    pub disable: bool,
    /// `XCSAVE_RESTORE` (default on): `off` hands every `xc_domain_restore` to the stock
    /// restore while saves still run in xcsave.
    pub restore: bool,
    /// `XCSAVE_LOG`: level of xcsave's own log lines.
    pub log_level: log::LevelFilter,
    /// The mapping cache: `xcsave_cache_init`'s settings if it was called, else
    /// `XCSAVE_CACHE`, `XCSAVE_CACHE_MB`, `XCSAVE_CACHE_BUCKET_KB`, `XCSAVE_CACHE_MAX_AGE`;
    /// with `XCSAVE_CACHE_PATROL` either way (`xcsave_cache_init` has no argument for it).
    pub cache: CacheConfig,
    /// `XCSAVE_BACKCHANNEL_TIMEOUT_MS`: how long the COLO secondary's answer (one dirty pfn
    /// list) may take as a whole; None (the value 0) waits forever, as stock.
    pub backchannel_timeout: Option<Duration>,
    /// `XCSAVE_RESTORE_BUFFER_MB`, in bytes: the most a restore holds of one checkpoint
    /// before it is complete; past it the restore fails with ENOMEM (never a failover).
    /// None (unset or 0): the guest's `max_pages` × (4 KiB + 16) + 2 × 128 MiB, which no
    /// valid checkpoint of that guest exceeds (docs/restore.md, B.4).
    pub restore_buffer: Option<u64>,
}

/// A yes/no value: `1/y/yes/on/true` or `0/n/no/off/false` (any case, spaces ignored);
/// unset or empty gives `default`, anything else a warning and `default`.
pub fn parse_bool(name: &str, raw: Option<&str>, default: bool, warn: &mut Vec<String>) -> bool {
    let Some(v) = raw.map(|v| v.trim().to_ascii_lowercase()) else {
        return default;
    };
    match v.as_str() {
        "" => default,
        "1" | "y" | "yes" | "on" | "true" => true,
        "0" | "n" | "no" | "off" | "false" => false,
        _ => {
            warn.push(format!(
                "ignoring {name}={v:?}: want yes or no (1/0, on/off, true/false)"
            ));
            default
        }
    }
}

/// A non-negative decimal number; unset or empty gives 0 (the default), anything else a
/// warning and 0.
pub fn parse_number(name: &str, raw: Option<&str>, warn: &mut Vec<String>) -> u64 {
    let Some(v) = raw.map(str::trim) else {
        return 0;
    };
    if v.is_empty() {
        return 0;
    }
    v.parse::<u64>().unwrap_or_else(|_| {
        warn.push(format!("ignoring {name}={v:?}: not a number"));
        0
    })
}

/// `XCSAVE_BACKCHANNEL_TIMEOUT_MS`: unset, empty or invalid (with a warning) gives the
/// default; 0 turns the timeout off; other values are clamped to
/// [`BACKCHANNEL_TIMEOUT_MIN_MS`, `BACKCHANNEL_TIMEOUT_MAX_MS`] with a warning.
fn parse_backchannel_timeout(raw: Option<&str>, warn: &mut Vec<String>) -> Option<Duration> {
    const NAME: &str = "XCSAVE_BACKCHANNEL_TIMEOUT_MS";
    let v = raw.map(str::trim).unwrap_or("");
    let ms = match v.parse::<u64>() {
        _ if v.is_empty() => BACKCHANNEL_TIMEOUT_DEFAULT_MS,
        Ok(ms) => ms,
        Err(_) => {
            warn.push(format!(
                "ignoring {NAME}={v:?}: not a number of milliseconds; using \
                 {BACKCHANNEL_TIMEOUT_DEFAULT_MS}"
            ));
            BACKCHANNEL_TIMEOUT_DEFAULT_MS
        }
    };
    if ms == 0 {
        return None;
    }
    let clamped = ms.clamp(BACKCHANNEL_TIMEOUT_MIN_MS, BACKCHANNEL_TIMEOUT_MAX_MS);
    if clamped != ms {
        warn.push(format!(
            "{NAME}={ms} is out of range ({BACKCHANNEL_TIMEOUT_MIN_MS}..={BACKCHANNEL_TIMEOUT_MAX_MS}, \
             or 0 for none): using {clamped}"
        ));
    }
    Some(Duration::from_millis(clamped))
}

/// `XCSAVE_CACHE_PATROL`: unset or empty is the default (`None`), where 0 means off, so it
/// cannot go through [`parse_number`]; anything else but a number is a warning and the default.
fn parse_patrol(raw: Option<String>, warn: &mut Vec<String>) -> Option<u64> {
    let raw = raw?;
    let v = raw.trim();
    if v.is_empty() {
        return None;
    }
    v.parse::<u64>().map_or_else(
        |_| {
            warn.push(format!("ignoring XCSAVE_CACHE_PATROL={v:?}: not a number"));
            None
        },
        Some,
    )
}

fn parse_level(raw: Option<&str>, warn: &mut Vec<String>) -> log::LevelFilter {
    use log::LevelFilter as L;
    let Some(v) = raw.map(|v| v.trim().to_ascii_lowercase()) else {
        return L::Debug;
    };
    match v.as_str() {
        "" | "debug" => L::Debug,
        "off" => L::Off,
        "error" => L::Error,
        "warn" => L::Warn,
        "info" => L::Info,
        "trace" => L::Trace,
        _ => {
            warn.push(format!(
                "ignoring XCSAVE_LOG={v:?}: want off, error, warn, info, debug or trace"
            ));
            L::Debug
        }
    }
}

/// The process's VMA limit, `/proc/sys/vm/max_map_count` (its default if unreadable).
pub fn limits() -> Limits {
    let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_MAX_MAP_COUNT);
    Limits { max_map_count }
}

/// Whole-guest mode's settings (README "Settings"), whoever set the rest of the cache:
/// `XCSAVE_CACHE_WHOLE_MB` (process-wide cap, default 64 GiB, 0 = off),
/// `XCSAVE_CACHE_WHOLE_VMAS` (process-wide VMAs, default and maximum half of
/// `vm.max_map_count`), `XCSAVE_DOM0_UNPOPULATED` (yes/no; unset: the running kernel's
/// `CONFIG_XEN_UNPOPULATED_ALLOC` from /boot/config-<release>, else yes as Debian 12/13).
fn whole_from_lookup(
    get: &impl Fn(&str) -> Option<String>,
    limits: Limits,
    warn: &mut Vec<String>,
) -> WholeConfig {
    let half = (limits.max_map_count / 2).max(1);
    let mut w = WholeConfig {
        max_vmas: half,
        ..WholeConfig::default()
    };
    if let Some(v) = get("XCSAVE_CACHE_WHOLE_MB").filter(|v| !v.trim().is_empty()) {
        match v.trim().parse::<u64>() {
            Ok(mb) => w.cap_bytes = mb.saturating_mul(1 << 20),
            Err(_) => warn.push(format!(
                "ignoring XCSAVE_CACHE_WHOLE_MB={v:?}: not a number; using {} MiB (0: off)",
                DEFAULT_WHOLE_CAP_BYTES >> 20
            )),
        }
    }
    let vmas = parse_number(
        "XCSAVE_CACHE_WHOLE_VMAS",
        get("XCSAVE_CACHE_WHOLE_VMAS").as_deref(),
        warn,
    );
    if vmas > half {
        warn.push(format!(
            "XCSAVE_CACHE_WHOLE_VMAS={vmas} is above half of vm.max_map_count; using {half}"
        ));
    } else if vmas != 0 {
        w.max_vmas = vmas;
    }
    let kernel = kernel_unpopulated_alloc().unwrap_or(true);
    w.unpopulated_alloc = parse_bool(
        "XCSAVE_DOM0_UNPOPULATED",
        get("XCSAVE_DOM0_UNPOPULATED").as_deref(),
        kernel,
        warn,
    );
    w
}

/// `CONFIG_XEN_UNPOPULATED_ALLOC` of the running kernel, from Debian's
/// `/boot/config-<release>`; `None` if that file cannot be read.
fn kernel_unpopulated_alloc() -> Option<bool> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let config = std::fs::read_to_string(format!("/boot/config-{}", release.trim())).ok()?;
    Some(
        config
            .lines()
            .any(|l| l.trim() == "CONFIG_XEN_UNPOPULATED_ALLOC=y"),
    )
}

/// `xcsave_cache_init`'s arguments through the same validation as the environment.
pub fn cache_from_args(
    enabled: bool,
    budget_bytes: u64,
    bucket_bytes: u64,
    max_age: u32,
) -> (CacheConfig, Vec<String>) {
    CacheConfig::validated(
        enabled,
        budget_bytes,
        bucket_bytes,
        u64::from(max_age),
        limits(),
    )
}

impl Settings {
    /// Parse settings from a variable lookup; returns them and the warnings to log.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        limits: Limits,
        cache_override: Option<CacheConfig>,
    ) -> (Settings, Vec<String>) {
        let mut warn = Vec::new();
        let disable = parse_bool(
            "XCSAVE_DISABLE",
            get("XCSAVE_DISABLE").as_deref(),
            false,
            &mut warn,
        );
        let restore = parse_bool(
            "XCSAVE_RESTORE",
            get("XCSAVE_RESTORE").as_deref(),
            true,
            &mut warn,
        );
        let log_level = parse_level(get("XCSAVE_LOG").as_deref(), &mut warn);
        let cache = match cache_override {
            Some(c) => c,
            None => {
                let mut num = |name: &str| parse_number(name, get(name).as_deref(), &mut warn);
                let mb = num("XCSAVE_CACHE_MB");
                let kb = num("XCSAVE_CACHE_BUCKET_KB");
                let age = num("XCSAVE_CACHE_MAX_AGE");
                let on = parse_bool(
                    "XCSAVE_CACHE",
                    get("XCSAVE_CACHE").as_deref(),
                    true,
                    &mut warn,
                );
                let (c, w) = CacheConfig::validated(
                    on,
                    mb.saturating_mul(1 << 20),
                    kb.saturating_mul(1 << 10),
                    age,
                    limits,
                );
                warn.extend(w);
                c
            }
        };
        let backchannel_timeout =
            parse_backchannel_timeout(get("XCSAVE_BACKCHANNEL_TIMEOUT_MS").as_deref(), &mut warn);
        let restore_buffer = match parse_number(
            "XCSAVE_RESTORE_BUFFER_MB",
            get("XCSAVE_RESTORE_BUFFER_MB").as_deref(),
            &mut warn,
        ) {
            0 => None,
            mb => Some(mb.saturating_mul(1 << 20)),
        };
        let (cache, w) = cache.with_patrol(parse_patrol(get("XCSAVE_CACHE_PATROL"), &mut warn));
        warn.extend(w);
        let mut cache = cache;
        cache.whole = whole_from_lookup(&get, limits, &mut warn);
        let s = Settings {
            disable,
            restore,
            log_level,
            cache,
            backchannel_timeout,
            restore_buffer,
        };
        (s, warn)
    }

    /// The settings of a save starting now: the process environment, the VMA limit and
    /// `xcsave_cache_init`'s override.
    pub fn for_save() -> (Settings, Vec<String>) {
        Settings::from_lookup(|k| std::env::var(k).ok(), limits(), current_override())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> (Settings, Vec<String>) {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(
            move |k| owned.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            Limits::default(),
            None,
        )
    }

    #[test]
    fn defaults() {
        let (s, w) = env(&[]);
        assert!(w.is_empty());
        assert!(!s.disable);
        assert!(s.restore);
        assert_eq!(s.log_level, log::LevelFilter::Debug);
        let whole = WholeConfig {
            unpopulated_alloc: s.cache.whole.unpopulated_alloc,
            ..WholeConfig::default()
        };
        assert_eq!(
            s.cache,
            CacheConfig {
                whole,
                ..CacheConfig::default()
            }
        );
        assert_eq!(
            s.backchannel_timeout,
            Some(Duration::from_millis(BACKCHANNEL_TIMEOUT_DEFAULT_MS))
        );
    }

    #[test]
    fn the_backchannel_timeout_is_bounded() {
        let ms = |v: &str| {
            let (s, w) = env(&[("XCSAVE_BACKCHANNEL_TIMEOUT_MS", v)]);
            (s.backchannel_timeout.map(|d| d.as_millis() as u64), w.len())
        };
        let default = Some(BACKCHANNEL_TIMEOUT_DEFAULT_MS);
        assert_eq!(ms("1000"), (Some(1000), 0));
        assert_eq!(ms(" 45000 "), (Some(45000), 0));
        assert_eq!(ms(""), (default, 0));
        // 0: no timeout, as stock.
        assert_eq!(ms("0"), (None, 0));
        // Invalid: the default, with a warning (never "no timeout").
        assert_eq!(ms("soon"), (default, 1));
        assert_eq!(ms("-5"), (default, 1));
        // Out of range: clamped, with a warning.
        assert_eq!(ms("1"), (Some(BACKCHANNEL_TIMEOUT_MIN_MS), 1));
        assert_eq!(ms("99999999999"), (Some(BACKCHANNEL_TIMEOUT_MAX_MS), 1));
        let (_, w) = env(&[("XCSAVE_BACKCHANNEL_TIMEOUT_MS", "1")]);
        assert!(
            w[0].contains("XCSAVE_BACKCHANNEL_TIMEOUT_MS=1 is out of range"),
            "{w:?}"
        );
    }

    #[test]
    fn one_dialect_for_every_yes_no() {
        for (v, want) in [
            ("yes", true),
            ("On", true),
            (" 1 ", true),
            ("TRUE", true),
            ("y", true),
        ] {
            let (s, w) = env(&[("XCSAVE_DISABLE", v), ("XCSAVE_CACHE", v)]);
            assert!(w.is_empty(), "{v}");
            assert_eq!((s.disable, s.cache.enabled), (want, want), "{v}");
        }
        for v in ["no", "off", "0", "false", "N"] {
            let (s, w) = env(&[("XCSAVE_DISABLE", v), ("XCSAVE_CACHE", v)]);
            assert!(w.is_empty(), "{v}");
            assert_eq!((s.disable, s.cache.enabled), (false, false), "{v}");
        }
        let (s, w) = env(&[("XCSAVE_DISABLE", "maybe"), ("XCSAVE_CACHE", "perhaps")]);
        assert_eq!((s.disable, s.cache.enabled, w.len()), (false, true, 2));
    }

    #[test]
    fn the_restore_buffer_is_in_mib_and_0_is_the_default() {
        assert_eq!(env(&[]).0.restore_buffer, None);
        let (s, w) = env(&[("XCSAVE_RESTORE_BUFFER_MB", "0")]);
        assert_eq!((s.restore_buffer, w.len()), (None, 0));
        let (s, w) = env(&[("XCSAVE_RESTORE_BUFFER_MB", "64")]);
        assert_eq!((s.restore_buffer, w.len()), (Some(64 << 20), 0));
        let (s, w) = env(&[("XCSAVE_RESTORE_BUFFER_MB", "lots")]);
        assert_eq!(s.restore_buffer, None);
        assert!(w[0].contains("XCSAVE_RESTORE_BUFFER_MB"), "{w:?}");
    }

    #[test]
    fn the_restore_switch_is_per_direction() {
        let (s, w) = env(&[("XCSAVE_RESTORE", "off")]);
        assert_eq!((s.disable, s.restore, w.len()), (false, false, 0));
        let (s, w) = env(&[("XCSAVE_RESTORE", "sometimes")]);
        assert!(s.restore);
        assert!(w[0].contains("XCSAVE_RESTORE"), "{w:?}");
    }

    #[test]
    fn invalid_values_warn_and_give_defaults() {
        let (s, w) = env(&[
            ("XCSAVE_LOG", "debgu"),
            ("XCSAVE_CACHE_MB", "x"),
            ("XCSAVE_CACHE_BUCKET_KB", "12"),
        ]);
        assert_eq!(s.log_level, log::LevelFilter::Debug);
        let default_whole = CacheConfig {
            whole: WholeConfig::default(),
            ..s.cache
        };
        assert_eq!(default_whole, CacheConfig::default());
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("XCSAVE_LOG"));
        let (s, w) = env(&[("XCSAVE_LOG", "Off")]);
        assert_eq!((s.log_level, w.len()), (log::LevelFilter::Off, 0));
    }

    #[test]
    fn out_of_range_values_are_clamped_with_a_warning() {
        let (s, w) = env(&[
            ("XCSAVE_CACHE_MB", "18446744073709551615"),
            ("XCSAVE_CACHE_BUCKET_KB", "4"),
            ("XCSAVE_CACHE_MAX_AGE", "5000000000"),
        ]);
        assert_eq!(w.len(), 3, "{w:?}");
        assert_eq!(s.cache.bucket_pages, 16);
        assert_eq!(s.cache.max_age, 4096);
        assert!(s.cache.budget_bytes < 1 << 40);
    }

    #[test]
    fn the_override_wins_over_the_environment() {
        let o = CacheConfig {
            enabled: false,
            ..CacheConfig::default()
        };
        let (s, _) = Settings::from_lookup(
            |k| (k == "XCSAVE_CACHE").then(|| "on".into()),
            Limits::default(),
            Some(o),
        );
        // The whole-guest caps come from the environment either way.
        assert_eq!(
            CacheConfig {
                whole: o.whole,
                ..s.cache
            },
            o
        );
    }

    #[test]
    fn whole_guest_settings() {
        // On by default, under a 64 GiB cap.
        let (s, w) = env(&[]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.cache.whole.cap_bytes, 64 << 30);
        let (s, w) = env(&[
            ("XCSAVE_CACHE_WHOLE_MB", "2048"),
            ("XCSAVE_CACHE_WHOLE_VMAS", "100"),
            ("XCSAVE_DOM0_UNPOPULATED", "no"),
        ]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.cache.whole.cap_bytes, 2 << 30);
        assert_eq!(s.cache.whole.max_vmas, 100);
        assert!(!s.cache.whole.unpopulated_alloc);
        let (s, w) = env(&[
            ("XCSAVE_CACHE_WHOLE_MB", "0"),
            ("XCSAVE_CACHE_WHOLE_VMAS", "1000000"),
            ("XCSAVE_DOM0_UNPOPULATED", "yes"),
        ]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(s.cache.whole.cap_bytes, 0);
        assert_eq!(s.cache.whole.max_vmas, DEFAULT_MAX_MAP_COUNT / 2);
        assert!(s.cache.whole.unpopulated_alloc);
        let (s, w) = env(&[("XCSAVE_CACHE_WHOLE_MB", "lots")]);
        assert_eq!(
            (s.cache.whole.cap_bytes, w.len()),
            (DEFAULT_WHOLE_CAP_BYTES, 1)
        );
    }

    #[test]
    fn the_patrol_bound_is_read_with_or_without_the_override() {
        assert_eq!(env(&[]).0.cache.patrol, 64);
        let (s, w) = env(&[("XCSAVE_CACHE_PATROL", "0")]);
        assert_eq!((s.cache.patrol, w.len()), (0, 0));
        let (s, w) = env(&[("XCSAVE_CACHE_PATROL", "x")]);
        assert_eq!((s.cache.patrol, w.len()), (64, 1));
        let (s, w) = env(&[("XCSAVE_CACHE_PATROL", "1")]);
        assert_eq!((s.cache.patrol, w.len()), (2, 1));
        let (s, _) = Settings::from_lookup(
            |k| (k == "XCSAVE_CACHE_PATROL").then(|| "8".into()),
            Limits::default(),
            Some(CacheConfig::default()),
        );
        assert_eq!(s.cache.patrol, 8);
    }

    #[test]
    fn the_vma_limit_is_read() {
        assert!(limits().max_map_count > 0);
    }
}
