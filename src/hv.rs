// SPDX-License-Identifier: GPL-3.0-only
//! What the engine and the cache ask of Xen, as four narrow traits, each named for what it
//! does. `xen/` implements them over a caller's `xc_interface *`; `testkit` implements them
//! with a fake. Neither the engine nor the cache sees libxenctrl.
//!
//! | trait             | used by                         | for                                   |
//! |-------------------|---------------------------------|---------------------------------------|
//! | [`DomainControl`] | save engine (restore next)      | domain info, log-dirty, page types    |
//! | [`GuestMemory`]   | page sources, mapping cache     | foreign mappings, coherence counters, dom0 kind |
//! | [`HvmState`]      | x86 HVM save ops                | HVM context, params, TSC, CPU policy  |
//! | [`Report`]        | everything that talks to a user | the caller's logger and progress      |
//! | [`DomainBuild`]   | restore engine (`receive`)      | populate, writable maps, set state    |
//!
//! [`Hypervisor`] is all four, for the save engine. A restore engine reuses
//! [`GuestMemory`] (and the mapping cache behind it) and [`Report`], and adds its own
//! domain-building trait next to [`DomainControl`].
//!
//! Errors are errno values ([`Errno`]); no method panics on a failed hypercall. Every method
//! takes `&self`: an implementation keeps what it must mutate (a progress prefix, a
//! hypercall buffer) in cells.

use crate::abi::xen::Level;
use crate::error::{Errno, Result};

/// Domain information the saver needs (from `xc_domain_getinfo`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomInfo {
    /// Domain id.
    pub domid: u32,
    /// HVM (or PVH) guest.
    pub hvm: bool,
    /// The domain is shut down.
    pub shutdown: bool,
    /// Reason of the shutdown (SHUTDOWN_*).
    pub shutdown_reason: u32,
    /// Pages currently allocated to the domain.
    pub nr_pages: u64,
    /// Maximum memory, in KiB.
    pub max_memkb: u64,
}

/// Log-dirty statistics of a CLEAN/PEEK operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShadowStats {
    /// Faults since the last CLEAN.
    pub fault_count: u32,
    /// Dirty pages since the last CLEAN.
    pub dirty_count: u32,
}

/// Log-dirty bitmap operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDirtyOp {
    /// Copy and clear the bitmap.
    Clean,
    /// Copy without clearing.
    Peek,
}

/// A domain's serialised CPU policy, as the two stream records carry it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CpuPolicy {
    /// `xen_cpuid_leaf_t` array (`CPUID_LEAF_BYTES` each).
    pub cpuid: Vec<u8>,
    /// `xen_msr_entry_t` array (`MSR_ENTRY_BYTES` each).
    pub msrs: Vec<u8>,
}

/// TSC information of a domain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TscInfo {
    /// TSC mode.
    pub mode: u32,
    /// Elapsed nanoseconds.
    pub nsec: u64,
    /// Guest TSC frequency in kHz.
    pub khz: u32,
    /// Incarnation.
    pub incarnation: u32,
}

/// Domain-wide counters a cache of mappings checks for coherence (docs/coherence.md), read at
/// setup and at every suspended checkpoint (`getdomaininfo`, `XENMEM_maximum_gpfn`,
/// `XENMEM_get_pod_target`). The cache judges them (`cache/coherence.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainSignals {
    /// Pages allocated to the domain. On Xen, a frame pinned by one of our mappings stays
    /// counted after the guest releases it, so a release and re-populate shows as growth.
    pub tot_pages: u64,
    /// The domain's allocation limit.
    pub max_pages: u64,
    /// Pages shared through mem_sharing (their frames can change under the p2m).
    pub shr_pages: u64,
    /// Pages paged out by mem_paging.
    pub paged_pages: u64,
    /// Highest populated guest frame number.
    pub max_gpfn: u64,
    /// Outstanding populate-on-demand entries.
    pub pod_entries: u64,
    /// Pages in the populate-on-demand cache.
    pub pod_cache_pages: u64,
}

