// SPDX-License-Identifier: GPL-3.0-only
/*
 * Helpers shared by the reliability tests (test_rel_*.c): a xentoollog logger that captures
 * what a save logs (and echoes it to stderr), small domains, fd and mapping checks.
 * Header-only (static functions): each test_*.c is one executable.
 */
#ifndef TEST_REL_H
#define TEST_REL_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "xcsave.h"

/* ---- a capturing logger ---- */

struct rel_log {
    xentoollog_logger vtable;     /* first: the library sees a xentoollog_logger */
    pthread_mutex_t lock;
    size_t len;
    char buf[256 * 1024];
};

static inline void rel_log_vmessage(xentoollog_logger *lg, xentoollog_level level, int errnoval,
                             const char *context, const char *format, va_list al)
{
    struct rel_log *l = (struct rel_log *)lg;
    char line[2048];
    int n = vsnprintf(line, sizeof(line), format, al);

    if (n < 0)
        return;
    if (errnoval >= 0 && (size_t)n < sizeof(line))
        snprintf(line + n, sizeof(line) - (size_t)n, ": %s", strerror(errnoval));
    if (level >= XTL_INFO)
        fprintf(stderr, "log[%d] %s: %s\n", (int)level, context ? context : "-", line);
    pthread_mutex_lock(&l->lock);
    n = snprintf(l->buf + l->len, sizeof(l->buf) - l->len, "%s\n", line);
    if (n > 0 && l->len + (size_t)n < sizeof(l->buf))
        l->len += (size_t)n;
    pthread_mutex_unlock(&l->lock);
}

static inline void rel_log_progress(xentoollog_logger *lg, const char *context, const char *doing,
                             int percent, unsigned long done, unsigned long total)
{
    (void)lg, (void)context, (void)doing, (void)percent, (void)done, (void)total;
}

static inline void rel_log_destroy(xentoollog_logger *lg)
{
    (void)lg;
}

static inline void rel_log_init(struct rel_log *l)
{
    memset(&l->vtable, 0, sizeof(l->vtable));
    l->vtable.vmessage = rel_log_vmessage;
    l->vtable.progress = rel_log_progress;
    l->vtable.destroy = rel_log_destroy;
    pthread_mutex_init(&l->lock, NULL);
    l->len = 0;
    l->buf[0] = 0;
}

static inline void rel_log_clear(struct rel_log *l)
{
    pthread_mutex_lock(&l->lock);
    l->len = 0;
    l->buf[0] = 0;
    pthread_mutex_unlock(&l->lock);
}

/* 1 if the captured log contains `needle`. */
static inline int rel_log_has(struct rel_log *l, const char *needle)
{
    int r;

    pthread_mutex_lock(&l->lock);
    r = strstr(l->buf, needle) != NULL;
    pthread_mutex_unlock(&l->lock);
    return r;
}

/* An xc_interface whose messages go to `l` (close with xc_interface_close). */
static inline xc_interface *rel_xc_open(struct rel_log *l)
{
    xc_interface *xch = xc_interface_open(&l->vtable, &l->vtable, 0);

    if (!xch)
        H_FAIL("xc_interface_open: %s", strerror(errno));
    return xch;
}

/* ---- domains, fds, mappings ---- */

static inline uint32_t rel_make_domain(uint32_t dom, uint64_t mem)
{
    struct xensim_domain_config cfg = {.mem_bytes = mem};
    int rc = xensim_create_domain(dom, &cfg);

    H_CHECK(rc == 0, "create d%u: %s", dom, strerror(-rc));
    rc = xensim_fill(dom, 0x5e1ull * 1000 + dom);
    H_CHECK(rc == 0, "fill d%u: %s", dom, strerror(-rc));
    return dom;
}

static inline int rel_fd_open(int fd)
{
    return fd < 0 || fcntl(fd, F_GETFD) != -1;
}

/* Live privcmd VMAs and pages (all processes sharing XENSIM_DIR). */
static inline void rel_live(uint64_t out[2])
{
    struct xensim_counters c;

    xensim_counters(&c);
    out[0] = c.live_privcmd_vmas;
    out[1] = c.live_privcmd_pages;
}

/* Lines of /proc/self/maps (the process's VMA count). */
static inline long rel_vma_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int ch;

    if (!f)
        return -1;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

