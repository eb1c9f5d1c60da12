// SPDX-License-Identifier: GPL-3.0-only
/* Shared C test harness: see harness.h. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#include <xen/hvm/params.h>

double harness_now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* libxenguest's own definition of `name` in the release under test
 * (XEN_GUEST_SONAME/XEN_GUEST_NODE, c-tests/Makefile). */
static void *stock_symbol(const char *name)
{
    void *h = dlopen(XEN_GUEST_SONAME, RTLD_NOW | RTLD_GLOBAL), *fn;

    if (!h)
        H_FAIL("dlopen " XEN_GUEST_SONAME ": %s", dlerror());
    fn = dlvsym(h, name, XEN_GUEST_NODE);
    if (!fn)
        H_FAIL("dlvsym %s@" XEN_GUEST_NODE ": %s", name, dlerror());
    return fn;
}

harness_save_fn harness_stock_save(void)
{
    static harness_save_fn fn;

    if (!fn)
        fn = (harness_save_fn)stock_symbol("xc_domain_save");
    return fn;
}

harness_restore_fn harness_stock_restore(void)
{
    static harness_restore_fn fn;

    if (!fn)
        fn = (harness_restore_fn)stock_symbol("xc_domain_restore");
    return fn;
}

xc_interface *harness_xc_open(void)
{
    const char *lv = getenv("HARNESS_XTL_LEVEL");
    xentoollog_level level = lv ? (xentoollog_level)atoi(lv) : XTL_WARN;
    xentoollog_logger_stdiostream *lg =
        xtl_createlogger_stdiostream(stderr, level, XTL_STDIOSTREAM_HIDE_PROGRESS);
    xc_interface *xch;

    if (!lg)
        H_FAIL("cannot create a stdio logger");
    xch = xc_interface_open((xentoollog_logger *)lg, (xentoollog_logger *)lg, 0);
    if (!xch)
        H_FAIL("xc_interface_open failed: %s", strerror(errno));
    return xch;
}

int harness_dominfo(xc_interface *xch, uint32_t dom, struct harness_dominfo *out)
{
#if XEN_RELEASE_MINOR == 17
    xc_dominfo_t i;

    if (xc_domain_getinfo(xch, dom, 1, &i) != 1)
        return -1;
    out->domid = i.domid;
    out->hvm = i.hvm;
    out->nr_pages = i.nr_pages;
#else
    xc_domaininfo_t i;

    if (xc_domain_getinfo_single(xch, dom, &i) < 0)
        return -1;
    out->domid = i.domain;
    out->hvm = !!(i.flags & XEN_DOMINF_hvm_guest);
    out->nr_pages = i.tot_pages;
#endif
    return 0;
}

void harness_xc_close(xc_interface *xch)
{
    /* The logger is leaked on purpose: xc_interface_close does not own it,
     * and tests are short-lived processes. */
    xc_interface_close(xch);
}

int harness_resume_saved(uint32_t dom)
{
    struct xensim_dominfo di;
    int rc = xensim_dominfo(dom, &di), r;

    if (rc)
        return rc;
    if (di.logdirty)
        rc = xensim_set_logdirty(dom, 0);
    if (di.shutdown && (r = xensim_resume(dom)) && !rc)
        rc = r;
    while (di.paused) {
        if ((r = xensim_unpause(dom)) || (r = xensim_dominfo(dom, &di)))
            return rc ? rc : r;
    }
    return rc;
}

void harness_make_pair(uint32_t src, uint32_t dst, uint64_t mem_bytes,
                       uint64_t seed)
{
    struct xensim_domain_config cs = {.mem_bytes = mem_bytes};
    struct xensim_domain_config cd = {.mem_bytes = mem_bytes, .empty = 1,
                                      .paused = 1};
    int rc;

    if ((rc = xensim_create_domain(src, &cs)))
        H_FAIL("create source d%u: %s", src, strerror(-rc));
    if ((rc = xensim_fill(src, seed)))
        H_FAIL("fill d%u: %s", src, strerror(-rc));
    if ((rc = xensim_create_domain(dst, &cd)))
        H_FAIL("create target d%u: %s", dst, strerror(-rc));
}

/* ---- verify-stream-v2 ---- */

