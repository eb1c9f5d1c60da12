// SPDX-License-Identifier: GPL-3.0-only
//! The checkpoint model driven by whole streams built with the save side's encoder
//! (`crate::stream`) and read back with [`Reader`], applied to a fake guest.

use super::*;
use crate::abi::xen::{pfinfo, PAGE_SIZE};
use crate::restore::reader::{read_domain_header, read_image_header, Limits, Reader};
use crate::stream::{
    self, domain_header, encode_record, hvm_params_body, image_header, page_data_entry,
    page_data_prefix, tsc_info_body,
};
use std::collections::BTreeMap;

const PFNS: u64 = 64;
const BOUND: usize = 64 << 20;

/// A stream built record by record.
struct S(Vec<u8>);

impl S {
    fn new(version: u32) -> S {
        let mut h = image_header().to_vec();
        h[12..16].copy_from_slice(&version.to_be_bytes());
        h.extend(domain_header(stream::DHDR_TYPE_X86_HVM, (4 << 16) | 17));
        S(h)
    }
    fn rec(mut self, t: u32, body: &[u8]) -> S {
        self.0.extend(encode_record(t, &[body]).unwrap());
        self
    }
    fn static_data(self) -> S {
        self.rec(rec::X86_CPUID_POLICY, &[0x11; 48])
            .rec(rec::X86_MSR_POLICY, &[0x12; 16])
            .rec(rec::STATIC_DATA_END, &[])
    }
    /// PAGE_DATA with every page filled with its byte.
    fn pages(mut self, pages: &[(u64, u8)]) -> S {
        let e: Vec<u64> = pages.iter().map(|&(p, _)| page_data_entry(p, 0)).collect();
        self.0.extend(page_data_prefix(&e, pages.len()).unwrap());
        for &(_, fill) in pages {
            self.0.extend(std::iter::repeat_n(fill, PAGE_SIZE));
        }
        self
    }
    fn xtab(mut self, pfn: u64) -> S {
        let e = [page_data_entry(pfn, pfinfo::XTAB as u64)];
        self.0.extend(page_data_prefix(&e, 0).unwrap());
        self
    }
    /// The end-of-checkpoint state records, as the 4.17 saver orders them.
    fn state(self, tag: u8) -> S {
        self.rec(rec::X86_TSC_INFO, &tsc_info_body(0, 1000, tag as u64, 1))
            .rec(rec::HVM_CONTEXT, &[tag; 40])
            .rec(
                rec::HVM_PARAMS,
                &hvm_params_body(&[(1, 0x20), (2, tag as u64)]),
            )
    }
    fn checkpoint(self) -> S {
        self.rec(rec::CHECKPOINT, &[])
    }
    fn end(self) -> S {
        self.rec(rec::END, &[])
    }
    fn cut(mut self, n: usize) -> S {
        self.0.truncate(self.0.len() - n);
        self
    }
}

/// What the fake guest holds: page contents (one byte per page, checked uniform), and the
/// last applied state records.
#[derive(Debug, Default, Clone, PartialEq)]
struct Guest {
    pages: BTreeMap<u64, u8>,
    context: Option<u8>,
    params: Vec<(u64, u64)>,
    static_data_end: u32,
    verify: bool,
}

impl Guest {
    fn apply(&mut self, r: Record) {
        match r {
            Record::PageData(p) => {
                for (pfn, _, page) in p.pages() {
                    if let Some(page) = page {
                        assert!(page.iter().all(|&b| b == page[0]), "page {pfn} uniform");
                        if !self.verify {
                            self.pages.insert(pfn, page[0]);
                        }
                    }
                }
            }
            Record::HvmContext(c) => self.context = Some(c[0]),
            Record::HvmParams(p) => self.params.extend(p),
            Record::StaticDataEnd => self.static_data_end += 1,
            Record::Verify => self.verify = true,
            _ => {}
        }
    }
}

