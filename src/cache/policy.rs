// SPDX-License-Identifier: GPL-3.0-only
//! Which buckets the cache maps whole, and which it may evict (docs/performance.md, "Cache
//! policy"): pure functions over what the cache observed, unit-tested here;
//! `DomainCache` applies them.
//!
//! Mapping a bucket costs `bucket_pages` pages of hypercall work; sending `k` of its pages
//! from the per-batch mapping costs `k`, as with the stock saver. A bucket pays only if its
//! pages are asked for again, often enough, before it goes (evicted, or remapped at
//! `max_age`). So each pass has an [`Admit`] rule, chosen from what follows it:
//! - a **full pass** (a non-live save, a checkpointed stream's first pass) admits nothing:
//!   touching every page once is no evidence of reuse. Except when the whole guest fits in
//!   the cache with room to spare ([`fits`]): then it maps every bucket,
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

    /// Pages the pass before the latest asked for (0 if it was not the one just before).
    pub(super) fn prev(&self) -> u64 {
        u64::from(self.prev)
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

    /// Whether this pass records which buckets it asks for (the reuse evidence).
    pub(super) fn tracks_use(self) -> bool {
        matches!(self, Admit::Hot | Admit::DenseOrReused)
    }

    /// Whether a missing bucket is mapped whole under a `Hot` or `DenseOrReused` rule: the
    /// batch asks for `demand` of its `bucket_pages` pages, the pass before asked for `prev`
    /// (0: none, or not the pass just before), and a bucket lives `max_age` checkpoints.
    pub(super) fn admits(self, prev: u64, demand: u64, bucket_pages: u64, max_age: u64) -> bool {
        match self {
            Admit::Nothing => false,
            Admit::Everything => true,
            Admit::Hot => prev > 0 && demand * HOT_DIVISOR >= bucket_pages,
            Admit::DenseOrReused => {
                demand * DENSE_DIVISOR >= bucket_pages
                    || (prev > 0
                        && (prev + demand) * max_age.max(1) >= PAYBACK_MARGIN * bucket_pages)
            }
        }
    }
}

/// True if a guest of `tot_pages` populated pages fits in a cache of `capacity` pages with
/// 1/8 of it to spare (for buckets that are partly holes).
pub(super) fn fits(tot_pages: u64, capacity: u64) -> bool {
    tot_pages <= capacity - capacity / 8
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
    fn admission_by_rule() {
        // 16-page buckets, max age 4.
        assert!(!Admit::Nothing.admits(16, 16, 16, 4));
        assert!(Admit::Everything.admits(0, 1, 16, 4));
        // Hot: reused and at least half the bucket now.
        assert!(!Admit::Hot.admits(0, 16, 16, 4));
        assert!(!Admit::Hot.admits(1, 7, 16, 4));
        assert!(Admit::Hot.admits(1, 8, 16, 4));
        // Dense: an eighth of the bucket; or reused enough to repay the map within max age.
        assert!(Admit::DenseOrReused.admits(0, 2, 16, 4));
        assert!(!Admit::DenseOrReused.admits(0, 1, 16, 4));
        assert!(Admit::DenseOrReused.admits(15, 1, 16, 4)); // (15 + 1) * 4 >= 4 * 16
        assert!(!Admit::DenseOrReused.admits(14, 1, 16, 4));
        assert!(Admit::DenseOrReused.admits(0, 2, 16, 0)); // age 0 counts as 1
        assert!(Admit::Hot.tracks_use() && Admit::DenseOrReused.tracks_use());
        assert!(!Admit::Nothing.tracks_use() && !Admit::Everything.tracks_use());
    }

    #[test]
    fn fits_with_an_eighth_to_spare() {
        assert!(fits(0, 0));
        assert!(fits(896, 1024));
        assert!(!fits(897, 1024));
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
