// SPDX-License-Identifier: GPL-3.0-only
//! An intrusive least-recently-used list over slot numbers: O(1) touch and remove.

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    linked: bool,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
    linked: false,
};

/// Doubly linked list of slot numbers, least recently used first.
pub(super) struct Lru {
    links: Vec<Link>,
    head: u32,
    tail: u32,
}

impl Lru {
    /// An empty list.
    pub(super) fn new() -> Self {
        Lru {
            links: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    /// Makes `slot` the most recently used entry, inserting it if absent.
    pub(super) fn touch(&mut self, slot: u32) {
        let i = slot as usize;
        if i >= self.links.len() {
            self.links.resize(i + 1, UNLINKED);
        }
        if self.links[i].linked {
            if self.tail == slot {
                return;
            }
            self.remove(slot);
        }
        self.links[i] = Link {
            prev: self.tail,
            next: NIL,
            linked: true,
        };
        if self.tail == NIL {
            self.head = slot;
        } else {
            self.links[self.tail as usize].next = slot;
        }
        self.tail = slot;
    }

    /// Removes `slot` if present.
    pub(super) fn remove(&mut self, slot: u32) {
        let Some(link) = self.links.get(slot as usize).copied() else {
            return;
        };
        if !link.linked {
            return;
        }
        if link.prev == NIL {
            self.head = link.next;
        } else {
            self.links[link.prev as usize].next = link.next;
        }
        if link.next == NIL {
            self.tail = link.prev;
        } else {
            self.links[link.next as usize].prev = link.prev;
        }
        self.links[slot as usize] = UNLINKED;
    }

    /// The first slot, from least recently used on, for which `pred` holds.
    pub(super) fn find_lru(&self, mut pred: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut cur = self.head;
        while cur != NIL {
            if pred(cur) {
                return Some(cur);
            }
            cur = self.links[cur as usize].next;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn order_touch_remove() {
        let mut l = Lru::new();
        for s in [3, 1, 2] {
            l.touch(s);
        }
        assert_eq!(l.find_lru(|_| true), Some(3));
        l.touch(3);
        assert_eq!(l.find_lru(|_| true), Some(1));
        assert_eq!(l.find_lru(|s| s != 1), Some(2));
        l.remove(1);
        l.remove(1);
        assert_eq!(l.find_lru(|_| true), Some(2));
        l.remove(2);
        l.remove(3);
        assert_eq!(l.find_lru(|_| true), None);
        l.touch(7);
        assert_eq!(l.find_lru(|_| true), Some(7));
    }
}
