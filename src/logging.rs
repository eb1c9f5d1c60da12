// SPDX-License-Identifier: GPL-3.0-only
//! The `log` facade, routed to the caller's xentoollog logger.
//!
//! The logger is per call (each `xc_interface` has its own), so a save installs its handle
//! for the current thread with [`scope`]; lines logged outside a save are dropped.

use crate::abi::xen::Level;
use crate::xen::LogTarget;
use std::cell::Cell;

thread_local! {
    static TARGET: Cell<Option<LogTarget>> = const { Cell::new(None) };
}

struct XtlLog;

static LOGGER: XtlLog = XtlLog;

impl log::Log for XtlLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        TARGET.with(|t| t.get().is_some())
    }

    fn log(&self, record: &log::Record<'_>) {
        let Some(target) = TARGET.with(|t| t.get()) else {
            return;
        };
        let level = match record.level() {
            log::Level::Error => Level::Error,
            log::Level::Warn => Level::Warn,
            log::Level::Info => Level::Info,
            log::Level::Debug => Level::Debug,
            log::Level::Trace => Level::Debug,
        };
        target.emit(level, &record.args().to_string());
    }

    fn flush(&self) {}
}

/// Restores the previous target when dropped.
pub struct Scope {
    previous: Option<LogTarget>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        TARGET.with(|t| t.set(self.previous));
    }
}

/// Route this thread's `log` lines to `target` until the returned guard is dropped.
pub fn scope(target: LogTarget, level: log::LevelFilter) -> Scope {
    // Installing twice fails harmlessly; the first install wins.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
    Scope {
        previous: TARGET.with(|t| t.replace(Some(target))),
    }
}
