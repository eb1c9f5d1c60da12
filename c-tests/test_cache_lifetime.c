// SPDX-License-Identifier: GPL-3.0-only
/*
 * Lifetime of the mapping cache over 200 consecutive saves in one process, on one
 * xc_interface: plain non-live, plain live, Remus ended by failover (a checkpoint callback
 * returning 0), and every tenth save failing on a refused map call. After each save no privcmd
 * mapping is left (xensim) and the cache's counters balance. Run it under valgrind for the leak
 * check: valgrind --leak-check=full build/tests/test_cache_lifetime
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "xcsave.h"

#define SAVES 200

struct ctx {
    uint32_t dom;
    unsigned int checkpoints;
};

static int cb_suspend(void *data)
{
    struct ctx *c = data;

    return xensim_suspend(c->dom) == 0;
}

static int cb_postcopy(void *data)
{
    struct ctx *c = data;

    return xensim_resume(c->dom) == 0;
}

/* Remus: two checkpoints, then failover. */
static int cb_checkpoint(void *data)
{
    struct ctx *c = data;

    return ++c->checkpoints < 2;
}

static int cb_logdirty(uint32_t domid, unsigned int enable, void *data)
{
    (void)domid;
    (void)enable;
    (void)data;
    return 0;
}

int main(void)
{
    xc_interface *xch = harness_xc_open();
    struct xensim_domain_config cfg = {.mem_bytes = 4ull << 20};
    struct save_callbacks cb;
    struct xensim_counters k;
    XcsaveCacheStats s;
    struct ctx c;
    unsigned int failed = 0;
    int fd = open("/dev/null", O_WRONLY);

    H_CHECK(fd >= 0, "open /dev/null");
    H_CHECK(xensim_create_domain(1, &cfg) == 0 && xensim_fill(1, 9) == 0, "domain");
    for (unsigned int i = 0; i < SAVES; i++) {
        unsigned int kind = i % 3;
        int fail = i % 10 == 9, rc;

        memset(&c, 0, sizeof(c));
        c.dom = 1;
        memset(&cb, 0, sizeof(cb));
        cb.suspend = cb_suspend;
        cb.postcopy = cb_postcopy;
        cb.checkpoint = cb_checkpoint;
        cb.switch_qemu_logdirty = cb_logdirty;
        cb.data = &c;
        if (fail) /* every map call from the second on is refused */
            H_CHECK(xensim_fault_call(XENSIM_OP_IOCTL, 4, 2, 100000, ENOMEM) == 0, "fault");
        rc = xcsave_domain_save(xch, fd, 1, kind ? XCFLAGS_LIVE : 0, &cb,
                                kind == 2 ? XC_STREAM_REMUS : XC_STREAM_PLAIN, -1);
        xensim_fault_clear();
        xensim_resume(1);
        if (fail) {
            H_CHECK(rc == -1, "save %u: a refused map call did not fail the save", i);
            failed++;
        } else {
            /* Remus ends by failover: the callback's 0 is the return value, as stock. */
            H_CHECK(rc == 0, "save %u (kind %u): rc %d errno %d", i, kind, rc, errno);
        }
        xensim_counters(&k);
        H_CHECK(k.live_privcmd_vmas == 0, "save %u left %llu privcmd VMAs", i,
                (unsigned long long)k.live_privcmd_vmas);
        H_CHECK(xcsave_cache_stats(1, &s) == 0, "stats");
        H_CHECK(s.maps == s.unmaps && s.vmas == 0 && s.mapped_bytes == 0,
                "save %u: %llu maps, %llu unmaps, %llu VMAs", i, (unsigned long long)s.maps,
                (unsigned long long)s.unmaps, (unsigned long long)s.vmas);
    }
    xcsave_cache_teardown();
    close(fd);
    xensim_destroy_all();
    harness_xc_close(xch);
    printf("ok: %u saves (%u failing on purpose), no mapping left\n", SAVES, failed);
    return 0;
}
