// SPDX-License-Identifier: GPL-3.0-only
/*
 * tool_bench: one side of one `make bench` scenario, in its own process (so that CPU time,
 * peak RSS and VMA counts are this side's alone). bench/run.sh runs stock, xcsave and the
 * limit one after the other for every scenario and collects the result lines.
 *
 *   tool_bench --side stock|xcsave|limit|verify|prepare --mode remus|colo|live|nonlive --mem-mib N
 *              [--dirty N[,N...]] [--patterns P[,P...]] [--ckpts N] [--warmup N]
 *              [--cost-page-ns N]
 *              [--dirty-rate N] [--layout-out F] [--layout-in F] [--pipe-kib N] [--pin]
 *
 * Processes: this one saves (stock xc_domain_save via dlvsym, or xcsave_domain_save) into a
 * pipe; a forked DRAIN process reads the pipe (parsing only the record framing), counts the
 * bytes of every checkpoint, answers each CHECKPOINT record of a COLO stream with a
 * CHECKPOINT_DIRTY_PFN_LIST record on the back channel (as the stock restore does) and acks
 * it on a side pipe; a forked GUEST process creates and fills the xensim domain, dirties the
 * working set between checkpoints (bench.h) and runs the background dirtier for live
 * migration. The LIMIT side replays the record framing that the drain of an earlier run
 * wrote (--layout-in), with writev from ordinary memory into the same kind of pipe and drain.
 *
 * Checkpoint k (k >= 1) is timed from the suspend callback's return to the postcopy
 * callback. Checkpoint 1 ends the initial live migration. Then, for each dirty-set size of
 * --dirty in turn (a "phase", one output line each; one save serves them all so the initial
 * migration is paid once; with --patterns hot,drift,random,sweep (bench.h) every pattern
 * runs every size, pattern-major): --warmup checkpoints (default 1, reported as "cold") and --ckpts
 * measured checkpoints, each carrying that phase's working set. If the domain already exists
 * in $XENSIM_DIR (an earlier side of the same scenario), it is reused as it is. COLO's checkpoint callback (stock calls it
 * before postcopy) waits for the drain's ack, so COLO downtime includes draining; Remus's
 * (after postcopy) waits for it outside the downtime.
 *
 * --side prepare: only create the domain (filled unless sparse) and exit; a sparse guest's
 * files ($XENSIM_RAM_DIR) are read once first, so that no timed side meets a cold page cache.
 *
 * --side verify: the correctness sample. xcsave saves the same workload (first --dirty size,
 * --ckpts checkpoints) into the STOCK xc_domain_restore through the harness, which compares
 * the secondary with the primary at every checkpoint and runs verify-stream-v2.
 *
 * Output: one line of key=value pairs on stdout. Not a test: there are no thresholds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "harness.h"
#include "xcsave.h"

#define DOM 7
#define MAXC 1024
#define REC_PAGE_DATA 0x01u
#define REC_END 0x00u
#define REC_CHECKPOINT 0x0eu
#define REC_DIRTY_PFN_LIST 0x0fu
#define BACK_PFNS 8
#define MAXPH 16 /* phases of one save */
#define SPARSE_MIB 4096 /* bigger guests: RAM left unfilled (sparse), the limit's too */

enum side { S_STOCK, S_XCSAVE, S_LIMIT, S_VERIFY, S_PREPARE };
enum mode { M_REMUS, M_COLO, M_LIVE, M_NONLIVE };
static const char *side_name[] = {"stock", "xcsave", "limit", "verify", "prepare"};
static const char *mode_name[] = {"remus", "colo", "live", "nonlive"};

static struct {
    enum side side;
    enum mode mode;
    uint64_t mem_bytes;
    unsigned int ndirty, dirty[MAXPH], ckpts, warmup; /* phases: pattern x size */
    enum bench_pattern pattern[MAXPH];
    uint64_t cost_page_ns, dirty_rate;
    const char *layout_out, *layout_in;
    unsigned int pipe_kib;
    int pin; /* --pin: saver and drain on two fixed CPUs */
} opt = {.ckpts = 20, .warmup = 1, .dirty_rate = 10000, .pipe_kib = 0};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stdout, "side=%s mode=%s ok=0 error=\"", side_name[opt.side], mode_name[opt.mode]);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fprintf(stdout, "\"\n");
    fflush(stdout);
    exit(1);
}

/* A big guest: its RAM left unfilled (sparse), on disk ($XENSIM_RAM_DIR), the limit's too. */
static int sparse(void)
{
    return opt.mem_bytes > ((uint64_t)SPARSE_MIB << 20);
}

/* ------------------------------------------------------------------ drain */

struct drain_shm {
    volatile uint64_t bytes;       /* read so far */
    uint64_t ckpt_end[MAXC + 1];   /* stream offset after CHECKPOINT record k */
    uint64_t ckpt_pages[MAXC + 1]; /* data pages in segment k */
    volatile uint32_t nckpt;
    uint64_t data_pages, records;
    int saw_end;
    int error;
    char errmsg[200];
};

static struct drain_shm *shm;
static uint64_t *hots[MAXPH];       /* the first dirty set of each phase */
static unsigned int nhots[MAXPH];
static struct bench_pat pats[MAXPH]; /* the guest's dirty pattern of each phase */

/* The phase of checkpoint k (k >= 2), and whether it is a measured one. */
static unsigned int phase_of(unsigned int k, int *measured)
{
    unsigned int per = opt.warmup + opt.ckpts, j = k >= 2 ? k - 2 : 0;

    if (measured)
        *measured = k >= 2 && j % per >= opt.warmup;
    return j / per < opt.ndirty ? j / per : opt.ndirty - 1;
}

static unsigned int total_ckpts(void)
{
    return 1 + opt.ndirty * (opt.warmup + opt.ckpts);
}

