// SPDX-License-Identifier: GPL-3.0-only
/*
 * The mapping cache on xensim, through the public symbols: Remus and COLO checkpoints with
 * a fixed burst of dirty pages; the secondary equals the primary at every checkpoint, and
 * once warm a checkpoint makes no map call (xcsave_cache_stats; the patrol is off). After the save, nothing is
 * mapped (xensim's live privcmd VMAs and the cache's own counters).
 *
 * live: a plain live migration with a 16 MiB budget (12 buckets) on a 64 MiB guest. The first
 * pass retains the buckets that fit; pages written between the first and second pass are
 * then served from them (hits, no map call); every bucket is unmapped after the precopy
 * policy chose stop-and-copy and before the suspend callback, so nothing is mapped while the
 * guest is suspended (the cache's counters and xensim's live VMAs); a round trip with a
 * dirtier over the retained region restores equal to the source.
 *
 * Sub-cases: remus, colo, live. No argument runs them all.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

#define LIVE_WRITES 64 /* one page in 16 from pfn 0x100: buckets 1-4, sparse */

struct live {
    uint32_t dom;
    XcsaveCacheStats after_first, at_stop, at_suspend;
    uint64_t vmas_at_suspend;
    unsigned int policy_calls, suspends;
};

static XcsaveCacheStats stats_now(uint32_t dom)
{
    XcsaveCacheStats s;

    H_CHECK(xcsave_cache_stats(dom, &s) == 0, "no cache stats for d%u", dom);
    return s;
}

/* Iteration 0: the full pass. Before the log-dirty CLEAN of iteration 1 (dirty_count -1),
 * the guest writes LIVE_WRITES pages; iteration 1 sends them; then stop-and-copy. */
static int live_policy(struct precopy_stats st, void *data)
{
    struct live *l = data;
    uint64_t v = 0x5a5a0000u;

    l->policy_calls++;
    if (st.iteration == 1 && st.dirty_count == -1) {
        l->after_first = stats_now(l->dom);
        for (unsigned int i = 0; i < LIVE_WRITES; i++, v++)
            H_CHECK(xensim_guest_write(l->dom, 0x100 + 16 * i, 8, &v, sizeof(v)) == 0, "write");
    }
    if (st.iteration >= 2) {
        l->at_stop = stats_now(l->dom);
        return XGS_POLICY_STOP_AND_COPY;
    }
    return XGS_POLICY_CONTINUE_PRECOPY;
}

static int live_suspend(void *data)
{
    struct live *l = data;
    struct xensim_counters c;

    l->suspends++;
    l->at_suspend = stats_now(l->dom);
    xensim_counters(&c);
    l->vmas_at_suspend = c.live_privcmd_vmas;
    return xensim_suspend(l->dom) == 0;
}

static int live_logdirty(uint32_t domid, unsigned int enable, void *data)
{
    (void)domid;
    (void)enable;
    (void)data;
    return 0;
}

