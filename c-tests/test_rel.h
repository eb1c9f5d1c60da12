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

/* VmRSS of this process in KiB (-1 if unknown). */
static inline long rel_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

#endif
