// SPDX-License-Identifier: GPL-3.0-only
/*
 * A toolstack's log looks as before: for the same non-live save of a paused guest, the caller's
 * xentoollog logger receives from xcsave exactly the stock saver's messages and progress
 * reports, in the same order, plus xcsave's own lines (prefixed "xcsave:", debug level only).
 *
 * Sub-cases:
 *   same     stock vs xcsave, as above;
 *   disable  XCSAVE_DISABLE=1: xcsave hands the call to the stock saver (reached through
 *            RTLD_NEXT), says so once at info level, and the rest is stock's log.
 *   remus    a Remus save of 5 checkpoints into the stock restore: the cache's statistics
 *            line also comes after the guest resumes at checkpoints 1, 2 and 4, so a save
 *            helper killed at failover has already logged one (docs/real-xen.md, check 4).
 *   settings invalid and out-of-range XCSAVE_* values (a typo in XCSAVE_LOG, a yes/no that is
 *            neither, a 4 KiB bucket, a max age of 10^6) each give one warning through the
 *            caller's logger, naming the variable and the value used, and the save succeeds
 *            with the defaults or bounds (README "Settings").
 * No argument runs them all.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "xcsave.h"

#define MAX_LINES 20000

/* A logger that keeps every message and progress report as a text line. */
struct rec_logger {
    xentoollog_logger vtable;
    char *lines[MAX_LINES];
    int levels[MAX_LINES];
    unsigned int n;
};

static void add(struct rec_logger *l, int level, char *s)
{
    H_CHECK(s != NULL, "out of memory");
    H_CHECK(l->n < MAX_LINES, "too many log lines");
    l->levels[l->n] = level;
    l->lines[l->n++] = s;
}

static void rl_vmessage(xentoollog_logger *lg, xentoollog_level level, int errnoval,
                        const char *context, const char *format, va_list al)
{
    struct rec_logger *l = (struct rec_logger *)lg;
    char msg[1024], *s = NULL;

    vsnprintf(msg, sizeof(msg), format, al);
    if (asprintf(&s, "%s %s: %s (errnoval %d)", xtl_level_to_string(level),
                 context ? context : "-", msg, errnoval) < 0)
        s = NULL;
    add(l, level, s);
}

static void rl_progress(xentoollog_logger *lg, const char *context, const char *doing,
                        int percent, unsigned long done, unsigned long total)
{
    struct rec_logger *l = (struct rec_logger *)lg;
    char *s = NULL;

    if (asprintf(&s, "progress %s: %s %d%% %lu/%lu", context ? context : "-", doing, percent,
                 done, total) < 0)
        s = NULL;
    add(l, XTL_PROGRESS, s);
}

static void rl_destroy(xentoollog_logger *lg)
{
    (void)lg;
}

static void rl_reset(struct rec_logger *l)
{
    unsigned int i;

    for (i = 0; i < l->n; i++)
        free(l->lines[i]);
    l->n = 0;
}

static int cb_suspend(void *data)
{
    return xensim_suspend(*(uint32_t *)data) == 0;
}

static int cb_logdirty(uint32_t domid, unsigned int enable, void *data)
{
    (void)domid;
    (void)enable;
    (void)data;
    return 0;
}

static void save(harness_save_fn fn, xc_interface *xch, uint32_t dom)
{
    struct save_callbacks cb;
    uint32_t d = dom;
    int fd = open("/dev/null", O_WRONLY), rc;

    H_CHECK(fd >= 0, "open /dev/null: %s", strerror(errno));
    memset(&cb, 0, sizeof(cb));
    cb.suspend = cb_suspend;
    cb.switch_qemu_logdirty = cb_logdirty;
    cb.data = &d;
    rc = fn(xch, fd, dom, 0, &cb, XC_STREAM_PLAIN, -1);
    H_CHECK(rc == 0, "save d%u: rc %d errno %d", dom, rc, errno);
    close(fd);
    H_CHECK(xensim_resume(dom) == 0 && xensim_pause(dom) == 0, "resume/pause d%u", dom);
}

/* Copy the lines that are not xcsave's own (checking those are debug level). */
static unsigned int others(const struct rec_logger *l, char **out, const char *allow_info)
{
    unsigned int i, n = 0;

    for (i = 0; i < l->n; i++) {
        if (strstr(l->lines[i], ": xcsave: ")) {
            if (allow_info && strstr(l->lines[i], allow_info))
                continue;
            H_CHECK(l->levels[i] == XTL_DEBUG, "xcsave line above debug level: %s",
                    l->lines[i]);
            continue;
        }
        out[n++] = l->lines[i];
    }
    return n;
}

static struct rec_logger lg_stock, lg_xc;
static char *a[MAX_LINES], *b[MAX_LINES];

