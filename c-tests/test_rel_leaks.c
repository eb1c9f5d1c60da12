// SPDX-License-Identifier: GPL-3.0-only
/*
 * Lifetime: REL_SAVES (default 100; `make check-leaks` runs 1000 under LeakSanitizer)
 * consecutive saves in one process on one xc_interface, cycling through plain non-live,
 * plain live, Remus and COLO (ended by their callbacks), a refused map call, a stream that
 * domain that dies mid-save, a forced panic (XCSAVE_TEST_PANIC) and a failed allocation
 * (XCSAVE_TEST_FAIL_ALLOC). Every tenth iteration also restores a plain stream with xcsave's
 * xc_domain_restore into a fresh domain, and the next one a copy cut in half (which fails), so
 * the receiving side runs under LeakSanitizer too (issue 15).
 * After each save and restore: the expected result and no privcmd mapping left;
 * over the run the process's VMA count and RSS stay flat. Everything this test allocates is
 * freed before exit, so LeakSanitizer's report is about the library (and libxc) alone.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "test_rel.h"

static struct rel_log lg;

/* A plain stream of the first domain, whole and cut in half, that the restores read. */
static char stream_path[2][512];

static void make_streams(xc_interface *xch, uint32_t dom)
{
    struct rel_save s = {.dom = dom};
    struct save_callbacks cb = {.suspend = rel_cb_suspend, .switch_qemu_logdirty = rel_cb_qemu,
                                .data = &s};
    struct xensim_dominfo di;
    static char buf[1 << 16];
    off_t len, at = 0;
    int fd, cut;

    snprintf(stream_path[0], sizeof(stream_path[0]), "%s/restore-whole.bin",
             getenv("XENSIM_DIR"));
    snprintf(stream_path[1], sizeof(stream_path[1]), "%s/restore-cut.bin", getenv("XENSIM_DIR"));
    fd = open(stream_path[0], O_RDWR | O_CREAT | O_TRUNC, 0600);
    H_CHECK(fd >= 0, "open %s: %s", stream_path[0], strerror(errno));
    H_CHECK(xcsave_domain_save(xch, fd, dom, 0, &cb, XC_STREAM_PLAIN, -1) == 0,
            "making the restore stream: %s", strerror(errno));
    if (xensim_dominfo(dom, &di) == 0 && di.shutdown)
        xensim_resume(dom);
    len = lseek(fd, 0, SEEK_END);
    H_CHECK(lseek(fd, 0, SEEK_SET) == 0, "rewind");
    cut = open(stream_path[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    H_CHECK(cut >= 0, "open %s", stream_path[1]);
    while (at < len / 2) {
        size_t want = (size_t)(len / 2 - at) < sizeof(buf) ? (size_t)(len / 2 - at) : sizeof(buf);
        ssize_t n = read(fd, buf, want);

        H_CHECK(n > 0 && write(cut, buf, (size_t)n) == n, "copy the stream");
        at += n;
    }
    close(cut);
    close(fd);
}

/* Restore stream `which` (0 whole, 1 cut) into a fresh empty domain with xcsave's restore. */
static void restore(xc_interface *xch, unsigned int i, int which)
{
    struct xensim_domain_config cd = {.mem_bytes = 2ull << 20, .empty = 1, .paused = 1};
    struct restore_callbacks cb = {.data = NULL};
    unsigned long store = 0, console = 0;
    uint64_t before[2], after[2];
    uint32_t dst = 2001;
    int fd, rc, err;

    H_CHECK(xensim_create_domain(dst, &cd) == 0, "create d%u", dst);
    fd = open(stream_path[which], O_RDONLY);
    H_CHECK(fd >= 0, "open %s", stream_path[which]);
    rel_live(before);
    errno = 0;
    rc = xc_domain_restore(xch, fd, dst, 1, &store, 0, 2, &console, 0, XC_STREAM_PLAIN, &cb, -1);
    err = errno;
    rel_live(after);
    close(fd);
    if (which == 0)
        H_CHECK(rc == 0 && store && console, "restore %u: rc %d errno %d", i, rc, err);
    else
        H_CHECK(rc == -1 && err != 0 && !store, "restore %u of a cut stream: rc %d errno %d", i,
                rc, err);
    H_CHECK(after[0] == before[0] && after[1] == before[1], "restore %u: %llu VMAs left", i,
            (unsigned long long)(after[0] - before[0]));
    xensim_destroy_domain(dst);
}

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
    if (kind == 0 || kind == 1)
        restore(xch, i, kind);
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
    make_streams(xch, dom);
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
    printf("%u saves and %u restores (%u domains destroyed mid-save): VMAs %ld -> %ld, RSS %ld -> %ld KiB\n", n,
           (n + 9) / 10 + (n + 8) / 10, dead, vma0, vma1, rss0, rss1);
    H_CHECK(vma1 <= vma0 + 4, "the VMA count grew from %ld to %ld", vma0, vma1);
    xensim_destroy_domain(dom);
    xc_interface_close(xch);
    printf("ok\n");
    return 0;
}
