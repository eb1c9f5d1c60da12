// SPDX-License-Identifier: GPL-3.0-only
/* xensim internals shared by the shim, the hypercall emulation and the
 * control API.  Not installed; tests use xensim.h. */
#ifndef XENSIM_SIM_H
#define XENSIM_SIM_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "xensim.h"

#define SIM_MAGIC        0x58454e53494d3031ull /* "XENSIM01" */
#define SIM_MAX_DOMS     16
#define SIM_MAX_FAULTS   32
#define SIM_NR_OPS       72          /* 0..63 hypercalls, 64 ioctls */
#define SIM_NR_SUBOPS    128
#define SIM_HVMCTX_MAX   (64 * 1024)
#define SIM_NR_PARAMS    64
#define SIM_MAX_LEAVES   160
#define SIM_MAX_MSRS     8
#define SIM_INVALID      0xffffffffu /* p2m entry of an absent gfn */
#define SIM_RELEASED     0x80000000u /* refs: left the p2m, still pinned */
#define SIM_REFMASK      0x7fffffffu
#define SIM_PAGE_SHIFT   12
#define SIM_PAGE         4096ul
#define XENSIM_ANY_DOM   0xffffffffu /* fault rule matching any domain */

/* The Xen release simulated (xensim/Makefile: -DXENSIM_XEN_MINOR=17 or 20). The domctl and
 * sysctl interface versions come with that release's headers; what differs beyond them: */
#ifndef XENSIM_XEN_MINOR
#error "build with -DXENSIM_XEN_MINOR (xensim/Makefile)"
#endif
#if XENSIM_XEN_MINOR == 17
#define XENSIM_XEN_EXTRA ".7"               /* XENVER_extraversion: Debian 12's 4.17.7 */
#define XENSIM_GETDOMAININFO_EXACT 0        /* first domain with an id >= the one asked */
#elif XENSIM_XEN_MINOR == 20
#define XENSIM_XEN_EXTRA ".4"               /* Debian 13's 4.20.4 */
#define XENSIM_GETDOMAININFO_EXACT 1        /* exactly that domain, or ESRCH */
#else
#error "xensim simulates Xen 4.17 or 4.20"
#endif

/* Special pages of an HVM guest, as the 4.17 domain builder lays them. */
#define SIM_SPECIAL_END   0xff000ul
#define SIM_SPECIAL_NR    8ul
#define SIM_SPECIAL_FIRST (SIM_SPECIAL_END - SIM_SPECIAL_NR)
#define SIM_LOWMEM_END    0xf0000ul   /* 3.75 GiB: MMIO hole start */
#define SIM_HIGHMEM_START 0x100000ul  /* 4 GiB */
#define SIM_VGA_FIRST     0xa0ul
#define SIM_VGA_END       0xc0ul

enum sim_fault_kind { FK_NONE, FK_CALL, FK_MAPGFN, FK_PAGED, FK_DIE };

struct sim_fault {
    int kind;
    unsigned int op;
    int subop;
    uint32_t domid;
    uint64_t gfn;
    uint64_t seen;      /* matching calls seen (FK_CALL/FK_DIE) */
    uint64_t nth;       /* FK_CALL/FK_DIE trigger; FK_PAGED attempts left */
    uint64_t repeat;
    int err;
};

struct sim_cpuid_leaf { uint32_t leaf, subleaf, a, b, c, d; };
struct sim_msr { uint32_t idx, flags; uint64_t val; };

struct sim_dom {
    int used;
    uint32_t domid;
    uint64_t gen;              /* changes on every create */
    int pause_count;
    int shutdown;
    unsigned int shutdown_reason;
    int dying;
    int logdirty;
    int pv;                    /* reported as an x86 PV guest (getdomaininfo only) */
    unsigned int vcpus;
    uint64_t tot_pages, max_pages;
    uint64_t max_gpfn;         /* reported maximum_gpfn */
    uint64_t p2m_cap;          /* entries in the p2m file */
    uint64_t frame_cap;        /* frames in the RAM file */
    uint64_t next_frame;       /* next never-used frame */
    uint64_t gnttab_frame;     /* frame holding the grant table */
    uint64_t gnttab_gfn;       /* where it is mapped, or ~0 */
    uint64_t held_pages;       /* released frames a foreign mapping still holds */
    uint32_t tsc_mode, gtsc_khz, incarnation;
    uint64_t elapsed_nsec;
    uint64_t params[SIM_NR_PARAMS];
    uint32_t hvmctx_size;
    uint8_t hvmctx[SIM_HVMCTX_MAX];
    uint32_t nr_leaves, nr_msrs;
    struct sim_cpuid_leaf leaves[SIM_MAX_LEAVES];
    struct sim_msr msrs[SIM_MAX_MSRS];
};

