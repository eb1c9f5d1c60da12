// SPDX-License-Identifier: GPL-3.0-only
/*
 * The receiving side's mapping cache (issue 15, docs/restore.md B.5/B.6), through the public
 * xc_domain_restore: xcsave's saver (patrol off, so that its warm checkpoints make no map
 * call: test_cache_warm) sends Remus or COLO checkpoints of a fixed burst of pages to a
 * secondary restored by xcsave's xc_domain_restore, or by stock's for comparison. The harness
 * checks the secondary against the primary at every checkpoint and at the end.
 *
 * xensim counts MMAPBATCH ioctls process-wide; they are sampled at the start of each of the
 * restore's checkpoint callbacks, so a delta is one whole checkpoint cycle of both sides.
 * With the primary's own warm checkpoints at 0, a warm cycle's delta is the secondary's.
 *
 * Sub-cases:
 *   colo, remus  warm checkpoints (4th on) make 0 map calls with xcsave on both sides, and
 *                the secondary's cache serves them (xcsave_cache_stats of the restored
 *                domain: hits, no map); the same stream into stock's restore makes > 0
 *                (printed: the figure of docs/performance.md);
 *   balloon      COLO: the running secondary balloons a cached page out and in again (a new
 *                frame under the cache) and writes it, so the primary resends it: the check
 *                after suspend sees tot_pages move, flushes the cache, and the secondary
 *                stays equal to the primary at every checkpoint; the checkpoint after the
 *                remap makes no map call again (the flush's own release is not a change);
 *   replace      COLO: the same with a populate over the page (xensim_balloon_replace);
 *   buffer       XCSAVE_RESTORE_BUFFER_MB=1 and Remus checkpoints of 400 pages (1.6 MiB):
 *                the restore fails with -1/ENOMEM (never a failover), nothing left mapped;
 *                with the default bound the same stream restores (colo/remus above).
 * After every restore no privcmd VMA is left (xensim's live count). No argument runs all.
 */
#include <errno.h>
#include <string.h>

#include "harness.h"
#include "xcsave.h"

#define MEM (64ull << 20)
#define CHECKPOINTS 8
#define WARM 4 /* checkpoints from this one on are warm */
#define GFN 0x10 /* a page of the burst's bucket (the burst writes gfns 0..0x7f) */

struct probe {
    uint32_t dst;
    uint64_t maps[CHECKPOINTS + 2];     /* xensim MMAPBATCH calls at checkpoint k */
    uint64_t cache_maps[CHECKPOINTS + 2]; /* the restore's own cache counter */
    uint64_t hits[CHECKPOINTS + 2];
    unsigned int seen;
    int p2m_op;                          /* 0 none, 1 balloon out+in, 2 replace */
    int p2m_rc;
};

static unsigned int next_dom = 1;

static void sample(void *arg, unsigned int k)
{
    struct probe *p = arg;
    struct xensim_counters c;
    XcsaveCacheStats s;

    if (k >= CHECKPOINTS + 2)
        return;
    xensim_counters(&c);
    p->maps[k] = c.mmapbatch_calls;
    if (xcsave_cache_stats(p->dst, &s) == 0) {
        p->cache_maps[k] = s.maps;
        p->hits[k] = s.hits;
    }
    p->seen = k;
}

/* COLO, the secondary running: change the p2m under a cached page, then write it so that
 * it is dirty on the secondary and the primary sends it again at the next checkpoint. */
static void change_p2m(void *arg, unsigned int k)
{
    struct probe *p = arg;
    uint64_t v[2] = {0x5ec0dda7, k};

    if (k != WARM || !p->p2m_op)
        return;
    if (p->p2m_op == 1) {
        p->p2m_rc = xensim_balloon_out(p->dst, GFN);
        if (!p->p2m_rc)
            p->p2m_rc = xensim_balloon_in(p->dst, GFN);
    } else {
        p->p2m_rc = xensim_balloon_replace(p->dst, GFN, 0xfeed);
    }
    if (!p->p2m_rc)
        p->p2m_rc = xensim_guest_write(p->dst, GFN, 64, v, sizeof(v));
}

/* One round trip; returns the map calls of each warm cycle summed. */
static uint64_t run(const char *name, xc_stream_type_t st, harness_restore_fn restore,
                    struct probe *p, unsigned int burst, int expect_fail,
                    struct harness_result *r)
{
    struct harness_opts o;
    struct xensim_counters c;
    uint32_t src = next_dom++, dst = next_dom++;
    uint64_t warm = 0;

    memset(&o, 0, sizeof(o));
    harness_make_pair(src, dst, MEM, 0x4e57c000u + src);
    p->dst = dst;
    o.save = xcsave_domain_save;
    o.restore = restore;
    o.src = src;
    o.dst = dst;
    o.stream = st;
    o.live = 1;
    o.checkpoints = CHECKPOINTS;
    o.burst_pages = burst;
    /* The burst writes pages among the first 128 gfns, or, for more than 128 pages, among
     * the first 4096 (no dirtier runs: the rate is 0). */
    if (burst > 128)
        o.dirty_count = 4096;
    if (st == XC_STREAM_COLO)
        o.secondary_pages = 16;
    o.restore_checkpoint = sample;
    o.secondary_running = change_p2m;
    o.arg = p;
    o.expect_restore_fail = expect_fail;
    /* Remus: the primary fails over (rc 0) when the secondary goes away. */
    o.expect_save_fail = 0;
    H_CHECK(harness_round_trip(&o, r) == 0, "%s: %s", name, r->failure);
    xensim_counters(&c);
    H_CHECK(c.live_privcmd_vmas == 0, "%s: %llu privcmd VMAs left after the restore", name,
            (unsigned long long)c.live_privcmd_vmas);
    if (!expect_fail) {
        H_CHECK(p->seen == CHECKPOINTS, "%s: %u checkpoint callbacks sampled, want %u", name,
                p->seen, CHECKPOINTS);
        printf("%s: map calls per checkpoint cycle:", name);
        for (unsigned int k = 2; k <= p->seen; k++) {
            printf(" %llu", (unsigned long long)(p->maps[k] - p->maps[k - 1]));
            if (k > WARM)
                warm += p->maps[k] - p->maps[k - 1];
        }
        printf("; warm (%u..%u): %llu\n", WARM, CHECKPOINTS, (unsigned long long)warm);
    }
    xensim_destroy_domain(src);
    xensim_destroy_domain(dst);
    return warm;
}