/* Layout entries (--layout-out): u32 kind, u32 n, payload. */
#define L_RAW 0   /* n bytes of framing */
#define L_PAGES 1 /* n data pages; n u64 pfns follow */
#define L_CKPT 2  /* a CHECKPOINT record just ended */

static void lay(FILE *f, uint32_t kind, uint32_t n, const void *p, size_t len)
{
    uint32_t h[2] = {kind, n};

    if (!f)
        return;
    fwrite(h, sizeof(h), 1, f);
    if (len)
        fwrite(p, len, 1, f);
}

static void drain_main(int in, int back, int ack, const char *layout)
{
    static unsigned char buf[1 << 20];
    static unsigned char acc[(1 << 17) + 64];
    static uint64_t pfns[1024];
    FILE *lf = layout ? fopen(layout, "w") : NULL;
    enum { P_HDR, P_RHDR, P_PD, P_PFNS, P_REC, P_SKIP } st = P_HDR;
    size_t have = 0, need = 40;
    uint64_t skip = 0, off = 0, seg_pages = 0;
    uint32_t type = 0, len = 0, count = 0;

    prctl(PR_SET_NAME, "bench-drain");
    if (layout && !lf) {
        snprintf(shm->errmsg, sizeof(shm->errmsg), "open %s: %s", layout, strerror(errno));
        shm->error = 1;
    }
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        size_t i = 0;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        while (i < (size_t)n) {
            if (st == P_SKIP) {
                uint64_t k = (uint64_t)n - i < skip ? (uint64_t)n - i : skip;
                i += k;
                skip -= k;
                off += k;
                if (skip)
                    continue;
                st = P_RHDR;
                have = 0;
                need = 8;
                continue;
            }
            {
                size_t k = (size_t)n - i < need - have ? (size_t)n - i : need - have;
                memcpy(acc + have, buf + i, k);
                have += k;
                i += k;
                off += k;
                if (have < need)
                    continue;
            }
            switch (st) {
            case P_HDR:
                lay(lf, L_RAW, 40, acc, 40);
                st = P_RHDR;
                have = 0;
                need = 8;
                break;
            case P_RHDR: {
                uint32_t padded;
                memcpy(&type, acc, 4);
                memcpy(&len, acc + 4, 4);
                padded = (len + 7u) & ~7u;
                shm->records++;
                if (type == REC_PAGE_DATA) {
                    st = P_PD;
                    need = 16;
                } else if (8 + (size_t)padded <= sizeof(acc)) {
                    st = P_REC;
                    need = 8 + padded;
                } else {
                    snprintf(shm->errmsg, sizeof(shm->errmsg),
                             "record type %#x of %u bytes", type, len);
                    shm->error = 1;
                    return;
                }
                if (need == have)
                    goto rec_done;
                break;
            }
            case P_PD:
                memcpy(&count, acc + 8, 4);
                if (count > 1024 || 8 + 8ull * count > len) {
                    snprintf(shm->errmsg, sizeof(shm->errmsg), "PAGE_DATA count %u", count);
                    shm->error = 1;
                    return;
                }
                st = P_PFNS;
                need = 16 + 8ull * count;
                if (need == have)
                    goto pfns_done;
                break;
            case P_PFNS:
            pfns_done: {
                uint64_t data = (uint64_t)len - 8 - 8ull * count;
                uint32_t pages = (uint32_t)(data / 4096), k = 0;
                lay(lf, L_RAW, (uint32_t)have, acc, have);
                for (uint32_t j = 0; j < count && k < pages; j++) {
                    uint64_t e;
                    memcpy(&e, acc + 16 + 8 * j, 8);
                    if ((e >> 60) < 0xd)
                        pfns[k++] = e & 0x000fffffffffffffull;
                }
                for (uint32_t j = 0; k < pages; j++) /* not expected: reuse listed pfns */
                    memcpy(&pfns[k++], acc + 16 + 8 * (j % count), 8);
                lay(lf, L_PAGES, pages, pfns, pages * 8ull);
                seg_pages += pages;
                shm->data_pages += pages;
                skip = data;
                st = P_SKIP;
                if (!skip) {
                    st = P_RHDR;
                    have = 0;
                    need = 8;
                }
                break;
            }
            case P_REC:
            rec_done:
                lay(lf, L_RAW, (uint32_t)have, acc, have);
                if (type == REC_CHECKPOINT) {
                    uint32_t k = shm->nckpt + 1;
                    if (k <= MAXC) {
                        shm->ckpt_end[k] = off;
                        shm->ckpt_pages[k] = seg_pages;
                    }
                    seg_pages = 0;
                    lay(lf, L_CKPT, 0, NULL, 0);
                    __atomic_store_n(&shm->nckpt, k, __ATOMIC_RELEASE);
                    if (back >= 0) {
                        /* as the COLO secondary: a few pfns it dirtied (inside the
                         * working set, so the primary's dirty set keeps its size) */
                        /* the header as the release's stock restore writes it (BC_HDR:
                         * 8 bytes on 4.17, 16 from 4.18), which xcsave's saver of this
                         * build reads. The stock saver gets the format's 8 bytes: stock
                         * 4.18+ reads only those, so with the real 16 its COLO cannot pass
                         * a second checkpoint (docs/restore.md A.8) and would give no
                         * figures; 8 more bytes in a pipe cost the same either way. */
                        uint32_t rh[] = {BC_HDR(REC_DIRTY_PFN_LIST, BACK_PFNS * 8)};
                        size_t rhlen = opt.side == S_STOCK ? 8 : sizeof(rh);
                        uint64_t p[BACK_PFNS];
                        unsigned int ph = phase_of(k + 1, NULL);
                        for (unsigned int j = 0; j < BACK_PFNS; j++)
                            p[j] = hots[ph][(j * 97u) % nhots[ph]];
                        bench_write_all(back, rh, rhlen);
                        bench_write_all(back, p, sizeof(p));
                    }
                    if (ack >= 0)
                        bench_write_all(ack, "A", 1);
                } else if (type == REC_END) {
                    shm->saw_end = 1;
                }
                st = P_RHDR;
                have = 0;
                need = 8;
                break;
            case P_SKIP:
                break;
            }
        }
        __atomic_store_n(&shm->bytes, off, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&shm->bytes, off, __ATOMIC_RELEASE);
    if (lf)
        fclose(lf);
}