int harness_verify_stream(const char *path, int *truncated)
{
    const char *tool = getenv("XCSAVE_VERIFY_STREAM");
    const char *pypath = getenv("XCSAVE_XEN_PYTHONPATH");
    char defpath[4096], defpy[4096], out[4096 + 64], line[1024];
    FILE *f;
    pid_t pid;
    int st;

    *truncated = 0;
    if (!tool || !*tool) {
        snprintf(defpath, sizeof(defpath), "%s",
                 "build/deps/xen-utils/usr/lib/xen-4.17/bin/verify-stream-v2");
        tool = defpath;
    }
    if (!pypath || !*pypath) {
        char *slash;
        snprintf(defpy, sizeof(defpy), "%s", tool);
        /* <prefix>/bin/verify-stream-v2 -> <prefix>/lib/python */
        slash = strrchr(defpy, '/');
        if (slash)
            *slash = 0;
        slash = strrchr(defpy, '/');
        if (slash)
            *slash = 0;
        strncat(defpy, "/lib/python", sizeof(defpy) - strlen(defpy) - 1);
        pypath = defpy;
    }
    snprintf(out, sizeof(out), "%s.verify.txt", path);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        setenv("PYTHONPATH", pypath, 1);
        execlp("python3", "python3", tool, "-i", path, (char *)NULL);
        _exit(127);
    }
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    f = fopen(out, "r");
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            if (strcasestr(line, "truncated"))
                *truncated = 1;
            if (!WIFEXITED(st) || WEXITSTATUS(st))
                fprintf(stderr, "verify-stream-v2: %s", line);
        }
        fclose(f);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * Walk the records of a stream file: 1 if it is whole records from the
 * headers to EOF and the last one is CHECKPOINT (a checkpointed stream cut
 * at failover), 0 otherwise.
 */
int harness_stream_ends_at_checkpoint(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t hdr[24 + 16];
    uint32_t rh[2], last = ~0u;
    long long pos;
    int ok = 0;

    if (!f)
        return 0;
    if (fread(hdr, 1, sizeof(hdr), f) != sizeof(hdr))
        goto out;
    for (;;) {
        size_t n = fread(rh, 1, sizeof(rh), f);
        if (n == 0) {
            ok = feof(f) && last == 0x0000000eu; /* REC_TYPE_CHECKPOINT */
            break;
        }
        if (n != sizeof(rh))
            break;
        pos = ((long long)rh[1] + 7) & ~7ll;
        if (fseeko(f, pos, SEEK_CUR))
            break;
        last = rh[0];
        {
            /* seeking past EOF succeeds: check the data really is there */
            long long here = ftello(f);
            struct stat st;
            if (fstat(fileno(f), &st) || here > st.st_size)
                break;
        }
    }
out:
    fclose(f);
    return ok;
}

/* ---- round trip ---- */

#define MAX_CKPT 256

struct rt {
    const struct harness_opts *o;
    struct harness_result *r;
    xc_interface *xs, *xr;
    int save_out, tee_in, tee_out, restore_in, back_w, back_r, file_fd;
    struct xensim_dirtier *dirtier;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct xensim_snapshot *snaps[MAX_CKPT + 2];
    unsigned int suspends;         /* save side */
    unsigned int r_checkpoints;    /* restore side checkpoint callbacks */
    unsigned int r_postcopies;     /* restore side postcopy callbacks */
    unsigned long store_mfn, console_mfn;
    int failed;
    int save_done;
};

static void rt_fail(struct rt *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void rt_fail(struct rt *t, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&t->lock);
    if (!t->failed) {
        va_start(ap, fmt);
        vsnprintf(t->r->failure, sizeof(t->r->failure), fmt, ap);
        va_end(ap);
        t->failed = 1;
        fprintf(stderr, "harness: %s\n", t->r->failure);
    }
    pthread_mutex_unlock(&t->lock);
}

static struct xensim_snapshot *wait_snap(struct rt *t, unsigned int k)
{
    struct xensim_snapshot *s;
    double deadline = harness_now() + 600;

    pthread_mutex_lock(&t->lock);
    while (t->suspends < k && !t->failed && !t->save_done &&
           harness_now() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&t->cond, &t->lock, &ts);
    }
    s = k <= MAX_CKPT ? t->snaps[k] : NULL;
    pthread_mutex_unlock(&t->lock);
    return s;
}

