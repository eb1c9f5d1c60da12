// SPDX-License-Identifier: GPL-3.0-only
/*
 * tool_bench_restore: the receiving side of `make bench` (issue 15): how long stock's and
 * xcsave's xc_domain_restore take to APPLY a checkpoint, and how many map calls the secondary
 * makes for it, on the same stream. bench/run.sh runs it (BENCH_RESTORE).
 *
 *   tool_bench_restore --gen FILE --mem-mib N [--dirty N[,N...]]
 *       records one Remus stream with xcsave's saver: the initial live migration of a filled
 *       guest, then one checkpoint per dirty-set size (the bench's clustered hot set of that
 *       size, tool_bench's seeds). The stream format has no stream type: the same bytes feed
 *       a Remus and a COLO restore.
 *   tool_bench_restore --side stock|xcsave --mode remus|colo --stream FILE --mem-mib N
 *                      [--dirty N[,N...]] [--ckpts N] [--warmup N] [--cost-page-ns N]
 *       restores FILE into a fresh empty domain with stock's (dlvsym) or xcsave's
 *       (xcsave_domain_restore) restore: the initial migration once, then, for each size in
 *       turn, its checkpoint --warmup (default 1, "cold") + --ckpts (default 20) times. The
 *       same pfns every time: the bench's "hot" pattern, as the saver's rows.
 *
 * A feeder thread writes the stream into a 64 KiB pipe, one checkpoint at a time, each only
 * after the restore's checkpoint callback for the previous one returned (libxl reads its own
 * records there, so no restore reads ahead). Apply time of checkpoint k: from the return of
 * the restore's checkpoint callback k (the checkpoint has been received and buffered) to
 *   - COLO: the postcopy callback (stream_complete and restore_results done: what the primary
 *     waits for before its own postcopy);
 *   - Remus (no callback after the apply): the restore's first read of checkpoint k+1. The
 *     feeder fills the empty pipe with 64 KiB of it and then blocks on one more byte, which
 *     goes in when the restore has read 4 KiB; so the last checkpoint has no figure.
 * Map calls: xensim's MMAPBATCH counters over the same window (this process's restore is
 * the only user of its XENSIM_DIR); for xcsave, its cache's hits too where the restore keeps
 * cache stats for the secondary (xcsave_cache_stats). Cost model: xensim's busy-wait per
 * mapped page.
 *
 * COLO: the secondary runs between checkpoints as libxl runs it: log-dirty on at the first
 * postcopy, resumed and unpaused at each; it writes 16 of its pages (sent back as
 * CHECKPOINT_DIRTY_PFN_LIST, drained by a thread); suspended at the suspend callback.
 *
 * Output: one line of key=value pairs per dirty-set size. Not a test: there are no
 * thresholds.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "harness.h"
#include "xcsave.h"

#include <xen/hvm/params.h>

#define SRC 7
#define DOM 8
#define MAXK 1024
#define MAXPH 8
#define REC_CHECKPOINT 0x0eu
#define PIPE_BYTES (64u << 10)
#define SECONDARY_PAGES 16

enum side { S_STOCK, S_XCSAVE };
enum mode { M_REMUS, M_COLO };
static const char *side_name[] = {"stock", "xcsave"};
static const char *mode_name[] = {"remus", "colo"};

static struct {
    enum side side;
    enum mode mode;
    uint64_t mem_bytes;
    unsigned int ndirty, dirty[MAXPH], ckpts, warmup;
    uint64_t cost_page_ns;
    const char *gen, *stream;
} opt = {.ckpts = 20, .warmup = 1};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;

    printf("side=%s mode=%s ok=0 error=\"", opt.gen ? "gen" : side_name[opt.side],
           mode_name[opt.mode]);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\"\n");
    fflush(stdout);
    exit(1);
}

/* ------------------------------------------------------------------ recording */

static uint64_t *hots[MAXPH];
static unsigned int nhots[MAXPH];

static void gen_dirty(void *arg, unsigned int k)
{
    (void)arg;
    if (k < 1 || k > opt.ndirty)
        return;
    for (unsigned int i = 0; i < nhots[k - 1]; i++) {
        uint64_t v[2] = {k, hots[k - 1][i]};
        xensim_guest_write(SRC, hots[k - 1][i], (k * 64u) % 4096, v, sizeof(v));
    }
}

