// SPDX-License-Identifier: GPL-3.0-only
//! The `xc_domain_restore` engine for x86 HVM/PVH (issue 15; docs/restore.md, B.2): it drives
//! the pure reader and checkpoint sequencer of [`crate::restore`] and applies their records
//! through the [`hv`](crate::hv) traits, as `xg_sr_restore.c` and `xg_sr_restore_x86_hvm.c`
//! do: populate pfns on demand, write page data, set the TSC, params, CPU policy and HVM
//! context, seed the grant table, run stock's callbacks with stock's return-value rules, and,
//! for COLO, send the secondary's dirty pfns back as CHECKPOINT_DIRTY_PFN_LIST.
//!
//! Pages are written through a [`PageTarget`]: stock's one writable mapping per PAGE_DATA
//! batch ([`PerBatchWrites`], [`domain_restore`]) or the mapping cache's writable path
//! (`cache::CachedWrites`, wired by `capi`; docs/restore.md, B.5), which the engine tells of
//! its own populates, of the special pages it clears, and of each checkpoint's steps.

use crate::abi::xen::{StreamType, BACKCHANNEL_HEADER_LEN, PAGE_SIZE};
use crate::error::Errno;
use crate::hv::{CpuPolicy, DirtyBitmap, DomainBuild, DomainControl, LogDirtyOp, Report, TscInfo};
use crate::pages::{BatchError, PageTarget, PerBatchWrites};
use crate::restore::checkpoint::{colo_callback, finish, Commit, Flow, Sequencer, Step};
use crate::restore::reader::{read_domain_header, read_image_header, Limits, Reader};
use crate::restore::records::{page_type_to_populate, PageData, Record};
use crate::stream::{rec, Sink, REC_LENGTH_MAX};
use std::collections::HashMap;
use std::io::Read;

/// `HVM_PARAM_STORE_PFN`.
const PARAM_STORE_PFN: u64 = 1;
/// `HVM_PARAM_STORE_EVTCHN`.
const PARAM_STORE_EVTCHN: u32 = 2;
/// `HVM_PARAM_PAE_ENABLED`.
const PARAM_PAE_ENABLED: u64 = 4;
/// `HVM_PARAM_IOREQ_PFN`.
const PARAM_IOREQ_PFN: u64 = 5;
/// `HVM_PARAM_BUFIOREQ_PFN`.
const PARAM_BUFIOREQ_PFN: u64 = 6;
/// `HVM_PARAM_CONSOLE_PFN`.
const PARAM_CONSOLE_PFN: u64 = 17;
/// `HVM_PARAM_CONSOLE_EVTCHN`.
const PARAM_CONSOLE_EVTCHN: u32 = 18;
/// `XGR_SDD_MISSING_CPUID`.
const SDD_MISSING_CPUID: u32 = 1;
/// `XGR_SDD_MISSING_MSR`.
const SDD_MISSING_MSR: u32 = 2;
/// Every pfn must be below this when the guest's CPUID policy does not say (docs/restore.md,
/// B.3, the fallback): 52 address bits.
pub const PFN_LIMIT_FALLBACK: u64 = 1 << 40;
/// The CPUID leaf whose EAX[7:0] is the guest's physical address width (`maxphysaddr`).
const LEAF_ADDRESS_SIZES: u32 = 0x8000_0008;
/// Bytes of one serialised CPUID leaf (`xen_cpuid_leaf_t`: leaf, subleaf, a, b, c, d).
const CPUID_LEAF_BYTES: usize = 24;

/// Everything the restore engine asks of Xen.
pub trait Builder: DomainControl + DomainBuild + Report {}

impl<T: DomainControl + DomainBuild + Report> Builder for T {}

