// SPDX-License-Identifier: GPL-3.0-only
/*
 * The receiving side's drop-in (issue 15): the public xc_domain_restore symbol a toolstack
 * linked with libxcsave binds to is xcsave's, and its own engine restores every stream type
 * of an HVM guest equal to the source (the harness compares RAM, HVM context and params at
 * every checkpoint and at the end). Who applies the stream is decided before a byte of it is
 * read; a hand-over to the stock restore is logged through the caller's logger.
 *
 * Sub-cases:
 *   symbol   xc_domain_restore resolves to libxcsave (dladdr), not to libxenguest;
 *   plain    stock save -> xc_domain_restore (xcsave's engine), non-live, equal;
 *   live     xcsave save (live, dirtier) -> xc_domain_restore, equal;
 *   verify   xcsave save with XCFLAGS_DEBUG (a VERIFY record, then a second full pass that
 *            the restore compares instead of writing) -> xc_domain_restore, equal, and no
 *            "verify pfn" mismatch logged;
 *   remus    xcsave save -> xc_domain_restore, Remus, equal at every checkpoint;
 *   colo     xcsave save -> xc_domain_restore, COLO with the back channel, equal at every
 *            checkpoint;
 *   off      XCSAVE_RESTORE=off: handed over with that reason, saves unaffected;
 *   disable  XCSAVE_DISABLE=1: handed over with that reason;
 *   pv       a PV target domain (xensim reports it as one): xc_domain_restore hands the call,
 *            stream unread, to the stock restore, logged with the reason; stock's own PV path
 *            then reads the headers and refuses the HVM stream in its own words;
 *   refuse   what stock asserts on (COLO without its callbacks, a bad stream type, no
 *            callbacks, a NULL handle) gives -1/EINVAL and leaves the stream unread.
 * No argument runs them all.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "harness.h"
#include "xcsave.h"

#define MEM (32ull << 20)

static unsigned int next_dom = 1;

/* stderr (where the harness's loggers write) goes to a file while `fn` runs; returns it. */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
    char path[512], *buf;
    int saved, fd;
    long n;
    FILE *f;

    snprintf(path, sizeof(path), "%s/stderr.log", getenv("XENSIM_DIR"));
    fflush(stderr);
    saved = dup(2);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    H_CHECK(saved >= 0 && fd >= 0, "redirect stderr: %s", strerror(errno));
    H_CHECK(dup2(fd, 2) == 2, "dup2");
    close(fd);
    fn(arg);
    fflush(stderr);
    H_CHECK(dup2(saved, 2) == 2, "restore stderr");
    close(saved);
    f = fopen(path, "r");
    H_CHECK(f != NULL, "open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = calloc(1, (size_t)n + 1);
    H_CHECK(buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n, "read %s", path);
    fclose(f);
    return buf;
}

struct trip {
    const char *name;
    harness_save_fn save;
    xc_stream_type_t stream;
    int live;
    unsigned int checkpoints;
};

static void round_trip(void *arg)
{
    const struct trip *t = arg;
    struct harness_opts o;
    struct harness_result r;
    uint32_t src = next_dom++, dst = next_dom++;
    int rc;

    memset(&o, 0, sizeof(o));
    harness_make_pair(src, dst, MEM, 0x7e570000u + src);
    o.save = t->save;
    o.restore = xc_domain_restore; /* the public symbol: xcsave's */
    o.src = src;
    o.dst = dst;
    o.stream = t->stream;
    o.live = t->live;
    o.checkpoints = t->checkpoints;
    if (t->live) {
        o.dirty_rate = 20000;
        o.dirty_count = MEM / 4096;
    }
    if (t->stream != XC_STREAM_PLAIN)
        o.burst_pages = 64;
    if (t->stream == XC_STREAM_COLO)
        o.secondary_pages = 16;
    rc = harness_round_trip(&o, &r);
    printf("%s: save_rc %d, restore_rc %d errno %d, compared %u, %llu stream bytes\n", t->name,
           r.save_rc, r.restore_rc, r.restore_errno, r.compared,
           (unsigned long long)r.stream_bytes);
    H_CHECK(rc == 0, "%s: round trip failed: %s", t->name, r.failure);
    H_CHECK(r.restore_rc == 0, "%s: restore rc %d", t->name, r.restore_rc);
    if (t->stream != XC_STREAM_PLAIN)
        H_CHECK(r.compared >= t->checkpoints, "%s: %u checkpoint states compared, want >= %u",
                t->name, r.compared, t->checkpoints);
    xensim_destroy_domain(src);
    xensim_destroy_domain(dst);
}