/* ------------------------------------------------------------------ guest */

/* Create the scenario's domain; fill it unless it is sparse. 0 or a negative errno. */
static int create_guest(void)
{
    struct xensim_domain_config cfg = {.mem_bytes = opt.mem_bytes};
    int rc = xensim_create_domain(DOM, &cfg);

    if (!rc && !sparse())
        rc = xensim_fill(DOM, 0xbe9c4000);
    return rc;
}

/*
 * Read every file of a sparse guest (in $XENSIM_RAM_DIR) once, so that the timed sides find
 * its page cache filled. POSIX_FADV_RANDOM turns readahead off, so the cache holds 4 KiB
 * folios: a guest write then dirties (and writeback later writes) one page, as a real
 * guest's write dirties one frame. Sequential readahead (read_ahead_kb can be 8 MiB) would
 * build folios of up to 2 MiB, each dirtied whole by one 16-byte write of the benchmark's
 * guest, and the writeback of those ran in later checkpoints of the file-backed sides only.
 * 0 or a negative errno.
 */
static int warm_ram_dir(void)
{
    const char *dir = getenv("XENSIM_RAM_DIR");
    static char buf[1 << 20];
    struct dirent *e;
    DIR *d;
    int rc = 0;

    if (!dir || !(d = opendir(dir)))
        return dir ? -errno : 0;
    while (!rc && (e = readdir(d))) {
        char path[PATH_MAX];
        int fd;
        ssize_t n;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
            rc = -errno;
            break;
        }
        rc = -posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
        while (!rc && (n = read(fd, buf, sizeof(buf))) != 0)
            if (n < 0 && errno != EINTR)
                rc = -errno;
        close(fd);
    }
    closedir(d);
    return rc;
}

static void guest_main(int cmd, int rep)
{
    struct xensim_dirtier *dt = NULL;
    char c;
    struct xensim_dominfo di;

    prctl(PR_SET_NAME, "bench-guest");
    if (xensim_dominfo(DOM, &di) == 0 && di.domid == DOM) {
        /* reuse the scenario's guest, as the previous side (or --side prepare) left it */
        harness_resume_saved(DOM);
    } else if (create_guest()) {
        _exit(10);
    }
    xensim_set_cost(0, opt.cost_page_ns);
    bench_write_all(rep, "R", 1);
    while (bench_read_all(cmd, &c, 1) == 0) {
        if (c == 'B') {
            uint32_t k, ph;
            if (bench_read_all(cmd, &k, 4))
                break;
            const uint64_t *set;
            ph = phase_of(k + 1, NULL);
            set = bench_pat_next(&pats[ph]);
            for (unsigned int i = 0; i < nhots[ph]; i++) {
                uint64_t v[2] = {k, set[i]};
                if (xensim_guest_write(DOM, set[i], (k * 64u) % 4096, v, sizeof(v)))
                    _exit(11);
            }
            bench_write_all(rep, "D", 1);
        } else if (c == 'S') {
            uint64_t pages = opt.mem_bytes >> 12;
            uint64_t count = pages / 4 < 65536 ? pages / 4 : 65536; /* <= 256 MiB */
            dt = xensim_dirtier_start(DOM, 0x100, count, opt.dirty_rate, 99);
            bench_write_all(rep, dt ? "D" : "E", 1);
        } else if (c == 'Q') {
            uint64_t w = dt ? xensim_dirtier_stop(dt) : 0;
            bench_write_all(rep, &w, 8);
            break;
        }
    }
    _exit(0);
}

/* ------------------------------------------------------------------ saver */

/*
 * --pin (BENCH_PIN=1): put the saver (this process, and the threads it starts later) on the
 * first CPU it may run on and the drain on the second, so that the stream always crosses
 * between two CPUs. Left to the scheduler, the two sometimes share one CPU for a whole save,
 * and on this project's VMs a pipe copy between two processes on one CPU ran 5-6 times
 * faster (the limit, 1 GiB, 16,384 pages: p50 16-24 ms against 89-122 ms), so every side's
 * figures swing by that much from run to run (docs/performance.md, "Issue 13, sixth
 * session"). With fewer than two CPUs nothing is pinned. Returns 1 if pinned.
 */
static int pin_saver_and_drain(pid_t drain)
{
    cpu_set_t all, one;
    int cpu[2], n = 0;

    if (sched_getaffinity(0, sizeof(all), &all))
        return 0;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, &all))
            cpu[n++] = c;
    if (n < 2)
        return 0;
    CPU_ZERO(&one);
    CPU_SET(cpu[1], &one);
    if (sched_setaffinity(drain, sizeof(one), &one))
        return 0;
    CPU_ZERO(&one);
    CPU_SET(cpu[0], &one);
    return sched_setaffinity(0, sizeof(one), &one) == 0;
}

struct sample {
    double t;
    double cpu;
    struct xensim_counters c;
    XcsaveCacheStats cs;
    int has_cs;
};

