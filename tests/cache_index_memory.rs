// SPDX-License-Identifier: GPL-3.0-only
//! Heap of the mapping cache when the guest populates a gfn far above its setup p2m (issue 14,
//! claim 1): the bucket index is sized once, from the p2m the cache starts with, and never
//! grows on the guest's say-so. Before the fix a populate at gfn 2^25 - 1 grew the index and
//! history of 64 KiB buckets by 2^21 x 12 bytes (24 MiB) at the next check.
//! Its own test binary: the counting allocator is global to the process, and counts only the
//! allocations of the thread being measured (tests/backchannel_memory.rs has the pattern).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use xcsave::cache::{CacheConfig, CachedPages};
use xcsave::error::Errno;
use xcsave::error::Result;
use xcsave::hv::{DomInfo, DomainSignals, GuestMemory, PageMapping};
use xcsave::pages::PageSource;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

fn measuring() -> bool {
    MEASURING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if measuring() {
            let now = LIVE.fetch_add(l.size() as isize, Relaxed) + l.size() as isize;
            PEAK.fetch_max(now, Relaxed);
        }
        // SAFETY: the caller's layout, passed through.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if measuring() {
            LIVE.fetch_sub(l.size() as isize, Relaxed);
        }
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn peak_of(f: impl FnOnce()) -> isize {
    LIVE.store(0, Relaxed);
    PEAK.store(0, Relaxed);
    MEASURING.with(|m| m.set(true));
    f();
    MEASURING.with(|m| m.set(false));
    PEAK.load(Relaxed)
}

/// A guest of `pages` frames (each page filled with its pfn's low byte) whose reported max
/// gpfn the test moves.
struct Guest {
    max_gpfn: Cell<u64>,
}

struct Pages(Vec<u8>);

impl PageMapping for Pages {
    fn page(&self, idx: usize) -> &[u8] {
        &self.0[idx * 4096..(idx + 1) * 4096]
    }
}

impl GuestMemory for Guest {
    type Mapping = Pages;

    fn map_foreign(&self, _dom: u32, gfns: &[u64], errs: &mut [i32]) -> Result<Pages> {
        errs.iter_mut().for_each(|e| *e = 0);
        Ok(Pages(gfns.iter().flat_map(|&g| [g as u8; 4096]).collect()))
    }

    fn p2m_signals(&self, _dom: u32) -> Result<DomainSignals> {
        Ok(DomainSignals {
            tot_pages: 8192,
            max_pages: 16384,
            max_gpfn: self.max_gpfn.get(),
            ..Default::default()
        })
    }
}

fn send(src: &mut CachedPages<Pages>, g: &Guest, pfns: &[u64]) {
    let mut consume = |pages: &[xcsave::pages::PageRef<'_>]| -> std::result::Result<(), Errno> {
        assert!(pages.iter().all(|p| p.is_ok()));
        Ok(())
    };
    src.with_batch(g, 1, pfns, &mut consume).unwrap();
}

#[test]
fn a_high_gfn_does_not_grow_the_index() {
    // 64 KiB buckets, a 32 MiB guest (8192 pfns), Remus: a first pass, then checkpoints.
    let cfg = CacheConfig {
        bucket_pages: 16,
        ..CacheConfig::default()
    };
    let g = Guest {
        max_gpfn: Cell::new(8191),
    };
    let mut src = CachedPages::new(cfg);
    let info = DomInfo::default();
    src.start_pass(&g, 1, true, true);
    let all: Vec<u64> = (0..1024).collect();
    send(&mut src, &g, &all);
    src.suspended(&g, 1, &info, 8192);
    src.start_pass(&g, 1, false, true);
    send(&mut src, &g, &all[..64]);
    let steady = peak_of(|| {
        src.suspended(&g, 1, &info, 8192);
        src.start_pass(&g, 1, false, true);
        send(&mut src, &g, &all[..64]);
    });
    // The guest populates its top gfn: Xen's max gpfn jumps to 2^25 - 1.
    g.max_gpfn.set((1 << 25) - 1);
    let jumped = peak_of(|| {
        src.suspended(&g, 1, &info, 8192);
        src.start_pass(&g, 1, false, true);
        send(&mut src, &g, &all[..64]);
        // A pfn past the indexed range (the engine never sends one past its setup p2m, but
        // the cache must not index it): served per batch.
        send(&mut src, &g, &[8192 + 5]);
    });
    println!("peak heap of a checkpoint: {steady} bytes steady, {jumped} after the jump");
    assert!(
        jumped < 256 << 10,
        "a checkpoint after the guest's max gpfn jumped to 2^25 - 1 allocated {jumped} bytes"
    );
    PageSource::<Guest>::teardown(&mut src);
}
