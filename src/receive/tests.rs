// SPDX-License-Identifier: GPL-3.0-only
//! The restore engine over a small fake of the restore's Xen (pages, params, context, the
//! calls in order), driven by whole streams built with the save side's encoder.

use super::*;
use crate::abi::xen::Level;
use crate::error::Result;
use crate::hv::{DomInfo, ShadowStats};
use crate::stream::{
    self, domain_header, encode_record, hvm_params_body, image_header, page_data_entry,
    page_data_prefix, tsc_info_body,
};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

const DOM: u32 = 7;

#[derive(Default)]
struct Guest {
    pages: BTreeMap<u64, u8>,
    params: BTreeMap<u32, u64>,
    context: Option<Vec<u8>>,
    calls: Vec<String>,
}

#[derive(Default)]
struct Fake {
    g: Rc<RefCell<Guest>>,
    live_maps: Rc<Cell<i64>>,
    map_error_at: Option<u64>,
    dirty: Vec<u64>,
}

impl Fake {
    fn call(&self, s: String) {
        self.g.borrow_mut().calls.push(s);
    }
}

struct Bm(Vec<u64>);

impl DirtyBitmap for Bm {
    fn words(&self) -> &[u64] {
        &self.0
    }
    fn words_mut(&mut self) -> &mut [u64] {
        &mut self.0
    }
}

struct Map {
    g: Rc<RefCell<Guest>>,
    live: Rc<Cell<i64>>,
    gfns: Vec<u64>,
    bufs: Vec<Vec<u8>>,
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
            assert!(b.iter().all(|&x| x == b[0]), "pages are written whole");
            g.pages.insert(*pfn, b[0]);
        }
    }
}

