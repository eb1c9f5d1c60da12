// SPDX-License-Identifier: GPL-3.0-only
//! Fault injection, compiled only into test builds: the unit tests and the C suite's library
//! (cargo feature `fault-injection`, which `make tests` enables; docs/reliability.md). The
//! shipped library (`make lib`, `make install`) has the same entry points as no-ops, and no
//! `XCSAVE_TEST_` string: `make check` verifies that with `strings`.
//!
//! In a test build, read from the environment at the start of each save (never at load
//! time) and active for that save's thread only:
//! - `XCSAVE_TEST_FAIL_ALLOC=<n>`: the n-th fallible allocation of the save fails (ENOMEM);
//! - `XCSAVE_TEST_PANIC=<stage>`: panic at `setup`, `batch` (while a batch's pages are
//!   mapped), `checkpoint` (after a CHECKPOINT record, mappings cached), `end` or `cleanup`
//!   (mappings still held, outside the engine's catch);
//! - `XCSAVE_TEST_LEAK=1`: leak one 4 KiB allocation per save (shows `make check-leaks` can
//!   fail).

use crate::error::Result;

/// Where `XCSAVE_TEST_PANIC` can strike.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stage {
    /// After the guest-type setup (QEMU log-dirty on), before the bitmaps.
    Setup,
    /// Inside a batch, while its pages are mapped.
    Batch,
    /// After a CHECKPOINT record (cached mappings held).
    Checkpoint,
    /// Before the END record.
    End,
    /// In cleanup, after log-dirty is off, before the mappings are released (outside the
    /// engine's catch: the C surface's boundary).
    Cleanup,
}

#[cfg(any(test, feature = "fault-injection"))]
pub use armed::{arm_from, arm_from_env, count_alloc, panic_point, Guard};

#[cfg(not(any(test, feature = "fault-injection")))]
pub use inert::{arm_from_env, count_alloc, panic_point, Guard};

/// The shipped build: nothing to arm, nothing fails, nothing panics.
#[cfg(not(any(test, feature = "fault-injection")))]
mod inert {
    use super::{Result, Stage};

    /// Nothing to disarm.
    pub struct Guard;

    /// Arms nothing.
    #[inline(always)]
    pub fn arm_from_env() -> Guard {
        Guard
    }

    /// Never fails.
    #[inline(always)]
    pub fn count_alloc() -> Result<()> {
        Ok(())
    }

    /// Never panics.
    #[inline(always)]
    pub fn panic_point(_: Stage) {}
}

#[cfg(any(test, feature = "fault-injection"))]
mod armed {
    use super::{Result, Stage};
    use crate::error::Errno;
    use std::cell::Cell;

    #[derive(Clone, Copy, Default)]
    struct Armed {
        /// Fail the n-th fallible allocation (0: never).
        fail_alloc: u64,
        /// Fallible allocations so far in this save.
        allocs: u64,
        /// Panic at this stage.
        panic: Option<Stage>,
    }

    impl Stage {
        fn parse(s: &str) -> Option<Stage> {
            match s.trim() {
                "setup" => Some(Stage::Setup),
                "batch" => Some(Stage::Batch),
                "checkpoint" => Some(Stage::Checkpoint),
                "end" => Some(Stage::End),
                "cleanup" => Some(Stage::Cleanup),
                _ => None,
            }
        }
    }

    thread_local! {
        static ARMED: Cell<Armed> =
            const { Cell::new(Armed { fail_alloc: 0, allocs: 0, panic: None }) };
    }

    /// Disarms this thread's hooks when dropped.
    pub struct Guard {
        previous: Armed,
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            ARMED.with(|a| a.set(self.previous));
        }
    }

    /// Arm this thread's hooks from a variable lookup, for one save.
    pub fn arm_from(get: impl Fn(&str) -> Option<String>) -> Guard {
        let armed = Armed {
            fail_alloc: get("XCSAVE_TEST_FAIL_ALLOC")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
            allocs: 0,
            panic: get("XCSAVE_TEST_PANIC").and_then(|v| Stage::parse(&v)),
        };
        if get("XCSAVE_TEST_LEAK").is_some_and(|v| v.trim() == "1") {
            // black_box: an unused allocation would be optimised away, and nothing would leak.
            std::mem::forget(std::hint::black_box(vec![0x1eu8; 4096]));
        }
        Guard {
            previous: ARMED.with(|a| a.replace(armed)),
        }
    }

    /// Arm this thread's hooks from the process environment, for one save.
    pub fn arm_from_env() -> Guard {
        arm_from(|k| std::env::var(k).ok())
    }

    /// Count one fallible allocation; ENOMEM if the test hook says this one fails.
    pub fn count_alloc() -> Result<()> {
        ARMED.with(|a| {
            let mut s = a.get();
            if s.fail_alloc == 0 {
                return Ok(());
            }
            s.allocs += 1;
            a.set(s);
            if s.allocs == s.fail_alloc {
                Err(Errno(libc::ENOMEM))
            } else {
                Ok(())
            }
        })
    }

    /// Panic here if the test hook names this stage.
    pub fn panic_point(stage: Stage) {
        if ARMED.with(|a| a.get().panic) == Some(stage) {
            panic!("XCSAVE_TEST_PANIC at {stage:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{panic_message, Errno};

    #[test]
    fn nth_allocation_fails_once_and_guard_disarms() {
        let g = arm_from(|k| (k == "XCSAVE_TEST_FAIL_ALLOC").then(|| "2".into()));
        assert!(count_alloc().is_ok());
        assert_eq!(count_alloc(), Err(Errno(libc::ENOMEM)));
        assert!(count_alloc().is_ok());
        drop(g);
        assert!(count_alloc().is_ok());
    }

    #[test]
    fn panic_point_fires_only_when_armed() {
        panic_point(Stage::Batch);
        let _g = arm_from(|k| (k == "XCSAVE_TEST_PANIC").then(|| "batch".into()));
        panic_point(Stage::Setup);
        let r = std::panic::catch_unwind(|| panic_point(Stage::Batch));
        assert!(panic_message(&*r.unwrap_err()).contains("Batch"));
    }
}
