// SPDX-License-Identifier: GPL-3.0-only
//! The engine driven by a fake hypervisor: record order, PAGE_DATA contents, callback order
//! and return-value rules, the COLO back channel and cleanup.

use super::*;
use crate::abi::xen::PAGE_SIZE;
use crate::backchannel::back_record;
use crate::pages::PerBatch;
use crate::stream::rec;
use crate::testkit::FakeXen;
use std::io::Read;

/// Callbacks that record their calls and return scripted values.
struct Script<'a> {
    xen: &'a FakeXen,
    calls: Vec<&'static str>,
    checkpoints_left: i32,
    suspend_rc: i32,
    colo: bool,
    /// Scripted precopy decisions (None: no policy, stock's default applies).
    policy: Option<Vec<i32>>,
    seen_stats: Vec<PrecopyStats>,
}

impl<'a> Script<'a> {
    /// Callbacks that succeed: suspend returns 1, no precopy policy, no checkpoint left.
    fn new(xen: &'a FakeXen) -> Script<'a> {
        Script {
            xen,
            calls: vec![],
            checkpoints_left: 0,
            suspend_rc: 1,
            colo: false,
            policy: None,
            seen_stats: vec![],
        }
    }
}

impl Callbacks for Script<'_> {
    fn has(&self, _: Callback) -> bool {
        true
    }
    fn suspend(&mut self) -> i32 {
        self.calls.push("suspend");
        self.xen.suspended.set(true);
        self.suspend_rc
    }
    fn precopy_policy(&mut self, stats: PrecopyStats) -> Option<i32> {
        let decisions = self.policy.as_mut()?;
        self.seen_stats.push(stats);
        Some(if decisions.is_empty() {
            XGS_POLICY_STOP_AND_COPY
        } else {
            decisions.remove(0)
        })
    }
    fn postcopy(&mut self) -> i32 {
        self.calls.push("postcopy");
        self.xen.suspended.set(false);
        1
    }
    fn checkpoint(&mut self) -> i32 {
        self.calls.push("checkpoint");
        if self.colo {
            return 1;
        }
        self.checkpoints_left -= 1;
        (self.checkpoints_left > 0) as i32
    }
    fn wait_checkpoint(&mut self) -> i32 {
        self.calls.push("wait_checkpoint");
        self.checkpoints_left -= 1;
        (self.checkpoints_left > 0) as i32
    }
    fn switch_qemu_logdirty(&mut self, _: u32, enable: bool) -> i32 {
        self.calls.push(if enable { "qemu_on" } else { "qemu_off" });
        0
    }
}

/// Parse a stream after its two headers into (type, body) records.
fn records(s: &[u8]) -> Vec<(u32, Vec<u8>)> {
    assert_eq!(&s[..24], &stream::image_header()[..]);
    assert_eq!(&s[24..40], &stream::domain_header(2, (4 << 16) | 17)[..]);
    let mut out = Vec::new();
    let mut o = 40;
    while o < s.len() {
        let t = u32::from_le_bytes(s[o..o + 4].try_into().unwrap());
        let l = u32::from_le_bytes(s[o + 4..o + 8].try_into().unwrap()) as usize;
        out.push((t, s[o + 8..o + 8 + l].to_vec()));
        o += 8 + l + stream::padding(l);
    }
    assert_eq!(o, s.len(), "records end exactly at the end of the stream");
    out
}

/// Pfns of a PAGE_DATA body, checking each data page's contents.
fn page_data_pfns(body: &[u8]) -> Vec<u64> {
    let count = u32::from_le_bytes(body[0..4].try_into().unwrap()) as usize;
    let mut data = 8 + 8 * count;
    let mut pfns = Vec::new();
    for i in 0..count {
        let e = u64::from_le_bytes(body[8 + 8 * i..16 + 8 * i].try_into().unwrap());
        let (pfn, t) = (e & 0x000f_ffff_ffff_ffff, (e >> 32) as u32);
        if page_type_has_data(t as u64) {
            let page = &body[data..data + PAGE_SIZE];
            assert!(
                page.iter().all(|&b| b == FakeXen::byte(pfn)),
                "pfn {pfn} data"
            );
            data += PAGE_SIZE;
        }
        pfns.push(pfn);
    }
    assert_eq!(
        data,
        body.len(),
        "PAGE_DATA length covers exactly its pages"
    );
    pfns
}

