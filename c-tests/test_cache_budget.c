// SPDX-License-Identifier: GPL-3.0-only
/*
 * The mapping cache's budget, off switch, concurrency and lifetime, through the public
 * symbols on xensim:
 *  evict:   a budget far below the working set: eviction happens, the counters show it,
 *           mapped memory never exceeds the budget, every checkpoint stays equal;
 *  default: with no budget set and whole-guest mode off (XCSAVE_CACHE_WHOLE_MB=0), a
 *           2304 MiB guest gets an eighth of its memory (288 MiB):
 *           a Remus working set over 272 MiB of buckets is cached above the old fixed
 *           256 MiB, and mapped memory stays within 288 MiB;
 *  off:     with caching off, the map calls and mapped pages are exactly the stock saver's
 *           (same scenario, xensim's counters), for a non-live save and for Remus;
 *  threads: two Remus saves of two domains run concurrently in one process, both correct,
 *           each with its own counters;
 *  many:    200 consecutive saves in one process: every privcmd mapping is gone after each,
 *           and the counters balance (maps == unmaps);
 *  api:     xcsave_cache_init rejects bad values (EINVAL), xcsave_cache_stats wants a known
 *           domain and a pointer, and xcsave_cache_teardown during a running Remus save
 *           unmaps everything at the next checkpoint (the save goes on, still correct).
 * No argument runs them all.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "harness.h"
#include "xcsave.h"

#define MiB (1024ull * 1024)

static void opts(struct harness_opts *o, harness_save_fn save, uint32_t src,
                 xc_stream_type_t stream, unsigned int checkpoints)
{
    memset(o, 0, sizeof(*o));
    o->save = save;
    o->src = src;
    o->dst = src + 1;
    o->stream = stream;
    o->live = stream != XC_STREAM_PLAIN;
    o->checkpoints = checkpoints;
    o->burst_pages = stream != XC_STREAM_PLAIN ? 64 : 0;
}

static void round_trip(const char *name, struct harness_opts *o, uint64_t mem)
{
    struct harness_result r;

    harness_make_pair(o->src, o->dst, mem, 0xb0d9e7u + o->src);
    H_CHECK(harness_round_trip(o, &r) == 0, "%s: %s", name, r.failure);
    xensim_destroy_domain(o->src);
    xensim_destroy_domain(o->dst);
}

static XcsaveCacheStats stats_of(uint32_t dom)
{
    XcsaveCacheStats s;

    H_CHECK(xcsave_cache_stats(dom, &s) == 0, "no cache stats for d%u", dom);
    return s;
}

static void evict(void)
{
    const uint64_t bucket = 64 * 1024, budget = 4 * MiB + 4 * bucket;
    struct harness_opts o;
    XcsaveCacheStats s;

    H_CHECK(xcsave_cache_init(budget, bucket, 1, 0) == 0, "init");
    opts(&o, xcsave_domain_save, 1, XC_STREAM_REMUS, 5);
    /* A working set that moves by 131 pages a checkpoint over 8 MiB: the cache keeps the
     * buckets the current checkpoint uses (the rest of it goes per batch) and evicts those
     * of earlier checkpoints. */
    o.dirty_count = 2048;
    round_trip("evict", &o, 32 * MiB);
    s = stats_of(1);
    printf("evict: hits %llu misses %llu maps %llu evictions %llu peak %llu KiB\n",
           (unsigned long long)s.hits, (unsigned long long)s.misses,
           (unsigned long long)s.maps, (unsigned long long)s.evictions,
           (unsigned long long)(s.peak_mapped_bytes >> 10));
    H_CHECK(s.evictions > 0 && !s.disabled, "no eviction");
    H_CHECK(s.peak_mapped_bytes <= budget, "peak %llu over the budget",
            (unsigned long long)s.peak_mapped_bytes);
    H_CHECK(s.maps == s.unmaps && s.vmas == 0, "mappings left");
    xcsave_cache_teardown();
}

