// SPDX-License-Identifier: GPL-3.0-only
/*
 * tool_demo (`make demo`): COLO replication on xensim. A simulated primary replicates to a
 * simulated secondary: the primary saves with xcsave, the secondary restores with the STOCK
 * xc_domain_restore (the harness's plumbing: pipes, tee to a file, back channel,
 * verify-stream-v2). One live line per checkpoint; at every checkpoint the secondary is
 * compared with the primary's state at suspend (RAM, HVM context, params). Then the same
 * workload with the stock saver, the same lines, and the ratios. A summary, the
 * per-checkpoint table and a plot go to $DEMO_OUT (default build/demo).
 *
 * Environment: DEMO_MEM_MIB (256), DEMO_CKPTS (20), DEMO_DIRTY (2048 pages per checkpoint),
 * XENSIM_COST_PAGE_NS (cost model, default 2000: 2 us per mapped page, a modelled Xen; 0 is
 * bare Linux mmap), DEMO_OUT.
 *
 * The harness keeps the primary's snapshot of every checkpoint until the end, so memory use
 * is about guest size x checkpoints.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "harness.h"
#include "xcsave.h"

#define MAXK 256

struct ck {
    double t_sus, t_post, dt;
    uint64_t pages, bytes, map_calls, hits, cache_maps;
    int verified;
};

static struct demo {
    const char *name;
    harness_save_fn real;
    int is_xcsave;
    uint32_t src;
    struct save_callbacks *orig;
    struct harness_result *res;
    unsigned int k, ckpts;
    XcsaveCacheStats s_sus;
    struct ck ck[MAXK + 1];
    uint64_t *hot;
    unsigned int nhot;
} D;

/*
 * The primary's stream passes through a counting proxy (a thread) on its way to the harness's
 * pipe: it parses the record framing and counts, per checkpoint (CHECKPOINT record), bytes,
 * PAGE_DATA records (= the stock saver's map calls: one per batch) and data pages. (xensim's
 * counters would also count the secondary's restore, which runs in this process.)
 */
static struct proxy {
    int in, out;
    uint64_t off, seg_start, seg_pages, seg_recs;
    uint64_t bytes[MAXK + 1], pages[MAXK + 1], recs[MAXK + 1];
    unsigned int nckpt;
    int failed;
} P;

/*
 * The proxy holds each checkpoint's bytes until its CHECKPOINT record has been read, then
 * forwards them (another thread): the saver writes into memory (like a socket's send buffer
 * on a fast link), and the secondary's restore, the stream's copy to a file and the state
 * comparisons do not compete with the saver for the 2 cores during its downtime. The same for
 * both savers.
 */
struct qblk {
    struct qblk *next;
    size_t len, pos;
    unsigned char data[];
};
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct qblk *head, *tail;
    uint64_t received, released, sent;
    int eof;
} Q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0, 0, 0};

static void q_put(const void *p, size_t n)
{
    struct qblk *b = malloc(sizeof(*b) + n);

    if (!b)
        H_FAIL("out of memory");
    b->next = NULL;
    b->len = n;
    b->pos = 0;
    memcpy(b->data, p, n);
    pthread_mutex_lock(&Q.lock);
    if (Q.tail)
        Q.tail->next = b;
    else
        Q.head = b;
    Q.tail = b;
    Q.received += n;
    pthread_mutex_unlock(&Q.lock);
}

static void q_release(uint64_t upto)
{
    pthread_mutex_lock(&Q.lock);
    Q.released = upto > Q.received ? Q.received : upto;
    pthread_cond_broadcast(&Q.cond);
    pthread_mutex_unlock(&Q.lock);
}

