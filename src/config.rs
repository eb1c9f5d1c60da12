// SPDX-License-Identifier: GPL-3.0-only
//! Settings from the environment (`XCSAVE_*`), read at each save, never at load time:
//! LD_PRELOAD users cannot call a C API, so every setting must be reachable this way.
//!
//! - `XCSAVE_DISABLE=1`: hand every save to the stock `xc_domain_save` (escape hatch).
//! - `XCSAVE_LOG=off|error|warn|info|debug|trace`: the level of xcsave's own lines (default
//!   `debug`; they still pass through the caller's logger, which applies its own level).

/// Settings of one save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Hand everything to the stock saver.
    pub disable: bool,
    /// Level of xcsave's own log lines.
    pub log_level: log::LevelFilter,
}

/// Whether an environment value means "yes".
fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "y" | "yes" | "on" | "true"
    )
}

impl Config {
    /// Parse settings from a variable lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Config {
        let log_level = match get("XCSAVE_LOG").map(|v| v.trim().to_ascii_lowercase()) {
            Some(v) if v == "off" => log::LevelFilter::Off,
            Some(v) if v == "error" => log::LevelFilter::Error,
            Some(v) if v == "warn" => log::LevelFilter::Warn,
            Some(v) if v == "info" => log::LevelFilter::Info,
            Some(v) if v == "trace" => log::LevelFilter::Trace,
            _ => log::LevelFilter::Debug,
        };
        Config {
            disable: get("XCSAVE_DISABLE").is_some_and(|v| truthy(&v)),
            log_level,
        }
    }

    /// Settings from the process environment.
    pub fn from_env() -> Config {
        Config::from_lookup(|k| std::env::var(k).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_values() {
        let c = Config::from_lookup(|_| None);
        assert!(!c.disable);
        assert_eq!(c.log_level, log::LevelFilter::Debug);
        let c = Config::from_lookup(|k| match k {
            "XCSAVE_DISABLE" => Some("yes".into()),
            "XCSAVE_LOG" => Some("Off".into()),
            _ => None,
        });
        assert!(c.disable);
        assert_eq!(c.log_level, log::LevelFilter::Off);
        let c = Config::from_lookup(|k| (k == "XCSAVE_DISABLE").then(|| "0".into()));
        assert!(!c.disable);
    }
}
