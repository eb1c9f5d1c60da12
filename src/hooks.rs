// SPDX-License-Identifier: GPL-3.0-only
//! Fallible allocation, and the test hooks that prove the failure paths (docs/reliability.md).
//!
//! Every large buffer a save allocates (dirty and deferred bitmaps, the scan copy, batch
//! arrays, the HVM context, back-channel records) goes through [`try_zeroed`] or
//! [`try_with_capacity`], which return ENOMEM instead of aborting the caller's process.
//!
//! Test hooks, read from the environment at the start of each save (never at load time) and
//! active for that save's thread only:
//! - `XCSAVE_TEST_FAIL_ALLOC=<n>`: the n-th fallible allocation of the save fails (ENOMEM);
//! - `XCSAVE_TEST_PANIC=<stage>`: panic at `setup`, `batch` (while a batch's pages are
//!   mapped), `checkpoint` (after a CHECKPOINT record, mappings cached), `end` or `cleanup`
//!   (mappings still held, outside the engine's catch);
//! - `XCSAVE_TEST_LEAK=1`: leak one 4 KiB allocation per save (shows `make check-leaks` can
//!   fail).
//!
//! Unset (the normal case), each costs one thread-local read.

use crate::error::{Errno, Result};
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
    static ARMED: Cell<Armed> = const { Cell::new(Armed { fail_alloc: 0, allocs: 0, panic: None }) };
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
fn count_alloc() -> Result<()> {
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

/// Check a non-Rust allocation (a hypercall buffer) against the hook before making it.
pub fn check_alloc() -> Result<()> {
    count_alloc()
}

/// An empty vector with room for `n` elements, or ENOMEM.
pub fn try_with_capacity<T>(n: usize) -> Result<Vec<T>> {
    count_alloc()?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Errno(libc::ENOMEM))?;
    Ok(v)
}

/// `n` copies of `T::default()`, or ENOMEM.
pub fn try_zeroed<T: Clone + Default>(n: usize) -> Result<Vec<T>> {
    let mut v = try_with_capacity(n)?;
    v.resize(n, T::default());
    Ok(v)
}

/// Reserve room for `more` elements, or ENOMEM.
pub fn try_reserve<T>(v: &mut Vec<T>, more: usize) -> Result<()> {
    count_alloc()?;
    v.try_reserve(more).map_err(|_| Errno(libc::ENOMEM))
}

/// Panic here if the test hook names this stage.
pub fn panic_point(stage: Stage) {
    if ARMED.with(|a| a.get().panic) == Some(stage) {
        panic!("XCSAVE_TEST_PANIC at {stage:?}");
    }
}

/// The message of a caught panic.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_allocation_fails_once_and_guard_disarms() {
        let g = arm_from(|k| (k == "XCSAVE_TEST_FAIL_ALLOC").then(|| "2".into()));
        assert!(try_zeroed::<u64>(4).is_ok());
        assert_eq!(try_zeroed::<u64>(4), Err(Errno(libc::ENOMEM)));
        assert!(try_with_capacity::<u8>(4).is_ok());
        drop(g);
        assert!(try_zeroed::<u64>(4).is_ok());
    }

    #[test]
    fn impossible_allocation_is_enomem_not_abort() {
        assert_eq!(
            try_with_capacity::<u64>(usize::MAX / 4).unwrap_err(),
            Errno(libc::ENOMEM)
        );
        let mut v = vec![0u8; 1];
        assert_eq!(try_reserve(&mut v, usize::MAX), Err(Errno(libc::ENOMEM)));
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