/// The caller's `struct restore_callbacks`, behind a safe trait. Presence of what the stream
/// type needs is checked before the restore starts.
pub trait RestoreCallbacks {
    /// `static_data_done(missing)` if the caller gave one (None: absent).
    fn static_data_done(&mut self, missing: u32) -> Option<i32>;
    /// `checkpoint`.
    fn checkpoint(&mut self) -> i32;
    /// `suspend` (COLO).
    fn suspend(&mut self) -> i32;
    /// `postcopy` (COLO).
    fn postcopy(&mut self) -> i32;
    /// `wait_checkpoint` (COLO).
    fn wait_checkpoint(&mut self) -> i32;
    /// `restore_results(store_gfn, console_gfn)` (COLO).
    fn restore_results(&mut self, store_gfn: u64, console_gfn: u64);
}

/// The arguments of one restore.
#[derive(Debug, Clone, Copy)]
pub struct RestoreArgs {
    /// Target domain.
    pub dom: u32,
    /// Stream type.
    pub stream_type: StreamType,
    /// Store event channel (set as a param at the end).
    pub store_evtchn: u32,
    /// Backend domain of xenstore.
    pub store_domid: u32,
    /// Console event channel.
    pub console_evtchn: u32,
    /// Backend domain of the console.
    pub console_domid: u32,
}

/// What a successful restore reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outputs {
    /// The xenstore page's gfn (`*store_mfn`).
    pub store_gfn: u64,
    /// The console page's gfn (`*console_mfn`).
    pub console_gfn: u64,
}

/// A failure: already logged in stock's words; the errno for the caller.
type Fail = Errno;

/// What the caller may set of one restore beyond stock's arguments (`settings`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tuning {
    /// `XCSAVE_RESTORE_BUFFER_MB`: the bound on a held checkpoint's bytes; `None`: the
    /// guest's `max_pages` × (4 KiB + 16) + 2 × `REC_LENGTH_MAX` (docs/restore.md, B.4).
    pub buffer_bytes: Option<u64>,
}

/// The pfn limit a serialised CPUID policy gives: 2^(maxphysaddr − 12), where maxphysaddr
/// is EAX[7:0] of leaf 0x80000008 (subleaf 0 or any: the leaf has none). `None` when the
/// policy has no such leaf or a width outside 32..=52 bits (then the 2^40 fallback holds).
pub fn pfn_limit_from_cpuid(cpuid: &[u8]) -> Option<u64> {
    let word = |l: &[u8], i: usize| u32::from_le_bytes([l[i], l[i + 1], l[i + 2], l[i + 3]]);
    let bits = cpuid
        .chunks_exact(CPUID_LEAF_BYTES)
        .find(|l| word(l, 0) == LEAF_ADDRESS_SIZES)
        .map(|l| word(l, 8) & 0xff)?;
    (32..=52).contains(&bits).then(|| 1u64 << (bits - 12))
}

/// pfns this restore populated, as a sparse bitmap of 512-pfn chunks (memory follows the
/// populated pfns, not the pfn values the stream names).
#[derive(Default)]
struct Populated(HashMap<u64, [u64; 8]>);

impl Populated {
    fn contains(&self, pfn: u64) -> bool {
        let bit = (pfn % 512) as usize;
        self.0
            .get(&(pfn / 512))
            .is_some_and(|c| c[bit / 64] & (1 << (bit % 64)) != 0)
    }
    fn insert(&mut self, pfn: u64) {
        let bit = (pfn % 512) as usize;
        self.0.entry(pfn / 512).or_default()[bit / 64] |= 1 << (bit % 64);
    }
}

/// One restore's state (stock's `struct xc_sr_context` restore half, x86 HVM).
struct Ctx<'a, H: Builder> {
    hv: &'a H,
    args: RestoreArgs,
    cb: &'a mut dyn RestoreCallbacks,
    target: &'a mut dyn PageTarget<H>,
    /// The pfn limit the applied CPUID policy gives (set at STATIC_DATA_END).
    pfn_limit: Option<u64>,
    /// The grant-table seed last made: (console gfn, store gfn, console domid, store domid).
    seeded: Option<(u64, u64, u32, u32)>,
    populated: Populated,
    verify: bool,
    cpuid: Option<Vec<u8>>,
    msrs: Option<Vec<u8>>,
    context: Option<Vec<u8>>,
    out: Outputs,
}