static struct {
    xc_interface *xch;
    int gcmd, grep, ack;
    unsigned int k; /* suspends so far */
    struct sample sus[MAXC + 2], post[MAXC + 2];
    /* the saver's own work while the guest runs after checkpoint k: from the postcopy
     * callback's return to the next callback (xcsave: deferred maps and the patrol) */
    double pc_ret[MAXC + 2], pc_next[MAXC + 2];
    double peak_anon, t_end;
    unsigned long peak_proc_vmas, peak_vmpte_kib;
    uint64_t peak_live_pages, peak_live_vmas;
    /* live: precopy iterations */
    double t_iter[64];
    uint64_t b_iter[64];
    unsigned int iters;
} S;

static void take(struct sample *s)
{
    s->t = bench_now();
    s->cpu = bench_cpu();
    if (opt.side == S_LIMIT)
        return;
    xensim_counters(&s->c);
    s->has_cs = xcsave_cache_stats(DOM, &s->cs) == 0;
}

static void peaks(void)
{
    struct xensim_counters c;
    double a = bench_rss_anon_mib();
    unsigned long v = bench_proc_vmas(), pte = bench_vmpte_kib();

    memset(&c, 0, sizeof(c));
    if (opt.side != S_LIMIT)
        xensim_counters(&c);
    if (c.live_privcmd_pages > S.peak_live_pages)
        S.peak_live_pages = c.live_privcmd_pages;
    if (c.live_privcmd_vmas > S.peak_live_vmas)
        S.peak_live_vmas = c.live_privcmd_vmas;
    if (a > S.peak_anon)
        S.peak_anon = a;
    if (v > S.peak_proc_vmas)
        S.peak_proc_vmas = v;
    if (pte > S.peak_vmpte_kib)
        S.peak_vmpte_kib = pte;
}

static int cb_suspend(void *data)
{
    (void)data;
    if (xc_domain_shutdown(S.xch, DOM, SHUTDOWN_suspend))
        return 0;
    if (S.k < MAXC)
        S.k++;
    take(&S.sus[S.k]); /* timestamp last: downtime starts when we return */
    return 1;
}

static void burst(void)
{
    uint32_t k = S.k;
    char c;

    if (bench_write_all(S.gcmd, "B", 1) || bench_write_all(S.gcmd, &k, 4) || bench_read_all(S.grep, &c, 1) ||
        c != 'D')
        die("guest process failed to dirty the working set");
}

static int cb_postcopy(void *data)
{
    (void)data;
    take(&S.post[S.k]); /* first: downtime ends when we are called */
    peaks();
    if (xc_domain_resume(S.xch, DOM, 1))
        return 0;
    if (S.k < total_ckpts())
        burst();
    S.pc_ret[S.k] = bench_now();
    return 1;
}

/* The first callback after postcopy (Remus: checkpoint; COLO: wait_checkpoint). */
static void after_postcopy(void)
{
    if (S.pc_ret[S.k] > 0 && S.pc_next[S.k] == 0)
        S.pc_next[S.k] = bench_now();
}

static int wait_ack(void)
{
    char c;

    return bench_read_all(S.ack, &c, 1) == 0;
}

static int cb_checkpoint(void *data)
{
    (void)data;
    if (opt.mode != M_COLO)
        after_postcopy();
    if (!wait_ack())
        return 0;
    if (opt.mode == M_COLO)
        return 1;
    return S.k < total_ckpts() ? 1 : 0;
}

static int cb_wait_checkpoint(void *data)
{
    (void)data;
    after_postcopy();
    return S.k < total_ckpts() ? 1 : 0;
}

static int cb_logdirty(uint32_t domid, unsigned int enable, void *data)
{
    (void)domid;
    (void)enable;
    (void)data;
    return 0;
}

/* Stock's simple_precopy_policy, timestamped. */
static int cb_precopy(struct precopy_stats st, void *user)
{
    (void)user;
    if (S.iters < 64 && (st.iteration == 0 || st.dirty_count == -1)) {
        S.t_iter[S.iters] = bench_now();
        S.b_iter[S.iters] = __atomic_load_n(&shm->bytes, __ATOMIC_ACQUIRE);
        S.iters++;
        peaks();
    }
    return ((st.dirty_count >= 0 && st.dirty_count < 50) || st.iteration >= 5)
               ? XGS_POLICY_STOP_AND_COPY
               : XGS_POLICY_CONTINUE_PRECOPY;
}

/* ------------------------------------------------------------------ limit */

struct seg {
    struct iovec *iov;
    size_t niov, cap;
    uint64_t bytes;
};

static void seg_add(struct seg *s, void *p, size_t len)
{
    if (s->niov && (char *)s->iov[s->niov - 1].iov_base + s->iov[s->niov - 1].iov_len == p) {
        s->iov[s->niov - 1].iov_len += len; /* merge contiguous memory */
    } else {
        if (s->niov == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 1024;
            s->iov = realloc(s->iov, s->cap * sizeof(*s->iov));
            if (!s->iov)
                die("out of memory");
        }
        s->iov[s->niov].iov_base = p;
        s->iov[s->niov].iov_len = len;
        s->niov++;
    }
    s->bytes += len;
}

static int writev_all(int fd, struct iovec *iov, size_t n)
{
    while (n) {
        int c = n > IOV_MAX ? IOV_MAX : (int)n;
        ssize_t w = writev(fd, iov, c);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        while (w > 0) {
            if ((size_t)w >= iov->iov_len) {
                w -= (ssize_t)iov->iov_len;
                iov++;
                n--;
            } else {
                iov->iov_base = (char *)iov->iov_base + w;
                iov->iov_len -= (size_t)w;
                w = 0;
            }
        }
        while (n && !iov->iov_len) {
            iov++;
            n--;
        }
    }
    return 0;
}

