// SPDX-License-Identifier: GPL-3.0-only
//! A small fake of the restore's Xen (the receiving side's [`DomainBuild`] with
//! [`DomainControl`] and [`Report`]), shared by the restore engine's unit tests and the
//! `restore_apply` fuzz target: guest pages, params and context in plain memory, and every
//! call that changes the guest, in order, in [`Guest::calls`]. No `unsafe`, no Xen.
//!
//! A page is remembered by its first byte: the unit tests write uniform pages and check it
//! ([`FakeRestore::mixed_pages`] off), the fuzzer writes whatever the stream holds.

use super::VecBitmap;
use crate::abi::xen::{Level, PAGE_SIZE};
use crate::error::{Errno, Result};
use crate::hv::{
    CpuPolicy, DomInfo, DomainBuild, DomainControl, LogDirtyOp, PageMapping, PageMappingMut,
    Report, ShadowStats, TscInfo,
};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

/// What the restore did to the guest.
#[derive(Default, Debug)]
pub struct Guest {
    /// Written pages: pfn -> the page's first byte.
    pub pages: BTreeMap<u64, u8>,
    /// HVM params set.
    pub params: BTreeMap<u32, u64>,
    /// The last HVM context set.
    pub context: Option<Vec<u8>>,
    /// Calls that change the guest (populate, TSC, context, policy, clears, seed), the
    /// secondary's log-dirty CLEANs and errors reported, in order.
    pub calls: Vec<String>,
}

/// The fake. Public fields are the knobs a test or the fuzzer turns.
#[derive(Default)]
pub struct FakeRestore {
    /// The guest, shared with live mappings (they write back when dropped).
    pub g: Rc<RefCell<Guest>>,
    /// Writable mappings alive now.
    pub live_maps: Rc<Cell<i64>>,
    /// Map calls made.
    pub map_calls: Cell<u64>,
    /// This pfn's map fails with EFAULT (per page).
    pub map_error_at: Option<u64>,
    /// The pfns every log-dirty CLEAN of the secondary reports.
    pub dirty: Vec<u64>,
    /// Pages need not be uniform (off: dropping a mapping asserts every page was written
    /// whole with one byte, as the unit tests' streams do).
    pub mixed_pages: bool,
}

impl FakeRestore {
    fn call(&self, s: String) {
        self.g.borrow_mut().calls.push(s);
    }
}

/// A writable mapping in plain memory: pages start as the guest's, and are written back to
/// it when the mapping is dropped.
pub struct Map {
    g: Rc<RefCell<Guest>>,
    live: Rc<Cell<i64>>,
    gfns: Vec<u64>,
    bufs: Vec<Vec<u8>>,
    mixed: bool,
}

impl PageMapping for Map {
    fn page(&self, idx: usize) -> &[u8] {
        &self.bufs[idx]
    }
}

impl PageMappingMut for Map {
    fn page_mut(&mut self, idx: usize) -> &mut [u8] {
        &mut self.bufs[idx]
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        self.live.set(self.live.get() - 1);
        let mut g = self.g.borrow_mut();
        for (pfn, b) in self.gfns.iter().zip(&self.bufs) {
            assert!(
                self.mixed || b.iter().all(|&x| x == b[0]),
                "pages are written whole"
            );
            g.pages.insert(*pfn, b[0]);
        }
    }
}

impl DomainControl for FakeRestore {
    type Bitmap = VecBitmap;
    fn domain_info(&self, dom: u32) -> Result<Option<DomInfo>> {
        Ok(Some(DomInfo {
            domid: dom,
            hvm: true,
            max_memkb: 64 * 4,
            ..DomInfo::default()
        }))
    }
    fn xen_version(&self) -> Result<u32> {
        Ok((4 << 16) | 17)
    }
    fn nr_gpfns(&self, _: u32) -> Result<u64> {
        Ok(64)
    }
    fn shadow_off(&self, _: u32) -> Result<()> {
        Ok(())
    }
    fn enable_logdirty(&self, _: u32) -> Result<()> {
        Ok(())
    }
    fn alloc_bitmap(&self, bits: u64) -> Result<VecBitmap> {
        Ok(VecBitmap(vec![0; bits.div_ceil(64) as usize]))
    }
    fn logdirty(
        &self,
        _: u32,
        _: LogDirtyOp,
        bm: &mut VecBitmap,
        _: u64,
        _: bool,
    ) -> Result<ShadowStats> {
        self.call("clean".into());
        for &p in &self.dirty {
            bm.0[(p / 64) as usize] |= 1 << (p % 64);
        }
        Ok(ShadowStats::default())
    }
    fn pfn_types(&self, _: u32, _: &mut [u64]) -> Result<()> {
        Ok(())
    }
}

impl DomainBuild for FakeRestore {
    type WritableMapping = Map;
    fn map_foreign_rw(&self, _: u32, gfns: &[u64], errs: &mut [i32]) -> Result<Map> {
        self.live_maps.set(self.live_maps.get() + 1);
        self.map_calls.set(self.map_calls.get() + 1);
        let g = self.g.borrow();
        for (i, &p) in gfns.iter().enumerate() {
            errs[i] = if Some(p) == self.map_error_at {
                -libc::EFAULT
            } else {
                0
            };
        }
        let bufs = gfns
            .iter()
            .map(|p| vec![g.pages.get(p).copied().unwrap_or(0); PAGE_SIZE])
            .collect();
        Ok(Map {
            g: self.g.clone(),
            live: self.live_maps.clone(),
            gfns: gfns.to_vec(),
            bufs,
            mixed: self.mixed_pages,
        })
    }
    fn populate(&self, _: u32, pfns: &[u64]) -> Result<()> {
        self.call(format!("populate {pfns:?}"));
        Ok(())
    }
    fn set_tsc_info(&self, _: u32, t: &TscInfo) -> Result<()> {
        self.call(format!("tsc {}", t.nsec));
        Ok(())
    }
    fn set_hvm_param(&self, _: u32, index: u32, value: u64) -> Result<()> {
        self.g.borrow_mut().params.insert(index, value);
        Ok(())
    }
    fn set_hvm_context(&self, _: u32, blob: &[u8]) -> Result<()> {
        self.call(format!("context {}", blob[0]));
        self.g.borrow_mut().context = Some(blob.to_vec());
        Ok(())
    }
    fn set_cpu_policy(&self, _: u32, p: &CpuPolicy) -> std::result::Result<(), (Errno, String)> {
        self.call(format!("policy {} {}", p.cpuid.len(), p.msrs.len()));
        Ok(())
    }
    fn clear_page(&self, _: u32, pfn: u64) -> Result<()> {
        self.call(format!("clear {pfn:#x}"));
        Ok(())
    }
    fn gnttab_seed(&self, _: u32, c: u64, s: u64, _: u32, _: u32) -> Result<()> {
        self.call(format!("seed {c:#x} {s:#x}"));
        Ok(())
    }
}

impl Report for FakeRestore {
    fn log(&self, _: Level, _: &str) {}
    fn report_error(&self, msg: &str) {
        self.call(format!("error {msg}"));
    }
    fn progress_single(&self, _: &str) {}
    fn set_progress_prefix(&self, _: Option<&str>) {}
    fn progress_step(&self, _: u64, _: u64) {}
}
