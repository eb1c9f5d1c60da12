// SPDX-License-Identifier: GPL-3.0-only
//! The save entry's argument checks and the engine's reaction to every callback value,
//! hypercall failure and back-channel content, through the rlib's engine with a fake
//! hypervisor: NULL callbacks where stock asserts, bad flags and stream types, PV guests,
//! absent domains. Every run must end in an Outcome (never a panic), log a reason for a
//! failure, leave log-dirty off and return every mapped batch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::Cell;
use std::io::Read;
use xcsave::engine::{self, Callback, Callbacks, Io, Outcome, PrecopyStats, SaveArgs};
use xcsave::error::{Errno, Result};
use xcsave::pages::{BatchError, PageRef, PageSource};
use xcsave::stream::Sink;
use xcsave::xen::{
    CpuPolicy, DirtyBitmap, DomInfo, ForeignMapping, Hypervisor, Level, LogDirtyOp, ShadowStats,
    TscInfo,
};

/// Bytes the fuzzer gave, read as a script.
struct Script<'a> {
    data: &'a [u8],
}

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
}

struct Bitmap(Vec<u64>);

impl DirtyBitmap for Bitmap {
    fn words(&self) -> &[u64] {
        &self.0
    }
    fn words_mut(&mut self) -> &mut [u64] {
        &mut self.0
    }
}

struct Fake {
    p2m: u64,
    hvm: bool,
    /// Bit i set: hypercall kind i fails (EPERM).
    fail: u32,
    /// A dirty pattern for CLEANs.
    dirty: u64,
    suspended: Cell<bool>,
    logdirty: Cell<bool>,
    errors: Cell<u32>,
}

impl Fake {
    fn check(&self, bit: u32) -> Result<()> {
        if self.fail & (1 << bit) != 0 {
            Err(Errno(libc::EPERM))
        } else {
            Ok(())
        }
    }
}

impl Hypervisor for Fake {
    type Bitmap = Bitmap;
    fn domain_info(&self, dom: u32) -> Result<Option<DomInfo>> {
        self.check(0)?;
        if dom > 100 {
            return Ok(None);
        }
        Ok(Some(DomInfo {
            domid: dom,
            hvm: self.hvm,
            shutdown: self.suspended.get(),
            shutdown_reason: if self.suspended.get() { 2 } else { 0 },
            nr_pages: self.p2m,
            max_memkb: self.p2m * 4,
        }))
    }
    fn xen_version(&self) -> Result<u32> {
        self.check(1)?;
        Ok((4 << 16) | 17)
    }
    fn nr_gpfns(&self, _: u32) -> Result<u64> {
        self.check(2)?;
        Ok(self.p2m)
    }
    fn shadow_off(&self, _: u32) -> Result<()> {
        self.logdirty.set(false);
        Ok(())
    }
    fn enable_logdirty(&self, _: u32) -> Result<()> {
        self.check(3)?;
        self.logdirty.set(true);
        Ok(())
    }
    fn alloc_bitmap(&self, bits: u64) -> Result<Bitmap> {
        self.check(4)?;
        Ok(Bitmap(vec![0; bits.div_ceil(64) as usize]))
    }
    fn logdirty(
        &self,
        _: u32,
        _: LogDirtyOp,
        bm: &mut Bitmap,
        pages: u64,
        _: bool,
    ) -> Result<ShadowStats> {
        self.check(5)?;
        if !self.logdirty.get() {
            return Err(Errno(libc::EINVAL));
        }
        assert_eq!(pages, self.p2m);
        let mut n = 0;
        for (i, w) in bm.0.iter_mut().enumerate() {
            *w = if i == 0 { self.dirty } else { 0 };
            n += w.count_ones();
        }
        if self.p2m < 64 && !bm.0.is_empty() {
            bm.0[0] &= (1u64 << self.p2m) - 1;
            n = bm.0[0].count_ones();
        }
        Ok(ShadowStats {
            fault_count: 0,
            dirty_count: n,
        })
    }
    fn pfn_types(&self, _: u32, arr: &mut [u64]) -> Result<()> {
        self.check(6)?;
        for a in arr.iter_mut() {
            *a = if *a % 7 == 3 { 0xf << 28 } else { 0 };
        }
        Ok(())
    }
    fn map_foreign(&self, _: u32, _: &[u64], _: &mut [i32]) -> Result<ForeignMapping> {
        Err(Errno(libc::ENOSYS))
    }
    fn hvm_context_size(&self, _: u32) -> Result<usize> {
        self.check(7)?;
        Ok(64)
    }
    fn hvm_context(&self, _: u32, buf: &mut [u8]) -> Result<usize> {
        self.check(8)?;
        Ok(buf.len().min(48))
    }
    fn hvm_param(&self, _: u32, i: u32) -> Result<u64> {
        self.check(9)?;
        Ok(i as u64 & 3)
    }
    fn tsc_info(&self, _: u32) -> Result<TscInfo> {
        self.check(10)?;
        Ok(TscInfo::default())
    }
    fn cpu_policy(&self, _: u32) -> std::result::Result<CpuPolicy, (Errno, String)> {
        self.check(11).map_err(|e| (e, "policy".into()))?;
        Ok(CpuPolicy {
            cpuid: vec![0; 24],
            msrs: vec![],
        })
    }
    fn log(&self, _: Level, _: &str) {}
    fn report_error(&self, msg: &str) {
        assert!(!msg.is_empty());
        self.errors.set(self.errors.get() + 1);
    }
    fn progress_single(&self, _: &str) {}
    fn set_progress_prefix(&self, _: Option<&str>) {}
    fn progress_step(&self, _: u64, _: u64) {}
}