/// A dirty bitmap Xen can write into (a hypercall buffer for the real thing).
pub trait DirtyBitmap {
    /// The bitmap's words: bit `p` is bit `p % 64` of word `p / 64`.
    fn words(&self) -> &[u64];
    /// The bitmap's words, writable.
    fn words_mut(&mut self) -> &mut [u64];
}

/// A live mapping of guest pages; dropping it unmaps them.
pub trait PageMapping {
    /// Page `idx` (0-based, in the order the frames were requested), `PAGE_SIZE` bytes.
    /// Only called for pages whose per-page map error was 0; panics if `idx` is outside the
    /// mapping.
    fn page(&self, idx: usize) -> &[u8];
}

/// Domain control: information, log-dirty tracking and page types (the `xc_sr_save_ops`
/// helpers of `xg_sr_save.c` that are not guest-type specific).
pub trait DomainControl {
    /// The dirty bitmap type this hypervisor fills.
    type Bitmap: DirtyBitmap;

    /// Information about the first domain with id >= `dom` (None if there is none). The
    /// caller checks that the id is the one it asked for.
    fn domain_info(&self, dom: u32) -> Result<Option<DomInfo>>;
    /// `XENVER_version`: major << 16 | minor.
    fn xen_version(&self) -> Result<u32>;
    /// The p2m size of `dom` (maximum gpfn + 1).
    fn nr_gpfns(&self, dom: u32) -> Result<u64>;
    /// Turn shadow/log-dirty mode off. Idempotent; cleanup calls it on every path.
    fn shadow_off(&self, dom: u32) -> Result<()>;
    /// Enable log-dirty mode. Fails (EINVAL on Xen) if it is already on.
    fn enable_logdirty(&self, dom: u32) -> Result<()>;
    /// Allocate a zeroed bitmap of `bits` bits.
    fn alloc_bitmap(&self, bits: u64) -> Result<Self::Bitmap>;
    /// CLEAN or PEEK the log-dirty bitmap of `pages` pages into `bitmap`. Fails unless Xen
    /// reports all `pages` pages. `final_round` is passed to Xen for the suspended pass.
    fn logdirty(
        &self,
        dom: u32,
        op: LogDirtyOp,
        bitmap: &mut Self::Bitmap,
        pages: u64,
        final_round: bool,
    ) -> Result<ShadowStats>;
    /// Overwrite each gfn of `arr` with its page type (`XEN_DOMCTL_PFINFO_*`), in place.
    fn pfn_types(&self, dom: u32, arr: &mut [u64]) -> Result<()>;
}

/// Guest memory mapping: what a page source (per batch or cached) needs. Shared by save and
/// restore: the mapping cache sees Xen only through this trait.
pub trait GuestMemory {
    /// A live mapping; dropping it unmaps every page (no other release call exists, so a
    /// mapping cannot leak past its owner).
    type Mapping: PageMapping;

    /// Map `gfns` of `dom` read-only and contiguously, in order, in one call. Per-page
    /// failures go to `errs[i]` (a negative errno, 0 for success) and do not fail the call;
    /// a failure of the call itself (ENOMEM: out of VMAs or dom0 frames) does.
    /// `errs.len() == gfns.len()`.
    fn map_foreign(&self, dom: u32, gfns: &[u64], errs: &mut [i32]) -> Result<Self::Mapping>;
    /// The counters a cache checks for coherence (docs/coherence.md). Must leave the thread's
    /// errno as it was. A hypervisor that cannot tell them answers ENOSYS, and caching stays
    /// off.
    fn p2m_signals(&self, _dom: u32) -> Result<DomainSignals> {
        Err(Errno(libc::ENOSYS))
    }
    /// Whether the domain we run in (dom0) is auto-translated: bit
    /// `XENFEAT_auto_translated_physmap` of `XENVER_get_features` submap 0, the bit privcmd
    /// keys on (docs/dom0-cost.md §4). A foreign mapping then takes a dom0 frame per page.
    /// A hypervisor that cannot tell answers ENOSYS, and the cache keeps its bounded policy.
    fn dom0_auto_translated(&self) -> Result<bool> {
        Err(Errno(libc::ENOSYS))
    }
}

