// SPDX-License-Identifier: GPL-3.0-only
/*
 * xensim's counters and its privcmd VMA rules.
 *  1. A stock non-live round trip: mapped pages and hypercalls match what
 *     the 4.17 code does (derived below), and every mapping is released.
 *  2. foreign mappings (libxenctrl's bulk map) and partial munmap bookkeeping.
 *  3. Linux's MMAPBATCH placement rules, hypercall memory outside
 *     hypercall buffers, and wrongly sized ioctls, which strict mode turns
 *     into an abort (checked in forked children).
 */
#define XC_WANT_COMPAT_MAP_FOREIGN_API 1
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#include <xen/sys/privcmd.h>
#include <xen/features.h>

#define MiB (1024ull * 1024)

static void round_trip_counts(void)
{
    struct harness_opts o = {.src = 1, .dst = 2, .stream = XC_STREAM_PLAIN};
    struct harness_result r;
    struct xensim_counters c;
    struct xensim_dominfo si;
    uint64_t batches, want_pages;

    harness_make_pair(1, 2, 16 * MiB, 99);
    H_CHECK(xensim_dominfo(1, &si) == 0, "dominfo");
    xensim_counters_reset();
    xensim_counters(&c);
    H_CHECK(c.mmapbatch_calls == 0 && c.pages_mapped == 0 && c.hypercalls == 0,
            "reset left %llu calls %llu pages %llu hypercalls",
            (unsigned long long)c.mmapbatch_calls,
            (unsigned long long)c.pages_mapped,
            (unsigned long long)c.hypercalls);
    if (harness_round_trip(&o, &r))
        H_FAIL("round trip: %s", r.failure);
    xensim_counters(&c);
    /*
     * The saver maps each populated pfn once; the restorer maps each
     * received pfn once, clears 4 special pages (store, console, ioreq,
     * bufioreq: one single-page mapping each) and maps the grant frame once
     * to seed it.
     */
    want_pages = 2 * si.tot_pages + 4 + 1;
    H_CHECK(c.pages_mapped == want_pages, "pages_mapped %llu, want %llu",
            (unsigned long long)c.pages_mapped,
            (unsigned long long)want_pages);
    H_CHECK(c.map_errors == 0, "%llu map errors",
            (unsigned long long)c.map_errors);
    H_CHECK(c.live_privcmd_pages == 0 && c.live_privcmd_vmas == 0,
            "leaked %llu pages in %llu VMAs",
            (unsigned long long)c.live_privcmd_pages,
            (unsigned long long)c.live_privcmd_vmas);
    H_CHECK(c.privcmd_munmaps == c.privcmd_mmaps,
            "%llu privcmd mmaps but %llu munmaps",
            (unsigned long long)c.privcmd_mmaps,
            (unsigned long long)c.privcmd_munmaps);
    /* every VMA gets one MMAPBATCH (no paged retries), except the one the
     * restorer reserves for MMAP_RESOURCE (grant table), which fails so the
     * library falls back to add_to_physmap + MMAPBATCH */
    H_CHECK(c.mmapbatch_calls + 1 == c.privcmd_mmaps &&
                xensim_hypercall_count(XENSIM_OP_IOCTL, 7) == 1,
            "%llu MMAPBATCH for %llu VMAs",
            (unsigned long long)c.mmapbatch_calls,
            (unsigned long long)c.privcmd_mmaps);
    /* one getpageframeinfo3 per batch of 1024 pfns over the whole p2m */
    batches = (si.p2m_size + 1023) / 1024;
    H_CHECK(xensim_hypercall_count(__HYPERVISOR_domctl,
                                   XEN_DOMCTL_getpageframeinfo3) == batches,
            "getpageframeinfo3 x%llu, want %llu",
            (unsigned long long)xensim_hypercall_count(
                __HYPERVISOR_domctl, XEN_DOMCTL_getpageframeinfo3),
            (unsigned long long)batches);
    H_CHECK(xensim_hypercall_count(__HYPERVISOR_domctl,
                                   XEN_DOMCTL_gethvmcontext) == 2,
            "gethvmcontext: size query + fetch expected");
    H_CHECK(xensim_hypercall_count(__HYPERVISOR_domctl,
                                   XEN_DOMCTL_sethvmcontext) == 1,
            "sethvmcontext once");
    H_CHECK(xensim_hypercall_count(__HYPERVISOR_memory_op,
                                   XENMEM_maximum_gpfn) >= 2 &&
                xensim_hypercall_count(__HYPERVISOR_multicall,
                                       XENSIM_SUBOP_ANY) >=
                    xensim_hypercall_count(__HYPERVISOR_memory_op,
                                           XENSIM_SUBOP_ANY),
            "memory_op must arrive wrapped in multicall");
    H_CHECK(xensim_hypercall_count(XENSIM_OP_IOCTL, 4) == c.mmapbatch_calls,
            "ioctl counter %llu vs %llu",
            (unsigned long long)xensim_hypercall_count(XENSIM_OP_IOCTL, 4),
            (unsigned long long)c.mmapbatch_calls);
    H_CHECK(c.unhandled == 0, "%llu UNHANDLED operations",
            (unsigned long long)c.unhandled);
    printf("round trip: %llu MMAPBATCH, %llu pages, %llu hypercalls\n",
           (unsigned long long)c.mmapbatch_calls,
           (unsigned long long)c.pages_mapped,
           (unsigned long long)c.hypercalls);
}