impl DomainControl for Fake {
    type Bitmap = Bm;
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
    fn alloc_bitmap(&self, bits: u64) -> Result<Bm> {
        Ok(Bm(vec![0; bits.div_ceil(64) as usize]))
    }
    fn logdirty(&self, _: u32, _: LogDirtyOp, bm: &mut Bm, _: u64, _: bool) -> Result<ShadowStats> {
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

impl DomainBuild for Fake {
    type WritableMapping = Map;
    fn map_foreign_rw(&self, _: u32, gfns: &[u64], errs: &mut [i32]) -> Result<Map> {
        self.live_maps.set(self.live_maps.get() + 1);
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

impl Report for Fake {
    fn log(&self, _: Level, _: &str) {}
    fn report_error(&self, msg: &str) {
        self.call(format!("error {msg}"));
    }
    fn progress_single(&self, _: &str) {}
    fn set_progress_prefix(&self, _: Option<&str>) {}
    fn progress_step(&self, _: u64, _: u64) {}
}

/// Callbacks that log and answer from a script.
#[derive(Default)]
struct Cbs {
    log: Vec<String>,
    checkpoint_answers: Vec<i32>,
}

impl RestoreCallbacks for Cbs {
    fn static_data_done(&mut self, missing: u32) -> Option<i32> {
        self.log.push(format!("sdd {missing}"));
        Some(0)
    }
    fn checkpoint(&mut self) -> i32 {
        self.log.push("checkpoint".into());
        if self.checkpoint_answers.is_empty() {
            1
        } else {
            self.checkpoint_answers.remove(0)
        }
    }
    fn suspend(&mut self) -> i32 {
        self.log.push("suspend".into());
        1
    }
    fn postcopy(&mut self) -> i32 {
        self.log.push("postcopy".into());
        1
    }
    fn wait_checkpoint(&mut self) -> i32 {
        self.log.push("wait".into());
        1
    }
    fn restore_results(&mut self, s: u64, c: u64) {
        self.log.push(format!("results {s:#x} {c:#x}"));
    }
}

struct S(Vec<u8>);

impl S {
    fn new() -> S {
        let mut h = image_header().to_vec();
        h.extend(domain_header(stream::DHDR_TYPE_X86_HVM, (4 << 16) | 17));
        S(h)
    }
    fn rec(mut self, t: u32, body: &[u8]) -> S {
        self.0.extend(encode_record(t, &[body]).unwrap());
        self
    }
    fn static_data(self) -> S {
        self.rec(rec::X86_CPUID_POLICY, &[0x11; 48])
            .rec(rec::STATIC_DATA_END, &[])
    }
    fn pages(mut self, pages: &[(u64, u8)]) -> S {
        let e: Vec<u64> = pages.iter().map(|&(p, _)| page_data_entry(p, 0)).collect();
        self.0.extend(page_data_prefix(&e, pages.len()).unwrap());
        for &(_, fill) in pages {
            self.0.extend(std::iter::repeat_n(fill, PAGE_SIZE));
        }
        self
    }
    fn state(self, tag: u8) -> S {
        self.rec(rec::X86_TSC_INFO, &tsc_info_body(0, 1000, tag as u64, 1))
            .rec(rec::HVM_CONTEXT, &[tag; 40])
            .rec(
                rec::HVM_PARAMS,
                &hvm_params_body(&[(1, 0x3e), (17, 0x3f), (4, 1), (9, tag as u64)]),
            )
    }
}

fn args(st: StreamType) -> RestoreArgs {
    RestoreArgs {
        dom: DOM,
        stream_type: st,
        store_evtchn: 5,
        store_domid: 0,
        console_evtchn: 6,
        console_domid: 0,
    }
}

#[test]
fn a_plain_stream_is_applied_in_stocks_order() {
    let s = S::new()
        .static_data()
        .pages(&[(0, 1), (1, 2), (1, 3)])
        .state(9)
        .rec(rec::END, &[]);
    let hv = Fake::default();
    let mut cb = Cbs::default();
    let out = domain_restore(&hv, &s.0[..], None, &mut cb, args(StreamType::Plain)).unwrap();
    assert_eq!(
        out,
        Outputs {
            store_gfn: 0x3e,
            console_gfn: 0x3f
        }
    );
    let g = hv.g.borrow();
    assert_eq!(cb.log, vec!["sdd 2"], "MSR policy missing");
    // Duplicates are populated once; the last copy wins; PAE is dropped.
    assert_eq!(
        g.calls,
        vec![
            "policy 48 0",
            "populate [0, 1]",
            "tsc 9",
            "clear 0x3e",
            "clear 0x3f",
            "context 9",
            "seed 0x3f 0x3e"
        ]
    );
    assert_eq!(g.pages, BTreeMap::from([(0, 1), (1, 3)]));
    assert_eq!(g.params.get(&4), None);
    assert_eq!(g.params[&9], 9);
    assert_eq!((g.params[&2], g.params[&18]), (5, 6), "event channels");
    assert_eq!(hv.live_maps.get(), 0);
}

#[test]
fn remus_cut_inside_a_checkpoint_stays_at_the_last_complete_one() {
    let s = S::new()
        .static_data()
        .pages(&[(0, 1), (1, 1)])
        .state(1)
        .rec(rec::CHECKPOINT, &[])
        .pages(&[(1, 2)])
        .state(2)
        .rec(rec::CHECKPOINT, &[])
        .pages(&[(0, 3)]);
    let hv = Fake::default();
    let mut cb = Cbs::default();
    let out = domain_restore(&hv, &s.0[..], None, &mut cb, args(StreamType::Remus));
    assert!(out.is_ok(), "failover is rc 0, as stock");
    let g = hv.g.borrow();
    assert_eq!(g.pages, BTreeMap::from([(0, 1), (1, 2)]));
    assert_eq!(g.context.as_deref().map(|c| c[0]), Some(2));
    assert_eq!(cb.log, vec!["sdd 2", "checkpoint", "checkpoint"]);
}

#[test]
fn colo_runs_the_secondary_steps_and_sends_the_dirty_list() {
    let s = S::new()
        .static_data()
        .pages(&[(0, 1)])
        .state(1)
        .rec(rec::CHECKPOINT, &[])
        .pages(&[(0, 2)])
        .state(2)
        .rec(rec::CHECKPOINT, &[])
        .rec(rec::END, &[]);
    let hv = Fake {
        dirty: vec![3, 40],
        ..Fake::default()
    };
    let mut cb = Cbs::default();
    let mut back: Vec<u8> = Vec::new();
    let out = domain_restore(
        &hv,
        &s.0[..],
        Some(&mut back as &mut dyn Sink),
        &mut cb,
        args(StreamType::Colo),
    );
    assert!(out.is_ok());
    let steps = ["results 0x3e 0x3f", "postcopy", "wait", "suspend"];
    let mut want = vec!["sdd 2".to_string(), "checkpoint".into()];
    want.extend(steps.iter().map(|s| s.to_string()));
    want.push("checkpoint".into());
    want.extend(steps.iter().map(|s| s.to_string()));
    assert_eq!(cb.log, want);
    // Two records: type 0xf, length 16, pfns 3 and 40 (the format's 8-byte header, which
    // 4.20's restore widens to 16 bytes with a zero pointer: BACKCHANNEL_HEADER_LEN).
    let mut one = Vec::new();
    one.extend(rec::CHECKPOINT_DIRTY_PFN_LIST.to_le_bytes());
    one.extend(16u32.to_le_bytes());
    one.resize(BACKCHANNEL_HEADER_LEN, 0);
    one.extend(3u64.to_le_bytes());
    one.extend(40u64.to_le_bytes());
    assert_eq!(back, [one.clone(), one].concat());
    let g = hv.g.borrow();
    assert_eq!(g.pages[&0], 2);
    assert_eq!(
        g.calls.iter().filter(|c| c.starts_with("context")).count(),
        2
    );
}

#[test]
fn a_page_that_fails_to_map_fails_with_stocks_message_and_nothing_mapped() {
    let s = S::new().static_data().pages(&[(0, 1), (5, 2)]).state(1);
    let hv = Fake {
        map_error_at: Some(5),
        ..Fake::default()
    };
    let mut cb = Cbs::default();
    let e = domain_restore(&hv, &s.0[..], None, &mut cb, args(StreamType::Plain)).unwrap_err();
    assert_eq!(e.0, libc::EFAULT);
    assert_eq!(hv.live_maps.get(), 0);
    let g = hv.g.borrow();
    assert!(
        g.calls
            .iter()
            .any(|c| c.starts_with("error Mapping pfn 0x5 (mfn 0x5, type 0x0) failed with -14")),
        "{:?}",
        g.calls
    );
}

#[test]
fn a_bad_record_before_the_first_checkpoint_fails_with_einval() {
    let s = S::new().pages(&[(0, 1)]);
    let hv = Fake::default();
    let mut cb = Cbs::default();
    let e = domain_restore(&hv, &s.0[..], None, &mut cb, args(StreamType::Plain)).unwrap_err();
    assert_eq!(e.0, libc::EINVAL);
    assert!(hv.g.borrow().pages.is_empty());
    assert!(hv
        .g
        .borrow()
        .calls
        .iter()
        .any(|c| c == "error No STATIC_DATA_END seen"));
}
