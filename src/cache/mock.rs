// SPDX-License-Identifier: GPL-3.0-only
//! A mock guest and mapper for the unit tests. Frames are reference counted like Xen's pages:
//! a frame the guest released stays allocated (and counted in `tot_pages`) while a mapping
//! still references it, as Xen's `guest_remove_page` leaves it.

use std::cell::RefCell;
use std::io;
use std::rc::{Rc, Weak};

use super::mapper::BucketMapper;
use crate::hv::{DomainSignals, PageMapping};

/// One machine frame; its heap address stands for its content.
pub(crate) struct Frame {
    pub(crate) id: u64,
    bytes: Box<[u8]>,
}

/// Guest p2m: pfn -> frame.
pub(crate) struct Guest {
    p2m: Vec<Option<Rc<Frame>>>,
    all: Vec<Weak<Frame>>,
    next_id: u64,
    pub(crate) max_pages: u64,
    pub(crate) shr_pages: u64,
    pub(crate) pod_entries: u64,
}

impl Guest {
    /// A guest with `pages` populated pfns.
    pub(crate) fn new(pages: u64) -> Rc<RefCell<Guest>> {
        let mut g = Guest {
            p2m: Vec::new(),
            all: Vec::new(),
            next_id: 0,
            max_pages: pages + 64,
            shr_pages: 0,
            pod_entries: 0,
        };
        for pfn in 0..pages {
            g.populate(pfn);
        }
        Rc::new(RefCell::new(g))
    }

    /// Gives `pfn` a new frame (balloon in, or out and in).
    pub(crate) fn populate(&mut self, pfn: u64) {
        let f = Rc::new(Frame {
            id: self.next_id,
            // Each frame's bytes differ from every other's, as a patrol visit compares them.
            bytes: self.next_id.to_le_bytes().to_vec().into_boxed_slice(),
        });
        self.next_id += 1;
        self.all.push(Rc::downgrade(&f));
        let i = pfn as usize;
        if i >= self.p2m.len() {
            self.p2m.resize(i + 1, None);
        }
        self.p2m[i] = Some(f);
    }

    /// Balloons `pfn` out: the p2m entry goes; the frame lives on while mapped.
    pub(crate) fn remove(&mut self, pfn: u64) {
        self.p2m[pfn as usize] = None;
    }

    /// Frame id now at `pfn`.
    pub(crate) fn frame_at(&self, pfn: u64) -> Option<u64> {
        self.p2m.get(pfn as usize)?.as_ref().map(|f| f.id)
    }

    /// Frame id whose content lives at `ptr`.
    pub(crate) fn frame_of(&self, ptr: *const u8) -> Option<u64> {
        self.all
            .iter()
            .filter_map(Weak::upgrade)
            .find(|f| std::ptr::eq(f.bytes.as_ptr(), ptr))
            .map(|f| f.id)
    }

    /// What the engine would read at setup and at a checkpoint.
    pub(crate) fn signals(&self) -> DomainSignals {
        DomainSignals {
            tot_pages: self.all.iter().filter(|w| w.strong_count() > 0).count() as u64,
            max_pages: self.max_pages,
            shr_pages: self.shr_pages,
            paged_pages: 0,
            max_gpfn: self.p2m.iter().rposition(Option::is_some).unwrap_or(0) as u64,
            pod_entries: self.pod_entries,
            pod_cache_pages: 0,
        }
    }
}

/// A mapping: the frames it references. Dropping it counts an unmap.
pub(crate) struct Mapping {
    frames: Vec<Option<Rc<Frame>>>,
    calls: Rc<RefCell<Calls>>,
}

impl PageMapping for Mapping {
    fn page(&self, idx: usize) -> &[u8] {
        self.frames[idx].as_ref().map_or(&[], |f| &f.bytes)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let mut c = self.calls.borrow_mut();
        c.unmaps += 1;
        c.live_pages -= self.frames.len() as u64;
    }
}

/// Counts calls and live mappings; records each map call's pfns.
pub(crate) struct Mapper {
    pub(crate) guest: Rc<RefCell<Guest>>,
    pub(crate) calls: Rc<RefCell<Calls>>,
}

/// What the mapper saw.
#[derive(Default)]
pub(crate) struct Calls {
    pub(crate) maps: u64,
    pub(crate) unmaps: u64,
    pub(crate) live_pages: u64,
    pub(crate) peak_live_pages: u64,
    pub(crate) log: Vec<Vec<u64>>,
    /// Fail the next map call with this errno (0: none).
    pub(crate) fail_next: i32,
}

impl Mapper {
    pub(crate) fn new(guest: &Rc<RefCell<Guest>>) -> (Self, Rc<RefCell<Calls>>) {
        let calls = Rc::new(RefCell::new(Calls::default()));
        let m = Mapper {
            guest: guest.clone(),
            calls: calls.clone(),
        };
        (m, calls)
    }
}

impl BucketMapper for Mapper {
    type Mapping = Mapping;

    fn map(&mut self, pfns: &[u64], errs: &mut [i32]) -> io::Result<Mapping> {
        let mut c = self.calls.borrow_mut();
        let fail = std::mem::take(&mut c.fail_next);
        if fail != 0 {
            return Err(io::Error::from_raw_os_error(fail));
        }
        let g = self.guest.borrow();
        let frames: Vec<_> = pfns
            .iter()
            .zip(errs.iter_mut())
            .map(|(&p, e)| {
                let f = g.p2m.get(p as usize).cloned().flatten();
                *e = if f.is_some() { 0 } else { -libc::EINVAL };
                f
            })
            .collect();
        c.maps += 1;
        c.live_pages += pfns.len() as u64;
        c.peak_live_pages = c.peak_live_pages.max(c.live_pages);
        c.log.push(pfns.to_vec());
        Ok(Mapping {
            frames,
            calls: self.calls.clone(),
        })
    }
}