static void foreign_mappings(void)
{
    xc_interface *xch = harness_xc_open();
    /* gfn 0xa0 is in the VGA hole */
    xen_pfn_t gfns[8] = {0x10, 0x11, 0x12, 0xa0, 0x200, 0x201, 0x13, 0x14};
    int err[8];
    struct xensim_counters c0, c;
    uint64_t before;
    struct harness_dominfo info;
    uint8_t *p, buf[4096];
    int rc;

    before = xensim_hypercall_count(__HYPERVISOR_domctl,
                                    XEN_DOMCTL_getdomaininfo);
    H_CHECK(harness_dominfo(xch, 1, &info) == 0 && info.domid == 1 &&
                info.hvm,
            "getinfo d1");
    H_CHECK(xensim_hypercall_count(__HYPERVISOR_domctl,
                                   XEN_DOMCTL_getdomaininfo) == before + 1,
            "getdomaininfo counted once");
    /* An absent id below d1: Xen 4.17 answers for the next domain (d1); from 4.18 (xensim
     * built for 4.20) getdomaininfo answers for exactly that id, or ESRCH. */
    errno = 0;
    rc = harness_dominfo(xch, 0, &info);
#if XEN_RELEASE_MINOR == 17
    H_CHECK(rc == 0 && info.domid == 1, "getinfo d0 on 4.17: rc %d domid %u", rc, info.domid);
#else
    H_CHECK(rc == -1 && errno == ESRCH, "getinfo d0 on " XEN_RELEASE ": rc %d errno %d", rc,
            errno);
#endif
    xensim_counters(&c0);
    p = xc_map_foreign_bulk(xch, 1, PROT_READ, gfns, err, 8);
    H_CHECK(p != NULL, "map: %s", strerror(errno));
    for (int i = 0; i < 8; i++)
        H_CHECK(err[i] == (i == 3 ? -EINVAL : 0), "err[%d] = %d", i, err[i]);
    xensim_counters(&c);
    H_CHECK(c.pages_mapped - c0.pages_mapped == 7 &&
                c.live_privcmd_pages - c0.live_privcmd_pages == 7 &&
                c.live_privcmd_vmas - c0.live_privcmd_vmas == 1 &&
                c.map_errors - c0.map_errors == 1,
            "mapped %llu live %llu vmas %llu errors %llu",
            (unsigned long long)(c.pages_mapped - c0.pages_mapped),
            (unsigned long long)(c.live_privcmd_pages - c0.live_privcmd_pages),
            (unsigned long long)(c.live_privcmd_vmas - c0.live_privcmd_vmas),
            (unsigned long long)(c.map_errors - c0.map_errors));
    H_CHECK(xensim_guest_read(1, 0x201, 0, buf, sizeof(buf)) == 0, "read");
    H_CHECK(memcmp(buf, p + 5 * 4096, 4096) == 0,
            "mapping of gfn 0x201 shows other content than the guest's");
    /* unmap the first half: 3 mapped pages + the hole go away */
    H_CHECK(munmap(p, 4 * 4096) == 0, "munmap");
    xensim_counters(&c);
    H_CHECK(c.live_privcmd_pages - c0.live_privcmd_pages == 4 &&
                c.live_privcmd_vmas - c0.live_privcmd_vmas == 1 &&
                c.privcmd_munmaps - c0.privcmd_munmaps == 1,
            "after half unmap: live %llu vmas %llu munmaps %llu",
            (unsigned long long)(c.live_privcmd_pages - c0.live_privcmd_pages),
            (unsigned long long)(c.live_privcmd_vmas - c0.live_privcmd_vmas),
            (unsigned long long)(c.privcmd_munmaps - c0.privcmd_munmaps));
    H_CHECK(munmap(p + 4 * 4096, 4 * 4096) == 0, "unmap rest");
    xensim_counters(&c);
    H_CHECK(c.live_privcmd_pages == c0.live_privcmd_pages &&
                c.live_privcmd_vmas == c0.live_privcmd_vmas,
            "live counters did not return to their start");
    harness_xc_close(xch);
}