fn run(xen: &FakeXen, cb: &mut Script<'_>, flags: u32, st: u32, back: &[u8]) -> (Outcome, Vec<u8>) {
    let mut out = Vec::new();
    let mut recv = back;
    let mut pages = PerBatch;
    let io = Io {
        sink: &mut out,
        recv: &mut recv,
        pages: &mut pages,
        cb,
    };
    let args = SaveArgs {
        dom: 7,
        flags,
        stream_type: st,
        io_fd: 3,
    };
    let o = domain_save(xen, io, &args);
    (o, out)
}

fn types_of(recs: &[(u32, Vec<u8>)]) -> Vec<u32> {
    recs.iter().map(|r| r.0).collect()
}

const OK: Outcome = Outcome::Done {
    rc: 0,
    errno: Errno(0),
};

#[test]
fn plain_nonlive_record_order_and_contents() {
    let xen = FakeXen::new(2100);
    let mut cb = Script::new(&xen);
    let (o, s) = run(&xen, &mut cb, 0, 0, &[]);
    assert_eq!(o, OK);
    let recs = records(&s);
    assert_eq!(
        types_of(&recs),
        vec![
            rec::X86_CPUID_POLICY,
            rec::X86_MSR_POLICY,
            rec::STATIC_DATA_END,
            rec::PAGE_DATA,
            rec::PAGE_DATA,
            rec::PAGE_DATA,
            rec::X86_TSC_INFO,
            rec::HVM_CONTEXT,
            rec::HVM_PARAMS,
            rec::END
        ]
    );
    let pfns: Vec<u64> = recs[3..6]
        .iter()
        .flat_map(|r| page_data_pfns(&r.1))
        .collect();
    assert_eq!(
        pfns,
        (0..2100).collect::<Vec<_>>(),
        "every pfn once, in order"
    );
    assert_eq!(recs[3].1[0..4], 1024u32.to_le_bytes(), "batches of 1024");
    assert_eq!(recs[7].1.len(), 90, "HVM context has the size Xen returned");
    assert_eq!(
        recs[8].1,
        stream::hvm_params_body(&[(1, 0xfeffc), (17, 0xfeffd)])
    );
    assert_eq!(cb.calls, vec!["qemu_on", "suspend", "qemu_off"]);
    assert_eq!(xen.maps.get(), 3, "one mapping per batch");
    assert!(!xen.logdirty_on.get(), "log-dirty off after the save");
}

#[test]
fn live_sends_dirty_rounds_then_final() {
    let xen = FakeXen::new(300);
    // Precopy round 2 sees 60 dirty pages (>= 50: go on), round 3 sees 3 (stop), final 2.
    *xen.dirty_rounds.borrow_mut() = vec![(100..160).collect(), vec![1, 2, 3], vec![4, 299]];
    let mut cb = Script::new(&xen);
    let (o, s) = run(&xen, &mut cb, XCFLAGS_LIVE, 0, &[]);
    assert_eq!(o, OK);
    let recs = records(&s);
    let batches: Vec<Vec<u64>> = recs
        .iter()
        .filter(|r| r.0 == rec::PAGE_DATA)
        .map(|r| page_data_pfns(&r.1))
        .collect();
    assert_eq!(batches.len(), 4);
    assert_eq!(batches[0], (0..300).collect::<Vec<_>>());
    assert_eq!(batches[1], (100..160).collect::<Vec<_>>());
    assert_eq!(batches[2], vec![1, 2, 3]);
    assert_eq!(batches[3], vec![4, 299]);
    assert_eq!(cb.calls, vec!["qemu_on", "suspend", "qemu_off"]);
}

/// A page source that keeps mappings: at the end of a plain precopy its last-chance visit
/// finds pfn 7 changed (and says it visited), while the fake guest dirties pages meanwhile.
struct Visiting {
    visited: bool,
}