/* The harness's restore side while recording: read to EOF. */
static int sink_restore(xc_interface *xch, int io_fd, uint32_t dom, unsigned int se,
                        unsigned long *sm, uint32_t sd, unsigned int ce, unsigned long *cm,
                        uint32_t cd, xc_stream_type_t st, struct restore_callbacks *cb, int bf)
{
    static char buf[1 << 20];

    (void)xch, (void)dom, (void)se, (void)sm, (void)sd, (void)ce, (void)cm, (void)cd;
    (void)st, (void)cb, (void)bf;
    while (read(io_fd, buf, sizeof(buf)) > 0)
        ;
    return 0;
}

static int run_gen(void)
{
    struct harness_opts o;
    struct harness_result r;

    memset(&o, 0, sizeof(o));
    harness_make_pair(SRC, DOM, opt.mem_bytes, 0xbe9c4000);
    o.save = xcsave_domain_save;
    o.restore = sink_restore;
    o.src = SRC;
    o.dst = DOM;
    o.stream = XC_STREAM_REMUS;
    o.live = 1;
    o.checkpoints = 1 + opt.ndirty;
    o.no_compare = 1;
    o.no_verify = 1;
    o.stream_path = opt.gen;
    o.between_checkpoints = gen_dirty;
    if (harness_round_trip(&o, &r))
        die("recording the stream: %s", r.failure);
    printf("side=gen ok=1 mem_mib=%llu stream_bytes=%llu checkpoints=%u\n",
           (unsigned long long)(opt.mem_bytes >> 20), (unsigned long long)r.stream_bytes,
           r.suspends);
    xensim_destroy_domain(SRC);
    xensim_destroy_domain(DOM);
    return 0;
}

/* ------------------------------------------------------------------ the stream */

/* seg[0]: headers and the initial migration through its CHECKPOINT; seg[1 + p]: the
 * checkpoint of dirty-set size p. */
static struct seg {
    const unsigned char *p;
    size_t len;
    uint64_t pages;
} seg[MAXPH + 1];
static unsigned int nseg;

static void load_stream(void)
{
    int fd = open(opt.stream, O_RDONLY);
    struct stat st;
    const unsigned char *m;
    size_t off = 40, start = 0;
    uint64_t pages = 0;

    if (fd < 0 || fstat(fd, &st))
        die("open %s: %s", opt.stream, strerror(errno));
    m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        die("mmap %s: %s", opt.stream, strerror(errno));
    while (off + 8 <= (size_t)st.st_size && nseg <= MAXPH) {
        uint32_t type, len, count;
        memcpy(&type, m + off, 4);
        memcpy(&len, m + off + 4, 4);
        if (type == 1 && len >= 8) {
            memcpy(&count, m + off + 8, 4);
            pages += (len - 8 - 8ull * count) / 4096;
        }
        off += 8 + (((size_t)len + 7) & ~(size_t)7);
        if (type == REC_CHECKPOINT) {
            seg[nseg].p = m + start;
            seg[nseg].len = off - start;
            seg[nseg].pages = pages;
            nseg++;
            start = off;
            pages = 0;
        }
    }
    if (nseg < 1 + opt.ndirty)
        die("%s: %u checkpoints, want %u (record it with --gen and the same --dirty)",
            opt.stream, nseg, 1 + opt.ndirty);
}

/* The segment restored as checkpoint k (1: the initial migration), or NULL past the end. */
static const struct seg *seg_of(unsigned int k, unsigned int *phase, int *measured)
{
    unsigned int per = opt.warmup + opt.ckpts, j = k - 2;

    if (k == 1)
        return &seg[0];
    if (j / per >= opt.ndirty)
        return NULL;
    *phase = j / per;
    *measured = j % per >= opt.warmup;
    return &seg[1 + j / per];
}

/* ------------------------------------------------------------------ restoring */