/* A raw MMAPBATCH_V2 with the kernel's rules.  Returns ioctl()'s result. */
static int raw_batch(int fd, void *addr, unsigned int num, xen_pfn_t *gfns,
                     int *errs)
{
    privcmd_mmapbatch_v2_t m = {.num = num, .dom = 1,
                                .addr = (uintptr_t)addr, .arr = gfns,
                                .err = errs};
    return ioctl(fd, IOCTL_PRIVCMD_MMAPBATCH_V2, &m);
}

static void vma_rule_case(int which)
{
    int fd = open("/dev/xen/privcmd", O_RDWR | O_CLOEXEC);
    xen_pfn_t g[4] = {0x10, 0xa0, 0x12, 0x13}, g1[1] = {0x11};
    int e[4];
    uint8_t *p;

    if (fd < 0)
        _exit(10);
    p = mmap(NULL, 4 * 4096, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        _exit(11);
    switch (which) {
    case 0: /* legal: full cover, then retarget the failed page */
        if (raw_batch(fd, p, 4, g, e) || e[1] != -EINVAL || e[0] || e[2])
            _exit(12);
        if (raw_batch(fd, p + 4096, 1, g1, e) || e[0])
            _exit(13);
        _exit(0);
    case 1: /* first call must cover the VMA exactly */
        raw_batch(fd, p, 2, g, e);
        _exit(20);
    case 2: /* later calls may not target mapped pages */
        if (raw_batch(fd, p, 4, g, e))
            _exit(21);
        raw_batch(fd, p + 2 * 4096, 1, g1, e);
        _exit(22);
    case 3: /* later calls must stay inside the VMA */
        if (raw_batch(fd, p, 4, g, e))
            _exit(23);
        raw_batch(fd, p + 3 * 4096, 2, g, e);
        _exit(24);
    case 4: { /* hypercall memory outside a hypercall buffer */
        struct xen_domctl dc = {.cmd = XEN_DOMCTL_getdomaininfo,
                                .interface_version =
                                    XEN_DOMCTL_INTERFACE_VERSION,
                                .domain = 1};
        privcmd_hypercall_t h = {.op = __HYPERVISOR_domctl,
                                 .arg = {(uintptr_t)&dc}};
        ioctl(fd, IOCTL_PRIVCMD_HYPERCALL, &h);
        _exit(25);
    }
    case 5: { /* an ioctl built for another struct size */
        char junk[64] = {0};
        ioctl(fd, _IOC(_IOC_NONE, 'P', 4, 16), junk);
        _exit(26);
    }
    }
    _exit(30);
}

static void vma_rules(void)
{
    H_CHECK(xensim_strict(), "this test needs XENSIM_STRICT=1");
    for (int which = 0; which < 6; which++) {
        int st;
        pid_t pid = fork();
        H_CHECK(pid >= 0, "fork");
        if (pid == 0) {
            /* keep the abort quiet: no core dump */
            signal(SIGABRT, SIG_DFL);
            vma_rule_case(which);
        }
        H_CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
        if (which == 0)
            H_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                    "legal MMAPBATCH sequence failed (status %#x)", st);
        else
            H_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
                    "violation %d not rejected by strict mode "
                    "(status %#x)", which, st);
    }
}

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* XENVER_get_features submap 0 as the hypervisor reports it (through
 * libxenctrl, as a toolstack would), or -1. */
static long features(xc_interface *xch)
{
    xen_feature_info_t fi = {.submap_idx = 0};

    return xc_version(xch, XENVER_get_features, &fi) ? -1 : (long)fi.submap;
}

