// SPDX-License-Identifier: GPL-3.0-only
/*
 * xensim — a simulated Xen 4.17 hypervisor at the Linux privcmd device ABI.
 *
 * libxensim.so interposes open/ioctl/mmap/munmap/close on /dev/xen/privcmd,
 * /proc/xen/privcmd and /dev/xen/hypercall, and emulates the hypercalls
 * behind them.  The same library exports this control API, used by tests
 * to create guests, drive them, and inspect what the simulated hypervisor
 * saw.  All state lives under $XENSIM_DIR (required), so several processes
 * (save helper, restore helper, test driver) share the same domains.
 *
 * Conventions: functions returning int return 0 on success and a negative
 * errno value on failure, unless stated otherwise.
 */
#ifndef XENSIM_H
#define XENSIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- setup ------------------------------------------------------------ */

/*
 * Attach to (creating if needed) the simulator state in $XENSIM_DIR.
 * Called implicitly by every other function and by the first intercepted
 * device access; calling it explicitly only surfaces errors early.
 */
int xensim_init(void);

/* Options for xensim_create_domain(). */
struct xensim_domain_config {
    uint64_t mem_bytes;   /* guest RAM (rounded down to 4 KiB pages) */
    unsigned int vcpus;   /* 0 -> 1 */
    int empty;            /* 1: no RAM populated (a restore target); the
                             p2m size is still set by the memory layout */
    int paused;           /* 1: start paused (like a libxl-created domain) */
    uint64_t p2m_pages;   /* address space in gfns the guest may populate
                             (0: the layout's top + 4096); the p2m file is
                             4 bytes a gfn, written whole at creation */
    int pv;               /* 1: getdomaininfo reports an x86 PV guest (no
                             XEN_DOMINF_hvm_guest/hap); everything else stays
                             HVM's: enough to route a save or restore by the
                             domain's type, not to run a PV guest */
};

/*
 * Create an x86 HVM domain with id `domid` (1..32751).  Non-empty domains
 * get low RAM below 0xF0000 (minus the VGA hole 0xA0-0xBF), RAM above
 * 3.75 GiB relocated to gfn 0x100000+, and 8 special pages at
 * 0xFEFF8-0xFEFFF named by HVM params (store, console, ioreq, ...).
 */
int xensim_create_domain(uint32_t domid, const struct xensim_domain_config *cfg);
/* Destroy a domain and delete its files. */
int xensim_destroy_domain(uint32_t domid);
/* Destroy every domain (test cleanup). */
void xensim_destroy_all(void);

/* ---- guest model ------------------------------------------------------ */

/* Fill every present RAM page with deterministic content from `seed`
 * (special ioreq/bufioreq pages stay zero).  Does not mark pages dirty. */
int xensim_fill(uint32_t domid, uint64_t seed);
/*
 * Guest write of `len` bytes at byte `off` within gfn (a write by the
 * guest's vCPU): marks gfn dirty when log-dirty is enabled.  Fails with
 * -EBUSY if the domain is not running (paused, shut down or dying),
 * -EINVAL for an absent gfn.
 */
int xensim_guest_write(uint32_t domid, uint64_t gfn, size_t off,
                       const void *buf, size_t len);
/* Read guest memory (any state).  -EINVAL for an absent gfn. */
int xensim_guest_read(uint32_t domid, uint64_t gfn, size_t off, void *buf,
                      size_t len);
/* Foreign mappings (all processes) of gfn's current frame; -EINVAL if absent. */
int xensim_gfn_mapped(uint32_t domid, uint64_t gfn);
/* Is gfn populated?  1 yes, 0 no, <0 error. */
int xensim_gfn_present(uint32_t domid, uint64_t gfn);
/*
 * Balloon-replace: give gfn a NEW backing frame filled from `seed`
 * WITHOUT marking it dirty (what 4.17 does under HAP log-dirty).  Old
 * foreign mappings keep seeing the old frame.
 */
