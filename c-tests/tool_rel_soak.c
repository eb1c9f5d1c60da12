// SPDX-License-Identifier: GPL-3.0-only
/*
 * `make soak` (not part of `make check`): SOAK_CHECKPOINTS (10,000) Remus checkpoints of one
 * guest (SOAK_MEM_MIB, 64) saved by xcsave and restored by the stock xc_domain_restore in the
 * same process, with a moving working set: after every checkpoint the primary writes
 * SOAK_BURST (256) pages of a window that slides through guest memory. Every SOAK_SAMPLE
 * (100)-th checkpoint the secondary's RAM and params are compared with the primary's state at
 * that suspend, and the process's RSS and VMA count, xensim's live privcmd mappings and the
 * cache's counters are recorded. At failover everything (HVM context too) must equal the
 * last checkpoint. Fails on any difference, or if the private memory (RssAnon: the heap, not
 * the guest RAM files xensim maps, which the sliding window touches progressively) grows by
 * more than 16 MiB, or the VMA count by more than 16, from 10% of the run to the end (memory,
 * not time). Prints one SOAK line per sample.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "test_rel.h"

#include <xen/hvm/params.h>

static unsigned int N = 10000, SAMPLE = 100, BURST = 256;
static uint64_t MEM_MIB = 64;
static const uint32_t SRC = 1, DST = 2;

static xc_interface *xs, *xr;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static unsigned int suspends, r_checkpoints, compared, failed;
static struct xensim_snapshot *snaps[3];   /* by (k / SAMPLE) % 3 */
static unsigned int snap_k[3];
static long anon0 = -1, vma0 = -1, anon_max, vma_max;
static unsigned int base_k;   /* the sample the flatness bounds start from (10% in) */
static uint64_t ram_pages;

static int sampled(unsigned int k)
{
    return k % SAMPLE == 0 || k == N;
}

static int s_suspend(void *d)
{
    unsigned int k;

    (void)d;
    if (xc_domain_shutdown(xs, SRC, SHUTDOWN_suspend))
        return 0;
    pthread_mutex_lock(&lock);
    k = ++suspends;
    if (sampled(k)) {
        unsigned int slot = (k / SAMPLE) % 3;
        xensim_snapshot_free(snaps[slot]);
        snaps[slot] = xensim_snapshot(SRC);
        snap_k[slot] = k;
        pthread_cond_broadcast(&cond);
    }
    pthread_mutex_unlock(&lock);
    return 1;
}

static int s_postcopy(void *d)
{
    unsigned int k = suspends;
    uint64_t base;

    (void)d;
    if (xc_domain_resume(xs, SRC, 1))
        return 0;
    /* the working set slides by 1/16 of itself per checkpoint */
    base = ((uint64_t)k * (BURST / 16)) % (ram_pages - BURST);
    for (unsigned int i = 0; i < BURST; i++) {
        uint64_t gfn = base + i, v[4] = {k, i, gfn, 0x50a4};
        if (gfn >= 0xa0 && gfn < 0xc0)
            continue; /* VGA hole */
        xensim_guest_write(SRC, gfn, (k * 64) % 4096, v, sizeof(v));
    }
    return 1;
}

static int s_checkpoint(void *d)
{
    (void)d;
    return suspends < N && !failed;
}

static int s_logdirty(uint32_t dom, unsigned int en, void *d)
{
    (void)dom, (void)en, (void)d;
    return 0;
}

static void sample(unsigned int k)
{
    struct xensim_counters c;
    XcsaveCacheStats s = {0};
    long rss = rel_rss_kib(), anon = rel_status_kib("RssAnon"), vma = rel_vma_count();

    xensim_counters(&c);
    xcsave_cache_stats(SRC, &s);
    printf("SOAK %6u rss_kib %7ld anon_kib %7ld vmas %5ld live_privcmd_vmas %4llu cache_vmas %4llu "
           "cache_mapped_kib %7llu hits %9llu maps %6llu unmaps %6llu compared %u\n",
           k, rss, anon, vma, (unsigned long long)c.live_privcmd_vmas, (unsigned long long)s.vmas,
           (unsigned long long)(s.mapped_bytes >> 10), (unsigned long long)s.hits,
           (unsigned long long)s.maps, (unsigned long long)s.unmaps, compared);
    fflush(stdout);
    if (k == base_k) {
        anon0 = anon;
        vma0 = vma;
    }
    if (anon0 >= 0 && anon > anon_max)
        anon_max = anon;
    if (vma0 >= 0 && vma > vma_max)
        vma_max = vma;
}

/* Restore: at its k-th checkpoint callback RAM+params equal the primary at suspend k-1. */
static int r_checkpoint(void *d)
{
    unsigned int k = ++r_checkpoints, j = k - 1;
    struct xensim_diff diff;

    (void)d;
    if (j == 0 || !sampled(j))
        return XGR_CHECKPOINT_SUCCESS;
    pthread_mutex_lock(&lock);
    while (snap_k[(j / SAMPLE) % 3] != j && !failed)
        pthread_cond_wait(&cond, &lock);
    if (!failed) {
        int rc = xensim_compare_snapshot(snaps[(j / SAMPLE) % 3], DST,
                                         XENSIM_CMP_RAM | XENSIM_CMP_PARAMS, &diff);
        if (rc) {
            printf("FAIL checkpoint %u: secondary differs: %s: %s\n", j, diff.what,
                   rc < 0 ? strerror(-rc) : diff.text);
            failed = 1;
        } else {
            compared++;
        }
    }
    pthread_mutex_unlock(&lock);
    sample(j);
    return failed ? XGR_CHECKPOINT_ERROR : XGR_CHECKPOINT_SUCCESS;
}