/* The dom0 model: the feature bit privcmd keys on, and who takes frames. */
static void dom0_modes(void)
{
    static const char *name[] = {"pv", "pvh", "pvh-balloon"};
    xc_interface *xch = harness_xc_open();
    xen_pfn_t g[4] = {0x10, 0x11, 0x12, 0x13};
    int err[4];

    for (int m = XENSIM_DOM0_PV; m <= XENSIM_DOM0_PVH_BALLOON; m++) {
        struct xensim_counters c0, c;
        long f;
        void *a;

        xensim_set_dom0_mode(m);
        H_CHECK(xensim_dom0_mode() == m, "mode %s not set", name[m]);
        f = features(xch);
        H_CHECK(f >= 0 && (f & (1L << XENFEAT_dom0)) &&
                    !(f & (1L << XENFEAT_auto_translated_physmap)) == (m == XENSIM_DOM0_PV),
                "%s dom0: features %#lx", name[m], f);
        xensim_counters(&c0);
        a = xc_map_foreign_bulk(xch, 1, PROT_READ, g, err, 4);
        H_CHECK(a != NULL, "%s: map 4 pages: %s", name[m], strerror(errno));
        xensim_counters(&c);
        H_CHECK(c.dom0_frames - c0.dom0_frames == (m == XENSIM_DOM0_PV ? 0u : 4u),
                "%s dom0: 4 mapped pages took %llu dom0 frames", name[m],
                (unsigned long long)(c.dom0_frames - c0.dom0_frames));
        munmap(a, 4 * 4096);
        xensim_counters(&c);
        H_CHECK(c.dom0_frames == c0.dom0_frames, "%s: frames not given back", name[m]);
    }
    xensim_set_dom0_mode(XENSIM_DOM0_PV);
    harness_xc_close(xch);
}

/* The dom0 frame budget (ballooned PVH dom0) and the unmap cost. */
static void dom0_budget(void)
{
    xc_interface *xch = harness_xc_open();
    xen_pfn_t g[8] = {0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17};
    int err[8];
    struct xensim_counters c0, c;
    void *a, *b;
    double t0, took;

    xensim_set_dom0_mode(XENSIM_DOM0_PVH_BALLOON);
    xensim_counters_reset();
    xensim_counters(&c0);
    xensim_set_dom0_frames(c0.dom0_frames + 8);
    a = xc_map_foreign_bulk(xch, 1, PROT_READ, g, err, 8);
    H_CHECK(a != NULL, "8 pages within a budget of 8: %s", strerror(errno));
    b = xc_map_foreign_bulk(xch, 1, PROT_READ, g, err, 1);
    H_CHECK(b == NULL && errno == ENOMEM,
            "a 9th dom0 frame must be refused with ENOMEM (got %p, %s)", b,
            strerror(errno));
    xensim_counters(&c);
    H_CHECK(c.dom0_frames == c0.dom0_frames + 8 && c.dom0_frame_failures == 1 &&
                c.dom0_frames_peak == c0.dom0_frames + 8,
            "dom0 frames %llu peak %llu failures %llu",
            (unsigned long long)c.dom0_frames,
            (unsigned long long)c.dom0_frames_peak,
            (unsigned long long)c.dom0_frame_failures);
    xensim_set_unmap_cost(100000);
    t0 = now_s();
    H_CHECK(munmap(a, 8 * 4096) == 0, "munmap");
    took = now_s() - t0;
    xensim_set_unmap_cost(0);
    H_CHECK(took >= 8 * 100000 / 1e9, "unmapping 8 pages took %.6fs with a "
            "modelled 0.0008s", took);
    xensim_counters(&c);
    H_CHECK(c.dom0_frames == c0.dom0_frames, "dom0 frames not given back");
    b = xc_map_foreign_bulk(xch, 1, PROT_READ, g, err, 1);
    H_CHECK(b != NULL, "mapping after the frames came back: %s",
            strerror(errno));
    munmap(b, 4096);
    xensim_set_dom0_frames(0);
    xensim_set_dom0_mode(XENSIM_DOM0_PV);
    harness_xc_close(xch);
}

int main(void)
{
    xensim_destroy_all();
    round_trip_counts();
    foreign_mappings();
    dom0_modes();
    dom0_budget();
    vma_rules();
    xensim_destroy_all();
    printf("counters and VMA rules ok\n");
    return 0;
}