static void run_live(uint32_t src, uint32_t dst)
{
    xc_interface *xch = harness_xc_open();
    struct save_callbacks cb;
    struct harness_opts o;
    struct harness_result r;
    struct xensim_counters c;
    struct live l;
    XcsaveCacheStats s;
    int fd = open("/dev/null", O_WRONLY), rc;

    H_CHECK(fd >= 0, "open /dev/null");
    H_CHECK(xcsave_cache_init(16ull << 20, 1ull << 20, 1, 0) == 0, "init");
    harness_make_pair(src, dst, MEM, 0x11fe0000u + src);
    memset(&l, 0, sizeof(l));
    l.dom = src;
    memset(&cb, 0, sizeof(cb));
    cb.suspend = live_suspend;
    cb.precopy_policy = live_policy;
    cb.switch_qemu_logdirty = live_logdirty;
    cb.data = &l;
    rc = xcsave_domain_save(xch, fd, src, XCFLAGS_LIVE, &cb, XC_STREAM_PLAIN, -1);
    close(fd);
    harness_xc_close(xch);
    H_CHECK(rc == 0, "live: save rc %d", rc);
    s = stats_now(src);
    printf("live: after the first pass: hits %llu maps %llu VMAs %llu; at stop-and-copy: hits "
           "%llu maps %llu VMAs %llu; at suspend: VMAs %llu mapped %llu (xensim VMAs %llu); "
           "end: maps %llu unmaps %llu\n",
           (unsigned long long)l.after_first.hits, (unsigned long long)l.after_first.maps,
           (unsigned long long)l.after_first.vmas, (unsigned long long)l.at_stop.hits,
           (unsigned long long)l.at_stop.maps, (unsigned long long)l.at_stop.vmas,
           (unsigned long long)l.at_suspend.vmas, (unsigned long long)l.at_suspend.mapped_bytes,
           (unsigned long long)l.vmas_at_suspend, (unsigned long long)s.maps,
           (unsigned long long)s.unmaps);
    H_CHECK(l.suspends == 1 && l.policy_calls >= 4, "live: %u suspends, %u policy calls",
            l.suspends, l.policy_calls);
    H_CHECK(!s.disabled, "live: caching was off");
    /* The first pass retained the 12 buckets that fit in 16 MiB less the 4 MiB batch. */
    H_CHECK(l.after_first.vmas == 12, "live: %llu buckets retained after the first pass",
            (unsigned long long)l.after_first.vmas);
    /* Iteration 1 served every written page from a retained bucket, with no map call. */
    H_CHECK(l.at_stop.hits - l.after_first.hits >= LIVE_WRITES &&
                l.at_stop.maps == l.after_first.maps,
            "live: iteration 1: %llu hits, %llu map calls",
            (unsigned long long)(l.at_stop.hits - l.after_first.hits),
            (unsigned long long)(l.at_stop.maps - l.after_first.maps));
    /* Released before the suspend callback: nothing mapped while the guest is suspended. */
    H_CHECK(l.at_suspend.vmas == 0 && l.at_suspend.mapped_bytes == 0 && l.vmas_at_suspend == 0,
            "live: at suspend %llu buckets, %llu bytes mapped, %llu privcmd VMAs",
            (unsigned long long)l.at_suspend.vmas, (unsigned long long)l.at_suspend.mapped_bytes,
            (unsigned long long)l.vmas_at_suspend);
    H_CHECK(s.maps == s.unmaps && s.vmas == 0, "live: %llu maps, %llu unmaps",
            (unsigned long long)s.maps, (unsigned long long)s.unmaps);
    xensim_resume(src);

    /* A round trip with a dirtier over the retained region: the target equals the source. */
    memset(&o, 0, sizeof(o));
    o.save = xcsave_domain_save;
    o.src = src;
    o.dst = dst;
    o.stream = XC_STREAM_PLAIN;
    o.live = 1;
    o.dirty_rate = 20000;
    o.dirty_first = 0x100;
    o.dirty_count = 2048;
    H_CHECK(harness_round_trip(&o, &r) == 0, "live round trip: %s", r.failure);
    s = stats_now(src);
    printf("live round trip: %llu dirtier writes, hits %llu maps %llu unmaps %llu\n",
           (unsigned long long)r.dirtier_writes, (unsigned long long)s.hits,
           (unsigned long long)s.maps, (unsigned long long)s.unmaps);
    H_CHECK(s.maps == s.unmaps && s.vmas == 0, "live round trip: %llu VMAs left",
            (unsigned long long)s.vmas);
    xensim_counters(&c);
    H_CHECK(c.live_privcmd_vmas == 0, "live: %llu privcmd VMAs left",
            (unsigned long long)c.live_privcmd_vmas);
    xcsave_cache_teardown();
    xensim_destroy_domain(src);
    xensim_destroy_domain(dst);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0;

    /* The patrol maps a share of the cached buckets after each postcopy, outside the
     * downtime (test_cache_p2m): off here, so that a map call counted between two
     * checkpoints can only be the downtime's. */
    setenv("XCSAVE_CACHE_PATROL", "0", 1);
#define CASE(n) (!only || !strcmp(only, n)) && ++ran
    if (CASE("remus"))
        run("remus", XC_STREAM_REMUS, 1, 2);
    if (CASE("colo"))
        run("colo", XC_STREAM_COLO, 3, 4);
    if (CASE("live"))
        run_live(5, 6);
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    printf("ok: %d case(s)\n", ran);
    return 0;
}