impl PageSource<FakeXen> for Visiting {
    fn with_batch(
        &mut self,
        xen: &FakeXen,
        dom: u32,
        gfns: &[u64],
        consume: &mut dyn FnMut(&[PageRef<'_>]) -> Result<(), Errno>,
    ) -> Result<(), BatchError> {
        PerBatch.with_batch(xen, dom, gfns, consume)
    }

    fn revalidate(
        &mut self,
        _: &FakeXen,
        _: u32,
        whole: bool,
        resend: &mut dyn FnMut(u64),
    ) -> bool {
        if whole {
            resend(7);
        }
        whole && self.visited
    }

    fn suspended(&mut self, _: &FakeXen, _: u32, _: &DomInfo, _: u64) {}

    fn teardown(&mut self) {}
}

fn live_with_visit(visited: bool) -> Vec<Vec<u64>> {
    let xen = FakeXen::new(300);
    // Precopy: 60 dirty (go on), 3 (stop). Then, with a visit: 50, 51 dirtied during it (a
    // live round), and 4, 299 after it (the suspended round).
    *xen.dirty_rounds.borrow_mut() = vec![
        (100..160).collect(),
        vec![1, 2, 3],
        vec![50, 51],
        vec![4, 299],
    ];
    let mut cb = Script::new(&xen);
    let mut out = Vec::new();
    let mut recv: &[u8] = &[];
    let mut pages = Visiting { visited };
    let io = Io {
        sink: &mut out,
        recv: &mut recv,
        pages: &mut pages,
        cb: &mut cb,
    };
    let args = SaveArgs {
        dom: 7,
        flags: XCFLAGS_LIVE,
        stream_type: 0,
        io_fd: 3,
    };
    assert_eq!(domain_save(&xen, io, &args), OK);
    assert_eq!(cb.calls, vec!["qemu_on", "suspend", "qemu_off"]);
    records(&out)
        .iter()
        .filter(|r| r.0 == rec::PAGE_DATA)
        .map(|r| page_data_pfns(&r.1))
        .collect()
}

#[test]
fn a_last_chance_visit_is_followed_by_one_more_live_round() {
    // What the guest dirtied during the visit, and the page the visit found changed, go in a
    // live round; the suspended round (the downtime) has only what was dirtied after it.
    let b = live_with_visit(true);
    assert_eq!(b.len(), 5, "{b:?}");
    assert_eq!(b[3], vec![7, 50, 51]);
    assert_eq!(b[4], vec![4, 299]);
    // No visit (nothing cached): stock's rounds; the changed page goes in the last round.
    let b = live_with_visit(false);
    assert_eq!(b.len(), 4, "{b:?}");
    assert_eq!(b[3], vec![7, 50, 51]);
}

#[test]
fn colo_checkpoints_merge_back_channel() {
    let xen = FakeXen::new(64);
    *xen.dirty_rounds.borrow_mut() = vec![vec![], vec![10], vec![11]];
    let mut back = Vec::new();
    for pfns in [vec![20u64, 3], vec![]] {
        let body: Vec<u8> = pfns.iter().flat_map(|p| p.to_le_bytes()).collect();
        back.extend(back_record(rec::CHECKPOINT_DIRTY_PFN_LIST, &body));
    }
    let mut cb = Script {
        checkpoints_left: 3,
        colo: true,
        ..Script::new(&xen)
    };
    let (o, s) = run(&xen, &mut cb, XCFLAGS_LIVE, 2, &back);
    // The third wait_checkpoint returns 0: stock returns that 0, without END.
    assert!(matches!(o, Outcome::Done { rc: 0, .. }), "{o:?}");
    assert!(
        xen.logged("Save failed"),
        "stock logs the graceful stop as a failure"
    );
    let recs = records(&s);
    assert_eq!(recs.iter().filter(|r| r.0 == rec::CHECKPOINT).count(), 3);
    assert!(!types_of(&recs).contains(&rec::END));
    let batches: Vec<Vec<u64>> = recs
        .iter()
        .filter(|r| r.0 == rec::PAGE_DATA)
        .map(|r| page_data_pfns(&r.1))
        .collect();
    // First checkpoint live: everything, an empty precopy round, then the final round. Later
    // checkpoints merge the secondary's pfns into the primary's dirty ones; an empty union
    // sends no PAGE_DATA at all.
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0], (0..64).collect::<Vec<_>>());
    assert_eq!(batches[1], vec![10]);
    assert_eq!(batches[2], vec![3, 11, 20]);
    assert_eq!(
        cb.calls,
        vec![
            "qemu_on",
            "suspend",
            "checkpoint",
            "postcopy",
            "wait_checkpoint",
            "suspend",
            "checkpoint",
            "postcopy",
            "wait_checkpoint",
            "suspend",
            "checkpoint",
            "postcopy",
            "wait_checkpoint",
            "qemu_off"
        ]
    );
}