#[derive(Debug, PartialEq)]
enum End {
    /// Finished (END or failover) with stock's tail.
    Done(Finish),
    Fail(Error),
}

/// Run a restore of `bytes` against the model. `answer` gives each callback's result.
fn run(
    bytes: &[u8],
    st: StreamType,
    bound: usize,
    mut answer: impl FnMut(&str, u32) -> i32,
) -> (Guest, Vec<String>, End) {
    let mut r = bytes;
    let version = read_image_header(&mut r).unwrap().version;
    read_domain_header(&mut r).unwrap().check_x86_hvm().unwrap();
    let mut reader = Reader::new(r, Limits::new(PFNS));
    let mut seq = Sequencer::new(st, version, bound);
    let mut guest = Guest::default();
    let mut log = Vec::new();
    let mut n = 0u32;
    let end = loop {
        match seq.next(reader.next_record()) {
            Step::Apply(rec) => guest.apply(rec),
            Step::InferStaticDataEnd(rec) => {
                log.push("infer SDE".into());
                guest.apply(Record::StaticDataEnd);
                guest.apply(rec)
            }
            Step::Ignore(t) => log.push(format!("ignore {t:#x}")),
            Step::Buffered => {}
            Step::Checkpoint => {
                n += 1;
                log.push(format!("checkpoint {n}"));
                match seq.checkpoint_done(answer("checkpoint", n)) {
                    Commit::Apply(recs) => {
                        log.push(format!("apply {}", recs.len()));
                        recs.into_iter().for_each(|r| guest.apply(r));
                    }
                    Commit::Failover => break End::Done(finish(st)),
                    Commit::Fail(e) => break End::Fail(e),
                }
                if st == StreamType::Colo {
                    log.push("stream_complete".into());
                    let mut flow = Flow::Continue;
                    for cb in ["postcopy", "wait_checkpoint", "suspend"] {
                        log.push(cb.into());
                        flow = colo_callback(answer(cb, n));
                        if flow != Flow::Continue {
                            break;
                        }
                    }
                    match flow {
                        Flow::Continue => log.push("dirty list".into()),
                        Flow::Failover => break End::Done(finish(st)),
                        Flow::Fail => break End::Fail(Error::Order("callback failed")),
                    }
                }
            }
            Step::End => break End::Done(finish(st)),
            Step::Failover => {
                log.push("failover".into());
                break End::Done(finish(st));
            }
            Step::Fail(e) => break End::Fail(e),
        }
    };
    (guest, log, end)
}

fn ok(_: &str, _: u32) -> i32 {
    1
}

fn pages(p: &[(u64, u8)]) -> BTreeMap<u64, u8> {
    p.iter().copied().collect()
}

const REMUS_DONE: End = End::Done(Finish {
    stream_complete: true,
    message: "Restore successful",
});
const COLO_DONE: End = End::Done(Finish {
    stream_complete: false,
    message: "COLO Failover",
});

/// Remus: a first pass, then two checkpoints.
fn remus() -> S {
    S::new(3)
        .static_data()
        .pages(&[(0, 1), (1, 1), (2, 1)])
        .xtab(3)
        .state(1)
        .checkpoint()
        .pages(&[(1, 2)])
        .state(2)
        .checkpoint()
        .pages(&[(2, 3), (0, 3)])
        .state(3)
        .checkpoint()
}

#[test]
fn plain_stream_applies_everything_in_order() {
    let s = S::new(3)
        .static_data()
        .pages(&[(0, 1), (5, 2)])
        .pages(&[(5, 3)])
        .state(9)
        .end();
    let (g, log, end) = run(&s.0, StreamType::Plain, BOUND, ok);
    assert_eq!(end, REMUS_DONE);
    assert!(log.is_empty(), "{log:?}");
    assert_eq!(
        g.pages,
        pages(&[(0, 1), (5, 3)]),
        "a later copy of a pfn wins"
    );
    assert_eq!(g.context, Some(9));
    assert_eq!(g.static_data_end, 1);
}