/* xcsave with XCFLAGS_DEBUG added to the harness's flags. */
static int save_debug(xc_interface *xch, int io_fd, uint32_t dom, uint32_t flags,
                      struct save_callbacks *cb, xc_stream_type_t st, int recv_fd)
{
    return xcsave_domain_save(xch, io_fd, dom, flags | XCFLAGS_DEBUG, cb, st, recv_fd);
}

/* Run a round trip with the harness's loggers at debug level. With a `reason`, the captured
 * log must hold exactly one hand-over line, with `reason` in it; without, xcsave's engine
 * must have restored the guest (its line, no hand-over). */
static void run(const struct trip *t, const char *reason)
{
    char *log, *at, *next;

    setenv("HARNESS_XTL_LEVEL", "1", 1); /* XTL_DEBUG */
    log = capture_stderr(round_trip, (void *)t);
    unsetenv("HARNESS_XTL_LEVEL");
    at = strstr(log, "handing over to the stock xc_domain_restore");
    if (!reason) {
        H_CHECK(at == NULL, "%s: handed over to stock:\n%s", t->name, log);
        H_CHECK(strstr(log, "with xcsave (") != NULL, "%s: no xcsave restore line:\n%s",
                t->name, log);
        H_CHECK(strstr(log, "verify pfn") == NULL, "%s: verify mismatches:\n%s", t->name, log);
        printf("%s: restored by xcsave's engine\n", t->name);
        free(log);
        return;
    }
    H_CHECK(at != NULL, "%s: no hand-over line in the log:\n%s", t->name, log);
    next = strstr(at + 1, "handing over to the stock xc_domain_restore");
    H_CHECK(next == NULL, "%s: more than one hand-over line", t->name);
    H_CHECK(strstr(log, reason) != NULL, "%s: the hand-over does not say '%s':\n%s", t->name,
            reason, log);
    printf("%s: handed over: %s\n", t->name, reason);
    free(log);
}

/* A stock HVM stream into a PV domain through the public xc_domain_restore. */
static void pv_trip(void *arg)
{
    struct xensim_domain_config cs = {.mem_bytes = MEM};
    struct xensim_domain_config cd = {.mem_bytes = MEM, .empty = 1, .paused = 1, .pv = 1};
    struct harness_opts o;
    struct harness_result r;
    struct harness_dominfo di;
    xc_interface *xch = harness_xc_open();
    uint32_t src = next_dom++, dst = next_dom++;

    (void)arg;
    H_CHECK(xensim_create_domain(src, &cs) == 0 && xensim_fill(src, 0x9d000000u) == 0,
            "pv: create source");
    H_CHECK(xensim_create_domain(dst, &cd) == 0, "pv: create the PV target");
    H_CHECK(harness_dominfo(xch, dst, &di) == 0 && di.domid == dst && !di.hvm,
            "pv: xensim does not report d%u as PV", dst);
    harness_xc_close(xch);
    memset(&o, 0, sizeof(o));
    o.restore = xc_domain_restore; /* the public symbol: xcsave's */
    o.src = src;
    o.dst = dst;
    o.stream = XC_STREAM_PLAIN;
    o.expect_restore_fail = 1; /* stock's PV restore refuses an HVM stream */
    H_CHECK(harness_round_trip(&o, &r) == 0, "pv: %s", r.failure);
    printf("pv: save_rc %d, restore_rc %d errno %d\n", r.save_rc, r.restore_rc,
           r.restore_errno);
    H_CHECK(r.save_rc == 0 && r.restore_rc == -1, "pv: save rc %d, restore rc %d", r.save_rc,
            r.restore_rc);
    xensim_destroy_domain(src);
    xensim_destroy_domain(dst);
}

/* The PV fallback: the hand-over is logged before a byte is read, and what then reads the
 * stream is stock's PV restore (its message for an HVM stream), not xcsave's engine. */
static void pv(void)
{
    char *log, *at, *stock;
    char reason[64];

    snprintf(reason, sizeof(reason), "dom%u is an x86 PV guest", next_dom + 1);
    setenv("HARNESS_XTL_LEVEL", "1", 1); /* XTL_DEBUG */
    log = capture_stderr(pv_trip, NULL);
    unsetenv("HARNESS_XTL_LEVEL");
    at = strstr(log, "handing over to the stock xc_domain_restore");
    H_CHECK(at != NULL, "pv: no hand-over line in the log:\n%s", log);
    H_CHECK(strstr(at + 1, "handing over to the stock xc_domain_restore") == NULL,
            "pv: more than one hand-over line:\n%s", log);
    H_CHECK(strstr(log, reason) != NULL, "pv: the hand-over does not say '%s':\n%s", reason,
            log);
    H_CHECK(strstr(log, "with xcsave (") == NULL, "pv: xcsave's engine ran:\n%s", log);
    stock = strstr(log, "Unable to restore x86 HVM domain into an x86_pv domain");
    H_CHECK(stock != NULL && stock > at,
            "pv: stock's PV restore did not read the stream after the hand-over:\n%s", log);
    printf("pv: handed over (%s); stock's PV restore refused the HVM stream itself\n", reason);
    free(log);
}