/// A live writable mapping of guest pages (the restore's); dropping it unmaps them.
pub trait PageMappingMut: PageMapping {
    /// Page `idx`, writable. Same rules as [`PageMapping::page`].
    fn page_mut(&mut self, idx: usize) -> &mut [u8];
}

/// Building a domain from a stream: what the restore asks of Xen beyond [`DomainControl`]
/// and [`Report`] (the helpers of `xg_sr_restore.c` and `xg_sr_restore_x86_hvm.c`). Every
/// error carries stock's message for the step that failed.
pub trait DomainBuild {
    /// The writable mapping type.
    type WritableMapping: PageMappingMut;

    /// Map `gfns` of `dom` readable and writable, in order, in one call; per-page failures go
    /// to `errs[i]` as in [`GuestMemory::map_foreign`].
    fn map_foreign_rw(
        &self,
        dom: u32,
        gfns: &[u64],
        errs: &mut [i32],
    ) -> Result<Self::WritableMapping>;
    /// `xc_domain_populate_physmap_exact` of order-0 extents at `pfns`.
    fn populate(&self, dom: u32, pfns: &[u64]) -> Result<()>;
    /// `xc_domain_set_tsc_info`.
    fn set_tsc_info(&self, dom: u32, tsc: &TscInfo) -> Result<()>;
    /// `xc_hvm_param_set`.
    fn set_hvm_param(&self, dom: u32, index: u32, value: u64) -> Result<()>;
    /// `xc_domain_hvm_setcontext`.
    fn set_hvm_context(&self, dom: u32, blob: &[u8]) -> Result<()>;
    /// `xc_set_domain_cpu_policy` with whole serialised leaves and MSR entries.
    fn set_cpu_policy(
        &self,
        dom: u32,
        policy: &CpuPolicy,
    ) -> std::result::Result<(), (Errno, String)>;
    /// `xc_clear_domain_page`.
    fn clear_page(&self, dom: u32, pfn: u64) -> Result<()>;
    /// `xc_dom_gnttab_seed` for an HVM guest.
    fn gnttab_seed(
        &self,
        dom: u32,
        console_gfn: u64,
        store_gfn: u64,
        console_domid: u32,
        store_domid: u32,
    ) -> Result<()>;
}

/// HVM guest state: the records of `xg_sr_save_x86_hvm.c`.
pub trait HvmState {
    /// Size of the HVM context blob.
    fn hvm_context_size(&self, dom: u32) -> Result<usize>;
    /// Fetch the HVM context into `buf`; returns the bytes used (at most `buf.len()`).
    fn hvm_context(&self, dom: u32, buf: &mut [u8]) -> Result<usize>;
    /// Read one HVM param.
    fn hvm_param(&self, dom: u32, index: u32) -> Result<u64>;
    /// TSC information.
    fn tsc_info(&self, dom: u32) -> Result<TscInfo>;
    /// The domain's serialised CPU policy; the error carries stock's message for the step
    /// that failed.
    fn cpu_policy(&self, dom: u32) -> std::result::Result<CpuPolicy, (Errno, String)>;
}

/// The caller's logger and progress reports (`xc_report*`): messages in stock's words go
/// here, so that a toolstack log reads as with the stock saver. Never fails.
pub trait Report {
    /// Log through the caller's logger (`xc_report`).
    fn log(&self, level: Level, msg: &str);
    /// Log an error and record it as the handle's last error (`xc_report_error`).
    fn report_error(&self, msg: &str);
    /// `xc_report_progress_single`.
    fn progress_single(&self, doing: &str);
    /// `xc_set_progress_prefix` (None clears it). The implementation keeps the string alive
    /// while libxenctrl points at it.
    fn set_progress_prefix(&self, prefix: Option<&str>);
    /// `xc_report_progress_step` under the current prefix (nothing without a prefix).
    fn progress_step(&self, done: u64, total: u64);
}

/// Everything the save engine asks of Xen.
pub trait Hypervisor: DomainControl + GuestMemory + HvmState + Report {}

impl<T: DomainControl + GuestMemory + HvmState + Report> Hypervisor for T {}
