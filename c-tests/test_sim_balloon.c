// SPDX-License-Identifier: GPL-3.0-only
/*
 * Ballooning on xensim, with 4.17's semantics (no log-dirty mark when a
 * p2m entry changes), through the real libxenctrl:
 *  primitives: log-dirty PEEK/CLEAN/ENABLE, balloon-replace keeps old
 *    mappings on the old frame and is not logged, balloon out/in;
 *  scenario "unlogged": a Remus stream where the primary balloon-replaces a
 *    page between checkpoints: the stock saver does not resend it and the
 *    harness must report exactly that gfn;
 *  scenario "logged": the same, but the guest then writes the page: the
 *    checkpoints converge.
 * Sub-cases: prims, unlogged, logged (default: all).
 */
#define XC_WANT_COMPAT_MAP_FOREIGN_API 1
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"

#define MiB (1024ull * 1024)
#define BGFN 0xe45ull   /* outside the dirtier/burst working set */


/* PEEK or CLEAN; returns dirty_count and whether gfn's bit is set. */
static unsigned int logdirty(xc_interface *xch, uint32_t dom, unsigned int op,
                             uint64_t p2m_size, uint64_t gfn, int *set)
{
    DECLARE_HYPERCALL_BUFFER(unsigned long, bmp);
    xc_shadow_op_stats_t stats;
    size_t bytes = ((p2m_size + 63) / 64) * 8;
    long long rc;

    bmp = xc_hypercall_buffer_alloc_pages(xch, bmp, (bytes + 4095) / 4096);
    H_CHECK(bmp != NULL, "hypercall buffer");
    memset(bmp, 0, bytes);
    rc = xc_logdirty_control(xch, dom, op, HYPERCALL_BUFFER(bmp), p2m_size, 0,
                             &stats);
    H_CHECK(rc == (long long)p2m_size, "logdirty op %u returned %lld, want %llu",
            op, rc, (unsigned long long)p2m_size);
    *set = !!(bmp[gfn / 64] & (1ul << (gfn % 64)));
    xc_hypercall_buffer_free_pages(xch, bmp, (bytes + 4095) / 4096);
    return stats.dirty_count;
}