impl<H: Builder> Ctx<'_, H> {
    fn fail(&self, msg: &str, errno: Errno) -> Fail {
        self.hv
            .report_error(&format!("{msg}: {}", errno.describe()));
        errno
    }

    fn apply(&mut self, r: Record) -> Result<(), Fail> {
        let dom = self.args.dom;
        match r {
            Record::PageData(p) => self.page_data(&p),
            Record::TscInfo(t) => {
                let t = TscInfo {
                    mode: t.mode,
                    nsec: t.nsec,
                    khz: t.khz,
                    incarnation: t.incarnation,
                };
                self.hv
                    .set_tsc_info(dom, &t)
                    .map_err(|e| self.fail("Unable to set TSC information", e))
            }
            Record::HvmContext(b) => {
                self.context = Some(b);
                Ok(())
            }
            Record::HvmParams(v) => self.hvm_params(&v),
            Record::Verify => {
                self.verify = true;
                Ok(())
            }
            Record::StaticDataEnd => self.static_data_end(),
            Record::CpuidPolicy(b) => {
                self.cpuid = Some(b);
                Ok(())
            }
            Record::MsrPolicy(b) => {
                self.msrs = Some(b);
                Ok(())
            }
            // The sequencer never hands these over to be applied.
            Record::End | Record::Checkpoint | Record::Optional(_) => Ok(()),
        }
    }

    /// `x86_static_data_complete`: the CPU policy, then `static_data_done`.
    fn static_data_end(&mut self) -> Result<(), Fail> {
        let mut missing = 0;
        if self.cpuid.is_none() {
            missing |= SDD_MISSING_CPUID;
        }
        if self.msrs.is_none() {
            missing |= SDD_MISSING_MSR;
        }
        if self.cpuid.is_some() || self.msrs.is_some() {
            let policy = CpuPolicy {
                cpuid: self.cpuid.clone().unwrap_or_default(),
                msrs: self.msrs.clone().unwrap_or_default(),
            };
            if let Err((e, msg)) = self.hv.set_cpu_policy(self.args.dom, &policy) {
                return Err(self.fail(&msg, e));
            }
            self.pfn_limit = pfn_limit_from_cpuid(&policy.cpuid);
        }
        if let Some(rc) = self.cb.static_data_done(missing) {
            if rc != 0 {
                // Stock: the callback's failure makes the record "not handled".
                let msg = format!(
                    "Mandatory record {:#x} (Static data end) not handled",
                    rec::STATIC_DATA_END
                );
                return Err(self.fail(&msg, Errno(libc::EINVAL)));
            }
        }
        Ok(())
    }

    /// `handle_hvm_params`.
    fn hvm_params(&mut self, entries: &[(u64, u64)]) -> Result<(), Fail> {
        let dom = self.args.dom;
        for &(index, value) in entries {
            match index {
                PARAM_CONSOLE_PFN | PARAM_STORE_PFN | PARAM_IOREQ_PFN | PARAM_BUFIOREQ_PFN => {
                    if index == PARAM_CONSOLE_PFN {
                        self.out.console_gfn = value;
                    } else if index == PARAM_STORE_PFN {
                        self.out.store_gfn = value;
                    }
                    // Through the cache when it holds the page's bucket (no map call); stock
                    // ignores the result of clearing.
                    if !self.target.clear_page(self.hv, dom, value) {
                        let _ = self.hv.clear_page(dom, value);
                    }
                }
                PARAM_PAE_ENABLED => continue,
                _ => {}
            }
            let set = u32::try_from(index)
                .map_err(|_| Errno(libc::EINVAL))
                .and_then(|i| self.hv.set_hvm_param(dom, i, value));
            if let Err(e) = set {
                return Err(self.fail(&format!("set HVM param {index} = {value:#018x}"), e));
            }
        }
        Ok(())
    }

    /// `process_page_data`: populate what this restore has not populated, then write (or, in
    /// verify mode, compare) the data pages through the page target.
    fn page_data(&mut self, p: &PageData) -> Result<(), Fail> {
        let dom = self.args.dom;
        let mut fresh = Vec::new();
        for (&pfn, &t) in p.pfns.iter().zip(&p.types) {
            if page_type_to_populate(t) && !self.populated.contains(pfn) {
                self.populated.insert(pfn);
                fresh.push(pfn);
            }
        }
        if !fresh.is_empty() {
            if let Err(e) = self.hv.populate(dom, &fresh) {
                return Err(self.fail(&format!("Failed to populate {} gfns", fresh.len()), e));
            }
            self.target.populated(self.hv, dom, &fresh);
        }
        let pages: Vec<(u64, u32, &[u8])> = p
            .pages()
            .filter_map(|(pfn, t, d)| d.map(|d| (pfn, t, d)))
            .collect();
        if pages.is_empty() {
            return Ok(());
        }
        let gfns: Vec<u64> = pages.iter().map(|&(pfn, _, _)| pfn).collect();
        let (hv, verify) = (self.hv, self.verify);
        let r = self.target.with_batch_mut(hv, dom, &gfns, &mut |i, page| {
            let (pfn, t, data) = pages[i];
            let page = page.map_err(|e| {
                hv.report_error(&format!(
                    "Mapping pfn {pfn:#x} (mfn {pfn:#x}, type {t:#x}) failed with {e}: {}",
                    Errno(-e).describe()
                ));
                Errno(-e)
            })?;
            if !verify {
                page[..PAGE_SIZE].copy_from_slice(data);
            } else if &page[..PAGE_SIZE] != data {
                hv.log(
                    crate::abi::xen::Level::Error,
                    &format!("verify pfn {pfn:#x} failed"),
                );
            }
            Ok(())
        });
        match r {
            Ok(()) => Ok(()),
            Err(BatchError::Map(e)) => {
                Err(self.fail(&format!("Unable to map {} pages", gfns.len()), e))
            }
            Err(BatchError::Consumer(e)) => Err(e),
        }
    }

    /// `x86_hvm_stream_complete`.
    fn stream_complete(&mut self) -> Result<(), Fail> {
        let a = self.args;
        for (param, value) in [
            (PARAM_STORE_EVTCHN, a.store_evtchn),
            (PARAM_CONSOLE_EVTCHN, a.console_evtchn),
        ] {
            if let Err(e) = self.hv.set_hvm_param(a.dom, param, u64::from(value)) {
                return Err(self.fail(&format!("set HVM param {param} = {value:#x}"), e));
            }
        }
        let Some(ctx) = self.context.as_deref() else {
            return Err(self.fail("Unable to restore HVM context", Errno(libc::EINVAL)));
        };
        if let Err(e) = self.hv.set_hvm_context(a.dom, ctx) {
            return Err(self.fail("Unable to restore HVM context", e));
        }
        let o = self.out;
        // A COLO secondary runs this at every checkpoint; the seed writes the same two grant
        // entries again unless a gfn or a domid changed, so it is made only then (a map call
        // saved per checkpoint; docs/decisions.md, "The grant seed once per COLO restore").
        let seed = (o.console_gfn, o.store_gfn, a.console_domid, a.store_domid);
        if self.seeded == Some(seed) {
            return Ok(());
        }
        self.hv
            .gnttab_seed(a.dom, seed.0, seed.1, seed.2, seed.3)
            .map_err(|e| self.fail("Failed to seed grant table", e))?;
        self.seeded = Some(seed);
        Ok(())
    }
}

