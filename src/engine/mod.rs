// SPDX-License-Identifier: GPL-3.0-only
//! The `xc_domain_save` state machine, following the 4.17 saver step by step: setup, static
//! data, the live precopy loop and its policy, suspend, the checkpoint loop (Remus, COLO and
//! its back channel), END, and cleanup. Guest-type specifics live in a [`SaveOps`] table
//! (x86 HVM now, see [`x86_hvm`]), as in Xen's `save_ops`.
//!
//! Messages use the stock saver's words, through the caller's logger, so a toolstack log reads
//! as before; xcsave's own lines go through the `log` facade at debug level.

pub mod bitmap;
pub mod x86_hvm;

use crate::abi::c::PrecopyStats;
use crate::abi::xen::{
    is_known_page_type, page_type_has_data, Level, MAX_BATCH_SIZE, SHUTDOWN_SUSPEND, XCFLAGS_DEBUG,
    XCFLAGS_LIVE, XGS_POLICY_ABORT, XGS_POLICY_CONTINUE_PRECOPY, XGS_POLICY_STOP_AND_COPY,
};
use crate::backchannel::{self, BackChannelError, Channel};
use crate::error::Errno;
use crate::fallible;
use crate::faults::{self, Stage};
use crate::hv::{DirtyBitmap, DomInfo, Hypervisor, LogDirtyOp, ShadowStats};
use crate::pages::{BatchError, PageRef, PageSource};
use crate::stream::{self, Sink};

pub use crate::abi::xen::StreamType;

/// Stock's default policy: stop after 5 rounds or below 50 dirty pages.
const SPP_MAX_ITERATIONS: u32 = 5;
const SPP_TARGET_DIRTY_COUNT: i64 = 50;

/// The caller's callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    /// `suspend`.
    Suspend,
    /// `postcopy`.
    Postcopy,
    /// `checkpoint`.
    Checkpoint,
    /// `wait_checkpoint`.
    WaitCheckpoint,
    /// `switch_qemu_logdirty`.
    SwitchQemuLogdirty,
}

/// The caller's `struct save_callbacks`, made safe by the C surface.
pub trait Callbacks {
    /// Whether the caller supplied this callback.
    fn has(&self, which: Callback) -> bool;
    /// Suspend the guest; non-zero is success.
    fn suspend(&mut self) -> i32;
    /// The caller's precopy policy, or None if it supplied none.
    fn precopy_policy(&mut self, stats: PrecopyStats) -> Option<i32>;
    /// Resume after a checkpoint's memory was copied.
    fn postcopy(&mut self) -> i32;
    /// Checkpoint done; 1 takes another, 0 stops, <0 fails.
    fn checkpoint(&mut self) -> i32;
    /// COLO: wait for the next checkpoint.
    fn wait_checkpoint(&mut self) -> i32;
    /// Switch QEMU's log-dirty mode; 0 is success.
    fn switch_qemu_logdirty(&mut self, dom: u32, enable: bool) -> i32;
}

/// Why a save stopped early: stock's `rc` (usually -1, or a callback's return value) and
/// errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    /// Return value of xc_domain_save.
    pub rc: i32,
    /// errno to leave behind when `rc` is non-zero.
    pub errno: Errno,
}

impl From<Errno> for Stop {
    fn from(e: Errno) -> Stop {
        Stop { rc: -1, errno: e }
    }
}

/// Result of engine steps.
pub type Res<T = ()> = std::result::Result<T, Stop>;

/// A guest-type hook.
pub type Hook<H> = for<'a, 'b> fn(&'a mut Ctx<'b, H>) -> Res;

/// Per-guest-type operations (Xen's `struct xc_sr_save_ops`): the table the engine calls at
/// each step; a type's hooks keep their state in that type's field of [`Ctx`]
/// (`Ctx::x86_hvm`). A restore engine will have its own table (`xc_sr_restore_ops`).
pub struct SaveOps<H: Hypervisor> {
    /// Domain header type.
    pub guest_type: u32,
    /// Stock's name of the type, for messages.
    pub type_name: &'static str,
    /// Translate a pfn to the gfn to map, None for a page to defer (ballooned out).
    pub pfn_to_gfn: fn(&Ctx<'_, H>, u64) -> Option<u64>,
    /// Size the p2m and prepare the guest for saving.
    pub setup: Hook<H>,
    /// Write the static data records.
    pub static_data: Hook<H>,
    /// After the static data.
    pub start_of_stream: Hook<H>,
    /// Before each checkpoint's memory.
    pub start_of_checkpoint: Hook<H>,
    /// After each checkpoint's memory: the guest state records.
    pub end_of_checkpoint: Hook<H>,
    /// Check the guest's state after each memory pass.
    pub check_vm_state: Hook<H>,
    /// Undo setup; errors are logged, not returned.
    pub cleanup: Hook<H>,
}

impl<H: Hypervisor> Clone for SaveOps<H> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<H: Hypervisor> Copy for SaveOps<H> {}

/// What the engine decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The save ran: xc_domain_save returns `rc`, with `errno` set when rc != 0.
    Done {
        /// Return value.
        rc: i32,
        /// errno for a non-zero rc.
        errno: Errno,
    },
    /// xcsave does not handle this guest; the stock saver should (the reason is logged).
    Unsupported(String),
}