static void run(const char *name, int disable)
{
    static uint32_t dom = 1;
    struct xensim_domain_config cfg = {.mem_bytes = 8ull << 20, .paused = 1};
    const char *handover = "handing over to the stock xc_domain_save";
    xc_interface *xs, *xx;
    unsigned int na, nb, i, own = 0, found_handover = 0;
    int rc;

    lg_stock.vtable = (xentoollog_logger){rl_vmessage, rl_progress, rl_destroy};
    lg_xc.vtable = lg_stock.vtable;
    xs = xc_interface_open(&lg_stock.vtable, &lg_stock.vtable, 0);
    xx = xc_interface_open(&lg_xc.vtable, &lg_xc.vtable, 0);
    H_CHECK(xs && xx, "xc_interface_open: %s", strerror(errno));
    rc = xensim_create_domain(dom, &cfg);
    H_CHECK(rc == 0, "create d%u: %s", dom, strerror(-rc));
    H_CHECK(xensim_fill(dom, 0x10990000u) == 0, "fill");

    rl_reset(&lg_stock);
    rl_reset(&lg_xc);
    save(harness_stock_save(), xs, dom);
    if (disable)
        setenv("XCSAVE_DISABLE", "1", 1);
    save(xcsave_domain_save, xx, dom);
    unsetenv("XCSAVE_DISABLE");

    for (i = 0; i < lg_xc.n; i++) {
        own += strstr(lg_xc.lines[i], ": xcsave: ") != NULL;
        if (strstr(lg_xc.lines[i], handover)) {
            found_handover++;
            H_CHECK(lg_xc.levels[i] == XTL_INFO, "hand-over line not at info: %s",
                    lg_xc.lines[i]);
        }
    }
    na = others(&lg_stock, a, NULL);
    nb = others(&lg_xc, b, disable ? handover : NULL);
    printf("%s: stock %u lines, xcsave %u lines (%u of them xcsave's own)\n", name, na,
           lg_xc.n, own);
    for (i = 0; i < na && i < nb; i++)
        H_CHECK(!strcmp(a[i], b[i]), "%s: line %u differs:\n  stock:  %s\n  xcsave: %s", name,
                i, a[i], b[i]);
    H_CHECK(na == nb, "%s: stock logged %u lines, xcsave %u (first extra: %s)", name, na, nb,
            na < nb ? b[na] : a[nb]);
    H_CHECK(na > 5, "%s: too few lines to compare (%u)", name, na);
    if (disable) {
        H_CHECK(found_handover == 1, "%s: %u hand-over lines", name, found_handover);
        H_CHECK(own == 1, "%s: xcsave's engine ran (%u own lines)", name, own);
    } else {
        H_CHECK(own > 0, "%s: no xcsave debug line reached the caller's logger", name);
        /* The last of them carries the mapping cache's counters (what shows a toolstack log
         * that xcsave and its cache ran: docs/real-xen.md, check 4). */
        unsigned int stats = 0;
        for (i = 0; i < lg_xc.n; i++)
            stats += strstr(lg_xc.lines[i], ": xcsave: ") &&
                     strstr(lg_xc.lines[i], "mapping cache stats: hits ");
        H_CHECK(stats == 1, "%s: %u mapping cache stats lines, want 1", name, stats);
    }
    xc_interface_close(xs);
    xc_interface_close(xx);
    xensim_destroy_domain(dom++);
}

/* The round trip's save, through an interface that logs into lg_xc. */
static xc_interface *remus_xch;

static int save_logged(xc_interface *xch, int io_fd, uint32_t dom, uint32_t flags,
                       struct save_callbacks *cb, xc_stream_type_t stream, int recv_fd)
{
    (void)xch;
    return xcsave_domain_save(remus_xch, io_fd, dom, flags, cb, stream, recv_fd);
}