static void check_against(struct rt *t, unsigned int k, unsigned int what,
                          const char *when)
{
    struct xensim_snapshot *s;
    struct xensim_diff diff;
    int rc;

    if (t->o->no_compare)
        return;
    s = wait_snap(t, k);
    if (!s) {
        rt_fail(t, "%s: no snapshot of the primary at suspend %u", when, k);
        return;
    }
    rc = xensim_compare_snapshot(s, t->o->dst,
                                 what | (t->o->holes_ok ? XENSIM_CMP_REF_HOLES : 0),
                                 &diff);
    if (rc < 0)
        rt_fail(t, "%s: compare failed: %s", when, strerror(-rc));
    else if (rc)
        rt_fail(t, "%s: secondary differs from primary at suspend %u: %s: %s",
                when, k, diff.what, diff.text);
    else {
        pthread_mutex_lock(&t->lock);
        t->r->compared++;
        pthread_mutex_unlock(&t->lock);
    }
}

/* Deterministic guest writes while a domain runs. */
static void burst(struct rt *t, uint32_t dom, unsigned int n, unsigned int k,
                  uint64_t salt)
{
    struct xensim_dominfo info;
    uint64_t first, count;

    if (!n || xensim_dominfo(dom, &info))
        return;
    first = t->o->dirty_count ? t->o->dirty_first : 0;
    count = t->o->dirty_count ? t->o->dirty_count : 0x80;
    for (unsigned int i = 0; i < n; i++) {
        uint64_t gfn = first + ((uint64_t)k * 131 + i * 7 + salt) % count;
        uint64_t v[4] = {salt, k, i, gfn};
        int rc;
        if (xensim_gfn_present(dom, gfn) != 1 ||
            (gfn >= 0xfeff8 && gfn < 0xff000))
            continue;
        rc = xensim_guest_write(dom, gfn, (i * 32) % 4096, v, sizeof(v));
        if (rc)
            rt_fail(t, "guest write d%u gfn %#llx: %s", dom,
                    (unsigned long long)gfn, strerror(-rc));
    }
}

/* -- save-side callbacks -- */

static int s_suspend(void *data)
{
    struct rt *t = data;
    struct xensim_snapshot *s = NULL;
    unsigned int k;

    if (xc_domain_shutdown(t->xs, t->o->src, SHUTDOWN_suspend)) {
        rt_fail(t, "xc_domain_shutdown(suspend): %s", strerror(errno));
        return 0;
    }
    if (t->o->stream != XC_STREAM_PLAIN && !t->o->no_compare) {
        s = xensim_snapshot(t->o->src);
        if (!s)
            rt_fail(t, "snapshot of d%u at a suspend failed", t->o->src);
    }
    pthread_mutex_lock(&t->lock);
    k = ++t->suspends;
    if (k <= MAX_CKPT)
        t->snaps[k] = s;
    else
        xensim_snapshot_free(s);
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
    return 1;
}

static int s_postcopy(void *data)
{
    struct rt *t = data;
    unsigned int k = t->suspends;

    if (xc_domain_resume(t->xs, t->o->src, 1)) {
        rt_fail(t, "xc_domain_resume(d%u): %s", t->o->src, strerror(errno));
        return 0;
    }
    burst(t, t->o->src, t->o->burst_pages, k, 0x5a);
    if (t->o->between_checkpoints)
        t->o->between_checkpoints(t->o->arg, k);
    return 1;
}

static int s_checkpoint(void *data)
{
    struct rt *t = data;

    if (t->o->stream == XC_STREAM_COLO)
        return 1; /* the secondary is always ready here */
    return t->suspends < t->o->checkpoints && !t->failed ? 1 : 0;
}

static int s_wait_checkpoint(void *data)
{
    struct rt *t = data;

    return t->suspends < t->o->checkpoints && !t->failed ? 1 : 0;
}

static int s_switch_qemu_logdirty(uint32_t domid, unsigned int enable,
                                  void *data)
{
    (void)domid;
    (void)enable;
    (void)data;
    return 0;
}

/* -- restore-side callbacks -- */