static void *proxy_thread(void *arg)
{
    static unsigned char buf[1 << 20];
    unsigned char hdr[24];
    size_t have = 0, need = 40; /* image + domain header first */
    uint64_t skip = 0;
    int st = 0;                 /* 0 headers, 1 record header, 2 page-data header, 3 skip */
    uint32_t type = 0, len = 0;

    (void)arg;
    for (;;) {
        ssize_t n = read(P.in, buf, sizeof(buf));
        size_t i = 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        q_put(buf, (size_t)n);
        while (i < (size_t)n) {
            if (st == 3) {
                uint64_t k = (uint64_t)n - i < skip ? (uint64_t)n - i : skip;
                i += k;
                P.off += k;
                skip -= k;
                if (!skip) {
                    st = 1;
                    have = 0;
                    need = 8;
                }
                continue;
            }
            if (st == 0) { /* 40 bytes, not kept */
                size_t k = (size_t)n - i < need - have ? (size_t)n - i : need - have;
                i += k;
                P.off += k;
                have += k;
                if (have == need) {
                    st = 1;
                    have = 0;
                    need = 8;
                }
                continue;
            }
            {
                size_t k = (size_t)n - i < need - have ? (size_t)n - i : need - have;
                memcpy(hdr + have, buf + i, k);
                i += k;
                P.off += k;
                have += k;
                if (have < need)
                    continue;
            }
            if (st == 1) {
                memcpy(&type, hdr, 4);
                memcpy(&len, hdr + 4, 4);
                if (type == 1 && len >= 8) {
                    st = 2;
                    need = 16;
                    continue;
                }
                skip = (len + 7u) & ~7u;
                if (type == 0x0e) { /* CHECKPOINT */
                    unsigned int c = P.nckpt + 1;
                    if (c <= MAXK) {
                        P.bytes[c] = P.off - P.seg_start;
                        P.pages[c] = P.seg_pages;
                        P.recs[c] = P.seg_recs;
                    }
                    P.seg_start = P.off;
                    P.seg_pages = P.seg_recs = 0;
                    __atomic_store_n(&P.nckpt, c, __ATOMIC_RELEASE);
                    q_release(P.off); /* through this record */
                }
            } else { /* page data header */
                uint32_t count;
                memcpy(&count, hdr + 8, 4);
                skip = len - 8;
                if (len > 8 + 8ull * count) {
                    P.seg_pages += (len - 8 - 8ull * count) / 4096;
                    P.seg_recs++;
                }
            }
            st = skip ? 3 : 1;
            have = 0;
            need = 8;
        }
    }
    close(P.in);
    q_release(UINT64_MAX); /* the rest (END record, or a cut-off stream) */
    pthread_mutex_lock(&Q.lock);
    Q.eof = 1;
    pthread_cond_broadcast(&Q.cond);
    pthread_mutex_unlock(&Q.lock);
    return NULL;
}

/* Forward released bytes to the harness (-> tee -> stock restore). */
static void *forward_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&Q.lock);
    for (;;) {
        struct qblk *b;
        uint64_t avail;
        size_t n;

        while (Q.head && Q.head->pos == Q.head->len) {
            b = Q.head;
            Q.head = b->next;
            if (!Q.head)
                Q.tail = NULL;
            free(b);
        }
        avail = (Q.eof ? Q.received : Q.released) - Q.sent;
        if (!avail || !Q.head) {
            if (Q.eof)
                break;
            pthread_cond_wait(&Q.cond, &Q.lock);
            continue;
        }
        b = Q.head;
        n = b->len - b->pos;
        if (n > avail)
            n = (size_t)avail;
        pthread_mutex_unlock(&Q.lock);
        for (size_t w = 0; w < n && !P.failed;) {
            ssize_t k = write(P.out, b->data + b->pos + w, n - w);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                P.failed = 1;
            else
                w += (size_t)k;
        }
        pthread_mutex_lock(&Q.lock);
        b->pos += n;
        Q.sent += n;
    }
    pthread_mutex_unlock(&Q.lock);
    return NULL;
}

static int w_suspend(void *data)
{
    int rc = D.orig->suspend(D.orig->data); /* the harness snapshots the primary here */

    (void)data;
    if (D.k < MAXK)
        D.k++;
    if (D.is_xcsave)
        xcsave_cache_stats(D.src, &D.s_sus);
    D.ck[D.k].t_sus = bench_now();
    return rc;
}