#[test]
fn remus_applies_each_checkpoint_when_complete() {
    let (g, log, end) = run(&remus().end().0, StreamType::Remus, BOUND, ok);
    assert_eq!(end, REMUS_DONE);
    assert_eq!(
        log,
        [
            "checkpoint 1",
            "apply 0",
            "checkpoint 2",
            "apply 4",
            "checkpoint 3",
            "apply 4",
            "failover"
        ],
        "END after a checkpoint takes stock's failover path, with nothing held"
    );
    assert_eq!(g.pages, pages(&[(0, 3), (1, 2), (2, 3)]));
    assert_eq!(g.context, Some(3));
}

#[test]
fn a_broken_stream_fails_over_to_the_last_complete_checkpoint() {
    // Every cut inside the fourth checkpoint's records: the guest is as after checkpoint 3.
    let full = remus().pages(&[(0, 4), (1, 4)]).state(4);
    let tail = full.0.len() - remus().0.len();
    let (want, _, _) = run(&remus().end().0, StreamType::Remus, BOUND, ok);
    for cut in 1..=tail {
        let s = S(full.0.clone()).cut(cut);
        let (g, log, end) = run(&s.0, StreamType::Remus, BOUND, ok);
        assert_eq!(end, REMUS_DONE, "cut {cut}");
        assert_eq!(g, want, "cut {cut}");
        assert_eq!(log.last().unwrap(), "failover");
    }
    // END in the middle of a checkpoint: the same.
    let s = remus().pages(&[(0, 4)]).end();
    let (g, _, end) = run(&s.0, StreamType::Remus, BOUND, ok);
    assert_eq!((g, end), (want, REMUS_DONE));
}

#[test]
fn a_checkpoint_with_no_end_stays_pending() {
    // A whole checkpoint's records but no CHECKPOINT marker, then EOF.
    let s = remus().pages(&[(1, 9)]).state(9);
    let (g, _, end) = run(&s.0, StreamType::Remus, BOUND, ok);
    assert_eq!(end, REMUS_DONE);
    assert_eq!(g.pages[&1], 2);
    assert_eq!(g.context, Some(3));
}

#[test]
fn a_broken_stream_before_the_first_checkpoint_fails() {
    let s = S::new(3).static_data().pages(&[(0, 1)]).state(1).cut(3);
    let (_, _, end) = run(&s.0, StreamType::Remus, BOUND, ok);
    let End::Fail(e) = end else { panic!("{end:?}") };
    assert_eq!((e.kind(), e.errno()), (ErrorKind::Stream, libc::EIO));
}

#[test]
fn a_bad_record_in_a_checkpoint_fails_at_its_checkpoint_with_nothing_applied() {
    let bad_type = page_data_entry(1, 6 << 28);
    let mut bad = page_data_prefix(&[bad_type], 0).unwrap();
    bad.extend([0u8; 0]);
    let base = remus().pages(&[(0, 7)]);
    let s = S([base.0, bad].concat())
        .pages(&[(1, 7)])
        .state(7)
        .checkpoint();
    let (g, log, end) = run(&s.0, StreamType::Remus, BOUND, ok);
    let End::Fail(e) = end else { panic!("{end:?}") };
    assert!(e.message().contains("Unknown type 0x60000000"), "{e}");
    assert_eq!(
        log.last().unwrap(),
        "checkpoint 4",
        "stock calls the callback first"
    );
    assert_eq!(
        g.pages[&0], 3,
        "no record of the bad checkpoint was applied"
    );
    // The same bad record followed by EOF: stock fails over, so do we.
    let base = remus().pages(&[(0, 7)]);
    let s = S([base.0, page_data_prefix(&[bad_type], 0).unwrap()].concat());
    let (g, _, end) = run(&s.0, StreamType::Remus, BOUND, ok);
    assert_eq!(end, REMUS_DONE);
    assert_eq!(g.pages[&0], 3);
}