static int r_checkpoint(void *data)
{
    struct rt *t = data;
    unsigned int k = ++t->r_checkpoints;
    char when[64];

    if (t->o->restore_checkpoint)
        t->o->restore_checkpoint(t->o->arg, k);
    if (t->o->stream == XC_STREAM_REMUS) {
        snprintf(when, sizeof(when), "remus restore checkpoint %u", k);
        /* records of checkpoint k are applied after this callback */
        check_against(t, k > 1 ? k - 1 : 1,
                      XENSIM_CMP_RAM | XENSIM_CMP_PARAMS, when);
    }
    return t->failed ? XGR_CHECKPOINT_ERROR : XGR_CHECKPOINT_SUCCESS;
}

static int r_postcopy(void *data)
{
    struct rt *t = data;
    unsigned int k = ++t->r_postcopies;
    char when[64];
    struct xensim_dominfo info;

    snprintf(when, sizeof(when), "colo secondary postcopy %u", k);
    check_against(t, k, XENSIM_CMP_ALL, when);
    if (xensim_dominfo(t->o->dst, &info))
        return 0;
    if (k == 1) {
        /* what libxl's COLO does for the secondary: track its dirtying */
        if (xc_shadow_control(t->xr, t->o->dst,
                              XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0))
            rt_fail(t, "enable log-dirty on the secondary: %s",
                    strerror(errno));
    }
    if (info.shutdown && xc_domain_resume(t->xr, t->o->dst, 1))
        rt_fail(t, "resume secondary: %s", strerror(errno));
    if (info.paused && xc_domain_unpause(t->xr, t->o->dst))
        rt_fail(t, "unpause secondary: %s", strerror(errno));
    return t->failed ? 0 : 1;
}

static int r_wait_checkpoint(void *data)
{
    struct rt *t = data;
    unsigned int k = t->r_postcopies;

    if (t->o->secondary_running)
        t->o->secondary_running(t->o->arg, k);
    burst(t, t->o->dst, t->o->secondary_pages, k, 0xa5);
    if (k >= t->o->checkpoints)
        return 2; /* the primary is done: fail over */
    return t->failed ? 0 : 1;
}

static int r_suspend(void *data)
{
    struct rt *t = data;

    if (xc_domain_shutdown(t->xr, t->o->dst, SHUTDOWN_suspend)) {
        rt_fail(t, "suspend secondary: %s", strerror(errno));
        return 0;
    }
    return 1;
}

static void r_restore_results(xen_pfn_t store, xen_pfn_t console, void *data)
{
    struct rt *t = data;

    t->store_mfn = store;
    t->console_mfn = console;
}

/* -- threads -- */

static void *save_thread(void *arg)
{
    struct rt *t = arg;
    harness_save_fn fn = t->o->save ? t->o->save : harness_stock_save();
    struct save_callbacks cb = {
        .suspend = s_suspend,
        .switch_qemu_logdirty = s_switch_qemu_logdirty,
        .data = t,
    };
    double t0 = harness_now();

    if (t->o->stream != XC_STREAM_PLAIN) {
        cb.postcopy = s_postcopy;
        cb.checkpoint = s_checkpoint;
    }
    if (t->o->stream == XC_STREAM_COLO)
        cb.wait_checkpoint = s_wait_checkpoint;
    errno = 0;
    t->r->save_rc = fn(t->xs, t->save_out, t->o->src,
                       t->o->live ? XCFLAGS_LIVE : 0, &cb, t->o->stream,
                       t->o->stream == XC_STREAM_COLO ? t->back_r : -1);
    t->r->save_errno = errno;
    t->r->save_secs = harness_now() - t0;
    pthread_mutex_lock(&t->lock);
    t->save_done = 1;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
    close(t->save_out);
    t->save_out = -1;
    if (t->back_r >= 0) {
        close(t->back_r);   /* a restorer still writing gets EPIPE */
        t->back_r = -1;
    }
    return NULL;
}