#[test]
fn colo_rejects_bad_back_channel() {
    let cases: Vec<(Vec<u8>, i32, &str)> = vec![
        (
            back_record(rec::CHECKPOINT_DIRTY_PFN_LIST, &64u64.to_le_bytes()),
            libc::EINVAL,
            "Invalid pfn 0x40",
        ),
        (
            back_record(rec::CHECKPOINT, &[]),
            libc::EINVAL,
            "Expect dirty bitmap record",
        ),
        (
            back_record(rec::CHECKPOINT_DIRTY_PFN_LIST, &[1, 2, 3]),
            libc::EINVAL,
            "Invalid dirty pfn list record length 3",
        ),
        (vec![15, 0, 0, 0, 16, 0], libc::EIO, "truncated"),
    ];
    for (back, errno, msg) in cases {
        let xen = FakeXen::new(64);
        let mut cb = Script {
            checkpoints_left: 3,
            colo: true,
            ..Script::new(&xen)
        };
        // Not live: the very first checkpoint reads the back channel.
        assert!(cb.colo);
        let (o, _) = run(&xen, &mut cb, 0, 2, &back);
        assert_eq!(
            o,
            Outcome::Done {
                rc: -1,
                errno: Errno(errno)
            },
            "{msg}"
        );
        assert!(xen.logged(msg), "{msg}: {:?}", xen.logs.borrow());
        assert!(xen.logged("Failed to get secondary vm's dirty pages"));
        assert_eq!(cb.calls.last(), Some(&"qemu_off"), "cleanup ran");
        assert_eq!(xen.live_mappings(), 0, "every mapping released");
    }
}

/// A back channel whose answers run out of time from the `late`-th on (counting from 1):
/// reads after that answer's `start_answer` fail with ETIMEDOUT, as `FdReader`'s do.
struct Clocked<'a> {
    bytes: &'a [u8],
    answers: u32,
    late: u32,
}

impl Read for Clocked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.answers >= self.late {
            return Err(std::io::Error::from_raw_os_error(libc::ETIMEDOUT));
        }
        self.bytes.read(buf)
    }
}

impl Channel for Clocked<'_> {
    fn start_answer(&mut self) {
        self.answers += 1;
    }
    fn timeout(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_millis(1000))
    }
}

#[test]
fn colo_secondary_out_of_time_fails_with_etimedout() {
    let xen = FakeXen::new(64);
    let body = 5u64.to_le_bytes();
    let back = back_record(rec::CHECKPOINT_DIRTY_PFN_LIST, &body);
    // The first answer arrives in time, the second never does.
    let mut recv = Clocked {
        bytes: &back,
        answers: 0,
        late: 2,
    };
    let mut cb = Script {
        checkpoints_left: 5,
        colo: true,
        ..Script::new(&xen)
    };
    let mut out = Vec::new();
    let io = Io {
        sink: &mut out,
        recv: &mut recv,
        pages: &mut PerBatch,
        cb: &mut cb,
    };
    let args = SaveArgs {
        dom: 7,
        flags: 0,
        stream_type: 2,
        io_fd: 3,
    };
    let o = domain_save(&xen, io, &args);
    assert_eq!(
        o,
        Outcome::Done {
            rc: -1,
            errno: Errno(libc::ETIMEDOUT)
        }
    );
    assert_eq!(recv.answers, 2, "the clock starts again for each answer");
    assert!(
        xen.logged("the secondary timed out, no whole answer within 1000 ms"),
        "{:?}",
        xen.logs.borrow()
    );
    assert!(xen.logged("Failed to get secondary vm's dirty pages (110"));
    assert_eq!(cb.calls.last(), Some(&"qemu_off"), "cleanup ran");
    assert!(!xen.logdirty_on.get(), "log-dirty off");
    assert_eq!(xen.live_mappings(), 0, "every mapping released");
    // One checkpoint went out (with the secondary's pfn 5), the second did not.
    let recs = records(&out);
    assert_eq!(recs.iter().filter(|r| r.0 == rec::CHECKPOINT).count(), 1);
}