#[test]
fn held_records_obey_stock_order_rules() {
    // A second STATIC_DATA_END, an optional record and a PV record inside a checkpoint all
    // fail at the CHECKPOINT, as stock's deferred processing does.
    let cases: [(u32, &str); 3] = [
        (rec::STATIC_DATA_END, "Multiple STATIC_DATA_END"),
        (
            rec::OPTIONAL | 7,
            "Mandatory record 0xe (Checkpoint) not handled",
        ),
        (4, "Mandatory record 0xe (Checkpoint) not handled"),
    ];
    for (t, msg) in cases {
        let s = remus().rec(t, &[]).checkpoint();
        let (_, _, end) = run(&s.0, StreamType::Remus, BOUND, ok);
        let End::Fail(e) = end else {
            panic!("{t:#x}: {end:?}")
        };
        assert!(e.message().contains(msg), "{t:#x}: {e}");
    }
}

#[test]
fn optional_records_outside_checkpoints_are_ignored() {
    let s = S::new(3)
        .rec(rec::OPTIONAL | 0x99, &[1, 2, 3])
        .static_data()
        .end();
    let (_, log, end) = run(&s.0, StreamType::Plain, BOUND, ok);
    assert_eq!(end, REMUS_DONE);
    assert_eq!(log, ["ignore 0x80000099"]);
}

#[test]
fn order_rules_outside_checkpoints() {
    let cases: Vec<(S, StreamType, &str)> = vec![
        (
            S::new(3).pages(&[(0, 1)]),
            StreamType::Plain,
            "No STATIC_DATA_END seen",
        ),
        (
            S::new(3).static_data().rec(rec::STATIC_DATA_END, &[]),
            StreamType::Plain,
            "Multiple STATIC_DATA_END records found",
        ),
        (
            S::new(3).static_data().checkpoint(),
            StreamType::Plain,
            "Found checkpoint in non-checkpointed stream",
        ),
        (
            S::new(3).static_data().rec(4, &[0; 8]), // X86_PV_VCPU_BASIC
            StreamType::Remus,
            "Mandatory record 0x4 (x86 PV record) not handled",
        ),
        (
            S::new(3)
                .static_data()
                .rec(rec::CHECKPOINT_DIRTY_PFN_LIST, &[]),
            StreamType::Colo,
            "Mandatory record 0xf (Checkpoint dirty pfn list) not handled",
        ),
    ];
    for (s, st, msg) in cases {
        let (_, _, end) = run(&s.end().0, st, BOUND, ok);
        let End::Fail(e) = end else {
            panic!("{msg}: {end:?}")
        };
        assert_eq!(e.message(), msg);
    }
}

#[test]
fn version_2_streams_infer_static_data_end() {
    let s = S::new(2).pages(&[(0, 1)]).state(1).end();
    let (g, log, end) = run(&s.0, StreamType::Plain, BOUND, ok);
    assert_eq!(end, REMUS_DONE);
    assert_eq!(log, ["infer SDE"]);
    assert_eq!(g.static_data_end, 1);
    // Also when the first PAGE_DATA is held in a checkpoint.
    let s = S::new(2)
        .state(1)
        .checkpoint()
        .pages(&[(0, 5)])
        .checkpoint()
        .end();
    let (g, log, _) = run(&s.0, StreamType::Remus, BOUND, ok);
    assert_eq!(
        log,
        [
            "checkpoint 1",
            "apply 0",
            "checkpoint 2",
            "apply 2",
            "failover"
        ]
    );
    assert_eq!((g.static_data_end, g.pages[&0]), (1, 5));
}

