// SPDX-License-Identifier: GPL-3.0-only
/*
 * Error cases through xcsave's public symbol: each returns -1 with errno set, without a crash,
 * and cleans up: log-dirty is off, QEMU's log-dirty was switched back off, no privcmd
 * mapping is left, and the caller's fds are still open.
 *
 * Sub-cases (backchannel-pad on Xen 4.18+ only): baddomid, epipe, suspendfail, postcopyfail,
 * qemufail, backchannel-pad, backchannel-pfn, backchannel-length, backchannel-truncated,
 * backchannel-type, backchannel-huge, backchannel-longer (a list longer than the p2m: EINVAL
 * from its header), mapfail,
 * mapcallfail. No argument runs them all.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "xcsave.h"

#define MEM (16ull << 20)

struct ctx {
    uint32_t dom;
    int suspend_rc;        /* returned by suspend after suspending (1 = success) */
    int postcopy_rc;       /* returned by postcopy after resuming */
    int qemu_rc;           /* returned by switch_qemu_logdirty */
    int qemu_on;           /* QEMU log-dirty state as the callbacks left it */
};

static int cb_suspend(void *data)
{
    struct ctx *c = data;
    int rc = xensim_suspend(c->dom);

    if (rc)
        printf("xensim_suspend(d%u): %s\n", c->dom, strerror(-rc));
    return rc ? 0 : c->suspend_rc;
}

static int cb_postcopy(void *data)
{
    struct ctx *c = data;

    xensim_resume(c->dom);
    return c->postcopy_rc;
}

static int cb_one(void *data)
{
    (void)data;
    return 1;
}

static int cb_logdirty(uint32_t domid, unsigned int enable, void *data)
{
    struct ctx *c = data;

    (void)domid;
    if (enable && c->qemu_rc)
        return c->qemu_rc;
    c->qemu_on = !!enable;
    return 0;
}

static uint32_t next_dom = 1;

static uint32_t make_domain(void)
{
    struct xensim_domain_config cfg = {.mem_bytes = MEM};
    uint32_t dom = next_dom++;
    int rc = xensim_create_domain(dom, &cfg);

    H_CHECK(rc == 0, "create d%u: %s", dom, strerror(-rc));
    rc = xensim_fill(dom, 0xe0000000u + dom);
    H_CHECK(rc == 0, "fill d%u: %s", dom, strerror(-rc));
    return dom;
}

static void init_cb(struct save_callbacks *cb, struct ctx *c, uint32_t dom)
{
    memset(c, 0, sizeof(*c));
    c->dom = dom;
    c->suspend_rc = 1;
    c->postcopy_rc = 1;
    memset(cb, 0, sizeof(*cb));
    cb->suspend = cb_suspend;
    cb->postcopy = cb_postcopy;
    cb->checkpoint = cb_one;
    cb->wait_checkpoint = cb_one;
    cb->switch_qemu_logdirty = cb_logdirty;
    cb->data = c;
}

/* The save failed as expected and left nothing behind. */
static void check_failed(const char *name, int rc, int err, int want_errno, struct ctx *c,
                         int io_fd, int recv_fd)
{
    struct xensim_dominfo di;
    struct xensim_counters k;

    printf("%s: rc %d errno %d (%s)\n", name, rc, err, strerror(err));
    H_CHECK(rc == -1, "%s: rc %d, want -1", name, rc);
    if (want_errno)
        H_CHECK(err == want_errno, "%s: errno %d (%s), want %d (%s)", name, err, strerror(err),
                want_errno, strerror(want_errno));
    else
        H_CHECK(err != 0, "%s: errno not set", name);
    if (c) {
        H_CHECK(!c->qemu_on, "%s: QEMU log-dirty left on", name);
        H_CHECK(xensim_dominfo(c->dom, &di) == 0, "%s: dominfo", name);
        H_CHECK(!di.logdirty, "%s: log-dirty left on", name);
    }
    xensim_counters(&k);
    H_CHECK(k.live_privcmd_vmas == 0 && k.live_privcmd_pages == 0,
            "%s: %llu privcmd mappings (%llu pages) left", name,
            (unsigned long long)k.live_privcmd_vmas, (unsigned long long)k.live_privcmd_pages);
    if (io_fd >= 0)
        H_CHECK(fcntl(io_fd, F_GETFD) != -1, "%s: io_fd was closed", name);
    if (recv_fd >= 0)
        H_CHECK(fcntl(recv_fd, F_GETFD) != -1, "%s: recv_fd was closed", name);
}

static int devnull(void)
{
    int fd = open("/dev/null", O_WRONLY);

    H_CHECK(fd >= 0, "open /dev/null: %s", strerror(errno));
    return fd;
}

static void case_baddomid(xc_interface *xch)
{
    struct save_callbacks cb;
    struct ctx c;
    int fd = devnull(), rc, err;

    init_cb(&cb, &c, 4000);
    errno = 0;
    rc = xcsave_domain_save(xch, fd, 4000, 0, &cb, XC_STREAM_PLAIN, -1);
    err = errno;
    check_failed("baddomid", rc, err, ESRCH, NULL, fd, -1);
    close(fd);
}

static void case_epipe(xc_interface *xch)
{
    struct save_callbacks cb;
    struct ctx c;
    uint32_t dom = make_domain();
    int p[2], rc, err;

    signal(SIGPIPE, SIG_IGN);
    H_CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
    close(p[0]);
    init_cb(&cb, &c, dom);
    rc = xcsave_domain_save(xch, p[1], dom, XCFLAGS_LIVE, &cb, XC_STREAM_PLAIN, -1);
    err = errno;
    check_failed("epipe", rc, err, EPIPE, &c, p[1], -1);
    close(p[1]);
}

