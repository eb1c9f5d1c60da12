// SPDX-License-Identifier: GPL-3.0-only
//! Fallible allocation (docs/reliability.md): every large buffer a save allocates (dirty and
//! deferred bitmaps, the scan copy, batch arrays, the HVM context, back-channel records, the
//! cache's bucket index) goes through here, and gets ENOMEM instead of aborting the caller's
//! process. Test builds count each call for `XCSAVE_TEST_FAIL_ALLOC` ([`crate::faults`]).

use crate::error::{Errno, Result};
use crate::faults;

/// Check a non-Rust allocation (a hypercall buffer) against the fault hook before making it.
pub fn check_alloc() -> Result<()> {
    faults::count_alloc()
}

/// An empty vector with room for `n` elements, or ENOMEM.
pub fn try_with_capacity<T>(n: usize) -> Result<Vec<T>> {
    faults::count_alloc()?;
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
    faults::count_alloc()?;
    v.try_reserve(more).map_err(|_| Errno(libc::ENOMEM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_allocation_fails_through_every_helper() {
        let g = faults::arm_from(|k| (k == "XCSAVE_TEST_FAIL_ALLOC").then(|| "2".into()));
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
}
