// SPDX-License-Identifier: GPL-3.0-only
//! The saves running in this process, so that two that cannot both work are refused
//! (docs/decisions.md, issue 14): a second save of a domain already being saved would share
//! its log-dirty state (each CLEAN steals the other's dirty bits: both streams silently miss
//! pages), and a second save on an `xc_interface` already in use races the handle's progress
//! state (libxenctrl asserts). Each save claims its domain and its handle for its whole
//! length; the claim is released when its [`Claim`] is dropped, on every exit path, a panic's
//! unwinding included.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Domains and handles in save: (domain, `xc_interface` address) per running save.
pub(crate) struct Registry {
    saves: Mutex<Vec<(u32, usize)>>,
}

/// Why a save was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Busy {
    /// The domain is already being saved in this process.
    Domain(u32),
    /// The handle is already in use by the save of this other domain.
    Handle(u32),
}

impl Busy {
    /// The log line of the refusal.
    pub(crate) fn message(&self) -> String {
        match self {
            Busy::Domain(d) => format!(
                "xcsave: domain {d} is already being saved in this process: a second save \
                 would share its log-dirty state (EBUSY)"
            ),
            Busy::Handle(other) => format!(
                "xcsave: this xc_interface is already in use by the save of domain {other}: \
                 concurrent saves need one handle each (EBUSY)"
            ),
        }
    }
}

/// One save's claim on its domain and handle; dropping it releases both.
pub(crate) struct Claim<'r> {
    registry: &'r Registry,
    entry: (u32, usize),
}

impl Registry {
    /// An empty registry.
    pub(crate) const fn new() -> Registry {
        Registry {
            saves: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(u32, usize)>> {
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        self.saves.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claim `dom` and the handle at `xch` for one save, or say which one is taken.
    pub(crate) fn claim(&self, dom: u32, xch: usize) -> Result<Claim<'_>, Busy> {
        let mut saves = self.lock();
        if saves.iter().any(|&(d, _)| d == dom) {
            return Err(Busy::Domain(dom));
        }
        if let Some(&(other, _)) = saves.iter().find(|&&(_, x)| x == xch) {
            return Err(Busy::Handle(other));
        }
        saves.push((dom, xch));
        Ok(Claim {
            registry: self,
            entry: (dom, xch),
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut saves = self.registry.lock();
        if let Some(i) = saves.iter().position(|&e| e == self.entry) {
            saves.swap_remove(i);
        }
    }
}

/// The process's registry: every save through the exports claims here.
pub(crate) static SAVES: Registry = Registry::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_and_a_handle_are_claimed_once() {
        let r = Registry::new();
        let a = r.claim(1, 0x100).unwrap();
        assert_eq!(r.claim(1, 0x200).err(), Some(Busy::Domain(1)));
        assert_eq!(r.claim(2, 0x100).err(), Some(Busy::Handle(1)));
        // The domain is reported first when both are taken.
        assert_eq!(r.claim(1, 0x100).err(), Some(Busy::Domain(1)));
        let b = r.claim(2, 0x200).unwrap();
        assert_eq!(r.len(), 2);
        drop(a);
        // Released: the same domain on the first handle, or another handle, works again.
        let c = r.claim(1, 0x100).unwrap();
        assert_eq!(r.claim(3, 0x200).err(), Some(Busy::Handle(2)));
        drop((b, c));
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn a_panic_releases_the_claim() {
        let r = Registry::new();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _claim = r.claim(7, 0x700).unwrap();
            panic!("mid-save");
        }));
        assert!(caught.is_err());
        assert_eq!(r.len(), 0);
        assert!(r.claim(7, 0x700).is_ok());
    }

    #[test]
    fn messages_name_the_conflict() {
        assert!(Busy::Domain(4)
            .message()
            .contains("domain 4 is already being saved"));
        assert!(Busy::Handle(9).message().contains("save of domain 9"));
    }
}