static void run_remus(void)
{
    struct harness_opts o = {.save = save_logged, .src = 101, .dst = 102,
                             .stream = XC_STREAM_REMUS, .live = 1, .checkpoints = 5,
                             .burst_pages = 64, .no_verify = 1};
    struct harness_result r;
    unsigned int i, n = 0;
    const char *want[] = {"checkpoints 1 ", "checkpoints 2 ", "checkpoints 4 "};
    const char *seen[8];

    lg_xc.vtable = (xentoollog_logger){rl_vmessage, rl_progress, rl_destroy};
    remus_xch = xc_interface_open(&lg_xc.vtable, &lg_xc.vtable, 0);
    H_CHECK(remus_xch, "xc_interface_open: %s", strerror(errno));
    rl_reset(&lg_xc);
    harness_make_pair(o.src, o.dst, 16ull << 20, 0x5eed);
    H_CHECK(harness_round_trip(&o, &r) == 0, "remus round trip: %s", r.failure);
    for (i = 0; i < lg_xc.n; i++)
        if (strstr(lg_xc.lines[i], ": xcsave: ") &&
            strstr(lg_xc.lines[i], "mapping cache stats: hits ")) {
            H_CHECK(lg_xc.levels[i] == XTL_DEBUG, "stats line above debug: %s", lg_xc.lines[i]);
            if (n < 8)
                seen[n] = lg_xc.lines[i];
            n++;
        }
    printf("remus: %u checkpoints, %u mapping cache stats lines\n", r.suspends, n);
    /* Checkpoints 1, 2 and 4 after the guest resumed, then the teardown's. */
    H_CHECK(n == 4, "remus: %u stats lines, want 4 (after checkpoints 1, 2, 4 and at the end)",
            n);
    for (i = 0; i < 3; i++)
        H_CHECK(strstr(seen[i], want[i]), "remus: stats line %u lacks '%s': %s", i + 1,
                want[i], seen[i]);
    xc_interface_close(remus_xch);
    xensim_destroy_domain(o.src);
    xensim_destroy_domain(o.dst);
}

/* Bad settings: one warning each through the caller's logger; the save runs on defaults. */
static void run_settings(void)
{
    static const char *env[][3] = {
        /* variable, value, what the warning must say */
        {"XCSAVE_LOG", "debgu", "XCSAVE_LOG=\"debgu\""},
        {"XCSAVE_DISABLE", "maybe", "XCSAVE_DISABLE=\"maybe\""},
        {"XCSAVE_CACHE", "perhaps", "XCSAVE_CACHE=\"perhaps\""},
        {"XCSAVE_CACHE_BUCKET_KB", "4", "using 64 KiB"},
        {"XCSAVE_CACHE_MAX_AGE", "1000000", "using 4096"},
    };
    const unsigned int n_env = sizeof(env) / sizeof(env[0]);
    struct xensim_domain_config cfg = {.mem_bytes = 8ull << 20, .paused = 1};
    uint32_t dom = 9;
    XcsaveCacheStats st;
    xc_interface *xx;
    unsigned int i, k, warnings = 0, stats = 0;
    int rc;

    lg_xc.vtable = (xentoollog_logger){rl_vmessage, rl_progress, rl_destroy};
    xx = xc_interface_open(&lg_xc.vtable, &lg_xc.vtable, 0);
    H_CHECK(xx, "xc_interface_open: %s", strerror(errno));
    rc = xensim_create_domain(dom, &cfg);
    H_CHECK(rc == 0, "create d%u: %s", dom, strerror(-rc));
    H_CHECK(xensim_fill(dom, 0x5e771265u) == 0, "fill");
    rl_reset(&lg_xc);
    for (k = 0; k < n_env; k++)
        setenv(env[k][0], env[k][1], 1);
    save(xcsave_domain_save, xx, dom);
    for (k = 0; k < n_env; k++)
        unsetenv(env[k][0]);

    for (i = 0; i < lg_xc.n; i++) {
        if (!strstr(lg_xc.lines[i], ": xcsave: "))
            continue;
        stats += strstr(lg_xc.lines[i], "mapping cache stats: hits ") != NULL;
        if (lg_xc.levels[i] != XTL_WARN)
            continue;
        warnings++;
        printf("settings: %s\n", lg_xc.lines[i]);
    }
    for (k = 0; k < n_env; k++) {
        unsigned int found = 0;
        for (i = 0; i < lg_xc.n; i++)
            found += lg_xc.levels[i] == XTL_WARN && strstr(lg_xc.lines[i], env[k][2]);
        H_CHECK(found == 1, "settings: %u warnings saying '%s', want 1", found, env[k][2]);
    }
    H_CHECK(warnings == n_env, "settings: %u warnings, want %u", warnings, n_env);
    /* XCSAVE_DISABLE=maybe means the default (no): xcsave's engine ran, with its cache on
     * (XCSAVE_CACHE=perhaps: the default, on), and debug lines still reach the logger
     * (XCSAVE_LOG=debgu: the default, debug). */
    H_CHECK(stats == 1, "settings: %u mapping cache stats lines, want 1", stats);
    H_CHECK(xcsave_cache_stats(dom, &st) == 0, "settings: no cache stats for d%u", dom);
    H_CHECK(st.disabled == 0, "settings: the cache ran disabled");
    xc_interface_close(xx);
    xensim_destroy_domain(dom);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0;

    if (!only || !strcmp(only, "same"))
        ran++, run("same", 0);
    if (!only || !strcmp(only, "disable"))
        ran++, run("disable", 1);
    if (!only || !strcmp(only, "remus"))
        ran++, run_remus();
    if (!only || !strcmp(only, "settings"))
        ran++, run_settings();
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    return 0;
}
