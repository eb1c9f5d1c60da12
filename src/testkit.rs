// SPDX-License-Identifier: GPL-3.0-only
//! The one fake hypervisor, shared by the engine's unit tests and the `save_args` fuzz target
//! (built with the `testkit` feature). It implements the four `hv` traits over plain memory:
//! no `unsafe`, no Xen.
//!
//! A guest of `p2m` pages: page `p` holds the byte [`FakeXen::byte`]`(p)`; page types come
//! from [`FakeXen::types`] (by default pfn 5 is a hole and pfn 7 broken). Successive log-dirty
//! CLEANs report [`FakeXen::dirty_rounds`] in turn, then [`FakeXen::dirty_after`] forever.
//! Each hypercall kind in [`Call`] can be made to fail with EPERM ([`FakeXen::fail`]).

use crate::abi::xen::{pfinfo, Level, SHUTDOWN_SUSPEND};
use crate::error::{Errno, Result};
use crate::hv::{
    CpuPolicy, DirtyBitmap, DomInfo, DomainControl, GuestMemory, HvmState, LogDirtyOp, PageMapping,
    Report, ShadowStats, TscInfo,
};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

pub mod restore;

/// A hypercall kind of the fake, for [`FakeXen::fail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Call {
    /// `domain_info`.
    DomainInfo,
    /// `xen_version`.
    XenVersion,
    /// `nr_gpfns`.
    NrGpfns,
    /// `enable_logdirty`.
    EnableLogdirty,
    /// `alloc_bitmap`.
    AllocBitmap,
    /// `logdirty`.
    Logdirty,
    /// `pfn_types`.
    PfnTypes,
    /// `hvm_context_size`.
    HvmContextSize,
    /// `hvm_context`.
    HvmContext,
    /// `hvm_param`.
    HvmParam,
    /// `tsc_info`.
    TscInfo,
    /// `cpu_policy`.
    CpuPolicy,
    /// `map_foreign`.
    MapForeign,
}

impl Call {
    /// Number of kinds.
    pub const COUNT: u32 = 13;
}

/// A dirty bitmap in plain memory.
pub struct VecBitmap(pub Vec<u64>);

impl DirtyBitmap for VecBitmap {
    fn words(&self) -> &[u64] {
        &self.0
    }
    fn words_mut(&mut self) -> &mut [u64] {
        &mut self.0
    }
}

/// A mapping in plain memory; counts itself live until dropped.
pub struct FakeMapping {
    data: Vec<u8>,
    live: Rc<Cell<i64>>,
}

impl PageMapping for FakeMapping {
    fn page(&self, idx: usize) -> &[u8] {
        let size = crate::abi::xen::PAGE_SIZE;
        &self.data[idx * size..(idx + 1) * size]
    }
}

impl Drop for FakeMapping {
    fn drop(&mut self) {
        self.live.set(self.live.get() - 1);
    }
}

/// The fake hypervisor. Public fields are the knobs a test or the fuzzer turns.
pub struct FakeXen {
    /// Guest pages (the p2m size).
    pub p2m: u64,
    /// The one domain: `domain_info(d)` answers for it when `d <= domid`, None above.
    pub domid: u32,
    /// HVM guest (false: a PV guest, which the engine hands to stock).
    pub hvm: bool,
    /// Bit `Call as u32` set: that call fails with EPERM.
    pub fail: u32,
    /// The page type of a pfn.
    pub types: fn(u64) -> u64,
    /// This gfn's map fails with EFAULT (per page).
    pub fail_map_gfn: Option<u64>,
    /// Suspended (set by the test's suspend callback).
    pub suspended: Cell<bool>,
    /// Log-dirty mode is on.
    pub logdirty_on: Cell<bool>,
    /// Dirty pfns reported by successive CLEANs.
    pub dirty_rounds: RefCell<Vec<Vec<u64>>>,
    /// Dirty pfns of every CLEAN after `dirty_rounds` ran out.
    pub dirty_after: Vec<u64>,
    /// Every line logged: `ERROR ` and `PROGRESS ` prefix errors and progress reports.
    pub logs: RefCell<Vec<String>>,
    /// Map calls made.
    pub maps: Cell<u64>,
    live: Rc<Cell<i64>>,
}

/// Default page types: pfn 5 is a hole, pfn 7 broken, the rest RAM.
fn default_types(pfn: u64) -> u64 {
    match pfn {
        5 => pfinfo::XTAB as u64,
        7 => pfinfo::BROKEN as u64,
        _ => 0,
    }
}

impl FakeXen {
    /// An HVM guest 7 of `p2m` pages, nothing failing.
    pub fn new(p2m: u64) -> FakeXen {
        FakeXen {
            p2m,
            domid: 7,
            hvm: true,
            fail: 0,
            types: default_types,
            fail_map_gfn: None,
            suspended: Cell::new(false),
            logdirty_on: Cell::new(false),
            dirty_rounds: RefCell::new(Vec::new()),
            dirty_after: Vec::new(),
            logs: RefCell::new(Vec::new()),
            maps: Cell::new(0),
            live: Rc::new(Cell::new(0)),
        }
    }

    /// The byte every byte of page `p` holds.
    pub fn byte(p: u64) -> u8 {
        (p % 251) as u8
    }

    /// True if a logged line contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.logs.borrow().iter().any(|l| l.contains(needle))
    }

    /// Errors reported so far.
    pub fn errors(&self) -> usize {
        self.logs
            .borrow()
            .iter()
            .filter(|l| l.starts_with("ERROR "))
            .count()
    }

    /// Mappings not yet dropped.
    pub fn live_mappings(&self) -> i64 {
        self.live.get()
    }

    fn check(&self, call: Call) -> Result<()> {
        if self.fail & (1 << call as u32) != 0 {
            Err(Errno(libc::EPERM))
        } else {
            Ok(())
        }
    }
}