#[test]
fn checkpoint_callback_results() {
    use super::{XGR_CHECKPOINT_ERROR as E, XGR_CHECKPOINT_FAILOVER as F};
    // FAILOVER at the first checkpoint: no consistent state, so an error.
    let (_, _, end) = run(&remus().end().0, StreamType::Remus, BOUND, |_, _| F);
    assert!(matches!(end, End::Fail(_)), "{end:?}");
    // FAILOVER later: the held records are dropped.
    let (g, _, end) = run(&remus().end().0, StreamType::Remus, BOUND, |_, n| {
        if n == 3 {
            F
        } else {
            1
        }
    });
    assert_eq!(end, REMUS_DONE);
    assert_eq!(
        g.pages,
        pages(&[(0, 1), (1, 2), (2, 1)]),
        "checkpoint 3 not applied"
    );
    for bad in [E, -1, 3] {
        let (_, _, end) = run(&remus().end().0, StreamType::Remus, BOUND, |_, n| {
            if n == 2 {
                bad
            } else {
                1
            }
        });
        assert!(matches!(end, End::Fail(_)), "{bad}: {end:?}");
    }
}

#[test]
fn colo_runs_the_secondary_steps_after_each_checkpoint() {
    let (g, log, end) = run(&remus().end().0, StreamType::Colo, BOUND, ok);
    assert_eq!(end, COLO_DONE);
    let one = [
        "stream_complete",
        "postcopy",
        "wait_checkpoint",
        "suspend",
        "dirty list",
    ];
    assert_eq!(&log[..2], ["checkpoint 1", "apply 0"]);
    assert_eq!(&log[2..7], one);
    assert_eq!(log.len(), 3 * 7 + 1);
    assert_eq!(log.last().unwrap(), "failover");
    assert_eq!(g.pages[&0], 3);
    // wait_checkpoint answering 2: failover, no further record read.
    let (g, log, end) = run(&remus().end().0, StreamType::Colo, BOUND, |cb, n| {
        if cb == "wait_checkpoint" && n == 2 {
            2
        } else {
            1
        }
    });
    assert_eq!(end, COLO_DONE);
    assert_eq!(log.last().unwrap(), "wait_checkpoint");
    assert_eq!(g.pages[&1], 2);
    assert_eq!(g.pages[&0], 1);
    // Any other answer fails.
    let (_, _, end) = run(&remus().end().0, StreamType::Colo, BOUND, |cb, _| {
        if cb == "suspend" {
            0
        } else {
            1
        }
    });
    assert!(matches!(end, End::Fail(_)));
}

#[test]
fn verify_is_applied_in_order() {
    let s = S::new(3)
        .static_data()
        .pages(&[(0, 1)])
        .rec(rec::VERIFY, &[])
        .pages(&[(0, 2)])
        .end();
    let (g, _, _) = run(&s.0, StreamType::Plain, BOUND, ok);
    assert_eq!(g.pages[&0], 1, "verify mode compares, never writes");
}

#[test]
fn the_buffer_bound_is_enforced_and_fatal() {
    let one_page = std::mem::size_of::<Record>() + PAGE_SIZE + 12;
    // The largest checkpoint (3) holds two pages and three state records: fits in 3 pages.
    let (_, _, end) = run(&remus().end().0, StreamType::Remus, 3 * one_page, ok);
    assert_eq!(end, REMUS_DONE);
    // Checkpoint 2 (one page) fits in one page and the state records; checkpoint 3 (two
    // pages) does not: it fails, and does not fail over.
    let state = 4 * std::mem::size_of::<Record>() + 100;
    let (g, _, end) = run(&remus().end().0, StreamType::Remus, one_page + state, ok);
    let End::Fail(e) = end else { panic!("{end:?}") };
    assert_eq!((e.kind(), e.errno()), (ErrorKind::Resource, libc::ENOMEM));
    assert_eq!(g.pages[&0], 1, "nothing of checkpoint 3");
}

