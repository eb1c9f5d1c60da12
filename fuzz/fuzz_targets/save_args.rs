// SPDX-License-Identifier: GPL-3.0-only
//! The save entry's argument checks and the engine's reaction to every callback value,
//! hypercall failure and back-channel content, through the rlib's engine with a fake
//! hypervisor: NULL callbacks where stock asserts, bad flags and stream types, PV guests,
//! absent domains. Every run must end in an Outcome (never a panic), log a reason for a
//! failure, leave log-dirty off and return every mapped batch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcsave::abi::c::PrecopyStats;
use xcsave::backchannel::Channel;
use xcsave::engine::{self, Callback, Callbacks, Io, Outcome, SaveArgs};
use xcsave::error::{Errno, Result};
use xcsave::hv::DomInfo;
use xcsave::pages::{BatchError, PageRef, PageSource};
use xcsave::stream::Sink;
use xcsave::testkit::{Call, FakeXen};

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

/// Pages from a zero page; some gfns fail to map, some calls fail as a whole.
struct Pages {
    fail_gfn: u64,
    fail_call: bool,
    outstanding: u32,
}

static ZERO: [u8; 4096] = [0; 4096];

impl PageSource<FakeXen> for Pages {
    fn with_batch(
        &mut self,
        _: &FakeXen,
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
    fn suspended(&mut self, _: &FakeXen, _: u32, _: &DomInfo, _: u64) {}
    fn teardown(&mut self) {}
}

/// Callbacks: present per a mask, returning scripted values.
struct Cbs<'a, 'b> {
    present: u8,
    script: Script<'a>,
    xen: &'b FakeXen,
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
    let mut fake = FakeXen::new(p2m);
    fake.hvm = s.byte() < 240;
    fake.fail = if s.byte() < 200 {
        0
    } else {
        1 << (u32::from(s.byte()) % Call::COUNT)
    };
    let dirty = u64::from_le_bytes([s.byte(), s.byte(), 0, 0, 0, 0, 0, s.byte()]);
    fake.dirty_after = (0..64).filter(|b| dirty & (1 << b) != 0).collect();
    fake.types = |pfn| if pfn % 7 == 3 { 0xf << 28 } else { 0 };
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
    // Domains 0..=100 exist (each is the one asked for); above, none does.
    fake.domid = args.dom.min(100);
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
        recv: &mut recv as &mut dyn Channel,
        pages: &mut pages,
        cb: &mut cb,
    };
    match engine::domain_save(&fake, io, &args) {
        Outcome::Done { rc, errno } => {
            if rc == -1 {
                assert!(errno.0 > 0, "failure without errno");
                assert!(fake.errors() > 0, "failure without a logged reason");
            }
        }
        Outcome::Unsupported(reason) => assert!(!fake.hvm && !reason.is_empty()),
    }
    assert!(!fake.logdirty_on.get(), "log-dirty left on");
    assert_eq!(fake.live_mappings(), 0, "a mapping was not released");
    assert_eq!(pages.outstanding, 0, "a batch was not returned");
});