/// Arguments of one save.
pub struct SaveArgs {
    /// Domain to save.
    pub dom: u32,
    /// XCFLAGS_*.
    pub flags: u32,
    /// Raw xc_stream_type_t.
    pub stream_type: u32,
    /// The stream fd (for messages only; writes go to the sink).
    pub io_fd: i32,
}

/// The arrays one PAGE_DATA batch needs, each with room for [`MAX_BATCH_SIZE`] entries.
#[derive(Default)]
struct BatchScratch {
    gfns_all: Vec<u64>,
    types: Vec<u64>,
    gfns: Vec<u64>,
    entries: Vec<u64>,
    data_pfns: Vec<u64>,
}

impl BatchScratch {
    fn new() -> crate::error::Result<BatchScratch> {
        Ok(BatchScratch {
            gfns_all: fallible::try_with_capacity(MAX_BATCH_SIZE)?,
            types: fallible::try_with_capacity(MAX_BATCH_SIZE)?,
            gfns: fallible::try_with_capacity(MAX_BATCH_SIZE)?,
            entries: fallible::try_with_capacity(MAX_BATCH_SIZE)?,
            data_pfns: fallible::try_with_capacity(MAX_BATCH_SIZE)?,
        })
    }

    fn clear(&mut self) {
        self.gfns_all.clear();
        self.types.clear();
        self.gfns.clear();
        self.entries.clear();
        self.data_pfns.clear();
    }
}

/// The state of one save (Xen's `struct xc_sr_context`, save side).
pub struct Ctx<'a, H: Hypervisor> {
    /// Hypervisor access.
    pub xen: &'a H,
    sink: &'a mut dyn Sink,
    recv: &'a mut dyn Channel,
    pages: &'a mut dyn PageSource<H>,
    /// The caller's callbacks.
    pub cb: &'a mut dyn Callbacks,
    ops: SaveOps<H>,
    /// Domain being saved.
    pub dom: u32,
    stream_type: StreamType,
    live: bool,
    debug: bool,
    dominfo: DomInfo,
    /// p2m size, set by the setup hook.
    pub p2m_size: u64,
    dirty: Option<H::Bitmap>,
    deferred: Vec<u64>,
    nr_deferred: u64,
    batch: Vec<u64>,
    /// Per-batch arrays, allocated once by setup (fallibly) and reused by every batch.
    scratch: BatchScratch,
    stats: PrecopyStats,
    /// The x86 HVM hooks' own state (Xen's `ctx->x86.hvm.save`). Each guest type keeps its
    /// state in its own field, which only its [`SaveOps`] hooks touch; x86 PV adds one.
    pub x86_hvm: x86_hvm::SaveState,
}

impl<'a, H: Hypervisor> Ctx<'a, H> {
    /// Log an error with errno (stock's PERROR) and turn it into a Stop.
    pub fn perror(&self, msg: &str, e: Errno) -> Stop {
        self.xen
            .report_error(&format!("{msg} ({} = {})", e.0, e.describe()));
        Stop::from(e)
    }

    /// Log an error without errno (stock's ERROR); the save fails with `e`.
    pub fn error(&self, msg: &str, e: Errno) -> Stop {
        self.xen.report_error(msg);
        Stop::from(e)
    }

    /// Stock's DPRINTF.
    fn dprintf(&self, msg: &str) {
        self.xen.log(Level::Detail, msg);
    }

