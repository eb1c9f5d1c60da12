// SPDX-License-Identifier: GPL-3.0-only
//! Coherence at checkpoints (signals, age), teardown requests, and the end of a cache's life.

use std::io;

use super::coherence::{DomainSignals, Verdict};
use super::domain::DomainCache;
use super::mapper::BucketMapper;

impl<X: BucketMapper> DomainCache<X> {
    /// Compares `signals` with the last observation and drops whatever may be stale
    /// (docs/coherence.md). Call it at setup-time iteration boundaries if wanted, and at every
    /// suspended checkpoint with `suspended = true`, which also ages the buckets and unmaps
    /// those that reached the maximum age. No batch may be open.
    pub fn observe(&mut self, signals: DomainSignals, suspended: bool) -> io::Result<Verdict> {
        if self.in_batch {
            return Err(io::Error::other("checkpoint with a batch open"));
        }
        self.check_teardown()?;
        let verdict = signals.judge(&self.signals);
        let grew = signals.max_gpfn != self.signals.max_gpfn;
        self.signals = signals;
        match verdict {
            Verdict::Keep => {}
            Verdict::Flush(why) => {
                log::debug!("dom{}: mapping cache flushed: {why} changed", self.domid);
                self.flush(true)?;
                if grew {
                    self.resize(signals.max_gpfn.saturating_add(1));
                }
            }
            Verdict::Disable(why) => {
                log::info!("dom{}: mapping cache disabled: {why}", self.domid);
                self.flush(true)?;
                self.disabled = true;
                self.stats.disabled = 1;
            }
        }
        if suspended {
            self.epoch += 1;
            self.stats.checkpoints += 1;
            self.expire()?;
        }
        self.publish();
        Ok(verdict)
    }

    /// Unmaps everything (END, failover, error, teardown). The cache stays usable; its
    /// counters stay published.
    pub fn finish(&mut self) -> io::Result<()> {
        let r = self.end_batch();
        let r = r.and(self.flush(false));
        self.publish();
        r
    }

    /// Honours a teardown request made since the last check.
    pub(super) fn check_teardown(&mut self) -> io::Result<()> {
        let g = self.registry.teardown_generation();
        if g == self.seen_teardown {
            return Ok(());
        }
        self.seen_teardown = g;
        self.flush(true)
    }

    /// Unmaps every cached bucket; counts them as invalidations if `invalidate`.
    fn flush(&mut self, invalidate: bool) -> io::Result<()> {
        let mut res = Ok(());
        for slot in 0..self.slots.len() as u32 {
            if self.slots[slot as usize].is_some() {
                if invalidate {
                    self.stats.invalidations += 1;
                }
                res = res.and(self.drop_slot(slot));
            }
        }
        res
    }

    /// Unmaps buckets mapped `max_age` or more checkpoints ago.
    fn expire(&mut self) -> io::Result<()> {
        let max_age = u64::from(self.cfg.max_age.max(1));
        let mut res = Ok(());
        for slot in 0..self.slots.len() as u32 {
            let old = self.slots[slot as usize]
                .as_ref()
                .is_some_and(|b| self.epoch - b.epoch >= max_age);
            if old {
                self.stats.expirations += 1;
                res = res.and(self.drop_slot(slot));
            }
        }
        res
    }
}

impl<X: BucketMapper> Drop for DomainCache<X> {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            log::warn!("dom{}: unmapping the mapping cache: {e}", self.domid);
        }
    }
}