static struct {
    xc_interface *xch;
    int io_w;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned int k;        /* checkpoint callbacks so far */
    unsigned int fed;      /* checkpoints written into the pipe */
    double t_start, t_first;
    double t_cb[MAXK + 2], t_end[MAXK + 2];
    uint64_t maps_cb[MAXK + 2], maps_end[MAXK + 2], pages_cb[MAXK + 2], pages_end[MAXK + 2];
    /* xcsave's cache stats for the secondary, where its restore keeps some (-1: none) */
    int64_t hits_cb[MAXK + 2], hits_end[MAXK + 2];
    unsigned int postcopies;
} R = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static int64_t cache_hits(void)
{
    XcsaveCacheStats cs;

    return opt.side == S_XCSAVE && xcsave_cache_stats(DOM, &cs) == 0 ? (int64_t)cs.hits : -1;
}

static void mark_end(unsigned int k)
{
    struct xensim_counters c;

    R.t_end[k] = bench_now();
    xensim_counters(&c);
    R.maps_end[k] = c.mmapbatch_calls;
    R.pages_end[k] = c.pages_mapped;
    R.hits_end[k] = cache_hits();
}

/* Writes checkpoint k's bytes once callback k-1 has returned (k = 1 at once). */
static void *feeder(void *arg)
{
    unsigned int ph;
    int measured;

    (void)arg;
    for (unsigned int k = 1; k <= MAXK; k++) {
        const struct seg *s = seg_of(k, &ph, &measured);
        size_t first;

        if (!s)
            break;
        pthread_mutex_lock(&R.lock);
        while (R.k < k - 1)
            pthread_cond_wait(&R.cond, &R.lock);
        pthread_mutex_unlock(&R.lock);
        first = s->len < PIPE_BYTES ? s->len : PIPE_BYTES;
        if (k >= 2 && opt.mode == M_REMUS && first < s->len) {
            /* the pipe is empty (the restore read through CHECKPOINT k-1): fill it, then
             * block until the restore, done applying k-1, reads again */
            if (bench_write_all(R.io_w, s->p, first) || bench_write_all(R.io_w, s->p + first, 1))
                break;
            mark_end(k - 1);
            first++;
        } else {
            first = 0;
        }
        if (bench_write_all(R.io_w, s->p + first, s->len - first))
            break;
        R.fed = k;
    }
    close(R.io_w);
    return NULL;
}

static void *drain_back(void *arg)
{
    char buf[4096];

    while (read((int)(intptr_t)arg, buf, sizeof(buf)) > 0)
        ;
    return NULL;
}

static int r_checkpoint(void *data)
{
    struct xensim_counters c;
    unsigned int k;

    (void)data;
    xensim_counters(&c);
    pthread_mutex_lock(&R.lock);
    k = R.k + 1;
    if (k <= MAXK) {
        R.maps_cb[k] = c.mmapbatch_calls;
        R.pages_cb[k] = c.pages_mapped;
        R.hits_cb[k] = cache_hits();
        if (k == 1)
            R.t_first = bench_now();
        R.t_cb[k] = bench_now(); /* last: the apply starts when we return */
    }
    R.k = k;
    pthread_cond_broadcast(&R.cond);
    pthread_mutex_unlock(&R.lock);
    return XGR_CHECKPOINT_SUCCESS;
}

static int r_postcopy(void *data)
{
    struct xensim_dominfo di;
    unsigned int k = R.k;

    (void)data;
    if (k <= MAXK)
        mark_end(k); /* first: the apply ends when we are called */
    if (++R.postcopies == 1 &&
        xc_shadow_control(R.xch, DOM, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0))
        return 0;
    if (xensim_dominfo(DOM, &di))
        return 0;
    if (di.shutdown && xc_domain_resume(R.xch, DOM, 1))
        return 0;
    if (di.paused && xc_domain_unpause(R.xch, DOM))
        return 0;
    return 1;
}

static int r_wait_checkpoint(void *data)
{
    unsigned int ph;
    int measured;

    (void)data;
    for (unsigned int i = 0; i < SECONDARY_PAGES; i++) { /* the secondary's own writes */
        uint64_t gfn = 0x100 + (R.k * 131u + i * 7u) % 0x80, v[2] = {R.k, i};
        xensim_guest_write(DOM, gfn, (i * 32) % 4096, v, sizeof(v));
    }
    return seg_of(R.k + 1, &ph, &measured) ? 1 : 2; /* 2: the primary is done, fail over */
}

