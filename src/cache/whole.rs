// SPDX-License-Identifier: GPL-3.0-only
//! Whole-guest mode (issue 13, docs/dom0-cost.md, docs/performance.md "Whole-guest mode"):
//! where a foreign mapping costs dom0 only page tables and address space, a checkpointed
//! stream's first pass maps every populated bucket of the guest and keeps it mapped, so warm
//! checkpoints make no map call whatever pages they dirty.
//!
//! - **Affordable**: a PV dom0, or an auto-translated (PVH) dom0 whose kernel allocates
//!   privcmd's frames from unpopulated address space (`CONFIG_XEN_UNPOPULATED_ALLOC`, Debian
//!   12/13). A PVH dom0 with ballooned frames would give a dom0 RAM page per guest page: the
//!   bounded policy applies there, as when the mode cannot be read.
//! - **VMAs**: one per bucket; the bucket size doubles from the configured one until the
//!   guest's buckets fit in the VMA allowance ([`plan`]).
//! - **Cap**: every whole-guest save of the process reserves its mapped bytes and VMAs from
//!   one process-wide allowance ([`reserve`]); a save that does not fit keeps the bounded
//!   policy. The reservation goes when its [`Grant`] drops (the save ends).

use std::sync::Mutex;

use super::config::{CacheConfig, PAGE_BYTES};
use crate::abi::xen::MAX_BATCH_SIZE;

/// Default process-wide cap on guest memory mapped whole: 64 GiB (`XCSAVE_CACHE_WHOLE_MB`
/// changes it, 0 turns whole-guest mode off). At the cap a PV dom0 pays at most 128 MiB of
/// page tables (8 bytes a page) and a PVH dom0 with unpopulated frames about 1 GiB of
/// `struct page` (docs/dom0-cost.md §6); guests above it, together with the process's other
/// whole-guest saves, keep the bounded policy.
pub const DEFAULT_WHOLE_CAP_BYTES: u64 = 64 << 30;

/// What kind of dom0 this is, as far as a foreign mapping's cost goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dom0 {
    /// Paravirtualised: page tables and VMAs only.
    Pv,
    /// Auto-translated, frames from unpopulated address space (`struct page` per page).
    PvhUnpopulated,
    /// Auto-translated, frames ballooned out of dom0's RAM (one RAM page per guest page).
    PvhBallooned,
    /// `XENVER_get_features` could not be read.
    Unknown,
}

impl Dom0 {
    /// The kind from the hypervisor's feature bit (`None`: unreadable) and what the settings
    /// say of the kernel's allocator.
    pub fn classify(auto_translated: Option<bool>, unpopulated_alloc: bool) -> Dom0 {
        match auto_translated {
            None => Dom0::Unknown,
            Some(false) => Dom0::Pv,
            Some(true) if unpopulated_alloc => Dom0::PvhUnpopulated,
            Some(true) => Dom0::PvhBallooned,
        }
    }

    /// Whether mapping the whole guest costs dom0 no RAM of the guest's size.
    pub fn affordable(self) -> bool {
        matches!(self, Dom0::Pv | Dom0::PvhUnpopulated)
    }

    /// How the log lines name it.
    pub fn name(self) -> &'static str {
        match self {
            Dom0::Pv => "PV",
            Dom0::PvhUnpopulated => "PVH (unpopulated frames)",
            Dom0::PvhBallooned => "PVH (ballooned frames)",
            Dom0::Unknown => "unknown",
        }
    }
}

/// Whole-guest settings (README "Settings"): the process-wide caps and what is known of the
/// dom0 kernel's allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WholeConfig {
    /// `XCSAVE_CACHE_WHOLE_MB`: guest memory all whole-guest saves of the process may keep
    /// mapped together, in bytes; 0 turns the mode off.
    pub cap_bytes: u64,
    /// `XCSAVE_CACHE_WHOLE_VMAS`, else half of `vm.max_map_count`: VMAs all whole-guest saves
    /// of the process may hold together.
    pub max_vmas: u64,
    /// `XCSAVE_DOM0_UNPOPULATED` (else the running kernel's config, else Debian's `y`): a PVH
    /// dom0's privcmd frames come from unpopulated address space.
    pub unpopulated_alloc: bool,
}

impl Default for WholeConfig {
    fn default() -> Self {
        WholeConfig {
            cap_bytes: DEFAULT_WHOLE_CAP_BYTES,
            max_vmas: super::config::DEFAULT_MAX_MAP_COUNT / 2,
            unpopulated_alloc: true,
        }
    }
}

/// The shape of a whole-guest cache: the bucket size and what it reserves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Pages per bucket (the configured size, doubled until the buckets fit `max_vmas`).
    pub bucket_pages: u32,
    /// Buckets covering the p2m (one VMA each).
    pub buckets: u64,
    /// Bytes those buckets map.
    pub bytes: u64,
}

/// Buckets allowed on top of the populated pages' own, for the edges of the populated
/// regions (an HVM guest has a few: low RAM, RAM above the MMIO hole, special pages).
pub const EDGE_BUCKETS: u64 = 16;