/// The COLO secondary's dirty pfns since it last resumed, as one CHECKPOINT_DIRTY_PFN_LIST
/// record on the back channel, with the header stock's restore of this release writes
/// (`abi::xen::BACKCHANNEL_HEADER_LEN`: 8 bytes on 4.17, 16 with a zero pointer on 4.20;
/// docs/restore.md, A.8).
fn send_dirty_pfn_list<H: Builder>(
    hv: &H,
    dom: u32,
    p2m_size: u64,
    back: &mut dyn Sink,
) -> Result<(), Fail> {
    let report = |msg: &str, e: Errno| {
        hv.report_error(&format!("{msg}: {}", e.describe()));
        e
    };
    let mut bm = hv
        .alloc_bitmap(p2m_size)
        .map_err(|e| report("Unable to allocate the dirty bitmap", e))?;
    hv.logdirty(dom, LogDirtyOp::Clean, &mut bm, p2m_size, false)
        .map_err(|e| report("Failed to retrieve logdirty bitmap", e))?;
    let mut pfns = Vec::new();
    for (w, &word) in bm.words().iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            let b = bits.trailing_zeros() as u64;
            let pfn = w as u64 * 64 + b;
            if pfn < p2m_size {
                pfns.extend_from_slice(&pfn.to_le_bytes());
            }
            bits &= bits - 1;
        }
    }
    let len = u32::try_from(pfns.len())
        .ok()
        .filter(|&l| l <= REC_LENGTH_MAX)
        .ok_or_else(|| report("Dirty pfn list too long", Errno(libc::E2BIG)))?;
    let mut hdr = [0u8; BACKCHANNEL_HEADER_LEN];
    hdr[..4].copy_from_slice(&rec::CHECKPOINT_DIRTY_PFN_LIST.to_le_bytes());
    hdr[4..8].copy_from_slice(&len.to_le_bytes());
    back.write_parts(&[&hdr, &pfns])
        .map_err(|e| report("Failed to write dirty bitmap to stream", e))
}