static int r_suspend(void *data)
{
    (void)data;
    return xc_domain_shutdown(R.xch, DOM, SHUTDOWN_suspend) ? 0 : 1;
}

static void r_results(xen_pfn_t store, xen_pfn_t console, void *data)
{
    (void)store, (void)console, (void)data;
}

static int run_restore(void)
{
    struct xensim_domain_config cfg = {.mem_bytes = opt.mem_bytes, .empty = 1, .paused = 1};
    struct restore_callbacks cb = {.checkpoint = r_checkpoint};
    harness_restore_fn fn = opt.side == S_STOCK ? harness_stock_restore() : xcsave_domain_restore;
    unsigned long store = 0, console = 0;
    int io[2], back[2] = {-1, -1}, rc, err;
    pthread_t tf, tb;
    double t_done;

    load_stream();
    if (xensim_create_domain(DOM, &cfg))
        die("create the secondary (%llu MiB)", (unsigned long long)(opt.mem_bytes >> 20));
    R.xch = harness_xc_open();
    xensim_set_cost(0, opt.cost_page_ns);
    if (pipe2(io, O_CLOEXEC))
        die("pipe");
    fcntl(io[1], F_SETPIPE_SZ, PIPE_BYTES);
    if (fcntl(io[1], F_GETPIPE_SZ) != (int)PIPE_BYTES)
        die("pipe size");
    R.io_w = io[1];
    if (opt.mode == M_COLO) {
        if (pipe2(back, O_CLOEXEC))
            die("pipe");
        cb.postcopy = r_postcopy;
        cb.wait_checkpoint = r_wait_checkpoint;
        cb.suspend = r_suspend;
        cb.restore_results = r_results;
        pthread_create(&tb, NULL, drain_back, (void *)(intptr_t)back[0]);
    }
    pthread_create(&tf, NULL, feeder, NULL);
    R.t_start = bench_now();
    errno = 0;
    rc = fn(R.xch, io[0], DOM, 1, &store, 0, 2, &console, 0,
            opt.mode == M_COLO ? XC_STREAM_COLO : XC_STREAM_REMUS, &cb, back[1]);
    err = errno;
    t_done = bench_now();
    close(io[0]);
    pthread_join(tf, NULL);
    if (back[1] >= 0) {
        close(back[1]);
        pthread_join(tb, NULL);
    }
    for (unsigned int ph = 0; ph < opt.ndirty; ph++) {
        double dt[MAXK], sum = 0, cold = 0;
        uint64_t maps = 0, pages = 0, cold_maps = 0, hits = 0;
        unsigned int n = 0, ncold = 0;
        int has_hits = 1;

        for (unsigned int k = 2; k <= R.k && k <= MAXK; k++) {
            unsigned int p;
            int measured;
            if (!seg_of(k, &p, &measured) || p != ph || R.t_end[k] <= 0)
                continue;
            if (!measured) {
                cold += R.t_end[k] - R.t_cb[k];
                cold_maps += R.maps_end[k] - R.maps_cb[k];
                ncold++;
                continue;
            }
            dt[n] = R.t_end[k] - R.t_cb[k];
            sum += dt[n++];
            maps += R.maps_end[k] - R.maps_cb[k];
            pages += R.pages_end[k] - R.pages_cb[k];
            if (R.hits_cb[k] >= 0 && R.hits_end[k] >= R.hits_cb[k])
                hits += (uint64_t)(R.hits_end[k] - R.hits_cb[k]);
            else
                has_hits = 0;
        }
        printf("side=%s mode=%s mem_mib=%llu cost_page_ns=%llu dirty=%u ok=%d restore_rc=%d",
               side_name[opt.side], mode_name[opt.mode],
               (unsigned long long)(opt.mem_bytes >> 20), (unsigned long long)opt.cost_page_ns,
               opt.dirty[ph], rc == 0 && n > 0, rc);
        if (rc)
            printf(" errno=%d", err);
        printf(" ckpts=%u ckpt_pages=%llu ckpt_bytes=%zu apply_p50_ms=%.3f apply_p90_ms=%.3f"
               " apply_mean_ms=%.3f apply_cold_ms=%.3f cold_maps=%.2f warm_maps_per_ckpt=%.2f"
               " warm_pages_mapped_per_ckpt=%.1f first_pass_s=%.3f restore_s=%.3f",
               n, (unsigned long long)seg[1 + ph].pages, seg[1 + ph].len,
               bench_pct(dt, n, 50) * 1e3, bench_pct(dt, n, 90) * 1e3, n ? sum / n * 1e3 : 0.0,
               ncold ? cold / ncold * 1e3 : 0.0, ncold ? (double)cold_maps / ncold : 0.0,
               n ? (double)maps / n : 0.0, n ? (double)pages / n : 0.0,
               R.t_first > 0 ? R.t_first - R.t_start : 0.0, t_done - R.t_start);
        if (has_hits && n)
            printf(" cache_hits_per_ckpt=%.1f", (double)hits / n);
        if (rc)
            printf(" error=\"restore returned %d (errno %d %s), fed %u of %u checkpoints\"", rc,
                   err, strerror(err), R.fed, R.k);
        else if (!n)
            printf(" error=\"no measured checkpoint\"");
        printf("\n");
    }
    xensim_destroy_domain(DOM);
    return rc ? 1 : 0;
}

