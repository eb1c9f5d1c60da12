// SPDX-License-Identifier: GPL-3.0-only
//! Which buckets the cache maps whole, and which it may evict (docs/performance.md, "Cache
//! policy").
//!
//! Mapping a bucket costs `bucket_pages` pages of hypercall work; sending `k` of its pages
//! from the per-batch mapping costs `k`, as with the stock saver. A bucket pays only if its
//! pages are asked for again, often enough, before it goes. So each pass has an [`Admit`]
//! rule, chosen from what follows it:
//! - a **full pass** (live iteration 0, a non-live save, a save's first pass) admits nothing:
//!   touching every page once is no evidence of reuse;
//! - a pass of a **checkpointed** stream (Remus, COLO: its precopy, its checkpoints) admits a
//!   bucket when the batch asks for at least 1/[`DENSE_DIVISOR`] of its pages, or when the
//!   previous pass asked for its pages too: the stream goes on, so a reused bucket is paid
//!   back within a few checkpoints;
//! - a precopy pass of a **plain** migration (a few passes left at most) admits a bucket only
//!   when the previous pass asked for it and the batch asks for half its pages or more;
//! - the **last pass** of a plain migration admits nothing: there is no later use.
//!
//! Misses that are not admitted go to the batch's one per-batch mapping, as stock maps. A
//! cached bucket found stale is remapped whole without asking again: it was admitted.
//!
//! **Scan resistance**: a bucket used in the current pass is never evicted to admit another
//! (that would re-map both at every checkpoint); the overflow goes per batch. Among buckets
//! the current pass has not used, the least recently used goes first.

use super::domain::DomainCache;

/// A checkpointed stream's batch that asks for at least `bucket_pages / DENSE_DIVISOR` pages
/// of a bucket maps it.
pub(crate) const DENSE_DIVISOR: u64 = 8;

/// A plain migration's precopy maps a reused bucket only if a batch asks for at least
/// `bucket_pages / HOT_DIVISOR` of its pages.
pub(crate) const HOT_DIVISOR: u64 = 2;

/// `seen` value of a bucket no non-full pass has asked for.
pub(super) const NEVER: u32 = 0;

/// Which missing buckets a pass maps whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// None (a full pass, the last pass of a plain migration).
    Nothing,
    /// Reused and hot (a plain migration's precopy).
    Hot,
    /// Dense or reused (a checkpointed stream).
    DenseOrReused,
}

impl Admit {
    /// The rule of a pass: `full` if it sends every page, `checkpointed` for Remus and COLO,
    /// `suspended` once the guest has been suspended (a plain stream's last pass).
    pub fn for_pass(full: bool, checkpointed: bool, suspended: bool) -> Admit {
        match (full, checkpointed, suspended) {
            (true, _, _) => Admit::Nothing,
            (false, true, _) => Admit::DenseOrReused,
            (false, false, false) => Admit::Hot,
            (false, false, true) => Admit::Nothing,
        }
    }
}

impl<M> DomainCache<M> {
    /// A new pass over the dirty bitmap starts, with admission rule `admit`.
    pub fn start_pass(&mut self, admit: Admit) {
        self.pass = self.pass.saturating_add(1);
        self.admission = admit;
    }

    /// Decides whether bucket `b`, not cached, is mapped whole for a batch that asks for
    /// `demand` of its pages. Records that this pass asked for it.
    pub(super) fn admit(&mut self, b: u64, demand: u64) -> bool {
        let rule = self.admission;
        if rule == Admit::Nothing {
            return false;
        }
        let prev = std::mem::replace(&mut self.seen[b as usize], self.pass);
        let reused = prev != NEVER && prev.wrapping_add(1) == self.pass;
        let pages = u64::from(self.cfg.bucket_pages);
        if rule == Admit::Hot {
            reused && demand * HOT_DIVISOR >= pages
        } else {
            reused || demand * DENSE_DIVISOR >= pages
        }
    }

    /// Records that this pass asked for pages of cached bucket `b`.
    pub(super) fn note_use(&mut self, b: u64) {
        if self.admission != Admit::Nothing {
            self.seen[b as usize] = self.pass;
        }
    }
}
