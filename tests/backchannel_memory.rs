// SPDX-License-Identifier: GPL-3.0-only
//! Peak heap while reading the COLO back channel (issue 14): `merge_dirty_pfn_list` must use
//! the same memory for a 1 MiB and a 64 MiB CHECKPOINT_DIRTY_PFN_LIST, while buffering the
//! record, as the reader before issue 14 did, grows with it (which shows this measurement
//! sees growth).
//! Its own test binary: the counting allocator is global to the process, and counts only
//! the allocations of the thread being measured (the test harness's own threads allocate too).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Read;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use xcsave::abi::xen::BACKCHANNEL_HEADER_LEN;
use xcsave::backchannel::merge_dirty_pfn_list;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Set on the measuring thread while `peak_of` runs.
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

/// A back channel that produces one valid record of `n` pfns on the fly (no buffer).
struct Record {
    n: u64,
    p2m: u64,
    pos: u64,
}

impl Read for Record {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // The header as this build's Xen writes it: 8 bytes on 4.17, 16 on 4.20 (zero pad).
        let hl = BACKCHANNEL_HEADER_LEN as u64;
        let total = hl + 8 * self.n;
        let mut k = 0;
        while k < buf.len() && self.pos < total {
            let byte = if self.pos < hl {
                let mut h = [0u8; BACKCHANNEL_HEADER_LEN];
                h[..4].copy_from_slice(&0x0fu32.to_le_bytes()); // CHECKPOINT_DIRTY_PFN_LIST
                h[4..8].copy_from_slice(&((8 * self.n) as u32).to_le_bytes());
                h[self.pos as usize]
            } else {
                let i = (self.pos - hl) / 8;
                ((i * 7919) % self.p2m).to_le_bytes()[((self.pos - hl) % 8) as usize]
            };
            buf[k] = byte;
            k += 1;
            self.pos += 1;
        }
        Ok(k)
    }
}

/// Peak heap this thread held while `f` ran, above what it held at entry (`LIVE` is signed:
/// a free of memory allocated before `f` takes it below 0).
fn peak_of(f: impl FnOnce()) -> isize {
    LIVE.store(0, Relaxed);
    PEAK.store(0, Relaxed);
    MEASURING.with(|m| m.set(true));
    f();
    MEASURING.with(|m| m.set(false));
    PEAK.load(Relaxed)
}

#[test]
fn merging_a_dirty_pfn_list_uses_flat_memory() {
    let p2m: u64 = 8 << 20; // a 32 GiB guest: lists up to 64 MiB are valid
    let mut words = vec![0u64; (p2m / 64) as usize];
    let mut peaks = Vec::new();
    for mib in [1u64, 64] {
        let n = (mib << 20) / 8;
        let mut r = Record { n, p2m, pos: 0 };
        let mut got = 0;
        peaks.push(peak_of(|| {
            got = merge_dirty_pfn_list(&mut r, p2m, &mut words).unwrap();
        }));
        assert_eq!(got, n);
    }
    println!("merge: peak heap {peaks:?} bytes for 1 MiB and 64 MiB records");
    assert_eq!(peaks, [0, 0], "the merge allocated");

    // Buffering the record, for contrast: its peak is the record, so this measurement would
    // catch a merge that buffered it.
    let n = (64u64 << 20) / 8;
    let peak = peak_of(|| {
        let mut record = Vec::new();
        Record { n, p2m, pos: 0 }.read_to_end(&mut record).unwrap();
        assert_eq!(record.len(), BACKCHANNEL_HEADER_LEN + 8 * n as usize);
    });
    println!("buffered record: peak heap {peak} bytes for a 64 MiB record");
    assert!(peak >= 64 << 20, "buffered record peak {peak}");
}