static void prims(void)
{
    xc_interface *xch = harness_xc_open();
    struct xensim_domain_config cfg = {.mem_bytes = 16 * MiB};
    struct xensim_dominfo di;
    struct harness_dominfo info;
    uint8_t a[4096], b[4096], v = 0x77;
    xen_pfn_t g = BGFN;
    int err, set;
    uint8_t *old, *fresh;
    unsigned int n;

    xensim_destroy_all();
    H_CHECK(xensim_create_domain(1, &cfg) == 0, "create");
    H_CHECK(xensim_fill(1, 5) == 0, "fill");
    H_CHECK(xensim_dominfo(1, &di) == 0, "dominfo");

    /* log-dirty through libxenctrl */
    H_CHECK(xc_shadow_control(xch, 1, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
                              NULL, 0) == 0, "enable log-dirty: %s",
            strerror(errno));
    H_CHECK(xc_shadow_control(xch, 1, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
                              NULL, 0) == -1 && errno == EINVAL,
            "a second ENABLE_LOGDIRTY must fail with EINVAL");
    n = logdirty(xch, 1, XEN_DOMCTL_SHADOW_OP_PEEK, di.p2m_size, 0x300, &set);
    H_CHECK(n == 0 && !set, "fresh bitmap has %u dirty", n);
    H_CHECK(xensim_guest_write(1, 0x300, 8, &v, 1) == 0, "guest write");
    n = logdirty(xch, 1, XEN_DOMCTL_SHADOW_OP_PEEK, di.p2m_size, 0x300, &set);
    H_CHECK(n == 1 && set, "PEEK after a write: %u dirty, bit %d", n, set);
    n = logdirty(xch, 1, XEN_DOMCTL_SHADOW_OP_CLEAN, di.p2m_size, 0x300, &set);
    H_CHECK(n == 1 && set, "CLEAN: %u dirty, bit %d", n, set);
    n = logdirty(xch, 1, XEN_DOMCTL_SHADOW_OP_PEEK, di.p2m_size, 0x300, &set);
    H_CHECK(n == 0 && !set, "CLEAN did not clear (%u)", n);

    /* balloon-replace: new frame, new content, not logged */
    old = xc_map_foreign_bulk(xch, 1, PROT_READ, &g, &err, 1);
    H_CHECK(old && !err, "map gfn");
    memcpy(a, old, sizeof(a));
    H_CHECK(xensim_balloon_replace(1, BGFN, 555) == 0, "balloon replace");
    n = logdirty(xch, 1, XEN_DOMCTL_SHADOW_OP_PEEK, di.p2m_size, BGFN, &set);
    H_CHECK(n == 0 && !set, "balloon-replace was logged dirty (4.17 does not)");
    H_CHECK(xensim_guest_read(1, BGFN, 0, b, sizeof(b)) == 0, "read");
    H_CHECK(memcmp(a, b, sizeof(a)) != 0, "content did not change");
    H_CHECK(memcmp(old, a, sizeof(a)) == 0,
            "an old mapping must keep showing the old frame");
    fresh = xc_map_foreign_bulk(xch, 1, PROT_READ, &g, &err, 1);
    H_CHECK(fresh && !err && memcmp(fresh, b, sizeof(b)) == 0,
            "a new mapping must show the new frame");
    /* Xen frees a released frame (and drops it from tot_pages) only when
     * the last foreign mapping of it goes */
    H_CHECK(harness_dominfo(xch, 1, &info) == 0 &&
                info.nr_pages == di.tot_pages + 1,
            "tot_pages %lu while the old frame is mapped, want %llu",
            info.nr_pages, (unsigned long long)(di.tot_pages + 1));
    munmap(old, 4096);
    H_CHECK(harness_dominfo(xch, 1, &info) == 0 &&
                info.nr_pages == di.tot_pages,
            "tot_pages %lu after the old frame's unmap, want %llu",
            info.nr_pages, (unsigned long long)di.tot_pages);
    /* balloon out a mapped page: still counted until unmapped */
    H_CHECK(xensim_balloon_out(1, BGFN) == 0, "balloon out (mapped)");
    H_CHECK(harness_dominfo(xch, 1, &info) == 0 &&
                info.nr_pages == di.tot_pages,
            "a mapped, ballooned-out frame must stay counted");
    munmap(fresh, 4096);
    H_CHECK(harness_dominfo(xch, 1, &info) == 0 &&
                info.nr_pages == di.tot_pages - 1,
            "tot_pages %lu after unmap, want %llu", info.nr_pages,
            (unsigned long long)(di.tot_pages - 1));
    H_CHECK(xensim_balloon_in(1, BGFN) == 0, "balloon in");
    H_CHECK(xensim_balloon_replace(1, BGFN, 555) == 0, "replace again");

    /* balloon out and back in */
    H_CHECK(xensim_balloon_out(1, BGFN) == 0, "balloon out");
    H_CHECK(harness_dominfo(xch, 1, &info) == 0 &&
                info.nr_pages == di.tot_pages - 1,
            "tot_pages %lu after balloon out, want %llu", info.nr_pages,
            (unsigned long long)(di.tot_pages - 1));
    old = xc_map_foreign_bulk(xch, 1, PROT_READ, &g, &err, 1);
    H_CHECK(old && err == -EINVAL, "mapping a ballooned-out gfn: err %d", err);
    munmap(old, 4096);
    H_CHECK(xensim_balloon_in(1, BGFN) == 0, "balloon in");
    H_CHECK(xensim_guest_read(1, BGFN, 0, b, sizeof(b)) == 0, "read");
    for (size_t i = 0; i < sizeof(b); i++)
        H_CHECK(b[i] == 0, "ballooned-in page not zero at %zu", i);
    n = logdirty(xch, 1, XEN_DOMCTL_SHADOW_OP_PEEK, di.p2m_size, BGFN, &set);
    H_CHECK(!set, "populate was logged dirty (4.17 does not)");
    H_CHECK(harness_dominfo(xch, 1, &info) == 0 &&
                info.nr_pages == di.tot_pages, "tot_pages not restored");
    harness_xc_close(xch);
    printf("prims: ok\n");
}

static int scenario_write;

static void replace_between(void *arg, unsigned int k)
{
    (void)arg;
    if (k == 2) {
        H_CHECK(xensim_balloon_replace(1, BGFN, 0xba11) == 0, "replace");
        if (scenario_write) {
            uint64_t v = 0x1234;
            H_CHECK(xensim_guest_write(1, BGFN, 0, &v, sizeof(v)) == 0,
                    "guest write after balloon");
        }
    }
}

static void scenario(int write_after)
{
    struct harness_opts o = {
        .src = 1, .dst = 2, .stream = XC_STREAM_REMUS, .live = 1,
        .checkpoints = 5, .burst_pages = 32, .dirty_first = 0x100,
        .dirty_count = 1024, .between_checkpoints = replace_between,
    };
    struct harness_result r;
    char want[64];
    int rc;

    scenario_write = write_after;
    xensim_destroy_all();
    harness_make_pair(1, 2, 32 * MiB, 11);
    rc = harness_round_trip(&o, &r);
    if (write_after) {
        if (rc)
            H_FAIL("logged: %s", r.failure);
        printf("logged: ok (%u states compared)\n", r.compared);
        return;
    }
    snprintf(want, sizeof(want), "ram: gfn %#llx ", (unsigned long long)BGFN);
    H_CHECK(rc != 0, "an unlogged balloon-replace went unnoticed");
    H_CHECK(strstr(r.failure, want) != NULL,
            "expected a RAM difference at gfn %#llx, got: %s",
            (unsigned long long)BGFN, r.failure);
    printf("unlogged: ok, detected: %s\n", r.failure);
}

int main(int argc, char **argv)
{
    const char *c = argc > 1 ? argv[1] : "all";
    int all = !strcmp(c, "all"), any = 0;

    if (all || !strcmp(c, "prims"))
        prims(), any = 1;
    if (all || !strcmp(c, "unlogged"))
        scenario(0), any = 1;
    if (all || !strcmp(c, "logged"))
        scenario(1), any = 1;
    if (!any)
        H_FAIL("unknown sub-case %s", c);
    xensim_destroy_all();
    return 0;
}
