// SPDX-License-Identifier: GPL-3.0-only
//! Coherence at checkpoints (signals, age), teardown requests, and the end of a cache's life.

use super::coherence::Verdict;
use super::domain::DomainCache;
use crate::hv::DomainSignals;

impl<M> DomainCache<M> {
    /// Compares `signals` with the last observation and drops whatever may be stale
    /// (docs/coherence.md). Call it at every suspended checkpoint with `suspended = true`,
    /// which also ages the buckets and unmaps those that reached the maximum age; it may also
    /// be called at other quiet points with `suspended = false`.
    pub fn observe(&mut self, signals: DomainSignals, suspended: bool) -> Verdict {
        self.check_teardown();
        let verdict = signals.judge(&self.signals);
        let grew = signals.max_gpfn != self.signals.max_gpfn;
        self.signals = signals;
        match verdict {
            Verdict::Keep => {}
            Verdict::Flush(why) => {
                log::debug!("dom{}: mapping cache flushed: {why} changed", self.domid);
                self.flush(true);
                // A disabled cache has no index to grow (`p2m_size` stays 0).
                if grew && !self.disabled {
                    self.resize(signals.max_gpfn.saturating_add(1));
                }
            }
            Verdict::Disable(why) => self.disable(why),
        }
        if suspended {
            self.epoch += 1;
            self.stats.checkpoints += 1;
            self.expire();
        }
        self.publish();
        verdict
    }

    /// True while the cache keeps mappings across batches.
    pub fn caching(&self) -> bool {
        !self.disabled
    }

    /// Counts a checkpoint without checking anything (caching is off).
    pub fn count_checkpoint(&mut self, suspended: bool) {
        if suspended {
            self.stats.checkpoints += 1;
            self.publish();
        }
    }

    /// Stops caching for the rest of the save: everything is unmapped, and every later batch
    /// is mapped and unmapped on its own, as the stock saver does.
    pub fn disable(&mut self, why: &str) {
        if !self.disabled {
            log::info!("dom{}: mapping cache disabled: {why}", self.domid);
        }
        self.flush(true);
        self.disabled = true;
        self.stats.disabled = 1;
        self.publish();
    }

    /// Unmaps everything (END, failover, error, teardown). The counters stay published.
    pub fn finish(&mut self) {
        self.flush(false);
        self.publish();
    }

    /// Honours a teardown request made since the last check.
    pub(super) fn check_teardown(&mut self) {
        let g = self.registry.teardown_generation();
        if g != self.seen_teardown {
            self.seen_teardown = g;
            self.flush(true);
        }
    }

    /// Unmaps every cached bucket; counts them as invalidations if `invalidate`.
    fn flush(&mut self, invalidate: bool) {
        for slot in 0..self.slots.len() as u32 {
            if self.slots[slot as usize].is_some() {
                if invalidate {
                    self.stats.invalidations += 1;
                }
                self.drop_slot(slot);
            }
        }
    }

    /// Unmaps buckets mapped `max_age` or more checkpoints ago.
    fn expire(&mut self) {
        let max_age = u64::from(self.cfg.max_age.max(1));
        for slot in 0..self.slots.len() as u32 {
            let old = self.slots[slot as usize]
                .as_ref()
                .is_some_and(|b| self.epoch - b.epoch >= max_age);
            if old {
                self.stats.expirations += 1;
                self.drop_slot(slot);
            }
        }
    }
}

impl<M> Drop for DomainCache<M> {
    fn drop(&mut self) {
        self.finish();
    }
}
