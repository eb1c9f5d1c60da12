// SPDX-License-Identifier: GPL-3.0-only
/*
 * The mapping cache on xensim, through the public symbols: Remus and COLO checkpoints with
 * a fixed burst of dirty pages; the secondary equals the primary at every checkpoint, and
 * once warm a checkpoint makes no map call (xcsave_cache_stats). After the save, nothing is
 * mapped (xensim's live privcmd VMAs and the cache's own counters).
 *
 * Sub-cases: remus, colo. No argument runs both.
 */
#include <string.h>

#include "harness.h"
#include "xcsave.h"

#define MEM (64ull << 20)
#define CHECKPOINTS 6

struct probe {
    uint32_t src;
    uint64_t maps[CHECKPOINTS + 2];
    unsigned int seen;
};

static void sample(void *arg, unsigned int k)
{
    struct probe *p = arg;
    XcsaveCacheStats s;

    if (xcsave_cache_stats(p->src, &s) == 0 && k < CHECKPOINTS + 2) {
        p->maps[k] = s.maps;
        p->seen = k;
    }
}

static void run(const char *name, xc_stream_type_t stream, uint32_t src, uint32_t dst)
{
    struct harness_opts o;
    struct harness_result r;
    struct probe p;
    struct xensim_counters c;
    XcsaveCacheStats s;
    unsigned int k;

    memset(&o, 0, sizeof(o));
    memset(&p, 0, sizeof(p));
    harness_make_pair(src, dst, MEM, 0xcac4e000u + src);
    p.src = src;
    o.save = xcsave_domain_save;
    o.src = src;
    o.dst = dst;
    o.stream = stream;
    o.live = 1;
    o.checkpoints = CHECKPOINTS;
    o.burst_pages = 64;
    if (stream == XC_STREAM_COLO)
        o.secondary_pages = 16;
    o.between_checkpoints = sample;
    o.arg = &p;
    H_CHECK(harness_round_trip(&o, &r) == 0, "%s: %s", name, r.failure);
    H_CHECK(r.compared >= CHECKPOINTS, "%s: %u states compared", name, r.compared);
    H_CHECK(xcsave_cache_stats(src, &s) == 0, "%s: no cache stats", name);
    printf("%s: hits %llu misses %llu maps %llu unmaps %llu evictions %llu invalidations %llu "
           "expirations %llu peak %llu MiB / %llu VMAs, checkpoints %llu, disabled %llu\n",
           name, (unsigned long long)s.hits, (unsigned long long)s.misses,
           (unsigned long long)s.maps, (unsigned long long)s.unmaps,
           (unsigned long long)s.evictions, (unsigned long long)s.invalidations,
           (unsigned long long)s.expirations, (unsigned long long)(s.peak_mapped_bytes >> 20),
           (unsigned long long)s.peak_vmas, (unsigned long long)s.checkpoints,
           (unsigned long long)s.disabled);
    for (k = 1; k <= p.seen; k++)
        printf("  after checkpoint %u: %llu maps\n", k, (unsigned long long)p.maps[k]);
    H_CHECK(!s.disabled, "%s: caching was off", name);
    H_CHECK(s.hits > 0, "%s: no hits", name);
    H_CHECK(p.seen >= 3, "%s: sampled %u checkpoints", name, p.seen);
    /* Checkpoint 1 is the live round; from checkpoint 3 on, the burst pages are cached. */
    for (k = 3; k <= p.seen; k++)
        H_CHECK(p.maps[k] == p.maps[k - 1], "%s: checkpoint %u made %llu map calls", name, k,
                (unsigned long long)(p.maps[k] - p.maps[k - 1]));
    H_CHECK(s.maps == s.unmaps && s.vmas == 0 && s.mapped_bytes == 0,
            "%s: %llu maps, %llu unmaps, %llu VMAs left", name, (unsigned long long)s.maps,
            (unsigned long long)s.unmaps, (unsigned long long)s.vmas);
    xensim_counters(&c);
    H_CHECK(c.live_privcmd_vmas == 0, "%s: %llu privcmd VMAs left", name,
            (unsigned long long)c.live_privcmd_vmas);
    xensim_destroy_domain(src);
    xensim_destroy_domain(dst);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0;

#define CASE(n) (!only || !strcmp(only, n)) && ++ran
    if (CASE("remus"))
        run("remus", XC_STREAM_REMUS, 1, 2);
    if (CASE("colo"))
        run("colo", XC_STREAM_COLO, 3, 4);
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    printf("ok: %d case(s)\n", ran);
    return 0;
}
