// SPDX-License-Identifier: GPL-3.0-only
//! The patrol (docs/coherence.md §8.1): after each checkpoint's postcopy, while the guest
//! runs, a cursor visits the next `share = ceil(B_max / (N - 1))` cached buckets in bucket
//! order, wrapping, so that every cached bucket is visited at least once in N - 1 checkpoints.
//! A visit maps the bucket afresh and compares it with the cached mapping, page by page: a
//! page whose bytes differ, or that is mapped now and was not then, is sent again at the next
//! checkpoint; the fresh mapping then replaces the old one. This file owns the cursor and the
//! comparison; `domain.rs` does the mapping.

use crate::hv::PageMapping;

/// The patrol's cursor and share.
pub(super) struct Patrol {
    /// Buckets visited per checkpoint.
    share: u64,
    /// The bucket number the next visit starts from.
    cursor: u64,
}

impl Patrol {
    /// A patrol with bound `n` checkpoints over a cache of at most `max_buckets` buckets;
    /// `None` when `n` is 0 (off).
    pub(super) fn new(n: u32, max_buckets: u64) -> Option<Patrol> {
        let intervals = u64::from(n).checked_sub(1).filter(|&i| i > 0)?;
        Some(Patrol {
            share: max_buckets.div_ceil(intervals).max(1),
            cursor: 0,
        })
    }

    /// Buckets visited per checkpoint.
    pub(super) fn share(&self) -> u64 {
        self.share
    }

    /// The next `want` buckets for which `cached(b)` holds, from the cursor on in bucket order
    /// among `buckets`, wrapping once at most; the cursor moves past the last one.
    pub(super) fn next_buckets(
        &mut self,
        want: u64,
        buckets: u64,
        cached: impl Fn(u64) -> bool,
        out: &mut Vec<u64>,
    ) {
        out.clear();
        let mut b = self.cursor;
        for _ in 0..buckets {
            if out.len() as u64 >= want {
                break;
            }
            if b >= buckets {
                b = 0;
            }
            if cached(b) {
                out.push(b);
            }
            b += 1;
        }
        self.cursor = b;
    }
}

/// The pages of one bucket whose current content may differ from what a cached mapping
/// showed: mapped in both and different bytes (the frame changed), or mapped only in the
/// fresh mapping (populated since). `old_err(j)` and `fresh_err[j]` are the map calls'
/// per-page errors (0: mapped). A page mapped only in the old mapping was released: its type
/// now has no data, and nothing is sent for it.
pub(super) fn changed_pages<M: PageMapping>(
    old: &M,
    old_err: impl Fn(u32) -> i32,
    fresh: &M,
    fresh_err: &[i32],
    mut changed: impl FnMut(u32),
) {
    for (j, &e) in fresh_err.iter().enumerate() {
        if e != 0 {
            continue;
        }
        let j32 = j as u32;
        if old_err(j32) != 0 || old.page(j) != fresh.page(j) {
            changed(j32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_covers_the_cache_in_n_minus_one_visits() {
        assert!(Patrol::new(0, 252).is_none());
        assert!(Patrol::new(1, 252).is_none());
        assert_eq!(Patrol::new(64, 252).unwrap().share(), 4); // 1 GiB guest, 256 MiB
        assert_eq!(Patrol::new(64, 1020).unwrap().share(), 17); // 16 GiB guest, 1 GiB
        assert_eq!(Patrol::new(2, 5).unwrap().share(), 5);
        assert_eq!(Patrol::new(64, 0).unwrap().share(), 1);
    }

    #[test]
    fn the_cursor_wraps_and_visits_every_cached_bucket() {
        let mut p = Patrol::new(3, 4).unwrap(); // share 2
        let cached = |b: u64| b.is_multiple_of(3); // 0, 3, 6, 9 of 10
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for _ in 0..2 {
            p.next_buckets(p.share(), 10, cached, &mut out);
            seen.extend_from_slice(&out);
        }
        assert_eq!(seen, [0, 3, 6, 9]);
        p.next_buckets(3, 10, cached, &mut out);
        assert_eq!(out, [0, 3, 6]);
        p.next_buckets(u64::MAX, 10, cached, &mut out);
        assert_eq!(out, [9, 0, 3, 6]);
        p.next_buckets(2, 10, |_| false, &mut out);
        assert!(out.is_empty());
    }
}