static void *restore_thread(void *arg)
{
    struct rt *t = arg;
    struct restore_callbacks cb = {.data = t};
    harness_restore_fn fn = t->o->restore ? t->o->restore : harness_stock_restore();
    struct xensim_dominfo src;
    double t0 = harness_now();

    if (xensim_dominfo(t->o->src, &src)) {
        rt_fail(t, "no source domain");
        close(t->restore_in);
        return NULL;
    }
    if (t->o->stream != XC_STREAM_PLAIN)
        cb.checkpoint = r_checkpoint;
    if (t->o->stream == XC_STREAM_COLO) {
        cb.postcopy = r_postcopy;
        cb.wait_checkpoint = r_wait_checkpoint;
        cb.suspend = r_suspend;
        cb.restore_results = r_restore_results;
    }
    errno = 0;
    t->r->restore_rc = fn(
        t->xr, t->restore_in, t->o->dst,
        (unsigned int)src.hvm_param[HVM_PARAM_STORE_EVTCHN], &t->store_mfn, 0,
        (unsigned int)src.hvm_param[HVM_PARAM_CONSOLE_EVTCHN], &t->console_mfn,
        0, t->o->stream, &cb, t->o->stream == XC_STREAM_COLO ? t->back_w : -1);
    t->r->restore_errno = errno;
    t->r->restore_secs = harness_now() - t0;
    close(t->restore_in);
    t->restore_in = -1;
    if (t->back_w >= 0) {
        close(t->back_w);   /* a saver waiting for a dirty list gets EOF */
        t->back_w = -1;
    }
    return NULL;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Copy save -> (file, restore).  If the restore side stops reading, keep
 * draining so the saver never blocks forever. */
static void *tee_thread(void *arg)
{
    struct rt *t = arg;
    static __thread char buf[1 << 20];
    int out_ok = 1;

    for (;;) {
        ssize_t n = read(t->tee_in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        t->r->stream_bytes += (uint64_t)n;
        if (t->file_fd >= 0 && write_all(t->file_fd, buf, (size_t)n))
            rt_fail(t, "writing the stream file: %s", strerror(errno));
        if (out_ok && write_all(t->tee_out, buf, (size_t)n)) {
            out_ok = 0;
            close(t->tee_out);
            t->tee_out = -1;
        }
    }
    close(t->tee_in);
    t->tee_in = -1;
    if (t->tee_out >= 0) {
        close(t->tee_out);
        t->tee_out = -1;
    }
    return NULL;
}

static void big_pipe(int p[2])
{
    if (pipe2(p, O_CLOEXEC))
        H_FAIL("pipe: %s", strerror(errno));
    fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
}

int harness_round_trip(const struct harness_opts *o, struct harness_result *r)
{
    struct rt t;
    pthread_t ts, tr, tt;
    int a[2], b[2], c[2] = {-1, -1};
    char defpath[4096];
    const char *path = o->stream_path;
    double t0 = harness_now();
    struct xensim_dominfo sinfo, dinfo;
    struct xensim_diff diff;
    int rc;

    signal(SIGPIPE, SIG_IGN);
    memset(r, 0, sizeof(*r));
    r->verify_rc = -1;
    memset(&t, 0, sizeof(t));
    t.o = o;
    t.r = r;
    pthread_mutex_init(&t.lock, NULL);
    pthread_cond_init(&t.cond, NULL);
    if (!path) {
        const char *dir = getenv("XENSIM_DIR");
        snprintf(defpath, sizeof(defpath), "%s/stream.bin", dir ? dir : ".");
        path = defpath;
    }
    t.file_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (t.file_fd < 0)
        H_FAIL("open %s: %s", path, strerror(errno));
    big_pipe(a);
    big_pipe(b);
    if (o->stream == XC_STREAM_COLO)
        big_pipe(c);
    t.save_out = a[1];
    t.tee_in = a[0];
    t.tee_out = b[1];
    t.restore_in = b[0];
    t.back_r = c[0];
    t.back_w = c[1];
    t.xs = harness_xc_open();
    t.xr = harness_xc_open();
    if (o->dirty_rate)
        t.dirtier = xensim_dirtier_start(o->src, o->dirty_first,
                                         o->dirty_count, o->dirty_rate, 77);

    pthread_create(&tt, NULL, tee_thread, &t);
    pthread_create(&tr, NULL, restore_thread, &t);
    pthread_create(&ts, NULL, save_thread, &t);
    pthread_join(ts, NULL);
    pthread_join(tr, NULL);
    pthread_join(tt, NULL);
    r->wall_secs = harness_now() - t0;
    if (t.dirtier)
        r->dirtier_writes = xensim_dirtier_stop(t.dirtier);
    close(t.file_fd);
    r->suspends = t.suspends;

    if (o->expect_save_fail || o->expect_restore_fail) {
        if (o->expect_save_fail && r->save_rc == 0)
            rt_fail(&t, "the save succeeded but was expected to fail");
        if (o->expect_restore_fail && r->restore_rc == 0)
            rt_fail(&t, "the restore succeeded but was expected to fail");
        if (!o->expect_save_fail && r->save_rc)
            rt_fail(&t, "save returned %d (errno %d %s)", r->save_rc,
                    r->save_errno, strerror(r->save_errno));
    } else if (r->save_rc) {
        rt_fail(&t, "save returned %d (errno %d %s)", r->save_rc, r->save_errno,
                strerror(r->save_errno));
    } else if (r->restore_rc) {
        rt_fail(&t, "restore returned %d (errno %d %s)", r->restore_rc,
                r->restore_errno, strerror(r->restore_errno));
    }
    if (!o->expect_save_fail && !o->expect_restore_fail &&
        o->stream != XC_STREAM_PLAIN &&
        t.suspends != o->checkpoints)
        rt_fail(&t, "%u checkpoints saved, %u wanted", t.suspends,
                o->checkpoints);

    if (!t.failed && !o->expect_save_fail && !o->expect_restore_fail &&
        !o->no_compare) {
        xensim_dominfo(o->src, &sinfo);
        xensim_dominfo(o->dst, &dinfo);
        if (o->stream == XC_STREAM_PLAIN) {
            rc = xensim_compare_domains(o->src, o->dst, XENSIM_CMP_ALL, &diff);
            if (rc)
                rt_fail(&t, "target differs from source: %s: %s", diff.what,
                        rc < 0 ? strerror(-rc) : diff.text);
            else
                r->compared++;
        } else if (o->stream == XC_STREAM_REMUS) {
            check_against(&t, t.suspends, XENSIM_CMP_ALL, "remus failover");
        } else if (t.r_postcopies != o->checkpoints) {
            rt_fail(&t, "COLO secondary saw %u checkpoints, %u wanted",
                    t.r_postcopies, o->checkpoints);
        }
        if (!t.failed && (t.store_mfn != sinfo.hvm_param[HVM_PARAM_STORE_PFN] ||
                          t.console_mfn != sinfo.hvm_param[HVM_PARAM_CONSOLE_PFN]))
            rt_fail(&t, "restore reported store %#lx console %#lx, source has "
                        "%#llx %#llx", t.store_mfn, t.console_mfn,
                    (unsigned long long)sinfo.hvm_param[HVM_PARAM_STORE_PFN],
                    (unsigned long long)sinfo.hvm_param[HVM_PARAM_CONSOLE_PFN]);
        if (!t.failed &&
            (dinfo.hvm_param[HVM_PARAM_STORE_EVTCHN] !=
                 sinfo.hvm_param[HVM_PARAM_STORE_EVTCHN] ||
             dinfo.hvm_param[HVM_PARAM_CONSOLE_EVTCHN] !=
                 sinfo.hvm_param[HVM_PARAM_CONSOLE_EVTCHN]))
            rt_fail(&t, "event channel params not set by restore");
    }

    if (!o->no_verify && !o->expect_save_fail && !o->expect_restore_fail) {
        int trunc;
        r->verify_rc = harness_verify_stream(path, &trunc);
        if (r->verify_rc != 0) {
            if (o->stream != XC_STREAM_PLAIN && trunc &&
                harness_stream_ends_at_checkpoint(path))
                r->verify_rc = 0; /* ends at failover: no END record */
            else
                rt_fail(&t, "verify-stream-v2 rejected %s (exit %d)", path,
                        r->verify_rc);
        }
    }

    for (unsigned int k = 0; k <= MAX_CKPT + 1; k++)
        xensim_snapshot_free(t.snaps[k]);
    harness_xc_close(t.xs);
    harness_xc_close(t.xr);
    return t.failed ? -1 : 0;
}