impl DomainControl for FakeXen {
    type Bitmap = VecBitmap;

    fn domain_info(&self, dom: u32) -> Result<Option<DomInfo>> {
        self.check(Call::DomainInfo)?;
        if dom > self.domid {
            return Ok(None);
        }
        let suspended = self.suspended.get();
        Ok(Some(DomInfo {
            domid: self.domid,
            hvm: self.hvm,
            shutdown: suspended,
            shutdown_reason: if suspended { SHUTDOWN_SUSPEND } else { 0 },
            nr_pages: self.p2m,
            max_memkb: self.p2m * 4,
        }))
    }
    fn xen_version(&self) -> Result<u32> {
        self.check(Call::XenVersion)?;
        Ok((4 << 16) | 17)
    }
    fn nr_gpfns(&self, _: u32) -> Result<u64> {
        self.check(Call::NrGpfns)?;
        Ok(self.p2m)
    }
    fn shadow_off(&self, _: u32) -> Result<()> {
        self.logdirty_on.set(false);
        Ok(())
    }
    fn enable_logdirty(&self, _: u32) -> Result<()> {
        self.check(Call::EnableLogdirty)?;
        if self.logdirty_on.replace(true) {
            return Err(Errno(libc::EINVAL));
        }
        Ok(())
    }
    fn alloc_bitmap(&self, bits: u64) -> Result<VecBitmap> {
        self.check(Call::AllocBitmap)?;
        Ok(VecBitmap(vec![0; bits.div_ceil(64) as usize]))
    }
    fn logdirty(
        &self,
        _: u32,
        op: LogDirtyOp,
        bm: &mut VecBitmap,
        pages: u64,
        _final_round: bool,
    ) -> Result<ShadowStats> {
        self.check(Call::Logdirty)?;
        assert_eq!(pages, self.p2m, "log-dirty ops cover the whole p2m");
        bm.0.fill(0);
        let round = match op {
            LogDirtyOp::Clean if !self.dirty_rounds.borrow().is_empty() => {
                self.dirty_rounds.borrow_mut().remove(0)
            }
            LogDirtyOp::Clean => self.dirty_after.clone(),
            LogDirtyOp::Peek => Vec::new(),
        };
        let mut n = 0;
        for &p in round.iter().filter(|&&p| p < self.p2m) {
            bm.0[(p / 64) as usize] |= 1 << (p % 64);
            n += 1;
        }
        Ok(ShadowStats {
            fault_count: 0,
            dirty_count: n,
        })
    }
    fn pfn_types(&self, _: u32, arr: &mut [u64]) -> Result<()> {
        self.check(Call::PfnTypes)?;
        for a in arr.iter_mut() {
            *a = (self.types)(*a);
        }
        Ok(())
    }
}

impl GuestMemory for FakeXen {
    type Mapping = FakeMapping;

    fn map_foreign(&self, _: u32, gfns: &[u64], errs: &mut [i32]) -> Result<FakeMapping> {
        self.check(Call::MapForeign)?;
        let size = crate::abi::xen::PAGE_SIZE;
        let mut data = vec![0u8; gfns.len() * size];
        for (i, &g) in gfns.iter().enumerate() {
            assert!(
                crate::abi::xen::page_type_has_data((self.types)(g)),
                "holes and broken pages are never mapped"
            );
            errs[i] = if Some(g) == self.fail_map_gfn {
                -libc::EFAULT
            } else {
                0
            };
            data[i * size..(i + 1) * size].fill(Self::byte(g));
        }
        self.maps.set(self.maps.get() + 1);
        self.live.set(self.live.get() + 1);
        Ok(FakeMapping {
            data,
            live: Rc::clone(&self.live),
        })
    }
}

impl HvmState for FakeXen {
    fn hvm_context_size(&self, _: u32) -> Result<usize> {
        self.check(Call::HvmContextSize)?;
        Ok(100)
    }
    fn hvm_context(&self, _: u32, buf: &mut [u8]) -> Result<usize> {
        self.check(Call::HvmContext)?;
        buf.fill(0xcc);
        Ok(buf.len().min(90))
    }
    fn hvm_param(&self, _: u32, index: u32) -> Result<u64> {
        self.check(Call::HvmParam)?;
        Ok(match index {
            1 => 0xfeffc,
            17 => 0xfeffd,
            _ => 0,
        })
    }
    fn tsc_info(&self, _: u32) -> Result<TscInfo> {
        self.check(Call::TscInfo)?;
        Ok(TscInfo {
            mode: 1,
            nsec: 2,
            khz: 3,
            incarnation: 4,
        })
    }
    fn cpu_policy(&self, _: u32) -> std::result::Result<CpuPolicy, (Errno, String)> {
        self.check(Call::CpuPolicy)
            .map_err(|e| (e, "Unable to get CPU Policy size".into()))?;
        Ok(CpuPolicy {
            cpuid: vec![1; 48],
            msrs: vec![2; 16],
        })
    }
}

impl Report for FakeXen {
    fn log(&self, _: Level, msg: &str) {
        self.logs.borrow_mut().push(msg.to_string());
    }
    fn report_error(&self, msg: &str) {
        assert!(!msg.is_empty(), "an error is reported with a reason");
        self.logs.borrow_mut().push(format!("ERROR {msg}"));
    }
    fn progress_single(&self, doing: &str) {
        self.logs.borrow_mut().push(format!("PROGRESS {doing}"));
    }
    fn set_progress_prefix(&self, _: Option<&str>) {}
    fn progress_step(&self, _: u64, _: u64) {}
}