static int w_postcopy(void *data)
{
    struct ck *c = &D.ck[D.k];
    XcsaveCacheStats sp;
    double deadline;
    const char *v;

    (void)data;
    c->t_post = bench_now();
    c->dt = c->t_post - c->t_sus;
    if (D.is_xcsave && xcsave_cache_stats(D.src, &sp) == 0) {
        c->hits = sp.hits - D.s_sus.hits;
        c->cache_maps = sp.maps - D.s_sus.maps;
    }
    deadline = bench_now() + 120;
    while (__atomic_load_n(&P.nckpt, __ATOMIC_ACQUIRE) < D.k && bench_now() < deadline)
        usleep(100);
    if (D.k <= P.nckpt) {
        c->pages = P.pages[D.k];
        c->bytes = P.bytes[D.k];
        c->map_calls = D.is_xcsave ? c->cache_maps : P.recs[D.k];
    }
    /* like libxl's COLO: wait for the secondary to have applied (and here: verified) it */
    while (__atomic_load_n(&D.res->compared, __ATOMIC_ACQUIRE) < D.k && !D.res->failure[0] &&
           bench_now() < deadline)
        usleep(500);
    c->verified = __atomic_load_n(&D.res->compared, __ATOMIC_ACQUIRE) >= D.k;
    v = c->verified ? "secondary == primary at suspend: yes" : "secondary NOT verified";
    if (D.k == 1)
        printf("[%-6s] ckpt %3u/%u  initial live migration: %llu pages; its last (suspended) "
               "round took %.3f ms  %s\n",
               D.name, D.k, D.ckpts, (unsigned long long)c->pages, c->dt * 1e3, v);
    else if (D.is_xcsave)
        printf("[%-6s] ckpt %3u/%u  dirty %6llu pages  downtime %8.3f ms  %7.1f MB/s"
               "  cache hits %6llu maps %3llu  %s\n",
               D.name, D.k, D.ckpts, (unsigned long long)c->pages, c->dt * 1e3,
               c->bytes / c->dt / 1e6, (unsigned long long)c->hits,
               (unsigned long long)c->map_calls, v);
    else
        printf("[%-6s] ckpt %3u/%u  dirty %6llu pages  downtime %8.3f ms  %7.1f MB/s"
               "  cache    -- maps %3llu  %s\n",
               D.name, D.k, D.ckpts, (unsigned long long)c->pages, c->dt * 1e3,
               c->bytes / c->dt / 1e6, (unsigned long long)c->map_calls, v);
    fflush(stdout);
    return D.orig->postcopy(D.orig->data);
}

static int w_checkpoint(void *data)
{
    (void)data;
    return D.orig->checkpoint(D.orig->data);
}

static int w_wait_checkpoint(void *data)
{
    (void)data;
    return D.orig->wait_checkpoint(D.orig->data);
}

static int w_logdirty(uint32_t domid, unsigned int enable, void *data)
{
    (void)data;
    return D.orig->switch_qemu_logdirty(domid, enable, D.orig->data);
}

static int demo_save(xc_interface *xch, int io_fd, uint32_t dom, uint32_t flags,
                     struct save_callbacks *cb, xc_stream_type_t stream_type, int recv_fd)
{
    struct save_callbacks w = *cb;
    pthread_t th, tf;
    int p[2], rc;

    if (pipe2(p, O_CLOEXEC))
        return -1;
    fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    memset(&P, 0, sizeof(P));
    P.in = p[0];
    P.out = io_fd;
    Q.head = Q.tail = NULL;
    Q.received = Q.released = Q.sent = 0;
    Q.eof = 0;
    pthread_create(&th, NULL, proxy_thread, NULL);
    pthread_create(&tf, NULL, forward_thread, NULL);
    D.orig = cb;
    w.suspend = w_suspend;
    w.postcopy = w_postcopy;
    w.checkpoint = cb->checkpoint ? w_checkpoint : NULL;
    w.wait_checkpoint = cb->wait_checkpoint ? w_wait_checkpoint : NULL;
    w.switch_qemu_logdirty = w_logdirty;
    w.data = NULL;
    rc = D.real(xch, p[1], dom, flags, &w, stream_type, recv_fd);
    close(p[1]);
    pthread_join(th, NULL);
    pthread_join(tf, NULL);
    return rc;
}

/* The primary's guest dirties its working set while it runs between checkpoints. */
static void dirty_working_set(void *arg, unsigned int k)
{
    (void)arg;
    for (unsigned int i = 0; i < D.nhot; i++) {
        uint64_t v[2] = {k, D.hot[i]};
        xensim_guest_write(D.src, D.hot[i], (k * 64u) % 4096, v, sizeof(v));
    }
}

struct summary {
    double p50, p99, tput, tput_all;
    double maps_warm, hits_warm;
    unsigned int verified, n;
    int ok;
    double wall;
};

static struct ck saved[2][MAXK + 1];

