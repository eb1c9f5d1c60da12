// SPDX-License-Identifier: GPL-3.0-only
//! The store of one domain's mapped buckets: the bucket index (bucket number -> slot), the
//! slots and their free list, the LRU order, and the count of cached pages. It knows nothing
//! of batches, passes or policy: [`super::domain::DomainCache`] decides, the store keeps.

mod bucket;
mod lru;

pub(super) use bucket::Bucket;
use lru::Lru;

use crate::error::Result;
use crate::fallible;

/// No slot.
const NIL: u32 = u32::MAX;

/// Buckets of one domain, indexed by bucket number, in slots, in LRU order.
pub(super) struct Store<M> {
    /// log2 of the pages per bucket.
    shift: u32,
    /// Pfns the index covers (0: no index, nothing is looked up).
    p2m_size: u64,
    /// Bucket number -> slot (or [`NIL`]).
    index: Vec<u32>,
    slots: Vec<Option<Bucket<M>>>,
    free: Vec<u32>,
    lru: Lru,
    /// Pages held by the buckets.
    cached_pages: u64,
}

impl<M> Store<M> {
    /// An empty store of buckets of `bucket_pages` (a power of two) pages, with no index.
    pub(super) fn new(bucket_pages: u32) -> Self {
        Store {
            shift: bucket_pages.trailing_zeros(),
            p2m_size: 0,
            index: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            lru: Lru::new(),
            cached_pages: 0,
        }
    }

    /// Pfns the index covers.
    pub(super) fn p2m_size(&self) -> u64 {
        self.p2m_size
    }

    /// Buckets the index covers.
    pub(super) fn buckets(&self) -> u64 {
        self.index.len() as u64
    }

    /// Pages held by the buckets.
    pub(super) fn cached_pages(&self) -> u64 {
        self.cached_pages
    }

    /// The bucket number of `pfn`.
    pub(super) fn bucket_of(&self, pfn: u64) -> u64 {
        pfn >> self.shift
    }

    /// The page of `pfn` within its bucket.
    pub(super) fn page_in_bucket(&self, pfn: u64) -> u32 {
        (pfn & ((1 << self.shift) - 1)) as u32
    }

    /// The first pfn of bucket `b`.
    pub(super) fn first_pfn(&self, b: u64) -> u64 {
        b << self.shift
    }

    /// Pages in bucket `b` (the last bucket may be short). `b` is within the index.
    pub(super) fn bucket_len(&self, b: u64) -> u64 {
        (1u64 << self.shift).min(self.p2m_size - self.first_pfn(b))
    }

    /// The slot holding bucket `b`, if it is mapped (`b` within the index).
    pub(super) fn slot_of(&self, b: u64) -> Option<u32> {
        Some(self.index[b as usize]).filter(|&s| s != NIL)
    }

    /// The bucket in `slot`, if any.
    pub(super) fn try_get(&self, slot: u32) -> Option<&Bucket<M>> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// The bucket in `slot`, which holds one.
    pub(super) fn get(&self, slot: u32) -> &Bucket<M> {
        self.try_get(slot).expect("indexed slot holds a bucket")
    }

    /// The bucket in `slot`, which holds one, writable.
    pub(super) fn get_mut(&mut self, slot: u32) -> &mut Bucket<M> {
        self.slots[slot as usize]
            .as_mut()
            .expect("indexed slot holds a bucket")
    }

    /// Number of slots (held or free): every slot is below it.
    pub(super) fn slot_count(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Stores a bucket (its number within the index, not mapped yet) as the most recently
    /// used; returns its slot.
    pub(super) fn insert(&mut self, bk: Bucket<M>) -> u32 {
        let (b, n) = (bk.number, bk.pages());
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
        self.lru.touch(slot);
        slot
    }

    /// Takes the bucket out of `slot` (None if it is empty). Dropping it unmaps it.
    pub(super) fn remove(&mut self, slot: u32) -> Option<Bucket<M>> {
        let bk = self.slots[slot as usize].take()?;
        self.free.push(slot);
        self.lru.remove(slot);
        self.index[bk.number as usize] = NIL;
        self.cached_pages -= bk.pages();
        Some(bk)
    }

    /// Makes `slot` the most recently used.
    pub(super) fn touch(&mut self, slot: u32) {
        self.lru.touch(slot);
    }

    /// The least recently used slot whose bucket satisfies `pred`.
    pub(super) fn find_lru(&self, mut pred: impl FnMut(&Bucket<M>) -> bool) -> Option<u32> {
        let slots = &self.slots;
        self.lru
            .find_lru(|s| slots[s as usize].as_ref().is_some_and(&mut pred))
    }

    /// An empty index for `p2m_size` pfns, allocated fallibly (one counted allocation), to
    /// install with [`Store::set_index`].
    pub(super) fn new_index(&self, p2m_size: u64) -> Result<Vec<u32>> {
        let n = self.buckets_for(p2m_size);
        let mut index = fallible::try_with_capacity(n)?;
        index.resize(n, NIL);
        Ok(index)
    }

    /// Buckets covering `p2m_size` pfns.
    pub(super) fn buckets_for(&self, p2m_size: u64) -> usize {
        usize::try_from(p2m_size.div_ceil(1 << self.shift)).unwrap_or(usize::MAX)
    }

    /// Installs an index from [`Store::new_index`] for `p2m_size` pfns.
    pub(super) fn set_index(&mut self, index: Vec<u32>, p2m_size: u64) {
        self.index = index;
        self.p2m_size = p2m_size;
    }

    /// Bytes the index reserves (for the overhead test).
    #[cfg(test)]
    pub(super) fn index_capacity(&self) -> usize {
        self.index.capacity()
    }
}