/* A "Name: N kB" field of /proc/self/status, e.g. "VmRSS" or "RssAnon" (-1 if unknown). */
static inline long rel_status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t n = strlen(field);
    long kib = -1;

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, field, n) && line[n] == ':' && sscanf(line + n + 1, "%ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* VmRSS of this process in KiB (-1 if unknown). */
static inline long rel_rss_kib(void)
{
    return rel_status_kib("VmRSS");
}

/* ---- one save with well-behaved callbacks into a drained pipe ---- */

struct rel_save {
    uint32_t dom;
    xc_stream_type_t stream;
    int live;
    unsigned int checkpoints;     /* Remus/COLO: checkpoints before the clean stop */
    /* results */
    int rc, err;
    uint64_t left[2];             /* privcmd VMAs/pages left behind (delta) */
    int logdirty, qemu_on, fds_ok;
    uint64_t bytes;               /* stream bytes */
    /* internal */
    unsigned int k, waits;
};

static inline int rel_cb_suspend(void *data)
{
    struct rel_save *s = data;

    return xensim_suspend(s->dom) == 0;
}

static inline int rel_cb_postcopy(void *data)
{
    struct rel_save *s = data;

    return xensim_resume(s->dom) == 0;
}

static inline int rel_cb_checkpoint(void *data)
{
    struct rel_save *s = data;

    if (s->stream == XC_STREAM_COLO)
        return 1;
    return ++s->k < s->checkpoints;
}

static inline int rel_cb_wait(void *data)
{
    struct rel_save *s = data;

    return ++s->waits < s->checkpoints;
}

static inline int rel_cb_qemu(uint32_t domid, unsigned int enable, void *data)
{
    struct rel_save *s = data;

    (void)domid;
    s->qemu_on = !!enable;
    return 0;
}

struct rel_drain {
    int fd;
    uint64_t bytes;
};

static inline void *rel_drain_thread(void *arg)
{
    struct rel_drain *d = arg;
    static __thread char buf[64 * 1024];
    ssize_t n;

    while ((n = read(d->fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        d->bytes += (uint64_t)n;
    }
    close(d->fd);
    return NULL;
}

/* Run one save of s->dom; fills the results. COLO gets empty dirty lists back. */
static inline void rel_save_run(struct rel_save *s, harness_save_fn save, xc_interface *xch)
{
    struct save_callbacks cb = {.suspend = rel_cb_suspend, .switch_qemu_logdirty = rel_cb_qemu,
                                .data = s};
    struct rel_drain d;
    struct xensim_dominfo di;
    uint64_t before[2], after[2];
    int p[2], back[2] = {-1, -1};
    pthread_t th;

    s->k = s->waits = 0;
    s->qemu_on = 0;
    if (s->stream != XC_STREAM_PLAIN) {
        cb.postcopy = rel_cb_postcopy;
        cb.checkpoint = rel_cb_checkpoint;
    }
    if (s->stream == XC_STREAM_COLO) {
        static const uint32_t empty_list[] = {BC_HDR(0xf, 0)};
        cb.wait_checkpoint = rel_cb_wait;
        H_CHECK(pipe(back) == 0, "pipe: %s", strerror(errno));
        for (unsigned int i = 0; i <= s->checkpoints; i++)
            H_CHECK(write(back[1], empty_list, sizeof(empty_list)) == sizeof(empty_list),
                    "back channel");
    }
    H_CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
    d.fd = p[0];
    d.bytes = 0;
    H_CHECK(pthread_create(&th, NULL, rel_drain_thread, &d) == 0, "thread");
    rel_live(before);
    errno = 0;
    s->rc = save(xch, p[1], s->dom, s->live ? XCFLAGS_LIVE : 0, &cb, s->stream, back[0]);
    s->err = errno;
    rel_live(after);
    s->left[0] = after[0] - before[0];
    s->left[1] = after[1] - before[1];
    s->fds_ok = rel_fd_open(p[1]) && rel_fd_open(back[0]) && rel_fd_open(back[1]);
    s->logdirty = xensim_dominfo(s->dom, &di) == 0 && di.logdirty;
    close(p[1]);
    pthread_join(th, NULL);
    s->bytes = d.bytes;
    if (back[0] >= 0) {
        close(back[0]);
        close(back[1]);
    }
    if (xensim_dominfo(s->dom, &di) == 0 && di.shutdown)
        xensim_resume(s->dom);
}

/* A save that failed: -1, errno `want` (0: any), nothing left behind. */
static inline void rel_check_failed(const char *what, const struct rel_save *s, int want)
{
    H_CHECK(s->rc == -1, "%s: rc %d, want -1", what, s->rc);
    H_CHECK(want ? s->err == want : s->err != 0, "%s: errno %d (%s), want %d", what, s->err,
            strerror(s->err), want);
    H_CHECK(!s->logdirty, "%s: log-dirty left on", what);
    H_CHECK(!s->qemu_on, "%s: QEMU log-dirty left on", what);
    H_CHECK(s->left[0] == 0 && s->left[1] == 0, "%s: %llu privcmd VMAs (%llu pages) left", what,
            (unsigned long long)s->left[0], (unsigned long long)s->left[1]);
    H_CHECK(s->fds_ok, "%s: a caller's fd was closed", what);
}

/* A save + stock restore round trip with xcsave that must be equal (and verified). */
static inline void rel_round_trip(const char *what, uint32_t src, xc_stream_type_t st)
{
    struct harness_opts o = {.save = xcsave_domain_save, .src = src, .dst = src + 1,
                             .stream = st, .live = 1, .checkpoints = 3,
                             .burst_pages = st == XC_STREAM_PLAIN ? 0 : 32,
                             .secondary_pages = st == XC_STREAM_COLO ? 8 : 0};
    struct harness_result r;

    harness_make_pair(o.src, o.dst, 8ull << 20, 0xfa17 + o.src);
    if (harness_round_trip(&o, &r))
        H_FAIL("%s: %s", what, r.failure);
    xensim_destroy_domain(o.src);
    xensim_destroy_domain(o.dst);
}

#endif