struct sim_counters_shared {
    uint64_t mmapbatch_calls, pages_mapped, map_errors, mmap_syscalls;
    uint64_t privcmd_mmaps, privcmd_munmaps;
    uint64_t live_vmas, live_pages;
    uint64_t hypercalls, unhandled, faults_injected;
    uint64_t mmapbatch_ns, mmap_ns, hypercall_ns;
    uint64_t dom0_frames, dom0_frames_peak, dom0_frame_failures;
    uint64_t by_op[SIM_NR_OPS][SIM_NR_SUBOPS];
};

struct sim_state {
    uint64_t magic;
    uint64_t size;
    pthread_mutex_t lock;      /* robust, process-shared */
    uint64_t gen_counter;
    uint64_t cost_call_ns, cost_page_ns, cost_unmap_page_ns;
    uint64_t dom0_frames_limit;  /* 0: unlimited */
    int p2m_add_marks_dirty;     /* Xen >= 4.19.5/4.20.3: p2m_add_page marks the gfn */
    uint64_t dom0_mode;          /* XENSIM_DOM0_* */
    struct sim_counters_shared ctr;
    struct sim_fault faults[SIM_MAX_FAULTS];
    struct sim_dom doms[SIM_MAX_DOMS];
};

/* Process-local view of one domain's files. */
struct sim_local_dom {
    uint64_t gen;
    int ramfd;
    uint8_t *ram;        /* whole RAM file, MAP_SHARED */
    uint64_t ram_len;
    uint32_t *p2m;
    uint64_t p2m_len;
    unsigned long *dirty;
    uint64_t dirty_len;
    uint32_t *refs;      /* per frame: foreign-mapping count | SIM_RELEASED */
    uint64_t refs_len;
};

/* ---- core (state.c) ---- */
extern struct sim_state *sim;
extern int sim_strict_mode;
int sim_attach(void);                  /* idempotent; 0 or -errno */
void sim_lock(void);
void sim_unlock(void);
struct sim_dom *sim_find(uint32_t domid);   /* locked; NULL if absent */
struct sim_dom *sim_find_ge(uint32_t domid);/* first with id >= domid */
struct sim_local_dom *sim_local(struct sim_dom *d); /* locked */
void sim_die(struct sim_dom *d);       /* mark dying (locked) */
int sim_running(const struct sim_dom *d);
void sim_mark_dirty(struct sim_dom *d, struct sim_local_dom *l, uint64_t gfn);
int64_t sim_alloc_frame(struct sim_dom *d);   /* locked; -ENOMEM */
int sim_populate(struct sim_dom *d, uint64_t gfn); /* locked */
int sim_depopulate(struct sim_dom *d, uint64_t gfn); /* locked */
/* A gfn got a new p2m entry: marked dirty only in p2m_add_marks_dirty mode. */
void sim_p2m_added(struct sim_dom *d, struct sim_local_dom *l, uint64_t gfn);
/* add_to_physmap(grant_table, 0) at gfn: the RAM frame there is released. */
int sim_map_grant(struct sim_dom *d, struct sim_local_dom *l, uint64_t gfn);
/*
 * Frame accounting as Xen's: a frame that leaves the p2m (balloon out,
 * replace, populate over it) is freed, and leaves tot_pages, only when no
 * foreign mapping references it any more.  All locked.
 */
void sim_frame_ref(struct sim_local_dom *l, uint32_t frame);
void sim_frame_release(struct sim_dom *d, struct sim_local_dom *l,
                       uint32_t frame);
void sim_frame_unref(unsigned int slot, uint16_t gen, uint32_t frame);
void sim_fill_page(uint8_t *page, uint64_t seed, uint64_t gfn);
void sim_strict_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void sim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sim_busy_wait(uint64_t ns);
uint64_t sim_now_ns(void);
/* Count a call and apply call/die faults: returns 0 or -errno. */
int sim_account(unsigned int op, int subop, uint32_t domid);
void sim_default_cpu_policy(struct sim_dom *d);
void sim_default_hvmctx(struct sim_dom *d, uint64_t seed);
void sim_destroy_locked(struct sim_dom *d);
int sim_create_locked(uint32_t domid, uint64_t ram_pages, int empty,
                      int paused, unsigned int vcpus, uint64_t p2m_pages);

/* ---- hypercalls (hypercall.c) ---- */
long sim_hypercall(uint64_t op, const uint64_t arg[5]);

/* ---- device layer (shim.c) ---- */
void *sim_sys_mmap(void *addr, size_t len, int prot, int flags, int fd,
                   off_t off);
int sim_sys_munmap(void *addr, size_t len);
int sim_sys_open(const char *path, int flags, int mode);
int sim_sys_close(int fd);
/* Is [p, p+len) inside a /dev/xen/hypercall buffer of this process? */
int sim_in_hcall_buf(const void *p, size_t len);

#endif