/* Replay the framing of --layout-in with writev from ordinary memory. */
static int run_limit(int out, int back)
{
    FILE *f = fopen(opt.layout_in, "r");
    uint64_t npages = opt.mem_bytes >> 12;
    char *mem;
    struct seg segs[MAXC + 2];
    unsigned int nseg = 0, k;
    char *raw;
    long fsz;
    size_t pos = 0, maxiov = 1;
    struct iovec *work;

    if (!f)
        die("open layout %s: %s", opt.layout_in, strerror(errno));
    fseek(f, 0, SEEK_END);
    fsz = ftell(f);
    rewind(f);
    raw = malloc((size_t)fsz + 1);
    if (!raw || fread(raw, 1, (size_t)fsz, f) != (size_t)fsz)
        die("read layout");
    fclose(f);
    /* a sparse (big) guest: pages never written read as the zero page */
    mem = mmap(NULL, npages << 12, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | (sparse() ? 0 : MAP_POPULATE), -1, 0);
    if (mem == MAP_FAILED)
        die("mmap %llu MiB: %s", (unsigned long long)(opt.mem_bytes >> 20), strerror(errno));
    if (sparse()) /* read faults then map the 4 KiB zero page, never a fresh huge page */
        madvise(mem, npages << 12, MADV_NOHUGEPAGE);
    for (uint64_t p = 0; !sparse() && p < npages; p++)
        *(uint64_t *)(mem + (p << 12)) = p * 0x9e3779b97f4a7c15ull;
    memset(segs, 0, sizeof(segs));
    while (pos + 8 <= (size_t)fsz) {
        uint32_t h[2];
        struct seg *s = &segs[nseg];
        memcpy(h, raw + pos, 8);
        pos += 8;
        if (h[0] == L_RAW) {
            seg_add(s, raw + pos, h[1]);
            pos += h[1];
        } else if (h[0] == L_PAGES) {
            for (uint32_t j = 0; j < h[1]; j++) {
                uint64_t pfn;
                memcpy(&pfn, raw + pos + 8ull * j, 8);
                if (pfn >= 0x100000)
                    pfn = pfn - 0x100000 + 0xF0000;
                seg_add(s, mem + ((pfn % npages) << 12), 4096);
            }
            pos += 8ull * h[1];
        } else if (h[0] == L_CKPT) {
            if (nseg < MAXC)
                nseg++;
        }
    }
    if (segs[nseg].niov)
        nseg++; /* the tail (END record / whole plain stream) */
    if (!nseg)
        die("empty layout %s", opt.layout_in);
    for (k = 0; k < nseg; k++)
        if (segs[k].niov > maxiov)
            maxiov = segs[k].niov;
    work = malloc(maxiov * sizeof(*work));
    if (!work)
        die("out of memory");

    if (opt.mode == M_LIVE || opt.mode == M_NONLIVE) {
        take(&S.sus[1]);
        S.k = 1;
        for (k = 0; k < nseg; k++)
            if (writev_all(out, segs[k].iov, segs[k].niov)) /* once: in place is fine */
                die("writev: %s", strerror(errno));
        S.t_end = bench_now();
        peaks();
        return 0;
    }
    for (k = 0; k < nseg && k < total_ckpts(); k++) {
        struct seg *s = &segs[k];
        if (k >= 1 && opt.mode == M_COLO) {
            uint32_t rh[] = {BC_HDR(0, 0)};
            char body[4096];
            if (bench_read_all(back, rh, sizeof(rh)) || rh[1] > sizeof(body) ||
                bench_read_all(back, body, rh[1]))
                die("back channel");
        }
        S.k = k + 1;
        /* the guest's writes that this checkpoint carries, made before it, as on the other
         * sides (whose guest writes the next set from the postcopy callback): the pages go
         * out freshly written, never as the untouched zero page of a sparse guest. A sparse
         * guest's initial migration, segment 0, is every page: not its working set. */
        for (size_t j = 0; !(sparse() && k == 0) && j < s->niov; j++) {
            char *b = s->iov[j].iov_base;
            if (b < mem || b >= mem + (npages << 12))
                continue;
            for (size_t o = 0; o < s->iov[j].iov_len; o += 4096)
                *(volatile char *)(b + o) += 1;
        }
        memcpy(work, s->iov, s->niov * sizeof(*work));
        take(&S.sus[S.k]);
        if (writev_all(out, work, s->niov))
            die("writev: %s", strerror(errno));
        if (opt.mode == M_COLO && !wait_ack())
            die("no ack");
        take(&S.post[S.k]);
        peaks();
        if (opt.mode == M_REMUS && !wait_ack())
            die("no ack");
    }
    return 0;
}

/* ------------------------------------------------------------------ verify */

static void verify_burst(void *arg, unsigned int k)
{
    (void)arg;
    for (unsigned int i = 0; i < nhots[0]; i++) {
        uint64_t v[2] = {k, hots[0][i]};
        xensim_guest_write(DOM, hots[0][i], (k * 64u) % 4096, v, sizeof(v));
    }
}

static int run_verify(void)
{
    struct harness_opts o;
    struct harness_result r;
    int rc;

    if (opt.mode != M_REMUS && opt.mode != M_COLO)
        die("--side verify is for remus and colo");
    memset(&o, 0, sizeof(o));
    harness_make_pair(DOM, DOM + 1, opt.mem_bytes, 0xbe9c4000);
    xensim_set_cost(0, opt.cost_page_ns);
    o.save = xcsave_domain_save;
    o.src = DOM;
    o.dst = DOM + 1;
    o.stream = opt.mode == M_REMUS ? XC_STREAM_REMUS : XC_STREAM_COLO;
    o.live = 1;
    o.checkpoints = opt.ckpts;
    o.secondary_pages = opt.mode == M_COLO ? 16 : 0;
    o.between_checkpoints = verify_burst;
    rc = harness_round_trip(&o, &r);
    printf("side=verify mode=%s mem_mib=%llu cost_page_ns=%llu dirty=%u ckpts=%u ok=%d "
           "compared=%u verify_rc=%d stream_bytes=%llu",
           mode_name[opt.mode], (unsigned long long)(opt.mem_bytes >> 20),
           (unsigned long long)opt.cost_page_ns, nhots[0], opt.ckpts, rc == 0, r.compared,
           r.verify_rc, (unsigned long long)r.stream_bytes);
    if (rc)
        printf(" error=\"%s\"", r.failure);
    printf("\n");
    return rc ? 1 : 0;
}

