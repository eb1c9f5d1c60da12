// SPDX-License-Identifier: GPL-3.0-only
//! The cheap per-checkpoint signals (docs/coherence.md) and how a change in them is judged.

use crate::hv::DomainSignals;

/// What a signal change means for the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing cheap says a mapping may be stale.
    Keep,
    /// Unmap every bucket: the named counter changed.
    Flush(&'static str),
    /// Stop caching for this domain: the p2m can change without any signal we see.
    Disable(&'static str),
}

impl DomainSignals {
    /// Why caching is unsafe for this domain at all, if it is: populate-on-demand entries are
    /// populated (and reclaimed) by Xen on access, without a counter we could compare; with
    /// mem_paging, mapping a whole bucket would page in frames the batch does not need.
    pub fn unsafe_to_cache(&self) -> Option<&'static str> {
        if self.pod_entries != 0 || self.pod_cache_pages != 0 {
            Some("populate-on-demand in use")
        } else if self.paged_pages != 0 {
            Some("pages are paged out (mem_paging)")
        } else {
            None
        }
    }

    /// The restore's own populate of `pfns`, as Xen counts it (docs/coherence.md, "The
    /// receiving side"): each pfn gets a new frame (`tot_pages` + 1), and the highest
    /// populated gfn may move up. The restore knows exactly what it populated, so these are
    /// explained changes, not signals. A populate over a present page whose old frame is then
    /// freed (Xen's, or the cache's dropping its mapping) leaves `tot_pages` below the
    /// expectation, and the next check flushes: the safe side.
    pub fn after_own_populate(&mut self, pfns: &[u64]) {
        self.tot_pages = self.tot_pages.saturating_add(pfns.len() as u64);
        if let Some(&top) = pfns.iter().max() {
            self.max_gpfn = self.max_gpfn.max(top);
        }
    }

    /// Judges the change from `prev` (the last observation) to `self`.
    pub fn judge(&self, prev: &DomainSignals) -> Verdict {
        if let Some(why) = self.unsafe_to_cache() {
            return Verdict::Disable(why);
        }
        let fields: [(&'static str, u64, u64); 5] = [
            ("tot_pages", prev.tot_pages, self.tot_pages),
            ("max_pages", prev.max_pages, self.max_pages),
            ("max_gpfn", prev.max_gpfn, self.max_gpfn),
            ("shr_pages", prev.shr_pages, self.shr_pages),
            ("paged_pages", prev.paged_pages, self.paged_pages),
        ];
        match fields.iter().find(|(_, a, b)| a != b) {
            Some((name, _, _)) => Verdict::Flush(name),
            None => Verdict::Keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_is_judged() {
        let base = DomainSignals {
            tot_pages: 100,
            max_pages: 200,
            max_gpfn: 99,
            ..Default::default()
        };
        assert_eq!(base.judge(&base), Verdict::Keep);
        type Case = (fn(&mut DomainSignals), Verdict);
        let cases: [Case; 7] = [
            (|s| s.tot_pages += 1, Verdict::Flush("tot_pages")),
            (|s| s.max_pages -= 1, Verdict::Flush("max_pages")),
            (|s| s.max_gpfn += 1, Verdict::Flush("max_gpfn")),
            (|s| s.shr_pages = 1, Verdict::Flush("shr_pages")),
            (
                |s| s.paged_pages = 1,
                Verdict::Disable("pages are paged out (mem_paging)"),
            ),
            (
                |s| s.pod_entries = 1,
                Verdict::Disable("populate-on-demand in use"),
            ),
            (
                |s| s.pod_cache_pages = 1,
                Verdict::Disable("populate-on-demand in use"),
            ),
        ];
        for (change, want) in cases {
            let mut s = base;
            change(&mut s);
            assert_eq!(s.judge(&base), want);
        }
    }

    #[test]
    fn the_restores_own_populates_are_explained() {
        let mut expected = DomainSignals {
            tot_pages: 100,
            max_pages: 200,
            max_gpfn: 99,
            ..Default::default()
        };
        expected.after_own_populate(&[5, 150, 7]);
        let seen = DomainSignals {
            tot_pages: 103,
            max_gpfn: 150,
            ..expected
        };
        assert_eq!(seen.judge(&expected), Verdict::Keep);
        // One more page than the restore populated: the secondary did it.
        let more = DomainSignals {
            tot_pages: 104,
            ..seen
        };
        assert_eq!(more.judge(&expected), Verdict::Flush("tot_pages"));
    }
}