int xensim_balloon_replace(uint32_t domid, uint64_t gfn, uint64_t seed);
/* Balloon out (decrease_reservation) / in (populate, zeroed frame). */
int xensim_balloon_out(uint32_t domid, uint64_t gfn);
int xensim_balloon_in(uint32_t domid, uint64_t gfn);

/*
 * p2m changes a guest makes with one or two hypercalls (issue 14), with
 * Xen's frame refcounts: a frame that leaves the p2m is freed (and leaves
 * tot_pages) only when its last foreign mapping goes; until then it counts
 * in tot_pages and in `held_pages`.  None marks a gfn dirty unless
 * xensim_set_p2m_add_marks_dirty(1).  -EINVAL for absent gfns.
 *
 * Masked exchange: decrease_reservation(other), decrease_reservation(gfn),
 * populate_physmap(gfn) (a new frame filled from seed).  tot_pages is
 * unchanged when gfn's old frame is held by a mapping and other's is not.
 * The populate is refused with -ENOMEM at max_pages (both releases stay).
 * (XENMEM_exchange itself cannot do this: steal_page refuses translated
 * guests and pages with extra references.)
 */
int xensim_masked_exchange(uint32_t domid, uint64_t gfn, uint64_t other,
                           uint64_t seed);
/*
 * add_to_physmap(XENMAPSPACE_gmfn, idx = src, gpfn = dst): dst gets src's
 * frame, dst's old frame is released (guest_remove_page), src becomes a
 * hole.  tot_pages falls by one unless dst's old frame is held.
 */
int xensim_move_gmfn(uint32_t domid, uint64_t src, uint64_t dst);
/* add_to_physmap(XENMAPSPACE_grant_table, 0) at gfn: its RAM frame is released. */
int xensim_grant_over(uint32_t domid, uint64_t gfn);
/* The domain's max_pages (as XEN_DOMCTL_max_mem, in pages). */
int xensim_set_max_pages(uint32_t domid, uint64_t max_pages);
/*
 * 1: every p2m addition (populate, replace, exchange, move, grant) marks
 * its gfn dirty, as p2m_add_page does from Xen 4.19.5/4.20.3 (98fccdf0ac).
 * 0 (default): 4.17, which marks nothing.
 */
void xensim_set_p2m_add_marks_dirty(int on);

/* Domain state as the hypervisor sees it. */
struct xensim_dominfo {
    uint32_t domid;
    int paused;            /* pause count > 0 */
    int shutdown;          /* shut down ... */
    unsigned int shutdown_reason; /* ... with this SHUTDOWN_* reason */
    int dying;
    int running;           /* !paused && !shutdown && !dying */
    int logdirty;          /* log-dirty mode enabled */
    uint64_t tot_pages, max_pages;
    uint64_t held_pages;   /* of tot_pages: released, held by a foreign mapping */
    uint64_t p2m_size;     /* maximum_gpfn + 1 */
    uint64_t hvm_param[64];
};
int xensim_dominfo(uint32_t domid, struct xensim_dominfo *info);
int xensim_pause(uint32_t domid);
int xensim_unpause(uint32_t domid);
/* Shutdown for suspend, as sched_op remote_shutdown(SHUTDOWN_suspend). */
int xensim_suspend(uint32_t domid);
/* domctl resumedomain: clear the shutdown state. */
int xensim_resume(uint32_t domid);
/* Set the log-dirty mode directly (as libxl does for a COLO secondary). */
int xensim_set_logdirty(uint32_t domid, int enable);

/* ---- background vCPU dirtier ----------------------------------------- */

/* A thread in the calling process that writes `rate` pages/s spread over
 * gfns [first, first+count) (absent and special pages skipped), and that
 * stops writing while the domain is not running. */
struct xensim_dirtier;
struct xensim_dirtier *xensim_dirtier_start(uint32_t domid, uint64_t first,
                                            uint64_t count, uint64_t rate,
                                            uint64_t seed);