#[test]
fn nothing_is_accepted_after_the_end() {
    let mut seq = Sequencer::new(StreamType::Plain, 3, BOUND);
    assert_eq!(
        seq.next(Ok(Record::StaticDataEnd)),
        Step::Apply(Record::StaticDataEnd)
    );
    assert_eq!(seq.next(Ok(Record::End)), Step::End);
    assert!(matches!(seq.next(Ok(Record::Verify)), Step::Fail(_)));
    let mut seq = Sequencer::new(StreamType::Remus, 3, BOUND);
    assert_eq!(seq.next(Ok(Record::Checkpoint)), Step::Checkpoint);
    assert_eq!(seq.checkpoint_done(1), Commit::Apply(vec![]));
    assert!(seq.buffering());
    assert_eq!(seq.next(Ok(Record::Verify)), Step::Buffered);
    assert!(seq.held() > 0);
    assert_eq!(seq.next(Ok(Record::End)), Step::Failover);
    assert_eq!(seq.held(), 0);
}

/// One fuzz input (fuzz/fuzz_targets/restore_reader.rs): pfn limit, stream type, callback
/// answers, stream.
fn fuzz_input(limit: u32, st: u8, answers: u8, stream: &[u8]) -> Vec<u8> {
    let mut v = limit.to_le_bytes().to_vec();
    v.extend([st, answers]);
    v.extend(stream);
    v
}

/// The seed corpus: streams built with the save side's encoder, good and bad.
fn fuzz_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let pfns = PFNS as u32;
    let bad_type = {
        let e = [page_data_entry(1, 6 << 28)];
        S([remus().0, page_data_prefix(&e, 0).unwrap()].concat()).checkpoint()
    };
    let mut huge = S::new(3).static_data().0;
    huge.extend(rec::HVM_CONTEXT.to_le_bytes());
    huge.extend(u32::MAX.to_le_bytes());
    vec![
        (
            "plain",
            fuzz_input(
                pfns,
                0,
                0xff,
                &S::new(3)
                    .static_data()
                    .pages(&[(0, 1), (5, 2)])
                    .state(1)
                    .end()
                    .0,
            ),
        ),
        ("remus", fuzz_input(pfns, 1, 0xff, &remus().end().0)),
        (
            "remus-cut",
            fuzz_input(pfns, 1, 0xff, &remus().pages(&[(0, 4)]).cut(100).0),
        ),
        (
            "remus-failover",
            fuzz_input(pfns, 1, 0xfb, &remus().end().0),
        ),
        ("colo", fuzz_input(pfns, 2, 0xff, &remus().xtab(9).end().0)),
        (
            "v2",
            fuzz_input(
                pfns,
                1,
                0xff,
                &S::new(2)
                    .state(1)
                    .checkpoint()
                    .pages(&[(0, 5)])
                    .checkpoint()
                    .end()
                    .0,
            ),
        ),
        ("bad-type", fuzz_input(pfns, 1, 0xff, &bad_type.end().0)),
        (
            "pfn-limit",
            fuzz_input(
                2,
                0,
                0xff,
                &S::new(3).static_data().pages(&[(2, 1)]).end().0,
            ),
        ),
        (
            "optional",
            fuzz_input(
                pfns,
                1,
                0xff,
                &remus().rec(rec::OPTIONAL | 3, &[1]).checkpoint().end().0,
            ),
        ),
        (
            "verify",
            fuzz_input(
                pfns,
                0,
                0xff,
                &S::new(3)
                    .static_data()
                    .rec(rec::VERIFY, &[])
                    .pages(&[(1, 1)])
                    .end()
                    .0,
            ),
        ),
        ("huge", fuzz_input(pfns, 0, 0xff, &huge)),
        (
            "no-sde",
            fuzz_input(pfns, 0, 0xff, &S::new(3).pages(&[(1, 1)]).end().0),
        ),
    ]
}

/// How a replayed fuzz input ended.
#[derive(Debug, PartialEq)]
enum Replay {
    /// The input is too short or its headers are refused.
    NoStream,
    /// END or failover after this many checkpoints.
    Done(u32),
    /// An error after this many checkpoints.
    Failed(u32),
}