/// The whole-guest plan for a guest of `tot_pages` populated pages in a p2m of `p2m_pages`
/// frames, starting from buckets of `bucket_pages`, within `max_vmas` VMAs; `None` if even
/// the largest bucket needs more. Holes are never mapped (only pages with data are asked
/// for), so a guest needs its populated pages' buckets plus [`EDGE_BUCKETS`], at most the
/// p2m's. A guest more scattered than that is mapped whole as far as the budget goes, the
/// rest per batch.
pub fn plan(bucket_pages: u32, p2m_pages: u64, tot_pages: u64, max_vmas: u64) -> Option<Plan> {
    let mut bp = bucket_pages.max(1);
    loop {
        let buckets = p2m_pages
            .div_ceil(u64::from(bp))
            .min(tot_pages.div_ceil(u64::from(bp)) + EDGE_BUCKETS);
        if buckets <= max_vmas {
            return Some(Plan {
                bucket_pages: bp,
                buckets,
                bytes: buckets * u64::from(bp) * PAGE_BYTES,
            });
        }
        if bp >= super::config::MAX_BUCKET_PAGES {
            return None;
        }
        bp *= 2;
    }
}

impl Plan {
    /// The cache settings that hold this plan: its buckets, a budget of all of them plus the
    /// batch reserve, marked whole.
    pub fn config(&self, base: CacheConfig) -> CacheConfig {
        CacheConfig {
            budget_bytes: self.bytes + MAX_BATCH_SIZE as u64 * PAGE_BYTES,
            budget_from_guest: false,
            bucket_pages: self.bucket_pages,
            whole_guest: true,
            ..base
        }
    }
}

/// What the whole-guest saves of the process hold: (bytes, VMAs).
static RESERVED: Mutex<(u64, u64)> = Mutex::new((0, 0));

/// A save's share of the process-wide allowance; given back on drop.
#[derive(Debug)]
pub struct Grant {
    bytes: u64,
    vmas: u64,
}

/// Reserves `plan` from the process-wide allowance of `cfg`; on refusal, says why.
pub fn reserve(plan: &Plan, cfg: &WholeConfig) -> Result<Grant, String> {
    let mut r = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
    let (bytes, vmas) = (r.0 + plan.bytes, r.1 + plan.buckets);
    if bytes > cfg.cap_bytes {
        return Err(format!(
            "{} MiB with the process's other whole-guest saves is above the cap of {} MiB",
            bytes >> 20,
            cfg.cap_bytes >> 20
        ));
    }
    if vmas > cfg.max_vmas {
        return Err(format!(
            "{vmas} VMAs with the process's other whole-guest saves is above the {} allowed",
            cfg.max_vmas
        ));
    }
    *r = (bytes, vmas);
    Ok(Grant {
        bytes: plan.bytes,
        vmas: plan.buckets,
    })
}

/// What the process's whole-guest saves hold now: (bytes, VMAs).
pub fn reserved() -> (u64, u64) {
    *RESERVED.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Grant {
    fn drop(&mut self) {
        let mut r = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
        r.0 -= self.bytes;
        r.1 -= self.vmas;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dom0_kinds() {
        assert_eq!(Dom0::classify(Some(false), false), Dom0::Pv);
        assert_eq!(Dom0::classify(Some(true), true), Dom0::PvhUnpopulated);
        assert_eq!(Dom0::classify(Some(true), false), Dom0::PvhBallooned);
        assert_eq!(Dom0::classify(None, true), Dom0::Unknown);
        assert!(Dom0::Pv.affordable() && Dom0::PvhUnpopulated.affordable());
        assert!(!Dom0::PvhBallooned.affordable() && !Dom0::Unknown.affordable());
    }

    #[test]
    fn buckets_grow_with_the_guest() {
        // 1 GiB guest, 1 MiB buckets, 32765 VMAs: 1024 buckets.
        let p = plan(256, 1 << 18, 1 << 18, 32_765).unwrap();
        assert_eq!((p.bucket_pages, p.buckets, p.bytes), (256, 1024, 1 << 30));
        // 64 GiB within 10000 VMAs: 8 MiB buckets (8192 of them, the p2m's).
        let p = plan(256, 1 << 24, 1 << 24, 10_000).unwrap();
        assert_eq!((p.bucket_pages, p.buckets), (2048, 8192));
        // A partial last bucket counts whole.
        assert_eq!(plan(16, 17, 17, 100).unwrap().buckets, 2);
        // 240 MiB populated in a 4 GiB p2m: the populated buckets and the edges.
        let p = plan(256, 1 << 20, 61_440, 32_765).unwrap();
        assert_eq!(p.buckets, 240 + EDGE_BUCKETS);
        let p = plan(256, 1 << 20, 61_440, 40).unwrap();
        assert_eq!((p.bucket_pages, p.buckets), (4096, 15 + EDGE_BUCKETS));
        // Not even 32 MiB buckets fit.
        assert_eq!(plan(256, 1 << 24, 1 << 24, 100), None);
    }

    #[test]
    fn the_cap_is_shared() {
        let cfg = WholeConfig {
            cap_bytes: 3 << 30,
            max_vmas: 1 << 20,
            unpopulated_alloc: true,
        };
        let p = plan(256, 1 << 18, 1 << 18, 1 << 20).unwrap(); // 1 GiB
        let before = reserved();
        // Other tests may hold grants: measure against what is free now.
        let cfg = WholeConfig {
            cap_bytes: cfg.cap_bytes + before.0,
            max_vmas: cfg.max_vmas + before.1,
            ..cfg
        };
        let a = reserve(&p, &cfg).unwrap();
        let b = reserve(&p, &cfg).unwrap();
        let c = reserve(&p, &cfg).unwrap();
        assert!(reserve(&p, &cfg).unwrap_err().contains("cap"));
        drop(b);
        let d = reserve(&p, &cfg).unwrap();
        let few = WholeConfig {
            max_vmas: reserved().1 + 10,
            cap_bytes: u64::MAX,
            ..cfg
        };
        assert!(reserve(&p, &few).unwrap_err().contains("VMAs"));
        drop((a, c, d));
    }
}
