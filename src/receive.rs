// SPDX-License-Identifier: GPL-3.0-only
//! The `xc_domain_restore` engine for x86 HVM/PVH (issue 15; docs/restore.md, B.2): it drives
//! the pure reader and checkpoint sequencer of [`crate::restore`] and applies their records
//! through the [`hv`](crate::hv) traits, as `xg_sr_restore.c` and `xg_sr_restore_x86_hvm.c`
//! do: populate pfns on demand, write page data, set the TSC, params, CPU policy and HVM
//! context, seed the grant table, run stock's callbacks with stock's return-value rules, and,
//! for COLO, send the secondary's dirty pfns back as CHECKPOINT_DIRTY_PFN_LIST.
//!
//! Pages are written through one writable mapping per PAGE_DATA batch (stock's cost); the
//! mapping cache's writable path is the next step (docs/restore.md, B.5).

use crate::abi::xen::{StreamType, BACKCHANNEL_HEADER_LEN, PAGE_SIZE};
use crate::error::Errno;
use crate::hv::{
    CpuPolicy, DirtyBitmap, DomainBuild, DomainControl, LogDirtyOp, PageMapping, PageMappingMut,
    Report, TscInfo,
};
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
/// Every pfn must be below this: 52 address bits (docs/restore.md, B.3, the fallback).
const PFN_LIMIT: u64 = 1 << 40;

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
                    // Stock ignores the result of clearing.
                    let _ = self.hv.clear_page(dom, value);
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
    /// verify mode, compare) the data pages through one writable mapping.
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
        }
        let pages: Vec<(u64, u32, &[u8])> = p
            .pages()
            .filter_map(|(pfn, t, d)| d.map(|d| (pfn, t, d)))
            .collect();
        if pages.is_empty() {
            return Ok(());
        }
        let gfns: Vec<u64> = pages.iter().map(|&(pfn, _, _)| pfn).collect();
        let mut errs = vec![0i32; gfns.len()];
        let mut map = self
            .hv
            .map_foreign_rw(dom, &gfns, &mut errs)
            .map_err(|e| self.fail(&format!("Unable to map {} pages", gfns.len()), e))?;
        for (i, &(pfn, t, data)) in pages.iter().enumerate() {
            if errs[i] != 0 {
                let msg = format!(
                    "Mapping pfn {pfn:#x} (mfn {pfn:#x}, type {t:#x}) failed with {}",
                    errs[i]
                );
                return Err(self.fail(&msg, Errno(-errs[i])));
            }
            if self.verify {
                if map.page(i) != data {
                    self.hv.log(
                        crate::abi::xen::Level::Error,
                        &format!("verify pfn {pfn:#x} failed"),
                    );
                }
            } else {
                map.page_mut(i)[..PAGE_SIZE].copy_from_slice(data);
            }
        }
        Ok(())
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
        self.hv
            .gnttab_seed(
                a.dom,
                o.console_gfn,
                o.store_gfn,
                a.console_domid,
                a.store_domid,
            )
            .map_err(|e| self.fail("Failed to seed grant table", e))
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
/// the reason has been logged through the caller's logger and the errno is returned.
pub fn domain_restore<H: Builder, R: Read>(
    hv: &H,
    io: R,
    back: Option<&mut dyn Sink>,
    cb: &mut dyn RestoreCallbacks,
    args: RestoreArgs,
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
    let bound = (max_pages as usize)
        .saturating_mul(PAGE_SIZE + 16)
        .saturating_add(2 * REC_LENGTH_MAX as usize);
    let mut reader = Reader::new(io, Limits::new(PFN_LIMIT));
    let mut seq = Sequencer::new(args.stream_type, version, bound);
    let mut ctx = Ctx {
        hv,
        args,
        cb,
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
            Step::Apply(r) => ctx.apply(r)?,
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
                    for r in records {
                        ctx.apply(r)?;
                    }
                    if args.stream_type == StreamType::Colo {
                        ctx.stream_complete()?;
                        let o = ctx.out;
                        ctx.cb.restore_results(o.store_gfn, o.console_gfn);
                        let r = ctx.cb.postcopy();
                        if let After::Failover = colo_step(hv, "postcopy", r)? {
                            break;
                        }
                        let r = ctx.cb.wait_checkpoint();
                        if let After::Failover = colo_step(hv, "wait_checkpoint", r)? {
                            break;
                        }
                        let r = ctx.cb.suspend();
                        if let After::Failover = colo_step(hv, "suspend", r)? {
                            break;
                        }
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