/// The fuzz target's loop and invariants, for the corpus replay.
fn fuzz_replay(data: &[u8]) -> Replay {
    if data.len() < 6 {
        return Replay::NoStream;
    }
    let limit = u32::from_le_bytes(data[..4].try_into().unwrap()) as u64;
    let st = [StreamType::Plain, StreamType::Remus, StreamType::Colo][data[4] as usize % 3];
    let mut r = &data[6..];
    let Ok(h) = read_image_header(&mut r) else {
        return Replay::NoStream;
    };
    if read_domain_header(&mut r).map(|d| d.check_x86_hvm()) != Ok(Ok(())) {
        return Replay::NoStream;
    }
    let check = |r: &Record| {
        if let Record::PageData(p) = r {
            assert!(p.pfns.iter().all(|&f| f < limit) && p.pfns.len() <= 1024);
        }
    };
    let mut reader = Reader::new(r, Limits::new(limit));
    let mut seq = Sequencer::new(st, h.version, 1 << 20);
    let mut n = 0;
    loop {
        match seq.next(reader.next_record()) {
            Step::Apply(r) | Step::InferStaticDataEnd(r) => check(&r),
            Step::Ignore(_) | Step::Buffered => {}
            Step::Checkpoint => {
                let ret = if data[5] & (1 << n.min(7)) != 0 { 1 } else { 2 };
                n += 1;
                match seq.checkpoint_done(ret) {
                    Commit::Apply(recs) => recs.iter().for_each(check),
                    Commit::Failover => return Replay::Done(n),
                    Commit::Fail(e) => {
                        assert!(e.errno() > 0);
                        return Replay::Failed(n);
                    }
                }
            }
            Step::End | Step::Failover => return Replay::Done(n),
            Step::Fail(e) => {
                assert!(e.errno() > 0 && !e.message().is_empty());
                return Replay::Failed(n);
            }
        }
    }
}

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/restore_reader");

/// Writes the seed corpus. Run by hand after changing the seeds:
/// `cargo test --release write_restore_fuzz_seeds -- --ignored`.
#[test]
#[ignore = "writes fuzz/corpus/restore_reader"]
fn write_restore_fuzz_seeds() {
    std::fs::create_dir_all(CORPUS).unwrap();
    for (name, bytes) in fuzz_seeds() {
        std::fs::write(format!("{CORPUS}/seed-{name}"), bytes).unwrap();
    }
}

/// The cargo-fuzz corpus (docs/reliability.md) replayed with the target's invariants.
#[test]
fn restore_fuzz_corpus_replays_cleanly() {
    for (_, bytes) in fuzz_seeds() {
        fuzz_replay(&bytes);
    }
    let mut n = 0;
    for entry in std::fs::read_dir(CORPUS).expect("the fuzz corpus is in the repository") {
        fuzz_replay(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= fuzz_seeds().len(), "only {n} corpus files");
}

/// The seeds cut from stock 4.17 streams (fuzz/seeds_from_stream.py on test_sim_roundtrip's
/// stream.bin) read whole. The Remus stream has 6 checkpoints; the test cut its file 4 bytes
/// short, inside the last CHECKPOINT record, so 5 complete, then failover.
#[test]
fn stock_streams_are_read_whole() {
    let seed = |name: &str| std::fs::read(format!("{CORPUS}/{name}")).unwrap();
    assert_eq!(fuzz_replay(&seed("stock-4.17-nonlive")), Replay::Done(0));
    let remus = seed("stock-4.17-remus");
    assert_eq!(fuzz_replay(&remus), Replay::Done(5));
    // The same stream as a plain one: its first CHECKPOINT is refused.
    let mut plain = remus.clone();
    plain[4] = 0;
    assert_eq!(fuzz_replay(&plain), Replay::Failed(0));
    // A pfn limit of 0 refuses the first PAGE_DATA; a limit of 1 accepts the first pass's
    // (cut to pfn 0) and refuses a held one at the CHECKPOINT that ends its checkpoint.
    let mut small = remus;
    small[..4].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(fuzz_replay(&small), Replay::Failed(0));
    small[..4].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(fuzz_replay(&small), Replay::Failed(2));
}
