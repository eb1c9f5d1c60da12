// SPDX-License-Identifier: GPL-3.0-only
/*
 * Bucket-size measurement for docs/coherence.md: Remus, 256 MiB guest, 10 checkpoints of a
 * fixed burst of dirty pages, the stock saver and xcsave with 64 KiB to 4 MiB buckets, at
 * xensim's cost model 0 and 2 us per mapped page. Prints one markdown row per run: the whole
 * save's time, and the median warm checkpoint cycle (postcopy to postcopy: guest burst,
 * suspend, send, secondary applies), which is where the cache should win.
 * Usage: tool_cache_buckets [burst_pages [bucket_kb [ns_per_page]]]
 *   (default 2048 pages, every bucket size and stock, both cost models; bucket_kb 0 = stock)
 */
#include <string.h>

#include "harness.h"
#include "xcsave.h"

#define MiB (1024ull * 1024)
#define MEM (256 * MiB)
#define CKPTS 10

static double stamp[CKPTS + 2];

/* After each postcopy: the time since the previous one is a whole checkpoint cycle. */
static void tick(void *arg, unsigned int k)
{
    (void)arg;
    if (k < CKPTS + 2)
        stamp[k] = harness_now();
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void one(const char *who, harness_save_fn save, uint64_t bucket_kb, uint64_t page_ns,
                unsigned int burst)
{
    struct harness_opts o;
    struct harness_result r;
    XcsaveCacheStats s;

    memset(&o, 0, sizeof(o));
    memset(&s, 0, sizeof(s));
    harness_make_pair(1, 2, MEM, 77);
    o.save = save;
    o.src = 1;
    o.dst = 2;
    o.stream = XC_STREAM_REMUS;
    o.live = 1;
    o.checkpoints = CKPTS;
    o.burst_pages = burst;
    o.dirty_first = 0;
    o.dirty_count = MEM / 4096;
    o.no_compare = 1;
    o.no_verify = 1;
    o.between_checkpoints = tick;
    if (bucket_kb)
        H_CHECK(xcsave_cache_init(1024 * MiB, bucket_kb * 1024, 1, 0) == 0, "init");
    xensim_set_cost(0, page_ns);
    H_CHECK(harness_round_trip(&o, &r) == 0, "%s: %s", who, r.failure);
    if (bucket_kb)
        xcsave_cache_stats(1, &s);
    /* warm cycles: postcopy 2 -> 3 ... CKPTS-1 -> CKPTS */
    double cyc[CKPTS];
    unsigned int n = 0;
    for (unsigned int k = 3; k <= CKPTS; k++)
        cyc[n++] = (stamp[k] - stamp[k - 1]) * 1e3;
    qsort(cyc, n, sizeof(cyc[0]), cmp);
    printf("| %s | %llu | %u | %.3f | %.2f | %llu | %llu | %llu |\n", who,
           (unsigned long long)page_ns, burst, r.save_secs, cyc[n / 2], (unsigned long long)s.maps,
           (unsigned long long)(s.bytes_mapped >> 20),
           (unsigned long long)(s.peak_mapped_bytes >> 20));
    fflush(stdout);
    xcsave_cache_teardown();
    xensim_destroy_domain(1);
    xensim_destroy_domain(2);
}

int main(int argc, char **argv)
{
    unsigned int burst = argc > 1 ? (unsigned int)atoi(argv[1]) : 2048;
    const uint64_t kb[] = {0, 64, 256, 1024, 4096};
    const uint64_t cost[] = {0, 2000};
    long only_kb = argc > 2 ? atol(argv[2]) : -1;
    long only_ns = argc > 3 ? atol(argv[3]) : -1;

    printf("| saver | ns/page | dirty/ckpt | save s | warm cycle ms (p50) | cache maps | "
           "MiB mapped | peak MiB |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (unsigned int c = 0; c < 2; c++) {
        if (only_ns >= 0 && (uint64_t)only_ns != cost[c])
            continue;
        for (unsigned int i = 0; i < 5; i++) {
            char who[32];
            if (only_kb >= 0 && (uint64_t)only_kb != kb[i])
                continue;
            if (!kb[i]) {
                one("stock", harness_stock_save(), 0, cost[c], burst);
                continue;
            }
            snprintf(who, sizeof(who), "xcsave %llu KiB", (unsigned long long)kb[i]);
            one(who, xcsave_domain_save, kb[i], cost[c], burst);
        }
    }
    return 0;
}