static struct summary run(const char *name, int xc, uint32_t src, uint32_t dst,
                          uint64_t mem, unsigned int ckpts, unsigned int slot)
{
    struct harness_opts o;
    struct harness_result r;
    struct summary s;
    double dts[MAXK], bytes = 0, sum = 0;
    unsigned int n = 0, nw = 0;

    memset(&o, 0, sizeof(o));
    memset(&s, 0, sizeof(s));
    memset(&D.ck, 0, sizeof(D.ck));
    harness_make_pair(src, dst, mem, 0xd3e40000u);
    D.name = name;
    D.is_xcsave = xc;
    D.real = xc ? xcsave_domain_save : harness_stock_save();
    D.src = src;
    D.k = 0;
    D.ckpts = ckpts;
    D.res = &r;
    o.save = demo_save;
    o.src = src;
    o.dst = dst;
    o.stream = XC_STREAM_COLO;
    o.live = 1;
    o.checkpoints = ckpts;
    o.secondary_pages = 16; /* the secondary's own writes come back as DIRTY_PFN_LIST */
    o.between_checkpoints = dirty_working_set;
    printf("\n== %s primary -> stock xc_domain_restore secondary: %llu MiB guest, COLO, %u "
           "checkpoints (checkpoint 1 ends the initial live migration) ==\n",
           name, (unsigned long long)(mem >> 20), ckpts);
    fflush(stdout);
    s.ok = harness_round_trip(&o, &r) == 0;
    s.wall = r.wall_secs;
    s.verified = r.compared;
    for (unsigned int k = 2; k <= D.k && k <= MAXK; k++) {
        dts[n++] = D.ck[k].dt;
        bytes += (double)D.ck[k].bytes;
        sum += D.ck[k].dt;
        if (k >= 3) {
            s.maps_warm += (double)D.ck[k].map_calls;
            s.hits_warm += (double)D.ck[k].hits;
            nw++;
        }
    }
    s.n = n;
    if (n) {
        s.p50 = bench_pct(dts, n, 50);
        s.p99 = bench_pct(dts, n, 99);
        s.tput_all = bytes / sum / 1e6;
        s.tput = bytes / n / s.p50 / 1e6;
    }
    if (nw) {
        s.maps_warm /= nw;
        s.hits_warm /= nw;
    }
    memcpy(saved[slot], D.ck, sizeof(D.ck));
    printf("[%-6s] %s: %u/%u checkpoint states verified equal (+ failover), stream %.1f MiB, "
           "verify-stream-v2 %s; downtime p50 %.3f ms p99 %.3f ms; %.0f MB/s at p50 (%.0f "
           "overall); warm checkpoints: %.2f map calls each\n",
           name, s.ok ? "OK" : "FAILED", s.verified, ckpts, r.stream_bytes / 1048576.0,
           r.verify_rc == 0 ? "accepts it" : "REJECTS it", s.p50 * 1e3, s.p99 * 1e3, s.tput,
           s.tput_all, s.maps_warm);
    if (!s.ok)
        printf("[%-6s] failure: %s\n", name, r.failure);
    fflush(stdout);
    xensim_destroy_domain(src);
    xensim_destroy_domain(dst);
    return s;
}

static unsigned long envnum(const char *n, unsigned long d)
{
    const char *v = getenv(n);
    return v && *v ? strtoul(v, NULL, 0) : d;
}