/// Pages from a zero page; some gfns fail to map, some calls fail as a whole.
struct Pages {
    fail_gfn: u64,
    fail_call: bool,
    outstanding: u32,
}

static ZERO: [u8; 4096] = [0; 4096];

impl PageSource<Fake> for Pages {
    fn with_batch(
        &mut self,
        _: &Fake,
        _: u32,
        gfns: &[u64],
        consume: &mut dyn FnMut(&[PageRef<'_>]) -> std::result::Result<(), Errno>,
    ) -> std::result::Result<(), BatchError> {
        if self.fail_call {
            return Err(BatchError::Map(Errno(libc::EFAULT)));
        }
        self.outstanding += 1;
        let pages: Vec<PageRef<'_>> = gfns
            .iter()
            .map(|&g| {
                if g == self.fail_gfn {
                    Err(-libc::EFAULT)
                } else {
                    Ok(&ZERO[..])
                }
            })
            .collect();
        let r = consume(&pages).map_err(BatchError::Consumer);
        self.outstanding -= 1;
        r
    }
    fn suspended(&mut self, _: &Fake, _: u32, _: &DomInfo, _: u64) {}
    fn teardown(&mut self) {}
}

/// Callbacks: present per a mask, returning scripted values.
struct Cbs<'a, 'b> {
    present: u8,
    script: Script<'a>,
    xen: &'b Fake,
    calls: u32,
}

impl Cbs<'_, '_> {
    fn value(&mut self) -> i32 {
        self.calls += 1;
        if self.calls > 64 {
            return 0; // end checkpointing eventually
        }
        match self.script.byte() {
            0..=199 => 1,
            200..=219 => 0,
            220..=239 => -1,
            b => b as i32 - 230,
        }
    }
}

impl Callbacks for Cbs<'_, '_> {
    fn has(&self, which: Callback) -> bool {
        let bit = match which {
            Callback::Suspend => 0,
            Callback::Postcopy => 1,
            Callback::Checkpoint => 2,
            Callback::WaitCheckpoint => 3,
            Callback::SwitchQemuLogdirty => 4,
        };
        self.present & (1 << bit) != 0
    }
    fn suspend(&mut self) -> i32 {
        let v = self.value();
        if self.script.byte() < 240 {
            self.xen.suspended.set(true);
        }
        v
    }
    fn precopy_policy(&mut self, _: PrecopyStats) -> Option<i32> {
        if self.present & (1 << 5) == 0 {
            return None;
        }
        Some(self.value().clamp(-1, 1))
    }
    fn postcopy(&mut self) -> i32 {
        self.xen.suspended.set(false);
        self.value()
    }
    fn checkpoint(&mut self) -> i32 {
        self.value()
    }
    fn wait_checkpoint(&mut self) -> i32 {
        self.value()
    }
    fn switch_qemu_logdirty(&mut self, _: u32, _: bool) -> i32 {
        if self.script.byte() >= 250 {
            -1
        } else {
            0
        }
    }
}

/// A stream sink that counts, and fails at a chosen write.
struct Counter {
    writes: u32,
    fail_at: u32,
    bytes: u64,
}

impl Sink for Counter {
    fn write_parts(&mut self, parts: &[&[u8]]) -> Result<()> {
        self.writes += 1;
        if self.writes == self.fail_at {
            return Err(Errno(libc::EPIPE));
        }
        self.bytes += parts.iter().map(|p| p.len() as u64).sum::<u64>();
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut s = Script { data };
    let p2m = (s.byte() as u64) * 4 + s.byte() as u64 % 4; // 0 .. 1023 pages
    let fake = Fake {
        p2m,
        hvm: s.byte() < 240,
        fail: if s.byte() < 200 {
            0
        } else {
            1 << (s.byte() % 12)
        },
        dirty: u64::from_le_bytes([s.byte(), s.byte(), 0, 0, 0, 0, 0, s.byte()]),
        suspended: Cell::new(false),
        logdirty: Cell::new(false),
        errors: Cell::new(0),
    };
    let args = SaveArgs {
        dom: s.byte() as u32 % 128,
        flags: match s.byte() {
            0..=99 => 1,
            100..=199 => 0,
            _ => s.u32(),
        },
        stream_type: match s.byte() {
            0..=79 => 0,
            80..=159 => 1,
            160..=239 => 2,
            _ => s.u32(),
        },
        io_fd: 3,
    };
    let present = s.byte() | if s.byte() < 200 { 0x1f } else { 0 };
    let mut sink = Counter {
        writes: 0,
        fail_at: if s.byte() < 220 { 0 } else { s.byte() as u32 },
        bytes: 0,
    };
    let mut pages = Pages {
        fail_gfn: if s.byte() < 220 {
            u64::MAX
        } else {
            s.byte() as u64
        },
        fail_call: s.byte() >= 250,
        outstanding: 0,
    };
    // The back channel: the rest after 64 bytes of callback script.
    let split = s.data.len().min(64);
    let (script, back) = s.data.split_at(split);
    let mut recv: &[u8] = back;
    let mut cb = Cbs {
        present,
        script: Script { data: script },
        xen: &fake,
        calls: 0,
    };
    let io = Io {
        sink: &mut sink,
        recv: &mut recv as &mut dyn Read,
        pages: &mut pages,
        cb: &mut cb,
    };
    match engine::domain_save(&fake, io, &args) {
        Outcome::Done { rc, errno } => {
            if rc == -1 {
                assert!(errno.0 > 0, "failure without errno");
                assert!(fake.errors.get() > 0, "failure without a logged reason");
            }
        }
        Outcome::Unsupported(reason) => assert!(!fake.hvm && !reason.is_empty()),
    }
    assert!(!fake.logdirty.get(), "log-dirty left on");
    assert_eq!(pages.outstanding, 0, "a batch was not returned");
});