#[test]
fn failures_return_minus_one_with_errno() {
    // Suspend callback failure.
    let xen = FakeXen::new(16);
    let mut cb = Script {
        suspend_rc: 0,
        ..Script::new(&xen)
    };
    let (o, s) = run(&xen, &mut cb, 0, 0, &[]);
    assert!(matches!(o, Outcome::Done { rc: -1, .. }), "{o:?}");
    assert!(xen.logged("save callback suspend() failed: 0"));
    assert!(!types_of(&records(&s)).contains(&rec::END));
    assert_eq!(cb.calls, vec!["qemu_on", "suspend", "qemu_off"]);

    // A per-page map error.
    let mut xen = FakeXen::new(16);
    xen.fail_map_gfn = Some(9);
    let mut cb = Script::new(&xen);
    let (o, _) = run(&xen, &mut cb, 0, 0, &[]);
    assert_eq!(
        o,
        Outcome::Done {
            rc: -1,
            errno: Errno(libc::EFAULT)
        }
    );
    assert!(xen.logged("Mapping of pfn 0x9 (mfn 0x9) failed -14"));

    // No such domain.
    let xen = FakeXen::new(16);
    let mut cb = Script::new(&xen);
    let mut out = Vec::new();
    let mut pages = PerBatch;
    let io = Io {
        sink: &mut out,
        recv: &mut &[][..],
        pages: &mut pages,
        cb: &mut cb,
    };
    let args = SaveArgs {
        dom: 9,
        flags: 0,
        stream_type: 0,
        io_fd: 3,
    };
    assert_eq!(
        domain_save(&xen, io, &args),
        Outcome::Done {
            rc: -1,
            errno: Errno(libc::ESRCH)
        }
    );
    assert!(out.is_empty());
    assert!(cb.calls.is_empty());
}

#[test]
fn caller_precopy_policy_sees_stock_stats() {
    let xen = FakeXen::new(100);
    *xen.dirty_rounds.borrow_mut() = vec![vec![1, 2], vec![3]];
    let mut cb = Script {
        policy: Some(vec![0, 0, 0, 0]),
        ..Script::new(&xen)
    };
    let (o, s) = run(&xen, &mut cb, XCFLAGS_LIVE, 0, &[]);
    assert_eq!(o, OK);
    let st = |iteration, total_written, dirty_count| PrecopyStats {
        iteration,
        total_written,
        dirty_count,
    };
    // Before/after each round, as stock: dirty_count -1 between the round and the CLEAN.
    assert_eq!(
        cb.seen_stats,
        vec![
            st(0, 0, 100),
            st(1, 100, -1),
            st(1, 100, 2),
            st(2, 102, -1),
            st(2, 102, 1)
        ]
    );
    let batches = records(&s)
        .into_iter()
        .filter(|r| r.0 == rec::PAGE_DATA)
        .map(|r| page_data_pfns(&r.1))
        .collect::<Vec<_>>();
    assert_eq!(batches[1..], [vec![1, 2], vec![3]]);
}

#[test]
fn precopy_abort_fails_without_suspending() {
    let xen = FakeXen::new(100);
    let mut cb = Script {
        policy: Some(vec![XGS_POLICY_ABORT]),
        ..Script::new(&xen)
    };
    let (o, s) = run(&xen, &mut cb, XCFLAGS_LIVE, 0, &[]);
    assert!(matches!(o, Outcome::Done { rc: -1, .. }), "{o:?}");
    assert!(xen.logged("Abort precopy loop"));
    assert_eq!(cb.calls, vec!["qemu_on", "qemu_off"]);
    assert!(!types_of(&records(&s)).contains(&rec::PAGE_DATA));
    assert!(!xen.logdirty_on.get());
}

#[test]
fn pv_guests_and_bad_arguments_are_not_saved() {
    let mut xen = FakeXen::new(16);
    xen.hvm = false;
    let mut cb = Script::new(&xen);
    let (o, s) = run(&xen, &mut cb, 0, 0, &[]);
    assert!(
        matches!(o, Outcome::Unsupported(ref r) if r.contains("PV")),
        "{o:?}"
    );
    assert!(
        s.is_empty() && cb.calls.is_empty(),
        "nothing done before handing over"
    );

    let xen = FakeXen::new(16);
    let mut cb = Script::new(&xen);
    let (o, s) = run(&xen, &mut cb, 0, 3, &[]);
    assert_eq!(
        o,
        Outcome::Done {
            rc: -1,
            errno: Errno(libc::EINVAL)
        }
    );
    assert!(xen.logged("Bad stream_type 3"));
    assert!(s.is_empty() && cb.calls.is_empty());
}