int main(void)
{
    uint64_t mem = (uint64_t)envnum("DEMO_MEM_MIB", 256) << 20;
    unsigned int ckpts = (unsigned int)envnum("DEMO_CKPTS", 20);
    unsigned long cost = envnum("XENSIM_COST_PAGE_NS", 2000); /* a modelled Xen */
    const char *out = getenv("DEMO_OUT") ? getenv("DEMO_OUT") : "build/demo";
    struct summary x, s;
    char path[4096];
    FILE *f;
    double t0 = bench_now();

    /* the proxy's blocks come from the heap and are reused: no fresh page faults per read */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    if (ckpts < 3 || ckpts > MAXK - 1)
        H_FAIL("DEMO_CKPTS must be 3..%d", MAXK - 1);
    D.nhot = (unsigned int)envnum("DEMO_DIRTY", 2048);
    D.hot = bench_hot_set(mem, &D.nhot, 0xde770000u);
    if (!D.hot)
        H_FAIL("DEMO_DIRTY=%u does not fit a %llu MiB guest", D.nhot,
               (unsigned long long)(mem >> 20));
    xensim_set_cost(0, cost);
    printf("xcsave demo: COLO checkpoints on xensim (simulated Xen 4.17), cost model %s\n"
           "  primary: xcsave's xc_domain_save; secondary: Debian's stock xc_domain_restore\n"
           "  workload: the primary's guest dirties %u pages (%u runs of %u) per checkpoint;\n"
           "  the secondary's guest writes 16 pages, sent back as CHECKPOINT_DIRTY_PFN_LIST.\n"
           "  Downtime: the primary's suspend callback returns -> its postcopy callback.\n"
           "  MB/s: checkpoint stream bytes / downtime. The secondary's restore, the stream's\n"
           "  copy to a file and the comparisons share the same cores, so these figures are\n"
           "  end to end; `make bench` measures the savers against a plain drain.\n"
           "  maps: xcsave's map calls (cache stats); stock maps once per 1024-pfn batch.\n",
           cost == 2000 ? "2 us per mapped page (a modelled Xen hypercall cost)"
           : cost ? "modelled" : "0 (bare Linux mmap)", D.nhot,
           D.nhot / BENCH_RUN_PAGES, BENCH_RUN_PAGES);
    if (cost && cost != 2000)
        printf("  (cost model: %lu ns per mapped page)\n", cost);
    x = run("xcsave", 1, 1, 2, mem, ckpts, 0);
    s = run("stock", 0, 3, 4, mem, ckpts, 1);

    printf("\n== comparison, same workload (checkpoints 2..%u) ==\n", ckpts);
    printf("              downtime p50   downtime p99   MB/s at p50   map calls/warm ckpt\n");
    printf("  stock       %9.3f ms   %9.3f ms   %11.0f   %10.2f\n", s.p50 * 1e3, s.p99 * 1e3,
           s.tput, s.maps_warm);
    printf("  xcsave      %9.3f ms   %9.3f ms   %11.0f   %10.2f\n", x.p50 * 1e3, x.p99 * 1e3,
           x.tput, x.maps_warm);
    if (x.p50 > 0 && s.tput > 0)
        printf("  ratio       downtime p50 stock/xcsave = %.2fx, throughput xcsave/stock = "
               "%.2fx\n",
               s.p50 / x.p50, x.tput / s.tput);
    printf("  verified    xcsave %u/%u, stock %u/%u checkpoints equal to the primary\n",
           x.verified, ckpts, s.verified, ckpts);

    mkdir(out, 0755);
    snprintf(path, sizeof(path), "%s/checkpoints.tsv", out);
    f = fopen(path, "w");
    if (f) {
        fprintf(f, "# ckpt\txcsave_ms\tstock_ms\txcsave_pages\tstock_pages\txcsave_maps\t"
                   "stock_maps\n");
        for (unsigned int k = 1; k <= ckpts; k++)
            fprintf(f, "%u\t%.4f\t%.4f\t%llu\t%llu\t%llu\t%llu\n", k, saved[0][k].dt * 1e3,
                    saved[1][k].dt * 1e3, (unsigned long long)saved[0][k].pages,
                    (unsigned long long)saved[1][k].pages,
                    (unsigned long long)saved[0][k].map_calls,
                    (unsigned long long)saved[1][k].map_calls);
        fclose(f);
    }
    snprintf(path, sizeof(path), "%s/summary.txt", out);
    f = fopen(path, "w");
    if (f) {
        fprintf(f, "guest %llu MiB, COLO, %u checkpoints, %u dirty pages each, cost %lu ns/page\n"
                   "stock : p50 %.3f ms p99 %.3f ms, %.0f MB/s at p50, %.2f maps/warm ckpt, "
                   "verified %u\n"
                   "xcsave: p50 %.3f ms p99 %.3f ms, %.0f MB/s at p50, %.2f maps/warm ckpt, "
                   "verified %u\n",
                (unsigned long long)(mem >> 20), ckpts, D.nhot, cost, s.p50 * 1e3, s.p99 * 1e3,
                s.tput, s.maps_warm, s.verified, x.p50 * 1e3, x.p99 * 1e3, x.tput,
                x.maps_warm, x.verified);
        fclose(f);
    }
    snprintf(path, sizeof(path),
             "gnuplot -e 'set terminal pngcairo size 900,500; set output \"%s/downtime.png\"; "
             "set title \"COLO checkpoint downtime (xensim, stock restore secondary)\"; "
             "set xlabel \"checkpoint\"; set ylabel \"ms\"; set logscale y; set grid; "
             "plot \"%s/checkpoints.tsv\" using 1:3 with linespoints lw 2 title \"stock\", "
             "\"\" using 1:2 with linespoints lw 2 title \"xcsave\"' 2>/dev/null",
             out, out);
    if (system(path) == 0)
        printf("\nplot: %s/downtime.png  ", out);
    else
        printf("\n(no plot: gnuplot missing; apt-get install gnuplot-nox)  ");
    printf("table: %s/checkpoints.tsv  summary: %s/summary.txt  (%.0f s)\n", out, out,
           bench_now() - t0);
    return x.ok && s.ok && x.verified >= ckpts && s.verified >= ckpts ? 0 : 1;
}
