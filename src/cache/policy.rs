// SPDX-License-Identifier: GPL-3.0-only
//! Which buckets the cache maps whole, and which it may evict (docs/performance.md, "Cache
//! policy").
//!
//! Mapping a bucket costs `bucket_pages` pages of hypercall work; sending `k` of its pages
//! from the per-batch mapping costs `k`, as with the stock saver. A bucket pays only if its
//! pages are asked for again, often enough, before it goes (evicted, or remapped at
//! `max_age`). So each pass has an [`Admit`] rule, chosen from what follows it:
//! - a **full pass** (a non-live save, a checkpointed stream's first pass) admits nothing:
//!   touching every page once is no evidence of reuse. Except when the whole guest fits in
//!   the cache with room to spare ([`DomainCache::guest_fits`]): then it maps every bucket,
//!   which costs the pages stock maps anyway, leaves nothing to map later, and covers every
//!   populated pfn (docs/coherence.md §8);
//! - the full pass of a **plain live** migration (iteration 0, the guest running) maps every
//!   bucket while there is room without evicting, then the rest per batch: the later
//!   iterations send pages the guest dirtied meanwhile, and hit the buckets retained. The
//!   engine calls [`PageSource::before_suspend`](crate::pages::PageSource::before_suspend)
//!   before it suspends the guest, and the cache unmaps them all then, outside the downtime;
//! - a pass of a **checkpointed** stream (Remus, COLO: its precopy, its checkpoints) admits a
//!   bucket when the batch asks for at least 1/[`DENSE_DIVISOR`] of its pages (dense), or
//!   when the previous pass asked for its pages too and the two passes asked for enough of
//!   them to repay the map within the bucket's bounded age (reused:
//!   `(previous + now) * max_age >= PAYBACK_MARGIN * bucket_pages`);
//! - a precopy pass of a **plain** migration (a few passes left at most) admits a bucket only
//!   when the previous pass asked for it and the batch asks for at least 1/[`HOT_DIVISOR`]
//!   of its pages;
//! - the **last pass** of a plain migration admits nothing: there is no later use.
//!
//! Misses that are not admitted go to the batch's one per-batch mapping, as stock maps. A
//! cached bucket found stale is remapped whole without asking again: it was admitted.
//!
//! **Scan resistance**: a bucket used in the current pass is never evicted to admit another
//! (that would re-map both at every checkpoint); the overflow goes per batch. Among buckets
//! the current pass has not used, the least recently used goes first.

use super::domain::{DomainCache, NIL};
use super::mapper::BucketMapper;

/// A checkpointed stream's batch that asks for at least `bucket_pages / DENSE_DIVISOR` pages
/// of a bucket maps it.
pub(crate) const DENSE_DIVISOR: u64 = 8;

/// A plain migration's precopy maps a reused bucket only if a batch asks for at least
/// `bucket_pages / HOT_DIVISOR` of its pages.
pub(crate) const HOT_DIVISOR: u64 = 2;

/// A reused bucket of a checkpointed stream is mapped when the pages asked for in the last
/// two passes, over the bucket's age, come to this many times the bucket: its map then
/// costs at most half of what mapping those pages per batch would.
pub(crate) const PAYBACK_MARGIN: u64 = 4;

/// What the recent passes asked of one bucket (8 bytes per bucket of the guest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct History {
    /// Last non-full pass that asked for its pages (0: none).
    pass: u32,
    /// Pages that pass asked for.
    pages: u16,
    /// Pages the pass before it asked for, if it was the one just before (else 0).
    prev: u16,
}

impl History {
    /// Counts `n` pages asked for in pass `pass`.
    pub(super) fn ask(&mut self, pass: u32, n: u64) {
        if self.pass != pass {
            self.prev = if self.pass != 0 && self.pass.wrapping_add(1) == pass {
                self.pages
            } else {
                0
            };
            self.pages = 0;
            self.pass = pass;
        }
        self.pages = self.pages.saturating_add(n.min(u64::from(u16::MAX)) as u16);
    }
}

/// Which missing buckets a pass maps whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// None (a full pass, the last pass of a plain migration).
    Nothing,
    /// Every bucket there is room for, without evicting (a full pass over a guest that fits,
    /// a plain live migration's full pass). Once the cache is full, a miss goes per batch.
    Everything,
    /// Reused and hot (a plain migration's precopy).
    Hot,
    /// Dense, or reused enough to repay the map (a checkpointed stream).
    DenseOrReused,
}

impl Admit {
    /// The rule of a pass: `full` if it sends every page, `checkpointed` for Remus and COLO,
    /// `suspended` once the guest has been suspended (a non-live save, a plain stream's last
    /// pass), `fits` if the whole guest fits in the cache.
    pub fn for_pass(full: bool, checkpointed: bool, suspended: bool, fits: bool) -> Admit {
        match (full, checkpointed, suspended) {
            (true, _, _) if fits => Admit::Everything,
            // A plain live migration's first pass: its later iterations hit what it retains.
            (true, false, false) => Admit::Everything,
            (true, _, _) => Admit::Nothing,
            (false, true, _) => Admit::DenseOrReused,
            (false, false, false) => Admit::Hot,
            (false, false, true) => Admit::Nothing,
        }
    }
}

impl<M> DomainCache<M> {
    /// True if the guest's populated pages fit in the cache with 1/8 of it to spare (for
    /// buckets that are partly holes).
    pub fn guest_fits(&self) -> bool {
        let cap = self.cfg.cache_capacity_pages().min(self.enomem_cap);
        self.caching() && self.signals.tot_pages <= cap - cap / 8
    }