    /// Write one record whose body is the concatenation of `parts`.
    pub fn write_record(&mut self, rtype: u32, parts: &[&[u8]]) -> Res {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let (hdr, pad) = match stream::record_frame(rtype, len) {
            Ok(f) => f,
            Err(t) => return Err(self.error(&t.to_string(), Errno(libc::E2BIG))),
        };
        let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 2);
        all.push(&hdr);
        all.extend_from_slice(parts);
        all.push(pad);
        self.sink
            .write_parts(&all)
            .map_err(|e| self.perror("Unable to write record to stream", e))
    }

    fn write_headers(&mut self) -> Res {
        let version = self
            .xen
            .xen_version()
            .map_err(|e| self.perror("Unable to obtain Xen Version", e))?;
        let ihdr = stream::image_header();
        self.sink
            .write_parts(&[&ihdr])
            .map_err(|e| self.perror("Unable to write Image Header to stream", e))?;
        let dhdr = stream::domain_header(self.ops.guest_type, version);
        self.sink
            .write_parts(&[&dhdr])
            .map_err(|e| self.perror("Unable to write Domain Header to stream", e))
    }

    fn bitmap(&self) -> &[u64] {
        self.dirty
            .as_ref()
            .expect("dirty bitmap allocated by setup")
            .words()
    }

    fn bitmap_words(&mut self) -> &mut [u64] {
        self.dirty
            .as_mut()
            .expect("dirty bitmap allocated by setup")
            .words_mut()
    }

    /// CLEAN or PEEK the log-dirty bitmap of the whole p2m into the dirty bitmap.
    fn logdirty(&mut self, op: LogDirtyOp, final_round: bool) -> Res<ShadowStats> {
        let (xen, dom, pages) = (self.xen, self.dom, self.p2m_size);
        let bm = self
            .dirty
            .as_mut()
            .expect("dirty bitmap allocated by setup");
        xen.logdirty(dom, op, bm, pages, final_round)
            .map_err(|e| self.perror("Failed to retrieve logdirty bitmap", e))
    }

    /// Write the batch in `self.batch` as one PAGE_DATA record.
    fn write_batch(&mut self) -> Res {
        let pfns = std::mem::take(&mut self.batch);
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let r = self.write_batch_of(&pfns, &mut scratch);
        self.scratch = scratch;
        self.batch = pfns;
        self.batch.clear();
        r
    }

    /// Write one batch; `scratch`'s arrays have room for a whole batch, so nothing here
    /// allocates per batch but the record prefix and the iovec list.
    fn write_batch_of(&mut self, pfns: &[u64], scratch: &mut BatchScratch) -> Res {
        let BatchScratch {
            gfns_all,
            types,
            gfns,
            entries,
            data_pfns,
        } = scratch;
        for &pfn in pfns {
            match (self.ops.pfn_to_gfn)(self, pfn) {
                Some(gfn) => types.push(gfn),
                None => {
                    // Likely a ballooned page: send it in the final round.
                    let words = &mut self.deferred;
                    bitmap::set(words, pfn);
                    self.nr_deferred += 1;
                    types.push(u64::MAX);
                }
            }
        }
        gfns_all.extend_from_slice(types);
        if let Err(e) = self.xen.pfn_types(self.dom, types) {
            return Err(self.perror("Failed to get types for pfn batch", e));
        }
        self.pages.batch_types(gfns_all, types);
        for (i, &t) in types.iter().enumerate() {
            if !is_known_page_type(t as u32) {
                return Err(self.error(
                    &format!("Unknown type {:#x} for pfn {:#x}", t, gfns_all[i]),
                    Errno(libc::EINVAL),
                ));
            }
            if page_type_has_data(t) {
                gfns.push(gfns_all[i]);
            }
        }
        entries.extend(
            pfns.iter()
                .zip(types.iter())
                .map(|(&p, &t)| stream::page_data_entry(p, t)),
        );
        let prefix = match stream::page_data_prefix(entries, gfns.len()) {
            Ok(p) => p,
            Err(t) => return Err(self.error(&t.to_string(), Errno(libc::E2BIG))),
        };
        if gfns.is_empty() {
            return self
                .sink
                .write_parts(&[&prefix])
                .map_err(|e| self.perror("Failed to write page data to stream", e));
        }
        // Which batch pfn each mapped page belongs to, for messages.
        data_pfns.extend(
            pfns.iter()
                .zip(types.iter())
                .filter(|(_, &t)| page_type_has_data(t))
                .map(|(&p, _)| p),
        );
        let (xen, dom) = (self.xen, self.dom);
        let sink = &mut *self.sink;
        let mut consume = |pages: &[PageRef<'_>]| -> Result<(), Errno> {
            faults::panic_point(Stage::Batch);
            let mut parts: Vec<&[u8]> = Vec::with_capacity(pages.len() + 1);
            parts.push(&prefix);
            for (p, page) in pages.iter().enumerate() {
                match page {
                    Ok(data) => parts.push(data),
                    Err(err) => {
                        xen.report_error(&format!(
                            "Mapping of pfn {:#x} (mfn {:#x}) failed {}",
                            data_pfns[p], gfns[p], err
                        ));
                        return Err(Errno(if *err < 0 { -*err } else { libc::EIO }));
                    }
                }
            }
            sink.write_parts(&parts).inspect_err(|e| {
                xen.report_error(&format!(
                    "Failed to write page data to stream ({} = {})",
                    e.0,
                    e.describe()
                ));
            })
        };
        match self.pages.with_batch(xen, dom, gfns, &mut consume) {
            Ok(()) => Ok(()),
            Err(BatchError::Map(e)) => Err(self.perror("Failed to map guest pages", e)),
            Err(BatchError::Consumer(e)) => Err(Stop::from(e)),
        }
    }

    fn flush_batch(&mut self) -> Res {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.write_batch()
    }

    fn add_to_batch(&mut self, pfn: u64) -> Res {
        if self.batch.len() == MAX_BATCH_SIZE {
            self.flush_batch()?;
        }
        self.batch.push(pfn);
        Ok(())
    }

    /// Lets the page source revalidate its mappings ([`PageSource::revalidate`]); the pfns it
    /// gives back go in the deferred bitmap, sent with the next pass. Returns whether the
    /// source visited any mapping.
    fn revalidate_pages(&mut self, whole: bool) -> bool {
        let (xen, dom, n) = (self.xen, self.dom, self.p2m_size);
        let (words, count) = (&mut self.deferred, &mut self.nr_deferred);
        self.pages.revalidate(xen, dom, whole, &mut |pfn| {
            if pfn < n {
                bitmap::set(words, pfn);
                *count += 1;
            }
        })
    }

    /// ORs the deferred pfns into the dirty bitmap; returns how many there were.
    fn merge_deferred(&mut self) -> u64 {
        // Every bit of `deferred` was counted in `nr_deferred`: with none, there is nothing
        // to merge (nor to clear later), so a checkpoint skips two passes over the bitmap.
        if self.nr_deferred != 0 {
            let deferred = std::mem::take(&mut self.deferred);
            bitmap::or_into(self.bitmap_words(), &deferred);
            self.deferred = deferred;
        }
        self.nr_deferred
    }

    /// Forgets the deferred pfns once they are sent.
    fn clear_deferred(&mut self) {
        if self.nr_deferred != 0 {
            bitmap::clear(&mut self.deferred);
            self.nr_deferred = 0;
        }
    }

    /// One more live round after the last-chance visit of a plain live save: what the guest
    /// dirtied while every cached bucket was visited, and what the visit found changed, go
    /// now, while the guest still runs, so that the suspended round (the downtime) sends only
    /// what is dirtied after it.
    fn send_live_round_after_visit(&mut self) -> Res {
        let stats = self.logdirty(LogDirtyOp::Clean, false)?;
        self.stats.iteration += 1;
        self.set_iteration_prefix();
        let deferred = self.merge_deferred();
        self.send_dirty_pages(stats.dirty_count as u64 + deferred)?;
        self.clear_deferred();
        Ok(())
    }

    /// Call the suspend callback and check the domain is suspended.
    fn suspend_domain(&mut self) -> Res {
        let rc = self.cb.suspend();
        if rc == 0 {
            // As stock: the errno the callback left (EINVAL if it left none).
            let e = match Errno::raw_last() {
                Errno(0) => Errno(libc::EINVAL),
                e => e,
            };
            return Err(self.error(&format!("save callback suspend() failed: {rc}"), e));
        }
        match self.xen.domain_info(self.dom) {
            Ok(Some(info)) if info.domid == self.dom => self.dominfo = info,
            Ok(_) => {
                return Err(self.perror("Unable to refresh domain information", Errno(libc::ESRCH)))
            }
            Err(e) => return Err(self.perror("Unable to refresh domain information", e)),
        }
        if !self.dominfo.shutdown || self.dominfo.shutdown_reason != SHUTDOWN_SUSPEND {
            return Err(self.error(
                &format!(
                    "Domain has not been suspended: shutdown {}, reason {}",
                    // Stock's first value differs by release (4.17: 1, 4.20: 4).
                    self.dominfo.shutdown as i32 * crate::abi::xen::SHUTDOWN_SHOWN,
                    self.dominfo.shutdown_reason
                ),
                Errno(libc::EINVAL),
            ));
        }
        self.xen.progress_single("Domain now suspended");
        let info = self.dominfo;
        self.pages
            .suspended(self.xen, self.dom, &info, self.p2m_size);
        log::debug!(
            "xcsave: d{} suspended: tot_pages {} max_memkb {}",
            self.dom,
            info.nr_pages,
            info.max_memkb
        );
        Ok(())
    }

    /// Send the pages set in the dirty bitmap; `entries` is the expected count.
    fn send_dirty_pages(&mut self, entries: u64) -> Res {
        let (full, ckpt) = (
            entries >= self.p2m_size,
            self.stream_type != StreamType::Plain,
        );
        self.pages.start_pass(self.xen, self.dom, full, ckpt);
        let written = self.send_scanned(entries)?;
        if written > entries {
            self.dprintf("Bitmap contained more entries than expected...");
        }
        self.xen.progress_step(entries, entries);
        log::debug!("xcsave: d{} sent {written} dirty pages", self.dom);
        (self.ops.check_vm_state)(self)
    }

    /// Batch and write the pages set in the dirty bitmap, in increasing pfn order; returns
    /// how many there were. The bitmap is read in place, a word at a time: nothing writes it
    /// while its pages are sent (only the log-dirty calls, the COLO merge and setup do, all
    /// outside a pass), and a copy of it (128 KiB for a 4 GiB p2m) per pass is not needed.
    fn send_scanned(&mut self, entries: u64) -> Res<u64> {
        let n = self.p2m_size;
        let nwords = bitmap::words_for(n);
        let mut written: u64 = 0;
        let mut i = 0;
        while let Some(off) = bitmap::next_nonzero(&self.bitmap()[..nwords], i) {
            i = off;
            let mut w = bitmap::below(self.bitmap()[i], i, n);
            while w != 0 {
                self.add_to_batch(i as u64 * 64 + u64::from(w.trailing_zeros()))?;
                w &= w - 1;
                // Progress every 4 MiB worth of pages.
                if written & ((1 << (22 - 12)) - 1) == 0 {
                    self.xen.progress_step(written, entries);
                }
                written += 1;
            }
            i += 1;
        }
        self.flush_batch()?;
        Ok(written)
    }

    fn send_all_pages(&mut self) -> Res {
        let n = self.p2m_size;
        bitmap::set_all(self.bitmap_words(), n);
        self.send_dirty_pages(n)
    }

    fn enable_logdirty(&mut self) -> Res {
        let (xen, dom) = (self.xen, self.dom);
        if let Err(on1) = xen.enable_logdirty(dom) {
            // Log-dirty may already be on for VRAM tracking: turn it off and on again.
            let r = match xen.shadow_off(dom) {
                Err(off) => Err((on1, off.0, 0, off)),
                Ok(()) => match xen.enable_logdirty(dom) {
                    Err(on2) => Err((on1, 0, on2.0, on2)),
                    Ok(()) => Ok(()),
                },
            };
            if let Err((on1, off, on2, e)) = r {
                return Err(self.perror(
                    &format!("Failed to enable logdirty: {},{},{}", on1.0, off, on2),
                    e,
                ));
            }
        }
        Ok(())
    }

    fn set_iteration_prefix(&self) {
        self.xen
            .set_progress_prefix(Some(&format!("Frames iteration {}", self.stats.iteration)));
    }

    fn policy(&mut self, stats: PrecopyStats) -> i32 {
        match self.cb.precopy_policy(stats) {
            Some(d) => d,
            None => {
                if (stats.dirty_count >= 0 && stats.dirty_count < SPP_TARGET_DIRTY_COUNT)
                    || stats.iteration >= SPP_MAX_ITERATIONS
                {
                    XGS_POLICY_STOP_AND_COPY
                } else {
                    XGS_POLICY_CONTINUE_PRECOPY
                }
            }
        }
    }

    /// The precopy rounds of a live save.
    fn send_memory_live(&mut self) -> Res {
        let r = self.send_memory_live_inner();
        self.xen.set_progress_prefix(None);
        r
    }

    fn send_memory_live_inner(&mut self) -> Res {
        let mut dirty_count = self.p2m_size as u32 as u64;
        let mut x: u32 = 0;
        self.set_iteration_prefix();
        self.stats = PrecopyStats {
            dirty_count: self.p2m_size as std::os::raw::c_long,
            ..Default::default()
        };
        let n = self.p2m_size;
        bitmap::set_all(self.bitmap_words(), n);
        let mut decision;
        loop {
            decision = self.policy(self.stats);
            x += 1;
            if dirty_count > 0 && decision != XGS_POLICY_ABORT {
                self.set_iteration_prefix();
                self.send_dirty_pages(dirty_count)?;
            }
            if decision != XGS_POLICY_CONTINUE_PRECOPY {
                break;
            }
            self.stats.iteration = x;
            self.stats.total_written = self
                .stats
                .total_written
                .wrapping_add(self.stats.dirty_count as std::os::raw::c_ulong);
            self.stats.dirty_count = -1;
            decision = self.policy(self.stats);
            if decision != XGS_POLICY_CONTINUE_PRECOPY {
                break;
            }
            dirty_count = self.logdirty(LogDirtyOp::Clean, false)?.dirty_count as u64;
            self.stats.dirty_count = dirty_count as std::os::raw::c_long;
        }
        if decision == XGS_POLICY_ABORT {
            return Err(self.perror("Abort precopy loop", Errno(libc::ECANCELED)));
        }
        Ok(())
    }

    /// COLO: OR the secondary's dirty pfns into the bitmap, straight from the back channel
    /// (one 4 KiB chunk at a time, nothing buffered). The answer's clock starts here: the
    /// whole record must arrive within the channel's timeout, else ETIMEDOUT.
    fn colo_merge_secondary_dirty_bitmap(&mut self) -> Res {
        self.recv.start_answer();
        let words = self
            .dirty
            .as_mut()
            .expect("dirty bitmap allocated by setup")
            .words_mut();
        match backchannel::merge_dirty_pfn_list(&mut *self.recv, self.p2m_size, words) {
            Ok(n) => {
                log::debug!("xcsave: d{} secondary reported {n} dirty pfns", self.dom);
                Ok(())
            }
            Err(e) => {
                let mut msg = e.message();
                if let (BackChannelError::Io(libc::ETIMEDOUT), Some(t)) = (&e, self.recv.timeout())
                {
                    msg += &format!(
                        ": the secondary timed out, no whole answer within {} ms \
                         (XCSAVE_BACKCHANNEL_TIMEOUT_MS)",
                        t.as_millis()
                    );
                }
                Err(self.error(&msg, Errno(e.errno())))
            }
        }
    }

    /// Suspend and send what is dirty: the last round of a live save and the heart of a
    /// checkpoint.
    fn suspend_and_send_dirty(&mut self) -> Res {
        let r = self.suspend_and_send_dirty_inner();
        self.xen.set_progress_prefix(None);
        r
    }

    fn suspend_and_send_dirty_inner(&mut self) -> Res {
        self.suspend_domain()?;
        let stats = self.logdirty(LogDirtyOp::Clean, true)?;
        if self.live {
            self.set_iteration_prefix();
        } else {
            self.xen.set_progress_prefix(Some("Checkpointed save"));
        }
        let deferred = self.merge_deferred();
        if !self.live && self.stream_type == StreamType::Colo {
            if let Err(s) = self.colo_merge_secondary_dirty_bitmap() {
                self.perror("Failed to get secondary vm's dirty pages", s.errno);
                return Err(s);
            }
        }
        self.send_dirty_pages(stats.dirty_count as u64 + deferred)?;
        self.clear_deferred();
        Ok(())
    }

    /// Debug saves: send everything again after a VERIFY record.
    fn verify_frames(&mut self) -> Res {
        self.dprintf("Enabling verify mode");
        self.write_record(stream::rec::VERIFY, &[])?;
        self.xen.set_progress_prefix(Some("Frames verify"));
        self.send_all_pages()?;
        let s = self.logdirty(LogDirtyOp::Peek, false)?;
        self.dprintf(&format!(
            "  Further stats: faults {}, dirty {}",
            s.fault_count, s.dirty_count
        ));
        Ok(())
    }

    fn send_domain_memory_live(&mut self) -> Res {
        self.enable_logdirty()?;
        self.send_memory_live()?;
        if self.stream_type == StreamType::Plain {
            // Stop-and-copy was chosen: the page source checks its mappings one last time
            // and may release them while the guest still runs, outside the downtime.
            let visited = self.revalidate_pages(true);
            self.pages.before_suspend(self.xen, self.dom);
            if visited {
                self.send_live_round_after_visit()?;
            }
        }
        self.suspend_and_send_dirty()?;
        if self.debug && self.stream_type == StreamType::Plain {
            self.verify_frames()?;
        }
        Ok(())
    }

    fn send_domain_memory_nonlive(&mut self) -> Res {
        self.suspend_domain()?;
        self.xen.set_progress_prefix(Some("Frames"));
        self.send_all_pages()
    }

    fn setup(&mut self) -> Res {
        (self.ops.setup)(self)?;
        faults::panic_point(Stage::Setup);
        let bm = fallible::check_alloc().and_then(|()| self.xen.alloc_bitmap(self.p2m_size));
        match bm {
            Ok(b) => self.dirty = Some(b),
            Err(_) => {
                return Err(self.error(
                    "Unable to allocate memory for dirty bitmaps, batch pfns and deferred pages",
                    Errno(libc::ENOMEM),
                ))
            }
        }
        let words = bitmap::words_for(self.p2m_size);
        let nomem = |ctx: &Self| {
            ctx.error(
                "Unable to allocate memory for dirty bitmaps, batch pfns and deferred pages",
                Errno(libc::ENOMEM),
            )
        };
        self.deferred = fallible::try_zeroed(words).map_err(|_| nomem(self))?;
        self.batch = fallible::try_with_capacity(MAX_BATCH_SIZE).map_err(|_| nomem(self))?;
        self.scratch = BatchScratch::new().map_err(|_| nomem(self))?;
        Ok(())
    }

    fn cleanup(&mut self) {
        // Errors here are not the caller's business: stock ignores them too.
        let _ = self.xen.shadow_off(self.dom);
        if (self.ops.cleanup)(self).is_err() {
            self.perror("Failed to clean up", Errno::last());
        }
        // Past the engine's own catch: only the C surface's boundary catches this one.
        faults::panic_point(Stage::Cleanup);
        self.pages.teardown();
        self.dirty = None;
        self.deferred = Vec::new();
        self.xen.set_progress_prefix(None);
    }

    fn checkpoint_callbacks(&mut self) -> Res {
        // A callback's return value becomes xc_domain_save's, as in stock (0 = stop cleanly),
        // with the errno the callback left (EIO for a failure that left none).
        let stop = |rc: i32| Stop {
            rc,
            errno: match Errno::raw_last() {
                Errno(0) if rc != 0 => Errno(libc::EIO),
                e => e,
            },
        };
        // The guest is still paused: the page source's own unmaps in the downtime are not
        // the guest's doing.
        self.pages.downtime_ends(self.xen, self.dom);
        if self.stream_type == StreamType::Colo {
            let rc = self.cb.checkpoint();
            if rc == 0 {
                return Err(stop(-1));
            }
        }
        let rc = self.cb.postcopy();
        if rc <= 0 {
            return Err(stop(rc));
        }
        // The guest runs again: work deferred out of the downtime, then the page source's
        // patrol (pages to send again go in the next checkpoint).
        self.pages.resumed(self.xen, self.dom);
        self.revalidate_pages(false);
        let rc = match self.stream_type {
            StreamType::Colo => self.cb.wait_checkpoint(),
            _ => self.cb.checkpoint(),
        };
        if rc <= 0 {
            return Err(stop(rc));
        }
        Ok(())
    }

    fn save_body(&mut self) -> Res {
        self.setup()?;
        self.xen.progress_single("Start of stream");
        self.write_headers()?;
        (self.ops.static_data)(self)?;
        self.write_record(stream::rec::STATIC_DATA_END, &[])?;
        (self.ops.start_of_stream)(self)?;
        loop {
            (self.ops.start_of_checkpoint)(self)?;
            (self.ops.check_vm_state)(self)?;
            if self.live {
                self.send_domain_memory_live()?;
            } else if self.stream_type != StreamType::Plain {
                self.suspend_and_send_dirty()?;
            } else {
                self.send_domain_memory_nonlive()?;
            }
            if !self.dominfo.shutdown || self.dominfo.shutdown_reason != SHUTDOWN_SUSPEND {
                return Err(self.error("Domain has not been suspended", Errno(libc::EINVAL)));
            }
            (self.ops.end_of_checkpoint)(self)?;
            if self.stream_type == StreamType::Plain {
                break;
            }
            // After the first (possibly live) checkpoint, send synchronous batches.
            self.live = false;
            self.write_record(stream::rec::CHECKPOINT, &[])?;
            faults::panic_point(Stage::Checkpoint);
            log::debug!("xcsave: d{} checkpoint written", self.dom);
            self.checkpoint_callbacks()?;
        }
        self.xen.progress_single("End of stream");
        faults::panic_point(Stage::End);
        self.write_record(stream::rec::END, &[])?;
        self.xen.progress_single("Complete");
        Ok(())
    }
}

