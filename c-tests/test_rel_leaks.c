// SPDX-License-Identifier: GPL-3.0-only
/*
 * Lifetime: REL_SAVES (default 100; `make check-leaks` runs 1000 under LeakSanitizer)
 * consecutive saves in one process on one xc_interface, cycling through plain non-live,
 * plain live, Remus and COLO (ended by their callbacks), a refused map call, a stream that
 * domain that dies mid-save, a forced panic (XCSAVE_TEST_PANIC) and a failed allocation
 * (XCSAVE_TEST_FAIL_ALLOC). After each save: the expected result and no privcmd mapping left;
 * over the run the process's VMA count and RSS stay flat. Everything this test allocates is
 * freed before exit, so LeakSanitizer's report is about the library (and libxc) alone.
 */
#include <signal.h>
#include <stdlib.h>

#include "test_rel.h"

static struct rel_log lg;

static void one(xc_interface *xch, unsigned int i, uint32_t dom)
{
    struct rel_save s = {.dom = dom, .live = 1, .checkpoints = 2};
    unsigned int kind = i % 10;
    int want = 0;

    switch (kind) {
    case 0:
    case 1:
        s.live = 0;
        break;
    case 2:
    case 3:
        break;
    case 4:
    case 5:
        s.stream = XC_STREAM_REMUS;
        break;
    case 6:
        s.stream = XC_STREAM_COLO;
        break;
    case 7:
        /* every map call fails (however few the cache makes) */
        xensim_fault_call_dom(dom, XENSIM_OP_IOCTL, 4, 1, 100000, EFAULT);
        want = EFAULT;
        break;
    case 8:
        setenv((i / 10) % 2 ? "XCSAVE_TEST_PANIC" : "XCSAVE_TEST_FAIL_ALLOC",
               (i / 10) % 2 ? "batch" : "3", 1);
        want = (i / 10) % 2 ? EIO : ENOMEM;
        s.stream = XC_STREAM_REMUS;
        break;
    case 9:
        /* the domain dies mid-save (a dying domain's log-dirty state is Xen's to drop) */
        xensim_fault_die(dom, __HYPERVISOR_domctl, XEN_DOMCTL_getpageframeinfo3, 2);
        want = ESRCH;
        break;
    }
    rel_save_run(&s, xcsave_domain_save, xch);
    unsetenv("XCSAVE_TEST_PANIC");
    unsetenv("XCSAVE_TEST_FAIL_ALLOC");
    xensim_fault_clear();
    if (want) {
        char what[64];
        snprintf(what, sizeof(what), "save %u (kind %u)", i, kind);
        if (kind == 9)
            s.logdirty = 0;
        rel_check_failed(what, &s, want);
    } else {
        H_CHECK(s.rc == 0, "save %u (kind %u): rc %d errno %d (%s)", i, kind, s.rc, s.err,
                strerror(s.err));
        H_CHECK(s.left[0] == 0 && s.left[1] == 0, "save %u: %llu VMAs left", i,
                (unsigned long long)s.left[0]);
    }
}

int main(void)
{
    const char *n_env = getenv("REL_SAVES");
    unsigned int n = n_env ? (unsigned int)atoi(n_env) : 100, dead = 0;
    long vma0 = 0, rss0 = 0, vma1, rss1;
    uint32_t dom = 1;
    xc_interface *xch;

    signal(SIGPIPE, SIG_IGN);
    rel_log_init(&lg);
    xch = rel_xc_open(&lg);
    rel_make_domain(dom, 2ull << 20);
    for (unsigned int i = 0; i < n; i++) {
        rel_log_clear(&lg);
        one(xch, i, dom);
        if (i % 10 == 9) {
            /* the domain died: a new one */
            xensim_destroy_domain(dom);
            dom = dom % 1000 + 1;
            rel_make_domain(dom, 2ull << 20);
            dead++;
        }
        if (i == (n > 100 ? 99u : n / 2)) {
            vma0 = rel_vma_count();
            rss0 = rel_rss_kib();
        }
    }
    vma1 = rel_vma_count();
    rss1 = rel_rss_kib();
    printf("%u saves (%u domains destroyed mid-save): VMAs %ld -> %ld, RSS %ld -> %ld KiB\n", n,
           dead, vma0, vma1, rss0, rss1);
    H_CHECK(vma1 <= vma0 + 4, "the VMA count grew from %ld to %ld", vma0, vma1);
    xensim_destroy_domain(dom);
    xc_interface_close(xch);
    printf("ok\n");
    return 0;
}