/* ------------------------------------------------------------------ main */

static void usage(void)
{
    fprintf(stderr, "usage: tool_bench_restore --gen FILE --mem-mib N [--dirty N,...]\n"
                    "       tool_bench_restore --side stock|xcsave --mode remus|colo --stream "
                    "FILE --mem-mib N [--dirty N,...] [--ckpts N] [--warmup N] "
                    "[--cost-page-ns N]\n");
    exit(2);
}

static int pick(const char *v, const char **names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i]))
            return i;
    usage();
    return -1;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"side", 1, 0, 's'},   {"mode", 1, 0, 'm'},         {"mem-mib", 1, 0, 'M'},
        {"dirty", 1, 0, 'd'},  {"ckpts", 1, 0, 'c'},        {"warmup", 1, 0, 'w'},
        {"gen", 1, 0, 'g'},    {"stream", 1, 0, 'f'},       {"cost-page-ns", 1, 0, 'p'},
        {0, 0, 0, 0}};
    int ch;

    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 's': opt.side = pick(optarg, side_name, 2); break;
        case 'm': opt.mode = pick(optarg, mode_name, 2); break;
        case 'M': opt.mem_bytes = strtoull(optarg, NULL, 0) << 20; break;
        case 'd': {
            char *e = optarg;
            opt.ndirty = 0;
            while (*e && opt.ndirty < MAXPH) {
                opt.dirty[opt.ndirty++] = (unsigned int)strtoul(e, &e, 0);
                if (*e == ',')
                    e++;
            }
            break;
        }
        case 'c': opt.ckpts = (unsigned int)strtoul(optarg, NULL, 0); break;
        case 'w': opt.warmup = (unsigned int)strtoul(optarg, NULL, 0); break;
        case 'g': opt.gen = optarg; break;
        case 'f': opt.stream = optarg; break;
        case 'p': opt.cost_page_ns = strtoull(optarg, NULL, 0); break;
        default: usage();
        }
    }
    if (!opt.ndirty)
        opt.dirty[opt.ndirty++] = 2048;
    if (!opt.mem_bytes || opt.ckpts < 1 || (!opt.gen && !opt.stream) ||
        1 + opt.ndirty * (opt.warmup + opt.ckpts) >= MAXK)
        usage();
    signal(SIGPIPE, SIG_IGN);
    for (unsigned int p = 0; p < opt.ndirty; p++) {
        nhots[p] = opt.dirty[p];
        hots[p] = bench_hot_set(opt.mem_bytes, &nhots[p], 0x5eed0000u + opt.dirty[p] + p);
        if (!hots[p])
            die("a working set of %u pages does not fit %llu MiB", opt.dirty[p],
                (unsigned long long)(opt.mem_bytes >> 20));
    }
    return opt.gen ? run_gen() : run_restore();
}
