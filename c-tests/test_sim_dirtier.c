// SPDX-License-Identifier: GPL-3.0-only
/*
 * The background vCPU dirtier and the run state, through libxenctrl:
 * it writes (and log-dirty records it) while the domain runs, and writes
 * nothing while the domain is paused, shut down for suspend, or after
 * xc_domain_resume until it runs again.  Also checks the cost model's
 * busy-wait is accounted inside MMAPBATCH.
 */
#define XC_WANT_COMPAT_MAP_FOREIGN_API 1
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "harness.h"

#define MiB (1024ull * 1024)

static unsigned int dirty_now(xc_interface *xch, uint64_t p2m_size, int clean)
{
    DECLARE_HYPERCALL_BUFFER(unsigned long, bmp);
    xc_shadow_op_stats_t stats;
    size_t pages = (((p2m_size + 63) / 64) * 8 + 4095) / 4096;
    long long rc;

    bmp = xc_hypercall_buffer_alloc_pages(xch, bmp, pages);
    H_CHECK(bmp != NULL, "hypercall buffer");
    rc = xc_logdirty_control(xch, 1, clean ? XEN_DOMCTL_SHADOW_OP_CLEAN
                                           : XEN_DOMCTL_SHADOW_OP_PEEK,
                             HYPERCALL_BUFFER(bmp), p2m_size, 0, &stats);
    H_CHECK(rc == (long long)p2m_size, "logdirty: %lld", rc);
    xc_hypercall_buffer_free_pages(xch, bmp, pages);
    return stats.dirty_count;
}

static void nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Wait (bounded) until the dirtier has written more than `than`. */
static uint64_t wait_writes(struct xensim_dirtier *dt, uint64_t than)
{
    for (int i = 0; i < 2000 && xensim_dirtier_writes(dt) <= than; i++)
        nap(5);
    return xensim_dirtier_writes(dt);
}

/* While stopped: nothing becomes dirty and RAM does not change. */
static void check_stopped(xc_interface *xch, uint64_t p2m_size,
                          const char *state)
{
    struct xensim_snapshot *s;
    struct xensim_diff diff;
    unsigned int n;

    dirty_now(xch, p2m_size, 1); /* writes made before the stop */
    s = xensim_snapshot(1);
    H_CHECK(s != NULL, "snapshot");
    nap(100);
    n = dirty_now(xch, p2m_size, 0);
    H_CHECK(n == 0, "%s: %u pages dirtied while not running", state, n);
    H_CHECK(xensim_compare_snapshot(s, 1, XENSIM_CMP_RAM, &diff) == 0,
            "%s: RAM changed while not running: %s", state, diff.text);
    xensim_snapshot_free(s);
}

int main(void)
{
    xc_interface *xch = harness_xc_open();
    struct xensim_domain_config cfg = {.mem_bytes = 16 * MiB};
    struct xensim_dominfo di;
    struct xensim_dirtier *dt;
    struct xensim_counters c0, c;
    uint64_t w;
    xen_pfn_t g[8];
    int err[8];
    void *p;

    xensim_destroy_all();
    H_CHECK(xensim_create_domain(1, &cfg) == 0, "create");
    H_CHECK(xensim_fill(1, 3) == 0, "fill");
    H_CHECK(xensim_dominfo(1, &di) == 0, "dominfo");
    H_CHECK(xc_shadow_control(xch, 1, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
                              NULL, 0) == 0, "log-dirty on");
    dt = xensim_dirtier_start(1, 0x100, 0x800, 20000, 9);
    H_CHECK(dt != NULL, "dirtier start");

    w = wait_writes(dt, 0);
    H_CHECK(w > 0, "the dirtier never wrote while running");
    H_CHECK(dirty_now(xch, di.p2m_size, 0) > 0, "writes were not logged");

    H_CHECK(xc_domain_pause(xch, 1) == 0, "pause: %s", strerror(errno));
    check_stopped(xch, di.p2m_size, "paused");
    H_CHECK(xc_domain_unpause(xch, 1) == 0, "unpause");
    w = wait_writes(dt, xensim_dirtier_writes(dt));
    H_CHECK(dirty_now(xch, di.p2m_size, 0) > 0, "no writes after unpause");

    H_CHECK(xc_domain_shutdown(xch, 1, SHUTDOWN_suspend) == 0, "suspend");
    check_stopped(xch, di.p2m_size, "suspended");
    H_CHECK(xc_domain_resume(xch, 1, 1) == 0, "resume: %s", strerror(errno));
    /* Count from the resume: writes made before the suspend must not satisfy the wait. */
    wait_writes(dt, xensim_dirtier_writes(dt));
    H_CHECK(dirty_now(xch, di.p2m_size, 0) > 0, "no writes after resume");
    xensim_dirtier_stop(dt);

    /* cost model: the busy-wait is spent inside MMAPBATCH */
    for (int i = 0; i < 8; i++)
        g[i] = 0x20 + (xen_pfn_t)i;
    xensim_set_cost(200000, 10000);
    xensim_counters(&c0);
    p = xc_map_foreign_bulk(xch, 1, PROT_READ, g, err, 8);
    H_CHECK(p != NULL, "map");
    xensim_counters(&c);
    H_CHECK(c.mmapbatch_ns - c0.mmapbatch_ns >= 200000 + 8 * 10000,
            "MMAPBATCH took %llu ns with a modelled 280000 ns",
            (unsigned long long)(c.mmapbatch_ns - c0.mmapbatch_ns));
    munmap(p, 8 * 4096);
    xensim_set_cost(0, 0);
    harness_xc_close(xch);
    xensim_destroy_all();
    printf("dirtier and run state ok\n");
    return 0;
}