/// How the COLO steps after a checkpoint ended.
enum After {
    Next,
    Failover,
}

fn colo_step<H: Builder>(hv: &H, name: &str, ret: i32) -> Result<After, Fail> {
    match colo_callback(ret) {
        Flow::Continue => Ok(After::Next),
        Flow::Failover => Ok(After::Failover),
        Flow::Fail => {
            hv.report_error(&format!("{name} callback failed ({ret})"));
            Err(Errno(libc::EIO))
        }
    }
}

/// Restore `args.dom` from `io`; for COLO, `back` is the channel to the primary. On failure
/// the reason has been logged through the caller's logger and the errno is returned. Pages
/// are written as stock writes them, one writable mapping per batch ([`PerBatchWrites`]);
/// [`domain_restore_with`] takes another target and the settings.
pub fn domain_restore<H: Builder, R: Read>(
    hv: &H,
    io: R,
    back: Option<&mut dyn Sink>,
    cb: &mut dyn RestoreCallbacks,
    args: RestoreArgs,
) -> Result<Outputs, Errno> {
    let mut target = PerBatchWrites;
    domain_restore_with(hv, io, back, cb, args, &mut target, Tuning::default())
}

/// [`domain_restore`] writing through `target` (the mapping cache, `cache::CachedWrites`),
/// with `tuning`. The caller tears `target` down afterwards.
pub fn domain_restore_with<H: Builder, R: Read>(
    hv: &H,
    io: R,
    back: Option<&mut dyn Sink>,
    cb: &mut dyn RestoreCallbacks,
    args: RestoreArgs,
    target: &mut dyn PageTarget<H>,
    tuning: Tuning,
) -> Result<Outputs, Errno> {
    let dom = args.dom;
    let info = match hv.domain_info(dom) {
        Ok(Some(i)) if i.domid == dom => i,
        Ok(_) => {
            hv.report_error(&format!("Domain {dom} does not exist"));
            return Err(Errno(libc::ESRCH));
        }
        Err(e) => {
            hv.report_error(&format!("Failed to get domain info: {}", e.describe()));
            return Err(e);
        }
    };
    let p2m_size = match hv.nr_gpfns(dom) {
        Ok(n) => n,
        Err(e) => {
            hv.report_error("Unable to obtain the guest p2m size");
            return Err(e);
        }
    };
    let mut io = io;
    let fail = |e: crate::restore::Error| {
        hv.report_error(&e.message());
        Errno(e.errno())
    };
    let version = read_image_header(&mut io).map_err(fail)?.version;
    let dhdr = read_domain_header(&mut io).map_err(fail)?;
    dhdr.check_x86_hvm().map_err(fail)?;
    // No valid checkpoint of this guest can need more (docs/restore.md, B.4).
    let max_pages = info.max_memkb / 4;
    let bound = match tuning.buffer_bytes {
        Some(b) => usize::try_from(b).unwrap_or(usize::MAX),
        None => (max_pages as usize)
            .saturating_mul(PAGE_SIZE + 16)
            .saturating_add(2 * REC_LENGTH_MAX as usize),
    };
    let mut reader = Reader::new(io, Limits::new(PFN_LIMIT_FALLBACK));
    let mut seq = Sequencer::new(args.stream_type, version, bound);
    let mut ctx = Ctx {
        hv,
        args,
        cb,
        target,
        pfn_limit: None,
        seeded: None,
        populated: Populated::default(),
        verify: false,
        cpuid: None,
        msrs: None,
        context: None,
        out: Outputs::default(),
    };
    let mut back = back;
    log::debug!("xcsave: restoring dom{dom} from a v{version} stream, p2m size {p2m_size}");
    loop {
        match seq.next(reader.next_record()) {
            Step::Apply(Record::PageData(p)) => {
                ctx.page_data(&p)?;
                reader.recycle(p.data);
            }
            Step::Apply(r) => {
                ctx.apply(r)?;
                if let Some(pfn_limit) = ctx.pfn_limit.take() {
                    // The applied CPUID policy's maxphysaddr bounds every later pfn.
                    log::debug!("xcsave: dom{dom}: pfns below {pfn_limit:#x} (maxphysaddr)");
                    reader.set_limits(Limits {
                        pfn_limit,
                        ..reader.limits()
                    });
                }
            }
            Step::InferStaticDataEnd(r) => {
                if ctx.static_data_end().is_err() {
                    hv.report_error("Inferred STATIC_DATA_END record failed");
                    return Err(Errno(libc::EINVAL));
                }
                ctx.apply(r)?
            }
            Step::Ignore(t) => log::debug!("xcsave: ignoring optional record {t:#x}"),
            Step::Buffered => {}
            Step::Checkpoint => match seq.checkpoint_done(ctx.cb.checkpoint()) {
                Commit::Apply(records) => {
                    ctx.target.start_checkpoint(hv, dom);
                    for r in records {
                        ctx.apply(r)?;
                    }
                    if args.stream_type != StreamType::Colo {
                        ctx.target.resumed(hv, dom);
                    } else {
                        ctx.stream_complete()?;
                        let o = ctx.out;
                        ctx.cb.restore_results(o.store_gfn, o.console_gfn);
                        let r = ctx.cb.postcopy();
                        if let After::Failover = colo_step(hv, "postcopy", r)? {
                            break;
                        }
                        ctx.target.resumed(hv, dom);
                        let r = ctx.cb.wait_checkpoint();
                        if let After::Failover = colo_step(hv, "wait_checkpoint", r)? {
                            break;
                        }
                        let r = ctx.cb.suspend();
                        if let After::Failover = colo_step(hv, "suspend", r)? {
                            break;
                        }
                        ctx.target.suspended(hv, dom);
                        match back.as_deref_mut() {
                            Some(b) => send_dirty_pfn_list(hv, dom, p2m_size, b)?,
                            None => {
                                hv.report_error("COLO restore without a back channel");
                                return Err(Errno(libc::EINVAL));
                            }
                        }
                    }
                }
                Commit::Failover => break,
                Commit::Fail(e) => return Err(fail(e)),
            },
            Step::End | Step::Failover => break,
            Step::Fail(e) => return Err(fail(e)),
        }
    }
    let f = finish(args.stream_type);
    if f.stream_complete {
        ctx.stream_complete()?;
    }
    hv.log(crate::abi::xen::Level::Info, f.message);
    Ok(ctx.out)
}

#[cfg(any(test, feature = "testkit"))]
pub mod fuzzing;
#[cfg(test)]
mod tests;