static void default_budget(void)
{
    const uint64_t mem = 2304 * MiB, budget = mem / 8, region = 272 * MiB;
    struct harness_opts o;
    XcsaveCacheStats s;

    xcsave_cache_teardown(); /* no xcsave_cache_init: the default, and no XCSAVE_CACHE_MB */
    H_CHECK(!getenv("XCSAVE_CACHE_MB"), "XCSAVE_CACHE_MB is set");
    /* The bounded default: whole-guest mode (test_cache_whole) off. */
    setenv("XCSAVE_CACHE_WHOLE_MB", "0", 1);
    opts(&o, xcsave_domain_save, 1, XC_STREAM_REMUS, 4);
    /* Every 7th page of the first 272 MiB at each checkpoint: about 36 pages of each 1 MiB
     * bucket, dense enough to be cached (docs/performance.md, "Cache policy"). */
    o.dirty_first = 0;
    o.dirty_count = region / 4096;
    o.burst_pages = (unsigned int)(region / 4096 / 7);
    o.no_compare = 1; /* equality at every checkpoint: the other cases; this one is big */
    round_trip("default", &o, mem);
    s = stats_of(1);
    printf("default: %llu MiB guest: hits %llu maps %llu peak %llu KiB (budget %llu KiB)\n",
           (unsigned long long)(mem / MiB), (unsigned long long)s.hits,
           (unsigned long long)s.maps, (unsigned long long)(s.peak_mapped_bytes >> 10),
           (unsigned long long)(budget >> 10));
    H_CHECK(!s.disabled && s.hits > 0, "caching off or no hits");
    H_CHECK(s.peak_mapped_bytes > 256 * MiB, "peak %llu KiB: not above the old 256 MiB",
            (unsigned long long)(s.peak_mapped_bytes >> 10));
    H_CHECK(s.peak_mapped_bytes <= budget, "peak %llu KiB over the default budget",
            (unsigned long long)(s.peak_mapped_bytes >> 10));
    H_CHECK(s.maps == s.unmaps && s.vmas == 0, "mappings left");
    unsetenv("XCSAVE_CACHE_WHOLE_MB");
}

/* Map calls and pages mapped by one round trip (save and restore sides). */
static void counted(const char *name, harness_save_fn save, xc_stream_type_t st,
                    uint64_t out[2])
{
    struct harness_opts o;
    struct xensim_counters c;

    opts(&o, save, 1, st, 3);
    xensim_counters_reset();
    round_trip(name, &o, 16 * MiB);
    xensim_counters(&c);
    out[0] = c.mmapbatch_calls;
    out[1] = c.pages_mapped;
}

static void off(void)
{
    const xc_stream_type_t types[] = {XC_STREAM_PLAIN, XC_STREAM_REMUS};
    uint64_t stock[2], ours[2];

    for (unsigned int i = 0; i < 2; i++) {
        counted("off/stock", harness_stock_save(), types[i], stock);
        H_CHECK(xcsave_cache_init(0, 0, 0, 0) == 0, "init off");
        counted("off/xcsave", xcsave_domain_save, types[i], ours);
        xcsave_cache_teardown();
        printf("off (stream %u): stock %llu calls / %llu pages, xcsave %llu / %llu\n",
               types[i], (unsigned long long)stock[0], (unsigned long long)stock[1],
               (unsigned long long)ours[0], (unsigned long long)ours[1]);
        H_CHECK(stock[0] == ours[0] && stock[1] == ours[1], "map pattern differs");
        H_CHECK(stats_of(1).disabled == 1, "caching was on");
    }
}

struct job {
    struct harness_opts o;
    char path[64];
};

static void *job_run(void *arg)
{
    struct job *j = arg;

    round_trip(j->path, &j->o, 32 * MiB);
    return NULL;
}