/* ------------------------------------------------------------------ main */

static void usage(void)
{
    fprintf(stderr, "usage: tool_bench --side stock|xcsave|limit|verify|prepare --mode remus|colo|live|nonlive "
                    "--mem-mib N [--dirty N] [--ckpts N] [--cost-page-ns N] [--dirty-rate N] "
                    "[--layout-out F] [--layout-in F] [--pipe-kib N] [--pin]\n");
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
        {"side", 1, 0, 's'},       {"mode", 1, 0, 'm'},         {"mem-mib", 1, 0, 'M'},
        {"dirty", 1, 0, 'd'},      {"ckpts", 1, 0, 'c'},        {"cost-page-ns", 1, 0, 'p'},
        {"dirty-rate", 1, 0, 'r'}, {"layout-out", 1, 0, 'o'},   {"layout-in", 1, 0, 'i'},
        {"pipe-kib", 1, 0, 'P'},   {"warmup", 1, 0, 'w'},       {"patterns", 1, 0, 't'},
        {"pin", 0, 0, 'n'},        {0, 0, 0, 0}};
    unsigned int nsizes = 0, sizes[8], npat = 0;
    enum bench_pattern pat[4];
    int ch, sink[2], back[2] = {-1, -1}, ackp[2], gc[2], gr[2];
    pid_t drain, guest = -1;
    int checkpointed, rc = 0, st, pinned;
    double t0, cpu0, t_save;
    uint64_t dirtier_writes = 0;

    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 's': opt.side = pick(optarg, side_name, 5); break;
        case 'm': opt.mode = pick(optarg, mode_name, 4); break;
        case 'M': opt.mem_bytes = strtoull(optarg, NULL, 0) << 20; break;
        case 'd': {
            char *e = optarg;
            nsizes = 0;
            while (*e && nsizes < 8) {
                sizes[nsizes++] = (unsigned int)strtoul(e, &e, 0);
                if (*e == ',')
                    e++;
            }
            break;
        }
        case 't': {
            char *save, *tok;
            npat = 0;
            for (tok = strtok_r(optarg, ",", &save); tok && npat < 4;
                 tok = strtok_r(NULL, ",", &save))
                pat[npat++] = (enum bench_pattern)pick(tok, (const char **)bench_pattern_name, 4);
            break;
        }
        case 'w': opt.warmup = (unsigned int)strtoul(optarg, NULL, 0); break;
        case 'c': opt.ckpts = (unsigned int)strtoul(optarg, NULL, 0); break;
        case 'p': opt.cost_page_ns = strtoull(optarg, NULL, 0); break;
        case 'r': opt.dirty_rate = strtoull(optarg, NULL, 0); break;
        case 'o': opt.layout_out = optarg; break;
        case 'i': opt.layout_in = optarg; break;
        case 'P': opt.pipe_kib = (unsigned int)strtoul(optarg, NULL, 0); break;
        case 'n': opt.pin = 1; break;
        default: usage();
        }
    }
    if (!nsizes)
        sizes[nsizes++] = 2048;
    if (!npat)
        pat[npat++] = BP_HOT;
    for (unsigned int i = 0; i < npat * nsizes && i < MAXPH; i++) {
        opt.pattern[i] = pat[i / nsizes];
        opt.dirty[i] = sizes[i % nsizes];
        opt.ndirty = i + 1;
    }
    if (!opt.mem_bytes || opt.ckpts < 1 || total_ckpts() >= MAXC - 1)
        usage();
    if (opt.side == S_LIMIT && !opt.layout_in)
        die("--side limit needs --layout-in (the framing of an earlier run)");
    checkpointed = opt.mode == M_REMUS || opt.mode == M_COLO;
    signal(SIGPIPE, SIG_IGN);
    for (unsigned int p = 0; p < opt.ndirty; p++) {
        nhots[p] = opt.dirty[p];
        /* the seed of today's hot sets (phase p of size-only runs) */
        if (bench_pat_init(&pats[p], opt.pattern[p], opt.mem_bytes, &nhots[p],
                           0x5eed0000u + opt.dirty[p] + p % nsizes))
            die("a %s working set of %u pages does not fit %llu MiB",
                bench_pattern_name[opt.pattern[p]], opt.dirty[p],
                (unsigned long long)(opt.mem_bytes >> 20));
        hots[p] = pats[p].hot;
        if (!hots[p])
            die("a working set of %u pages does not fit %llu MiB", opt.dirty[p],
                (unsigned long long)(opt.mem_bytes >> 20));
    }
    if (opt.side == S_VERIFY)
        return run_verify();
    if (opt.side == S_PREPARE) {
        /* only the domain, warm, before the timed sides meet it */
        int prc = create_guest();

        if (prc)
            die("creating a %llu MiB domain: %s", (unsigned long long)(opt.mem_bytes >> 20),
                strerror(-prc));
        if (sparse() && (prc = warm_ram_dir()))
            die("reading the guest's files in $XENSIM_RAM_DIR: %s", strerror(-prc));
        printf("side=prepare mode=%s mem_mib=%llu ok=1\n", mode_name[opt.mode],
               (unsigned long long)(opt.mem_bytes >> 20));
        return 0;
    }
    shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED)
        die("mmap shm");
    memset(shm, 0, sizeof(*shm));

    /* The guest process first (it owns the domain's RAM mappings; we never touch RAM). */
    if (opt.side != S_LIMIT) {
        char c;
        if (pipe(gc) || pipe(gr))
            die("pipe");
        guest = fork();
        if (guest == 0) {
            close(gc[1]);
            close(gr[0]);
            guest_main(gc[0], gr[1]);
        }
        close(gc[0]);
        close(gr[1]);
        S.gcmd = gc[1];
        S.grep = gr[0];
        if (bench_read_all(S.grep, &c, 1) || c != 'R')
            die("guest process failed to create a %llu MiB domain",
                (unsigned long long)(opt.mem_bytes >> 20));
    }
    if (pipe2(sink, O_CLOEXEC) || pipe2(ackp, O_CLOEXEC))
        die("pipe");
    if (opt.pipe_kib)
        fcntl(sink[1], F_SETPIPE_SZ, opt.pipe_kib << 10);
    if (opt.mode == M_COLO && pipe2(back, O_CLOEXEC))
        die("pipe");
    drain = fork();
    if (drain == 0) {
        close(sink[1]);
        close(ackp[0]);
        if (back[0] >= 0)
            close(back[0]);
        drain_main(sink[0], back[1], checkpointed ? ackp[1] : -1, opt.layout_out);
        _exit(0);
    }
    close(sink[0]);
    close(ackp[1]);
    if (back[1] >= 0)
        close(back[1]);
    S.ack = ackp[0];
    pinned = opt.pin && pin_saver_and_drain(drain);

    t0 = bench_now();
    cpu0 = bench_cpu();
    if (opt.side == S_LIMIT) {
        rc = run_limit(sink[1], back[0]);
        t0 = S.sus[1].t; /* not the layout loading and the buffer's page faults */
        cpu0 = S.sus[1].cpu;
    } else {
        harness_save_fn fn = opt.side == S_STOCK ? harness_stock_save() : xcsave_domain_save;
        struct save_callbacks cb = {.suspend = cb_suspend,
                                    .precopy_policy = cb_precopy,
                                    .switch_qemu_logdirty = cb_logdirty};
        uint32_t flags = opt.mode == M_NONLIVE ? 0 : XCFLAGS_LIVE;
        xc_stream_type_t stype = opt.mode == M_REMUS  ? XC_STREAM_REMUS
                                 : opt.mode == M_COLO ? XC_STREAM_COLO
                                                      : XC_STREAM_PLAIN;
        char c;

        S.xch = harness_xc_open();
        xensim_set_cost(0, opt.cost_page_ns);
        if (checkpointed) {
            cb.postcopy = cb_postcopy;
            cb.checkpoint = cb_checkpoint;
            if (opt.mode == M_COLO)
                cb.wait_checkpoint = cb_wait_checkpoint;
        }
        if (opt.mode == M_LIVE) {
            if (bench_write_all(S.gcmd, "S", 1) || bench_read_all(S.grep, &c, 1) || c != 'D')
                die("dirtier failed to start");
        }
        xensim_counters_reset();
        t0 = bench_now();
        cpu0 = bench_cpu();
        errno = 0;
        rc = fn(S.xch, sink[1], DOM, flags, &cb, stype, back[0]);
        S.t_end = bench_now();
        peaks();
        if (rc)
            fprintf(stderr, "tool_bench: save returned %d errno %d\n", rc, errno);
    }
    t_save = bench_now() - t0;
    close(sink[1]);
    {
        double cpu_total = bench_cpu() - cpu0;
        struct xensim_counters cend;
        XcsaveCacheStats cs;
        int has_cs = opt.side == S_XCSAVE && xcsave_cache_stats(DOM, &cs) == 0;

        memset(&cend, 0, sizeof(cend));
        if (opt.side != S_LIMIT)
            xensim_counters(&cend);
        if (guest > 0) {
            bench_write_all(S.gcmd, "Q", 1);
            bench_read_all(S.grep, &dirtier_writes, 8);
            waitpid(guest, &st, 0);
        }
        waitpid(drain, &st, 0);
        if (shm->error)
            die("drain: %s", shm->errmsg);

        char common[2048];
        FILE *cf = fmemopen(common, sizeof(common), "w");

        if (!cf)
            die("fmemopen");
        fprintf(cf, "side=%s mode=%s mem_mib=%llu cost_page_ns=%llu ok=%d save_rc=%d",
               side_name[opt.side], mode_name[opt.mode],
               (unsigned long long)(opt.mem_bytes >> 20), (unsigned long long)opt.cost_page_ns,
               rc == 0, rc);
        fprintf(cf, " stream_bytes=%llu wall_s=%.3f cpu_s=%.3f maxrss_mib=%.1f peak_anon_mib=%.1f"
               " peak_proc_vmas=%lu peak_map_pages=%llu peak_map_vmas=%llu peak_vmpte_kib=%lu"
               " sparse=%d pinned=%d",
               (unsigned long long)shm->bytes, t_save, cpu_total, bench_maxrss_mib(),
               S.peak_anon, S.peak_proc_vmas, (unsigned long long)S.peak_live_pages,
               (unsigned long long)S.peak_live_vmas, S.peak_vmpte_kib, sparse(), pinned);
        if (opt.side != S_LIMIT) {
            static const char *dom0[] = {"pv", "pvh", "pvh-balloon"};
            int m = xensim_dom0_mode();
            fprintf(cf, " total_map_calls=%llu total_pages_mapped=%llu dom0=%s"
                        " dom0_frames_peak=%llu",
                   (unsigned long long)cend.mmapbatch_calls,
                   (unsigned long long)cend.pages_mapped, m >= 0 && m <= 2 ? dom0[m] : "?",
                   (unsigned long long)cend.dom0_frames_peak);
        }
        if (checkpointed && S.iters >= 2)
            fprintf(cf, " first_pass_s=%.3f first_pass_mbps=%.1f", S.t_iter[1] - S.t_iter[0],
                    (S.b_iter[1] - S.b_iter[0]) / (S.t_iter[1] - S.t_iter[0]) / 1e6);
        if (has_cs)
            fprintf(cf, " cache_peak_mib=%.1f cache_peak_vmas=%llu cache_hits=%llu cache_misses=%llu"
                   " cache_maps=%llu cache_evictions=%llu cache_invalidations=%llu"
                   " cache_disabled=%llu",
                   cs.peak_mapped_bytes / 1048576.0, (unsigned long long)cs.peak_vmas,
                   (unsigned long long)cs.hits, (unsigned long long)cs.misses,
                   (unsigned long long)cs.maps, (unsigned long long)cs.evictions,
                   (unsigned long long)cs.invalidations, (unsigned long long)cs.disabled);
        fclose(cf);
        if (!checkpointed)
            fputs(common, stdout);
        for (unsigned int ph = 0; checkpointed && ph < opt.ndirty; ph++) {
            unsigned int last = S.k, n = 0, ncold = 0;
            double dt[MAXC], sum_dt = 0, sum_cpu = 0, cold = 0;
            uint64_t bytes = 0, pages = 0, maps = 0, mpages = 0, cold_maps = 0;
            uint64_t hits = 0, misses = 0, cmaps = 0;
            double sum_after = 0;
            int cs_ok = 1;

            if (shm->nckpt < last)
                last = shm->nckpt;
            for (unsigned int k = 2; k <= last; k++) {
                struct sample *a = &S.sus[k], *b = &S.post[k];
                uint64_t m = b->c.mmapbatch_calls - a->c.mmapbatch_calls;
                int measured;
                if (phase_of(k, &measured) != ph)
                    continue;
                if (!measured) {
                    cold += b->t - a->t;
                    cold_maps += m;
                    ncold++;
                    continue;
                }
                if (S.pc_next[k] > 0)
                    sum_after += S.pc_next[k] - S.pc_ret[k];
                dt[n++] = b->t - a->t;
                sum_dt += b->t - a->t;
                sum_cpu += b->cpu - a->cpu;
                bytes += shm->ckpt_end[k] - shm->ckpt_end[k - 1];
                pages += shm->ckpt_pages[k];
                maps += m;
                mpages += b->c.pages_mapped - a->c.pages_mapped;
                if (a->has_cs && b->has_cs) {
                    hits += b->cs.hits - a->cs.hits;
                    misses += b->cs.misses - a->cs.misses;
                    cmaps += b->cs.maps - a->cs.maps;
                } else
                    cs_ok = 0;
            }
            if (!n) {
                printf("side=%s mode=%s dirty=%u ok=0 error=\"no measured checkpoint (%u "
                       "suspends, %u CHECKPOINT records)\"\n", side_name[opt.side],
                       mode_name[opt.mode], nhots[ph], S.k, shm->nckpt);
                continue;
            }
            fputs(common, stdout);
            printf(" pattern=%s dirty=%u ckpts=%u ckpt_bytes=%.0f ckpt_pages=%.1f tput_mbps=%.1f"
                   " tput_gbps=%.3f dt_p50_ms=%.3f dt_p99_ms=%.3f dt_mean_ms=%.3f"
                   " dt_cold_ms=%.3f cold_maps=%.2f maps_per_ckpt=%.2f warm_maps_per_ckpt=%.2f"
                   " pages_mapped_per_ckpt=%.1f cpu_s_per_gib=%.3f",
                   bench_pattern_name[opt.pattern[ph]], nhots[ph], n, (double)bytes / n,
                   (double)pages / n, bytes / sum_dt / 1e6,
                   bytes * 8 / sum_dt / 1e9, bench_pct(dt, n, 50) * 1e3,
                   bench_pct(dt, n, 99) * 1e3, sum_dt / n * 1e3,
                   ncold ? cold / ncold * 1e3 : 0.0, ncold ? (double)cold_maps / ncold : 0.0,
                   (double)maps / n, (double)maps / n, (double)mpages / n,
                   sum_cpu / (bytes / 1073741824.0));
            printf(" after_postcopy_ms=%.3f", sum_after / n * 1e3);
            if (cs_ok)
                printf(" cache_hits_per_ckpt=%.1f cache_misses_per_ckpt=%.1f"
                       " cache_maps_per_ckpt=%.2f",
                       (double)hits / n, (double)misses / n, (double)cmaps / n);
            printf("\n");
        }
        if (!checkpointed) {
            double dtime = S.t_end - S.sus[1].t;
            printf(" tput_mbps=%.1f tput_gbps=%.3f downtime_ms=%.3f cpu_s_per_gib=%.3f"
                   " dirtier_writes=%llu",
                   shm->bytes / t_save / 1e6, shm->bytes * 8 / t_save / 1e9, dtime * 1e3,
                   cpu_total / (shm->bytes / 1073741824.0), (unsigned long long)dirtier_writes);
            if (opt.mode == M_LIVE && S.iters >= 2) {
                double t1 = S.t_iter[1] - S.t_iter[0];
                uint64_t b1 = S.b_iter[1] - S.b_iter[0];
                printf(" iterations=%u first_pass_mbps=%.1f first_pass_s=%.3f", S.iters - 1,
                       b1 / t1 / 1e6, t1);
                if (S.iters >= 3) {
                    double tl = S.t_iter[S.iters - 1] - S.t_iter[1];
                    uint64_t bl = S.b_iter[S.iters - 1] - S.b_iter[1];
                    printf(" later_mbps=%.1f later_bytes=%llu", tl > 0 ? bl / tl / 1e6 : 0.0,
                           (unsigned long long)bl);
                }
            }
            printf("\n");
        }
    }
    return rc ? 1 : 0;
}