/* Stop and free; returns the number of pages written. */
uint64_t xensim_dirtier_stop(struct xensim_dirtier *d);
/* Pages written so far. */
uint64_t xensim_dirtier_writes(const struct xensim_dirtier *d);

/* ---- snapshot / compare ---------------------------------------------- */

struct xensim_snapshot;   /* RAM + p2m + HVM context + params */

/* Where two states differ (filled by the compare functions). */
struct xensim_diff {
    char what[32];         /* "p2m", "ram", "hvm_context", "param", ... */
    uint64_t gfn;          /* first differing gfn ("p2m"/"ram") */
    uint64_t index;        /* param index / byte offset */
    uint64_t a, b;         /* the two values (for params and sizes) */
    char text[160];        /* human-readable summary */
};

/* Which parts to compare. */
#define XENSIM_CMP_RAM       1u
#define XENSIM_CMP_HVMCTX    2u
#define XENSIM_CMP_PARAMS    4u
#define XENSIM_CMP_ALL       7u
/* A gfn absent in the reference is not compared (a page the primary released
 * stays on a checkpointed secondary: stream v2 has no way to depopulate). */
#define XENSIM_CMP_REF_HOLES 8u

struct xensim_snapshot *xensim_snapshot(uint32_t domid);
void xensim_snapshot_free(struct xensim_snapshot *s);
/*
 * Compare: 0 equal, 1 different (diff filled), <0 error.  The xenstore and
 * console pages (named by the reference's HVM params) are skipped, because
 * restore zeroes them.  Params compared: those the 4.17 HVM saver sends.
 * A gfn where either side has its grant frame (Xen's page, never in a
 * stream) is not compared.
 */
int xensim_compare_snapshot(const struct xensim_snapshot *ref, uint32_t domid,
                            unsigned int what, struct xensim_diff *diff);
int xensim_compare_domains(uint32_t ref_domid, uint32_t domid,
                           unsigned int what, struct xensim_diff *diff);

/* ---- counters --------------------------------------------------------- */

struct xensim_counters {
    uint64_t mmapbatch_calls;     /* MMAPBATCH(_V2) ioctls */
    uint64_t pages_mapped;        /* pages successfully mapped */
    uint64_t map_errors;          /* per-page map errors reported */
    uint64_t mmap_syscalls;       /* real mmap(MAP_FIXED) calls for them */
    uint64_t privcmd_mmaps;       /* privcmd VMAs created */
    uint64_t privcmd_munmaps;     /* munmap calls touching privcmd VMAs */
    uint64_t live_privcmd_vmas;   /* privcmd VMAs alive now */
    uint64_t live_privcmd_pages;  /* pages mapped in them now */
    uint64_t hypercalls;          /* every hypercall (multicall entries too) */
    uint64_t unhandled;           /* hypercalls/ioctls answered -ENOSYS */
    uint64_t faults_injected;
    uint64_t mmapbatch_ns;        /* wall time inside MMAPBATCH ioctls */
    uint64_t mmap_ns;             /* ... of which in the real mmap calls */
    uint64_t hypercall_ns;        /* wall time inside emulated hypercalls */
    uint64_t dom0_frames;         /* dom0 frames backing privcmd VMAs now */
    uint64_t dom0_frames_peak;    /* ... at most, since the last reset */
    uint64_t dom0_frame_failures; /* MMAPBATCH refused for lack of them */
};
void xensim_counters(struct xensim_counters *c);
/* Reset the cumulative counters (live_* are state, not reset). */
void xensim_counters_reset(void);

/* Pseudo-op numbers for the ioctls, for counters and fault injection. */
#define XENSIM_OP_IOCTL        64  /* subop = ioctl nr (0=HYPERCALL,
                                      3=MMAPBATCH, 4=MMAPBATCH_V2, ...) */