/* A restore call that must be refused before reading: -1, EINVAL, the pipe still full. */
static void refused(const char *what, xc_interface *xch, xc_stream_type_t st,
                    struct restore_callbacks *cb)
{
    static const char bytes[64] = "not a stream";
    unsigned long store = 0, console = 0;
    int p[2], rc, left = 0;

    H_CHECK(pipe(p) == 0, "pipe");
    H_CHECK(write(p[1], bytes, sizeof(bytes)) == (ssize_t)sizeof(bytes), "write");
    errno = 0;
    rc = xc_domain_restore(xch, p[0], 2, 1, &store, 0, 2, &console, 0, st, cb, -1);
    H_CHECK(rc == -1 && errno == EINVAL, "%s: rc %d errno %d, want -1/EINVAL", what, rc, errno);
    H_CHECK(ioctl(p[0], FIONREAD, &left) == 0 && left == (int)sizeof(bytes),
            "%s: %d of %zu stream bytes left unread", what, left, sizeof(bytes));
    H_CHECK(store == 0 && console == 0, "%s: outputs written on failure", what);
    close(p[0]);
    close(p[1]);
    printf("refuse: %s: -1/EINVAL, stream unread\n", what);
}

static int r_one(void *data)
{
    (void)data;
    return 1;
}

static void refuse(void)
{
    xc_interface *xch = harness_xc_open();
    struct restore_callbacks cb = {.checkpoint = r_one};

    harness_make_pair(1, 2, MEM, 1);
    refused("COLO without suspend/postcopy/wait_checkpoint/restore_results", xch,
            XC_STREAM_COLO, &cb);
    refused("Remus without checkpoint", xch, XC_STREAM_REMUS,
            &(struct restore_callbacks){.data = NULL});
    refused("bad stream type 7", xch, (xc_stream_type_t)7, &cb);
    refused("no callbacks", xch, XC_STREAM_PLAIN, NULL);
    refused("NULL xc_interface", NULL, XC_STREAM_PLAIN, &cb);
    harness_xc_close(xch);
    xensim_destroy_domain(1);
    xensim_destroy_domain(2);
}

static void symbol(void)
{
    Dl_info ours, stock;

    H_CHECK(dladdr((void *)xc_domain_restore, &ours) && ours.dli_fname, "dladdr ours");
    H_CHECK(dladdr((void *)harness_stock_restore(), &stock) && stock.dli_fname,
            "dladdr stock");
    printf("symbol: xc_domain_restore in %s, stock in %s\n", ours.dli_fname, stock.dli_fname);
    H_CHECK(strstr(ours.dli_fname, "libxcsave") != NULL,
            "xc_domain_restore binds to %s, not libxcsave", ours.dli_fname);
    H_CHECK(strstr(stock.dli_fname, "libxenguest") != NULL, "stock restore in %s",
            stock.dli_fname);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    const char *engine = NULL; /* restored by xcsave itself */
    int ran = 0;

#define CASE(n) (!only || !strcmp(only, n)) && ++ran
    if (CASE("symbol"))
        symbol();
    if (CASE("plain"))
        run(&(struct trip){"plain", NULL, XC_STREAM_PLAIN, 0, 0}, engine);
    if (CASE("live"))
        run(&(struct trip){"live", xcsave_domain_save, XC_STREAM_PLAIN, 1, 0}, engine);
    if (CASE("verify"))
        run(&(struct trip){"verify", save_debug, XC_STREAM_PLAIN, 1, 0}, engine);
    if (CASE("remus"))
        run(&(struct trip){"remus", xcsave_domain_save, XC_STREAM_REMUS, 1, 4}, engine);
    if (CASE("colo"))
        run(&(struct trip){"colo", xcsave_domain_save, XC_STREAM_COLO, 1, 4}, engine);
    if (CASE("off")) {
        setenv("XCSAVE_RESTORE", "off", 1);
        run(&(struct trip){"off", xcsave_domain_save, XC_STREAM_PLAIN, 0, 0},
            "XCSAVE_RESTORE is off");
        unsetenv("XCSAVE_RESTORE");
    }
    if (CASE("disable")) {
        setenv("XCSAVE_DISABLE", "1", 1);
        run(&(struct trip){"disable", NULL, XC_STREAM_PLAIN, 0, 0}, "XCSAVE_DISABLE is set");
        unsetenv("XCSAVE_DISABLE");
    }
    if (CASE("pv"))
        pv();
    if (CASE("refuse"))
        refuse();
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    printf("ok: %d case(s)\n", ran);
    return 0;
}
