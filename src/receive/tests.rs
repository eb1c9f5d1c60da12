// SPDX-License-Identifier: GPL-3.0-only
//! The restore engine over the fake of the restore's Xen in `testkit::restore` (pages,
//! params, context, the calls in order), driven by whole streams built with the save side's
//! encoder.

use super::*;
use crate::stream::{
    self, domain_header, encode_record, hvm_params_body, image_header, page_data_entry,
    page_data_prefix, tsc_info_body,
};
use crate::testkit::restore::FakeRestore as Fake;
use std::collections::BTreeMap;

const DOM: u32 = 7;

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
    // The grant seed's inputs did not change: seeded at the first checkpoint only.
    assert_eq!(g.calls.iter().filter(|c| c.starts_with("seed")).count(), 1);
}

#[test]
fn the_pfn_limit_follows_the_cpuid_policys_maxphysaddr() {
    let leaf = |leaf: u32, eax: u32| {
        let mut l = Vec::new();
        for w in [leaf, 0xffff_ffff, eax, 0, 0, 0] {
            l.extend(w.to_le_bytes());
        }
        l
    };
    let policy = [leaf(0, 0xd), leaf(0x8000_0008, 0x3027)].concat();
    assert_eq!(pfn_limit_from_cpuid(&policy), Some(1 << 27)); // 39 bits
    assert_eq!(pfn_limit_from_cpuid(&leaf(0x8000_0008, 52)), Some(1 << 40));
    // No leaf, or a width Xen would not give a guest: the 2^40 fallback applies.
    assert_eq!(pfn_limit_from_cpuid(&leaf(0, 0xd)), None);
    assert_eq!(pfn_limit_from_cpuid(&leaf(0x8000_0008, 0)), None);
    assert_eq!(pfn_limit_from_cpuid(&leaf(0x8000_0008, 57)), None);
    assert_eq!(pfn_limit_from_cpuid(&[]), None);
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

const APPLY_CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/restore_apply");

/// The `restore_apply` fuzz corpus through the apply path, with the target's checks; the
/// stock seeds restore as they must.
#[test]
fn apply_fuzz_corpus_replays_cleanly() {
    let mut n = 0;
    for entry in std::fs::read_dir(APPLY_CORPUS).expect("the fuzz corpus is in the repository") {
        super::fuzzing::apply_input(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 15, "only {n} corpus files");
    let seed = |name: &str| std::fs::read(format!("{APPLY_CORPUS}/{name}")).unwrap();
    // A stock 4.17 non-live stream (its pages cut to a few by seeds_from_stream.py) is
    // restored whole: pages written, the context set, the outputs reported.
    let plain = super::fuzzing::apply_input(&seed("stock-4.17-nonlive")).unwrap();
    assert!(plain.out.is_ok(), "{:?}", plain.hv.g.borrow().calls);
    assert!(!plain.hv.g.borrow().pages.is_empty());
    assert!(plain.hv.g.borrow().context.is_some());
    // Stock's Remus stream, cut inside its 6th CHECKPOINT: 5 checkpoints, then failover (0).
    let remus = super::fuzzing::apply_input(&seed("stock-4.17-remus")).unwrap();
    assert!(remus.out.is_ok());
    assert_eq!(remus.checkpoints, 5);
    // The same as a plain stream: its first CHECKPOINT is refused with EINVAL.
    let mut p = seed("stock-4.17-remus");
    p[0] = 0;
    let refused = super::fuzzing::apply_input(&p).unwrap();
    assert_eq!(refused.out.unwrap_err().0, libc::EINVAL);
}