#define XENSIM_SUBOP_ANY       (-1)
/* Hypercall count: op = __HYPERVISOR_*, subop = domctl/sysctl cmd,
 * memory_op/hvm_op/sched_op/... subop, or XENSIM_SUBOP_ANY. */
uint64_t xensim_hypercall_count(unsigned int op, int subop);

/* ---- cost model ------------------------------------------------------- */

/* Busy-wait per MMAPBATCH call and per mapped page (ns).  Defaults from
 * env XENSIM_COST_CALL_NS / XENSIM_COST_PAGE_NS, else 0. */
void xensim_set_cost(uint64_t call_ns, uint64_t page_ns);
/* Busy-wait per guest page unmapped from a privcmd VMA (a PVH dom0 gives
 * each back with a hypercall).  Env XENSIM_COST_UNMAP_PAGE_NS, default 0. */
void xensim_set_unmap_cost(uint64_t page_ns);

/*
 * The dom0 frame budget: on a PVH dom0 the first MMAPBATCH on a privcmd
 * VMA takes one dom0 frame per page of the VMA (alloc_empty_pages) until
 * those pages are unmapped.  With a limit (env XENSIM_DOM0_FRAMES, default
 * 0 = unlimited) such an MMAPBATCH fails with ENOMEM when the frames of
 * all live VMAs (every process) would exceed it.
 */
void xensim_set_dom0_frames(uint64_t limit);

/*
 * The dom0 the simulated hypervisor reports and models (env XENSIM_DOM0 =
 * pv | pvh | pvh-balloon, default pv).  XENVER_get_features answers with the
 * bits Xen 4.17's xen/common/kernel.c gives such a hardware domain: PV
 * without, both PVH modes with XENFEAT_auto_translated_physmap.  PV takes no
 * dom0 frames for privcmd VMAs; both PVH modes count them (dom0_frames);
 * only pvh-balloon (a kernel without CONFIG_XEN_UNPOPULATED_ALLOC, whose
 * frames are ballooned-out RAM) applies the dom0 frame budget.
 */
enum { XENSIM_DOM0_PV = 0, XENSIM_DOM0_PVH = 1, XENSIM_DOM0_PVH_BALLOON = 2 };
void xensim_set_dom0_mode(int mode);
int xensim_dom0_mode(void);

/* ---- fault injection ------------------------------------------------- */

/*
 * Fail the nth (1-based, counted from now) call of op/subop, and the
 * following `repeat` calls, with -err.  op/subop as for
 * xensim_hypercall_count(); e.g. (__HYPERVISOR_domctl,
 * XEN_DOMCTL_shadow_op) or (XENSIM_OP_IOCTL, 4) for MMAPBATCH_V2.
 */
int xensim_fault_call(unsigned int op, int subop, unsigned int nth,
                      unsigned int repeat, int err);
/* The same, counting only calls that target domain `domid`. */
int xensim_fault_call_dom(uint32_t domid, unsigned int op, int subop,
                          unsigned int nth, unsigned int repeat, int err);
/* Every mapping of gfn of domid reports err[i] = -err. */
int xensim_fault_map_gfn(uint32_t domid, uint64_t gfn, int err);
/* Mapping gfn reports paged-out (-ENOENT) for the next `attempts` tries. */
int xensim_fault_paged(uint32_t domid, uint64_t gfn, unsigned int attempts);
/* The domain dies (becomes dying, then every operation on it fails with
 * ESRCH) when the nth call of op/subop is made. */
int xensim_fault_die(uint32_t domid, unsigned int op, int subop,
                     unsigned int nth);
/* Remove every fault rule. */
void xensim_fault_clear(void);

/* ---- misc ------------------------------------------------------------- */

/* Strict mode (env XENSIM_STRICT=1): malformed arguments abort(). */
int xensim_strict(void);
/* Default guest-memory page size used by the model. */
#define XENSIM_PAGE_SIZE 4096u

#ifdef __cplusplus
}
#endif
#endif /* XENSIM_H */