static int save_fd, restore_fd, save_rc, restore_rc;

static void *save_thread(void *a)
{
    struct save_callbacks cb = {.suspend = s_suspend, .postcopy = s_postcopy,
                                .checkpoint = s_checkpoint, .switch_qemu_logdirty = s_logdirty};

    (void)a;
    save_rc = xcsave_domain_save(xs, save_fd, SRC, XCFLAGS_LIVE, &cb, XC_STREAM_REMUS, -1);
    close(save_fd);
    return NULL;
}

static void *restore_thread(void *a)
{
    struct restore_callbacks cb = {.checkpoint = r_checkpoint};
    struct xensim_dominfo si;
    unsigned long store = 0, console = 0;

    (void)a;
    xensim_dominfo(SRC, &si);
    restore_rc = harness_stock_restore()(xr, restore_fd, DST,
                                   (unsigned int)si.hvm_param[HVM_PARAM_STORE_EVTCHN], &store,
                                   0, (unsigned int)si.hvm_param[HVM_PARAM_CONSOLE_EVTCHN],
                                   &console, 0, XC_STREAM_REMUS, &cb, -1);
    close(restore_fd);
    return NULL;
}

static unsigned int env_u(const char *n, unsigned int def)
{
    const char *v = getenv(n);

    return v && *v ? (unsigned int)strtoul(v, NULL, 0) : def;
}

int main(void)
{
    static struct rel_log ls, lr;
    struct xensim_dominfo di;
    struct xensim_diff diff;
    pthread_t ts, tr;
    int p[2], rc;
    double t0;

    N = env_u("SOAK_CHECKPOINTS", N);
    SAMPLE = env_u("SOAK_SAMPLE", SAMPLE);
    BURST = env_u("SOAK_BURST", BURST);
    MEM_MIB = env_u("SOAK_MEM_MIB", (unsigned int)MEM_MIB);
    base_k = (N / 10 / SAMPLE) * SAMPLE;
    if (base_k < 4 * SAMPLE)
        base_k = 4 * SAMPLE; /* after the three snapshot slots are allocated */
    signal(SIGPIPE, SIG_IGN);
    rel_log_init(&ls);
    rel_log_init(&lr);
    xs = rel_xc_open(&ls);
    xr = rel_xc_open(&lr);
    harness_make_pair(SRC, DST, MEM_MIB << 20, 0x50a4);
    xensim_dominfo(SRC, &di);
    ram_pages = (MEM_MIB << 20) / 4096;
    H_CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe");
    fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
    save_fd = p[1];
    restore_fd = p[0];
    printf("soak: %u Remus checkpoints, %llu MiB guest, %u-page working set sliding by %u "
           "pages per checkpoint, sampled every %u\n", N, (unsigned long long)MEM_MIB, BURST,
           BURST / 16, SAMPLE);
    t0 = harness_now();
    pthread_create(&tr, NULL, restore_thread, NULL);
    pthread_create(&ts, NULL, save_thread, NULL);
    pthread_join(ts, NULL);
    pthread_join(tr, NULL);
    printf("soak: save rc %d, restore rc %d, %u checkpoints, %u compared, %.1f s\n", save_rc,
           restore_rc, suspends, compared, harness_now() - t0);
    H_CHECK(!failed, "the secondary differed");
    H_CHECK(save_rc == 0 && restore_rc == 0, "save %d restore %d", save_rc, restore_rc);
    H_CHECK(suspends == N, "%u checkpoints, %u wanted", suspends, N);
    /* failover: everything equals the last checkpoint */
    rc = xensim_compare_snapshot(snaps[(N / SAMPLE) % 3], DST, XENSIM_CMP_ALL, &diff);
    H_CHECK(snap_k[(N / SAMPLE) % 3] == N && rc == 0, "after failover: %s: %s", diff.what,
            diff.text);
    printf("soak: failover state equals checkpoint %u; private memory (RssAnon) %ld -> max "
           "%ld KiB, VMAs %ld -> max %ld (from checkpoint %u on)\n", N, anon0, anon_max, vma0,
           vma_max, base_k);
    H_CHECK(anon0 >= 0, "no baseline sample at checkpoint %u", base_k);
    H_CHECK(anon_max <= anon0 + 16 * 1024, "private memory grew by %ld KiB", anon_max - anon0);
    H_CHECK(vma_max <= vma0 + 16, "VMAs grew by %ld", vma_max - vma0);
    for (int i = 0; i < 3; i++)
        xensim_snapshot_free(snaps[i]);
    xc_interface_close(xs);
    xc_interface_close(xr);
    xensim_destroy_all();
    printf("ok\n");
    return 0;
}