static void warm_case(const char *name, xc_stream_type_t st)
{
    struct probe ours, stock;
    struct harness_result r;
    uint64_t w_ours, w_stock;
    char label[64];

    memset(&ours, 0, sizeof(ours));
    memset(&stock, 0, sizeof(stock));
    snprintf(label, sizeof(label), "%s xcsave->xcsave", name);
    w_ours = run(label, st, xc_domain_restore, &ours, 64, 0, &r);
    snprintf(label, sizeof(label), "%s xcsave->stock", name);
    w_stock = run(label, st, harness_stock_restore(), &stock, 64, 0, &r);
    printf("%s: warm checkpoints %u..%u: %llu map calls (xcsave restore) vs %llu (stock "
           "restore), %.1f per checkpoint with stock\n",
           name, WARM + 1, CHECKPOINTS, (unsigned long long)w_ours,
           (unsigned long long)w_stock, (double)w_stock / (CHECKPOINTS - WARM));
    H_CHECK(w_stock > 0, "%s: stock's restore made no map call: the probe sees nothing", name);
    H_CHECK(w_ours == 0, "%s: %llu map calls in warm checkpoints with xcsave's restore", name,
            (unsigned long long)w_ours);
    H_CHECK(ours.cache_maps[CHECKPOINTS] == ours.cache_maps[WARM] &&
                ours.hits[CHECKPOINTS] > ours.hits[WARM],
            "%s: the restore's cache mapped %llu and hit %llu times in warm checkpoints", name,
            (unsigned long long)(ours.cache_maps[CHECKPOINTS] - ours.cache_maps[WARM]),
            (unsigned long long)(ours.hits[CHECKPOINTS] - ours.hits[WARM]));
}

static void p2m_case(const char *name, int op)
{
    struct probe p;
    struct harness_result r;
    XcsaveCacheStats before, after;

    memset(&p, 0, sizeof(p));
    p.p2m_op = op;
    run(name, XC_STREAM_COLO, xc_domain_restore, &p, 64, 0, &r);
    H_CHECK(p.p2m_rc == 0, "%s: the p2m change failed: %s", name, strerror(-p.p2m_rc));
    H_CHECK(r.compared >= CHECKPOINTS, "%s: %u checkpoints compared", name, r.compared);
    H_CHECK(xcsave_cache_stats(p.dst, &after) == 0, "%s: no cache stats for d%u", name, p.dst);
    before.invalidations = 0;
    printf("%s: secondary equal to the primary at all %u checkpoints; cache invalidations "
           "%llu, maps %llu\n",
           name, r.compared, (unsigned long long)after.invalidations,
           (unsigned long long)after.maps);
    /* The flush after the change is what kept the secondary equal: it must have happened,
     * and the bucket was mapped again afterwards. */
    H_CHECK(after.invalidations > before.invalidations, "%s: the cache was never flushed", name);
    H_CHECK(p.cache_maps[CHECKPOINTS] > p.cache_maps[WARM],
            "%s: the bucket was not mapped again after the flush", name);
    /* The flush is judged once: the frames it released are not taken for a change at the
     * next check, so the checkpoint after the remap is warm again. */
    for (unsigned int k = WARM + 3; k <= CHECKPOINTS; k++)
        H_CHECK(p.maps[k] == p.maps[k - 1], "%s: %llu map calls in checkpoint cycle %u, after "
                "the flush's remap", name, (unsigned long long)(p.maps[k] - p.maps[k - 1]), k);
}

static void buffer_case(void)
{
    struct probe p;
    struct harness_result r;

    memset(&p, 0, sizeof(p));
    setenv("XCSAVE_RESTORE_BUFFER_MB", "1", 1);
    run("buffer", XC_STREAM_REMUS, xc_domain_restore, &p, 400, 1, &r);
    unsetenv("XCSAVE_RESTORE_BUFFER_MB");
    printf("buffer: restore rc %d errno %d (%s)\n", r.restore_rc, r.restore_errno,
           strerror(r.restore_errno));
    H_CHECK(r.restore_rc == -1 && r.restore_errno == ENOMEM,
            "buffer: restore rc %d errno %d, want -1/ENOMEM", r.restore_rc, r.restore_errno);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0;

    /* The primary's patrol maps after every postcopy; off, its warm checkpoints map nothing
     * (test_cache_warm), so a warm cycle's map calls are the secondary's. */
    setenv("XCSAVE_CACHE_PATROL", "0", 1);
#define CASE(n) (!only || !strcmp(only, n)) && ++ran
    if (CASE("colo"))
        warm_case("colo", XC_STREAM_COLO);
    if (CASE("remus"))
        warm_case("remus", XC_STREAM_REMUS);
    if (CASE("balloon"))
        p2m_case("balloon", 1);
    if (CASE("replace"))
        p2m_case("replace", 2);
    if (CASE("buffer"))
        buffer_case();
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    printf("ok: %d case(s)\n", ran);
    return 0;
}