static void threads(void)
{
    struct job j[2];
    pthread_t t[2];

    for (unsigned int i = 0; i < 2; i++) {
        opts(&j[i].o, xcsave_domain_save, 1 + 2 * i, i ? XC_STREAM_COLO : XC_STREAM_REMUS, 4);
        if (i)
            j[i].o.secondary_pages = 16;
        snprintf(j[i].path, sizeof(j[i].path), "%s/stream-%u.bin",
                 getenv("XENSIM_DIR") ? getenv("XENSIM_DIR") : "/tmp", i);
        j[i].o.stream_path = j[i].path;
    }
    for (unsigned int i = 0; i < 2; i++)
        H_CHECK(pthread_create(&t[i], NULL, job_run, &j[i]) == 0, "thread");
    for (unsigned int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (unsigned int i = 0; i < 2; i++) {
        XcsaveCacheStats s = stats_of(1 + 2 * i);
        printf("threads: d%u hits %llu maps %llu checkpoints %llu\n", 1 + 2 * i,
               (unsigned long long)s.hits, (unsigned long long)s.maps,
               (unsigned long long)s.checkpoints);
        H_CHECK(s.hits > 0 && s.checkpoints >= 4 && s.maps == s.unmaps, "d%u", 1 + 2 * i);
    }
}

static void many(void)
{
    struct xensim_counters c;
    struct harness_opts o;

    for (unsigned int i = 0; i < 200; i++) {
        opts(&o, xcsave_domain_save, 1, i % 2 ? XC_STREAM_REMUS : XC_STREAM_PLAIN, 2);
        o.no_verify = 1;
        round_trip("many", &o, 2 * MiB);
        xensim_counters(&c);
        H_CHECK(c.live_privcmd_vmas == 0, "save %u left %llu privcmd VMAs", i,
                (unsigned long long)c.live_privcmd_vmas);
        H_CHECK(stats_of(1).maps == stats_of(1).unmaps, "save %u: maps != unmaps", i);
    }
    printf("many: 200 saves, no mapping left\n");
}

static void teardown_at(void *arg, unsigned int k)
{
    XcsaveCacheStats *before = arg;

    if (k == 2) {
        H_CHECK(xcsave_cache_stats(1, before) == 0, "stats");
        H_CHECK(xcsave_cache_teardown() == 0, "teardown");
    }
}

static void api(void)
{
    struct harness_opts o;
    XcsaveCacheStats before, after;

    errno = 0;
    H_CHECK(xcsave_cache_init(0, 12 * 1024, 1, 0) == -1 && errno == EINVAL, "bucket 12 KiB");
    errno = 0;
    H_CHECK(xcsave_cache_init(1024 * 1024, 0, 1, 0) == -1 && errno == EINVAL, "budget 1 MiB");
    /* The bounds the environment is clamped to (README "Settings"): the API refuses. */
    H_CHECK(xcsave_cache_init(0, 4 * 1024, 1, 0) == -1 && errno == EINVAL, "bucket 4 KiB");
    H_CHECK(xcsave_cache_init(0, 64ull << 20, 1, 0) == -1 && errno == EINVAL, "bucket 64 MiB");
    H_CHECK(xcsave_cache_init(0, 0, 1, 4097) == -1 && errno == EINVAL, "max age 4097");
    H_CHECK(xcsave_cache_init(~0ull, 0, 1, 0) == -1 && errno == EINVAL, "budget 2^64-1");
    H_CHECK(xcsave_cache_init(0, 64 * 1024, 1, 4096) == 0, "bucket 64 KiB, max age 4096");
    H_CHECK(xcsave_cache_teardown() == 0, "teardown");
    H_CHECK(xcsave_cache_stats(1, NULL) == -1 && errno == EINVAL, "NULL out");
    H_CHECK(xcsave_cache_stats(4242, &after) == -1 && errno == ENOENT, "unknown domain");
    opts(&o, xcsave_domain_save, 1, XC_STREAM_REMUS, 4);
    o.between_checkpoints = teardown_at;
    o.arg = &before;
    round_trip("api", &o, 16 * MiB);
    after = stats_of(1);
    printf("api: before teardown %llu VMAs, %llu invalidations; at the end %llu maps, "
           "%llu invalidations\n", (unsigned long long)before.vmas,
           (unsigned long long)before.invalidations, (unsigned long long)after.maps,
           (unsigned long long)after.invalidations);
    H_CHECK(before.vmas > 0 && after.invalidations >= before.invalidations + before.vmas,
            "teardown did not unmap the running save's cache");
    H_CHECK(after.maps > before.maps && after.maps == after.unmaps, "no remap after teardown");
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0;

#define CASE(n) (!only || !strcmp(only, n)) && ++ran
    if (CASE("evict"))
        evict();
    if (CASE("default"))
        default_budget();
    if (CASE("off"))
        off();
    if (CASE("threads"))
        threads();
    if (CASE("many"))
        many();
    if (CASE("api"))
        api();
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    printf("ok: %d case(s)\n", ran);
    return 0;
}