    /// True if the cache holds a bucket or may map one in this pass. When it is false the
    /// batches of the pass are mapped per batch, as stock, and need no coherence check.
    pub fn may_map(&self) -> bool {
        self.caching() && (self.cached_pages > 0 || self.admission != Admit::Nothing)
    }

    /// A new pass over the dirty bitmap starts, with admission rule `admit`.
    pub fn start_pass(&mut self, admit: Admit) {
        self.pass = self.pass.saturating_add(1);
        self.admission = admit;
    }

    /// Decides whether bucket `b`, not cached, is mapped whole for a batch that asks for
    /// `demand` of its pages (the page at hand is one of them, and is counted).
    pub(super) fn admit(&mut self, b: u64, demand: u64) -> bool {
        let rule = self.admission;
        if rule == Admit::Everything {
            // Room without evicting: O(1), so a full cache costs a miss nothing more.
            return self.has_room(b);
        }
        if rule == Admit::Nothing {
            return false;
        }
        let h = &mut self.seen[b as usize];
        h.ask(self.pass, 1);
        let prev = u64::from(h.prev);
        let pages = u64::from(self.cfg.bucket_pages);
        if rule == Admit::Hot {
            return prev > 0 && demand * HOT_DIVISOR >= pages;
        }
        let age = u64::from(self.cfg.max_age.max(1));
        demand * DENSE_DIVISOR >= pages
            || (prev > 0 && (prev + demand) * age >= PAYBACK_MARGIN * pages)
    }

    /// Unmaps every bucket: the guest is about to be suspended for a plain migration's last
    /// pass, which caches nothing and sends a few pages per batch, as stock. Unmapping now
    /// keeps that work out of the downtime. Called between batches (nothing pinned).
    pub fn release_before_suspend(&mut self) {
        self.deferred.clear();
        self.finish();
    }

    /// Records that this pass asked for a page of cached bucket `b`.
    pub(super) fn note_use(&mut self, b: u64) {
        if matches!(self.admission, Admit::Hot | Admit::DenseOrReused) {
            self.seen[b as usize].ask(self.pass, 1);
        }
    }
}

impl<M> DomainCache<M> {
    /// Whether buckets admitted from now on are mapped only when the guest runs again
    /// ([`DomainCache::map_deferred`]): the passes of a checkpointed stream after its first
    /// suspend run inside the downtime, which should not pay for whole buckets.
    pub fn defer_maps(&mut self, defer: bool) {
        self.defer = defer;
    }

    /// Notes that bucket `b` is admitted, to map after the pass. At most what the cache can
    /// hold is remembered.
    pub(super) fn defer_map(&mut self, b: u64) {
        let room = self.cfg.cache_capacity_pages() / u64::from(self.cfg.bucket_pages);
        if self.deferred.last() != Some(&b) && (self.deferred.len() as u64) < room {
            self.deferred.push(b);
        }
    }

    /// Maps the buckets admitted during the last pass (the guest runs: outside the
    /// downtime), within the budget, evicting only buckets that pass did not use. A mapping
    /// made now is checked like any other at the next suspend (docs/coherence.md §7).
    pub fn map_deferred<X: BucketMapper<Mapping = M>>(&mut self, mapper: &mut X) {
        let todo = std::mem::take(&mut self.deferred);
        self.check_teardown();
        if self.disabled || todo.is_empty() {
            return;
        }
        self.batch += 1;
        for &b in &todo {
            if b >= self.index.len() as u64 || self.index[b as usize] != NIL {
                continue;
            }
            if !self.make_room(b) {
                break;
            }
            match self.map_bucket(mapper, b) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => {
                    self.give_up_after_enomem();
                    break;
                }
                Err(e) => {
                    // The next batch that needs these pages maps them, and reports errors.
                    log::debug!("dom{}: deferred bucket map failed: {e}", self.domid);
                    break;
                }
            }
        }
        self.end_batch();
        self.deferred = todo;
        self.deferred.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_previous_pass_only_if_consecutive() {
        let mut h = History::default();
        h.ask(3, 1);
        h.ask(3, 2);
        assert_eq!((h.pass, h.pages, h.prev), (3, 3, 0));
        h.ask(4, 1);
        assert_eq!((h.pages, h.prev), (1, 3));
        h.ask(6, 5);
        assert_eq!((h.pages, h.prev), (5, 0));
        h.ask(7, 100_000);
        assert_eq!((h.pages, h.prev), (u16::MAX, 5));
    }

    #[test]
    fn rules_by_pass() {
        assert_eq!(Admit::for_pass(true, true, true, false), Admit::Nothing);
        assert_eq!(Admit::for_pass(true, false, false, true), Admit::Everything);
        // Plain live migration's full pass retains; a non-live save's and a checkpointed
        // stream's full passes do not.
        assert_eq!(
            Admit::for_pass(true, false, false, false),
            Admit::Everything
        );
        assert_eq!(Admit::for_pass(true, false, true, false), Admit::Nothing);
        assert_eq!(Admit::for_pass(true, true, false, false), Admit::Nothing);
        assert_eq!(
            Admit::for_pass(false, true, false, true),
            Admit::DenseOrReused
        );
        assert_eq!(
            Admit::for_pass(false, true, true, false),
            Admit::DenseOrReused
        );
        assert_eq!(Admit::for_pass(false, false, false, false), Admit::Hot);
        assert_eq!(Admit::for_pass(false, false, true, true), Admit::Nothing);
    }
}