/// Check the callbacks stock asserts on; a missing one fails with EINVAL instead of aborting.
fn missing_callback(cb: &dyn Callbacks, st: StreamType, hvm: bool) -> Option<&'static str> {
    let mut need: Vec<(Callback, &'static str)> = vec![(Callback::Suspend, "suspend")];
    if st == StreamType::Colo {
        need.push((Callback::WaitCheckpoint, "wait_checkpoint"));
    }
    if st != StreamType::Plain {
        need.push((Callback::Checkpoint, "checkpoint"));
        need.push((Callback::Postcopy, "postcopy"));
    }
    if hvm {
        need.push((Callback::SwitchQemuLogdirty, "switch_qemu_logdirty"));
    }
    need.into_iter().find(|(c, _)| !cb.has(*c)).map(|(_, n)| n)
}

/// Everything one save works with.
pub struct Io<'a, H: Hypervisor> {
    /// The stream.
    pub sink: &'a mut dyn Sink,
    /// The COLO back channel, with the clock of the secondary's answer.
    pub recv: &'a mut dyn Channel,
    /// The source of mapped pages.
    pub pages: &'a mut dyn PageSource<H>,
    /// The caller's callbacks.
    pub cb: &'a mut dyn Callbacks,
}

/// `xc_domain_save`: save `args.dom` to the sink.
pub fn domain_save<H: Hypervisor>(xen: &H, io: Io<'_, H>, args: &SaveArgs) -> Outcome {
    let fail = |e: Errno| Outcome::Done { rc: -1, errno: e };
    let perror = |msg: &str, e: Errno| {
        xen.report_error(&format!("{msg} ({} = {})", e.0, e.describe()));
        fail(e)
    };
    let info = match xen.domain_info(args.dom) {
        Ok(Some(i)) => i,
        Ok(None) => return perror("Failed to get domain info", Errno(libc::ESRCH)),
        Err(e) => return perror("Failed to get domain info", e),
    };
    if info.domid != args.dom {
        xen.report_error(&format!("Domain {} does not exist", args.dom));
        return fail(Errno(libc::ESRCH));
    }
    let Some(stream_type) = StreamType::from_raw(args.stream_type) else {
        xen.report_error(&format!("Bad stream_type {}", args.stream_type));
        return fail(Errno(libc::EINVAL));
    };
    if !info.hvm {
        return Outcome::Unsupported(format!(
            "domain {} is an x86 PV guest, which xcsave does not save",
            args.dom
        ));
    }
    if let Some(name) = missing_callback(&*io.cb, stream_type, info.hvm) {
        xen.report_error(&format!("save callback {name}() is missing"));
        return fail(Errno(libc::EINVAL));
    }
    xen.log(
        Level::Detail,
        &format!(
            "fd {}, dom {}, flags {}, hvm {}",
            args.io_fd, args.dom, args.flags, info.hvm as i32
        ),
    );
    let mut ctx = Ctx {
        xen,
        sink: io.sink,
        recv: io.recv,
        pages: io.pages,
        cb: io.cb,
        ops: x86_hvm::ops(),
        dom: args.dom,
        stream_type,
        live: args.flags & XCFLAGS_LIVE != 0,
        debug: args.flags & XCFLAGS_DEBUG != 0,
        dominfo: info,
        p2m_size: 0,
        dirty: None,
        deferred: Vec::new(),
        nr_deferred: 0,
        batch: Vec::new(),
        scratch: BatchScratch::default(),
        stats: PrecopyStats::default(),
        x86_hvm: x86_hvm::SaveState::default(),
    };
    xen.log(
        Level::Info,
        &format!("Saving domain {}, type {}", args.dom, ctx.ops.type_name),
    );
    log::debug!(
        "xcsave: saving d{} stream type {:?} live {} (xcsave engine)",
        args.dom,
        stream_type,
        ctx.live
    );
    // A bug that panics mid-save must still leave the guest as cleanup leaves it (log-dirty
    // off in Xen and QEMU, every mapping released): catch it here, clean up, report EIO.
    // The C surface's own catch covers what remains (cleanup itself).
    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.save_body())) {
        Ok(r) => r,
        Err(p) => Err(ctx.error(
            &format!(
                "xcsave: internal error, save aborted: {}",
                crate::error::panic_message(&*p)
            ),
            Errno(libc::EIO),
        )),
    };
    if let Err(s) = result {
        ctx.perror("Save failed", s.errno);
    }
    ctx.cleanup();
    match result {
        Ok(()) => Outcome::Done {
            rc: 0,
            errno: Errno(0),
        },
        Err(s) => Outcome::Done {
            rc: s.rc,
            errno: s.errno,
        },
    }
}

#[cfg(test)]
mod tests;
