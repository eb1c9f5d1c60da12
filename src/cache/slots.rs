// SPDX-License-Identifier: GPL-3.0-only
//! Slot bookkeeping of a [`DomainCache`]: mapping and unmapping buckets within the budget,
//! the bucket index, and the counters that go with them.

use std::io;

use super::bucket::Bucket;
use super::config::PAGE_BYTES;
use super::domain::{DomainCache, NIL};
use super::mapper::BucketMapper;
use super::policy::History;
use crate::fallible;

impl<M> DomainCache<M> {
    /// Evicts buckets the current pass has not used, least recently used first, until bucket
    /// `b` fits (scan resistance: see `policy.rs`).
    pub(super) fn make_room(&mut self, b: u64) -> bool {
        let need = self.bucket_len(b);
        let cap = self.capacity();
        need <= cap && self.evict_while(cap - need, Some(self.pass))
    }

    /// True if bucket `b` fits in the cache without evicting anything.
    pub(super) fn has_room(&self, b: u64) -> bool {
        self.cached_pages + self.bucket_len(b) <= self.capacity()
    }

    /// Pages the cached buckets may hold: the budget less the batch reserve, or less after a
    /// refused map (ENOMEM).
    fn capacity(&self) -> u64 {
        self.cfg.cache_capacity_pages().min(self.enomem_cap)
    }

    /// Evicts unpinned buckets, least recently used first, until at most `pages` stay cached.
    pub(super) fn evict_to(&mut self, pages: u64) -> bool {
        self.evict_while(pages, None)
    }

    /// Evicts unpinned buckets not used in pass `protect`, least recently used first, until
    /// at most `pages` stay cached; false if the rest cannot go.
    fn evict_while(&mut self, pages: u64, protect: Option<u32>) -> bool {
        while self.cached_pages > pages {
            let (batch, slots) = (self.batch, &self.slots);
            let victim = self.lru.find_lru(|s| {
                slots[s as usize]
                    .as_ref()
                    .is_some_and(|bk| bk.pinned_batch != batch && Some(bk.used_pass) != protect)
            });
            let Some(v) = victim else {
                return false;
            };
            self.drop_slot(v);
            self.stats.evictions += 1;
        }
        true
    }

    /// A bucket map was refused with ENOMEM: the system cannot back more foreign mappings
    /// (a PVH dom0 out of frames, or the process out of VMAs). Every frame the cache holds is
    /// one the per-batch mappings, ours and other processes', may need: from now on cache
    /// nothing, as stock. Buckets the open batch pinned go when it ends.
    pub(super) fn give_up_after_enomem(&mut self) {
        if self.enomem_cap != 0 {
            log::info!(
                "dom{}: mapping cache emptied: a bucket map failed with ENOMEM",
                self.domid
            );
        }
        self.enomem_cap = 0;
        self.evict_to(0);
    }

    pub(super) fn map_bucket<X: BucketMapper<Mapping = M>>(
        &mut self,
        mapper: &mut X,
        b: u64,
    ) -> io::Result<u32> {
        let first = b << self.shift;
        let n = self.bucket_len(b);
        self.pfn_buf.clear();
        self.pfn_buf.extend(first..first + n);
        self.err_buf.clear();
        self.err_buf.resize(n as usize, 0);
        let m = mapper.map(&self.pfn_buf, &mut self.err_buf)?;
        self.note_map(n);
        let bk = Bucket::new(b, m, &self.err_buf, (self.epoch, self.batch, self.pass));
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.slots[slot as usize] = Some(bk);
        self.index[b as usize] = slot;
        self.cached_pages += n;
        self.pinned.push(slot);
        self.lru.touch(slot);
        Ok(slot)
    }

    pub(super) fn bucket(&self, slot: u32) -> &Bucket<M> {
        self.slots[slot as usize]
            .as_ref()
            .expect("indexed slot holds a bucket")
    }

    pub(super) fn bucket_mut(&mut self, slot: u32) -> &mut Bucket<M> {
        self.slots[slot as usize]
            .as_mut()
            .expect("indexed slot holds a bucket")
    }

    pub(super) fn page_in_bucket(&self, pfn: u64) -> u32 {
        (pfn & ((1 << self.shift) - 1)) as u32
    }

    /// Pages in bucket `b` (the last bucket may be short).
    fn bucket_len(&self, b: u64) -> u64 {
        let first = b << self.shift;
        (1u64 << self.shift).min(self.p2m_size - first)
    }

    /// Unmaps the bucket in `slot` and forgets it.
    pub(super) fn drop_slot(&mut self, slot: u32) {
        let Some(bk) = self.slots[slot as usize].take() else {
            return;
        };
        self.free.push(slot);
        self.lru.remove(slot);
        self.index[bk.number as usize] = NIL;
        let n = bk.pages();
        self.cached_pages -= n;
        drop(bk);
        self.note_unmap(n);
    }

    pub(super) fn note_map(&mut self, pages: u64) {
        let s = &mut self.stats;
        s.maps += 1;
        s.vmas += 1;
        s.bytes_mapped += pages * PAGE_BYTES;
        s.mapped_bytes += pages * PAGE_BYTES;
        s.peak_vmas = s.peak_vmas.max(s.vmas);
        s.peak_mapped_bytes = s.peak_mapped_bytes.max(s.mapped_bytes);
    }

    pub(super) fn note_unmap(&mut self, pages: u64) {
        let s = &mut self.stats;
        s.unmaps += 1;
        s.vmas -= 1;
        s.mapped_bytes -= pages * PAGE_BYTES;
    }

    /// Sizes the bucket index and history for `p2m_size` pfns. Only called with nothing
    /// mapped. Both are allocated fallibly (`fallible.rs`, one counted allocation each): if
    /// either fails, caching is off for the rest of the save and `p2m_size` is 0, so no
    /// lookup indexes the empty index or history (the save goes on, mapped per batch).
    pub(super) fn resize(&mut self, p2m_size: u64) {
        // The old index goes first: it is rebuilt whole, and need not coexist with the new.
        self.index = Vec::new();
        self.p2m_size = 0;
        let n = usize::try_from(p2m_size.div_ceil(1 << self.shift)).unwrap_or(usize::MAX);
        let sized = fallible::try_with_capacity(n).and_then(|mut index| {
            let mut seen = fallible::try_with_capacity(n)?;
            // The history of the buckets that stay is still true.
            seen.extend(self.seen.iter().take(n).copied());
            seen.resize(n, History::default());
            index.resize(n, NIL);
            Ok((index, seen))
        });
        match sized {
            Ok((index, seen)) => {
                self.index = index;
                self.seen = seen;
                self.p2m_size = p2m_size;
            }
            Err(_) => {
                self.seen = Vec::new();
                self.deferred.clear();
                self.disable("no memory for the bucket index");
            }
        }
    }

    pub(super) fn publish(&self) {
        self.registry.publish(self.domid, &self.stats);
    }
}