static void case_callback(xc_interface *xch, const char *name)
{
    struct save_callbacks cb;
    struct ctx c;
    uint32_t dom = make_domain();
    xc_stream_type_t st = XC_STREAM_PLAIN;
    int fd = devnull(), rc, err;

    init_cb(&cb, &c, dom);
    if (!strcmp(name, "suspendfail")) {
        c.suspend_rc = 0;
    } else if (!strcmp(name, "postcopyfail")) {
        c.postcopy_rc = -1;
        st = XC_STREAM_REMUS;
    } else {
        c.qemu_rc = -1;
    }
    errno = 0;
    rc = xcsave_domain_save(xch, fd, dom, XCFLAGS_LIVE, &cb, st, -1);
    err = errno;
    check_failed(name, rc, err, 0, &c, fd, -1);
    close(fd);
}

/* A COLO save whose secondary sends `rec` (then closes) on the back channel. */
static void case_backchannel(xc_interface *xch, const char *name, const void *rec, size_t len,
                             int want_errno)
{
    struct save_callbacks cb;
    struct ctx c;
    uint32_t dom = make_domain();
    int fd = devnull(), p[2], rc, err;

    H_CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
    H_CHECK(write(p[1], rec, len) == (ssize_t)len, "write back channel: %s", strerror(errno));
    close(p[1]);
    init_cb(&cb, &c, dom);
    rc = xcsave_domain_save(xch, fd, dom, XCFLAGS_LIVE, &cb, XC_STREAM_COLO, p[0]);
    err = errno;
    check_failed(name, rc, err, want_errno, &c, fd, p[0]);
    close(p[0]);
    close(fd);
}

static void case_mapfail(xc_interface *xch, int whole_call)
{
    const char *name = whole_call ? "mapcallfail" : "mapfail";
    struct save_callbacks cb;
    struct ctx c;
    uint32_t dom = make_domain();
    int fd = devnull(), rc, err;

    init_cb(&cb, &c, dom);
    /* From the second MMAPBATCH_V2 on, calls fail as a whole (ENOMEM: EINVAL would make the
     * library fall back to the V1 ioctl; all of them, because after a refused bucket map the
     * cache maps per batch, as stock, and only that failing fails the save), or one page of
     * the first batch fails. */
    if (whole_call)
        rc = xensim_fault_call(XENSIM_OP_IOCTL, 4, 2, 1000, ENOMEM);
    else
        rc = xensim_fault_map_gfn(dom, 0x123, EFAULT);
    H_CHECK(rc == 0, "%s: fault rule: %s", name, strerror(-rc));
    rc = xcsave_domain_save(xch, fd, dom, 0, &cb, XC_STREAM_PLAIN, -1);
    err = errno;
    xensim_fault_clear();
    check_failed(name, rc, err, whole_call ? ENOMEM : EFAULT, &c, fd, -1);
    close(fd);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    xc_interface *xch = harness_xc_open();
    /* Record type 0xf = CHECKPOINT_DIRTY_PFN_LIST; a 16 MiB guest's p2m ends at 0xff000. */
    const uint32_t bad_pfn[] = {BC_HDR(0xf, 8), 0xff000, 0};
    const uint32_t bad_len[] = {BC_HDR(0xf, 5), 1, 0};
    const uint32_t truncated[] = {BC_HDR(0xf, 16), 1, 0};
    const uint32_t wrong_type[] = {BC_HDR(0xe, 0)};
    const uint32_t huge[] = {BC_HDR(0xf, 0xfffffff8u)};
    /* One pfn more than the p2m holds (8 x 0xff001 bytes), then one pfn and EOF: refused
     * from the header (EINVAL), where reading on would end in EIO (truncated). */
    const uint32_t longer[] = {BC_HDR(0xf, 8 * 0xff001u), 1, 0};
    int ran = 0;

#define CASE(n) ((!only || !strcmp(only, n)) && ++ran)
    if (CASE("baddomid"))
        case_baddomid(xch);
    if (CASE("epipe"))
        case_epipe(xch);
    if (CASE("suspendfail"))
        case_callback(xch, "suspendfail");
    if (CASE("postcopyfail"))
        case_callback(xch, "postcopyfail");
    if (CASE("qemufail"))
        case_callback(xch, "qemufail");
    if (CASE("backchannel-pfn"))
        case_backchannel(xch, "backchannel-pfn", bad_pfn, sizeof(bad_pfn), EINVAL);
    if (CASE("backchannel-length"))
        case_backchannel(xch, "backchannel-length", bad_len, sizeof(bad_len), EINVAL);
    if (CASE("backchannel-truncated"))
        case_backchannel(xch, "backchannel-truncated", truncated, sizeof(truncated), EIO);
    if (CASE("backchannel-type"))
        case_backchannel(xch, "backchannel-type", wrong_type, sizeof(wrong_type), EINVAL);
    if (CASE("backchannel-huge"))
        case_backchannel(xch, "backchannel-huge", huge, sizeof(huge), E2BIG);
#if XEN_RELEASE_MINOR != 17
    /* From 4.18 the header carries 8 bytes of a NULL pointer (BC_HDR): anything else there is
     * refused, not taken as the start of the pfn list. */
    if (CASE("backchannel-pad")) {
        const uint32_t pad[] = {0xf, 8, 1, 0, 2, 0};
        case_backchannel(xch, "backchannel-pad", pad, sizeof(pad), EINVAL);
    }
#endif
    if (CASE("backchannel-longer"))
        case_backchannel(xch, "backchannel-longer", longer, sizeof(longer), EINVAL);
    if (CASE("mapfail"))
        case_mapfail(xch, 0);
    if (CASE("mapcallfail"))
        case_mapfail(xch, 1);
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    harness_xc_close(xch);
    printf("ok: %d case(s)\n", ran);
    return 0;
}
