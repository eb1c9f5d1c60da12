// SPDX-License-Identifier: GPL-3.0-only
/*
 * Whole-guest mode of the mapping cache (issue 13, docs/performance.md "Whole-guest mode"),
 * through xcsave_domain_save and xcsave_cache_stats on xensim. Remus, 240 MiB guests: above
 * what the bounded default budget (256 MiB) holds "with 1/8 to spare", so a whole-guest
 * mapping (peak mapped >= the guest) is whole-guest mode's doing. Between checkpoints the
 * guest writes 64 pages scattered over its memory (a fresh set each time: the pattern the
 * bounded policy cannot serve).
 *  dom0:     XENSIM_DOM0 pv, pvh (with XCSAVE_DOM0_UNPOPULATED=yes) map the whole guest and
 *            make no map call in warm checkpoints; pvh with XCSAVE_DOM0_UNPOPULATED=no
 *            (xensim's pvh-balloon model) keeps the bounded policy: far below the guest;
 *  vma:      XCSAVE_CACHE_WHOLE_VMAS=40: the buckets grow to 8 MiB so that the guest fits
 *            in 40 VMAs (peak VMAs <= 40 + the per-batch one); with 4 even 32 MiB buckets
 *            do not fit: bounded;
 *  cap:      two Remus saves run concurrently in one process under XCSAVE_CACHE_WHOLE_MB=400:
 *            exactly one maps its guest whole; under 1000 both do;
 *  explicit: a budget set explicitly wins over whole-guest mode: XCSAVE_CACHE_MB=64, then
 *            xcsave_cache_init(64 MiB), each keeps the save within 64 MiB mapped; after
 *            xcsave_cache_teardown (which forgets the init settings) the default maps whole;
 *  exchange: with the whole guest mapped, a masked exchange (P given a new frame, R
 *            released) raises tot_pages by one (R's frame is held too), so the cache flushes
 *            and the secondary equals the primary at every checkpoint;
 *  release:  the patrol on (N = 64: 4 buckets after each postcopy, from bucket 0). After
 *            postcopy 2 the guest releases page RB (bucket 5, held mapped), which that
 *            postcopy's visit finds. Its old mapping holds RB's frame until the next check,
 *            which takes the counters as they were, then releases it: the cache never
 *            flushes, and RB's frame is free by postcopy 4. Then again with, in the same
 *            interval, P2 (bucket 200, not visited) given a new frame and written: a
 *            release at the visit would cancel the +1 and the stale mapping would be sent;
 *            the cache must flush and the secondary equal the primary at every checkpoint;
 *  expiry:   XCSAVE_CACHE_MAX_AGE=3 over 12 checkpoints, with the patrol off and then on
 *            (N = 64): every first-pass bucket reaches the age at the same checkpoint. The
 *            stream must stay within 1.5 guests (an expiry that sent again every page served
 *            since the first pass resent the whole guest every 3 checkpoints), the guest
 *            stays mapped whole, and the secondary equals the primary at every checkpoint.
 *  resave:   the bench's second save of a guest (docs/performance.md, "Issue 13, fifth
 *            session": xcsave's random rows ran faster than the limit after a stock save of
 *            the same guest). The stock saver saves the guest over 4 checkpoints, then the
 *            guest resumes and xcsave saves it again over 6, the patrol on (N = 64); between
 *            checkpoints the guest writes 1,024 pages drawn afresh over its memory. The
 *            secondary must equal the primary at every checkpoint of both saves.
 * Every case but cap runs with whole-guest mode's default settings (no XCSAVE_CACHE_WHOLE_MB).
 * No argument runs them all.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "xcsave.h"

#define MiB (1024ull * 1024)
#define MEM (240 * MiB)
#define PAGES (MEM / 4096)
#define P 0xc5ull
#define R 0x9c5ull
#define RB (5 * 256 + 0x33ull)
#define P2 (200 * 256 + 0x44ull)

static XcsaveCacheStats stats_of(uint32_t dom)
{
    XcsaveCacheStats s;

    H_CHECK(xcsave_cache_stats(dom, &s) == 0, "no cache stats for d%u", dom);
    return s;
}

/* tot_pages of `dom` now. */
static uint64_t tot_pages(uint32_t dom)
{
    struct xensim_dominfo i;

    H_CHECK(xensim_dominfo(dom, &i) == 0, "dominfo d%u", dom);
    return i.tot_pages;
}

/* What the callbacks of one save see (one per source domain). */
struct watch {
    uint32_t dom;
    int exchange;               /* do the masked exchange after postcopy 2 */
    int release;                /* release RB after postcopy 2 (2: and exchange P2) */
    uint64_t maps_at_2, maps_last;
    uint64_t tot_before, tot_after;
    unsigned int random_pages;  /* write this many random pages instead of the 64 */
};

static void between(void *arg, unsigned int k)
{
    struct watch *w = arg;
    uint64_t v = 0x5ca77e00 + k;

    /* resave: pages drawn afresh over the guest at every checkpoint (a 64-bit LCG) */
    for (unsigned int i = 0; i < w->random_pages; i++) {
        uint64_t r = (k * 0x9e3779b97f4a7c15ull + i) * 6364136223846793005ull +
                     1442695040888963407ull;
        uint64_t gfn = (r >> 33) % PAGES;
        H_CHECK(xensim_guest_write(w->dom, gfn, 24, &r, sizeof(r)) == 0, "write %#llx",
                (unsigned long long)gfn);
    }
    if (w->random_pages)
        return;
    /* 64 pages scattered over the guest, a different set at every checkpoint */
    for (unsigned int i = 0; i < 64; i++) {
        uint64_t gfn = (k * 7919ull + i * 3851ull) % PAGES;
        H_CHECK(xensim_guest_write(w->dom, gfn, 16, &v, sizeof(v)) == 0, "write %#llx",
                (unsigned long long)gfn);
    }
    if (k == 2)
        w->maps_at_2 = stats_of(w->dom).maps;
    w->maps_last = stats_of(w->dom).maps;
    if (w->release && k == 2) {
        H_CHECK(xensim_gfn_mapped(w->dom, RB) > 0 && xensim_gfn_mapped(w->dom, P2) > 0,
                "RB and P2 are not both held mapped after postcopy 2");
        w->tot_before = tot_pages(w->dom);
        H_CHECK(xensim_balloon_out(w->dom, RB) == 0, "balloon out RB");
        if (w->release == 2) {
            H_CHECK(xensim_balloon_replace(w->dom, P2, 0xe9) == 0, "replace P2");
            H_CHECK(xensim_guest_write(w->dom, P2, 8, &v, sizeof(v)) == 0, "write P2");
        }
    }
    if (w->release && k == 4)
        w->tot_after = tot_pages(w->dom);
    if (w->exchange && k == 2) {
        H_CHECK(xensim_gfn_mapped(w->dom, P) > 0 && xensim_gfn_mapped(w->dom, R) > 0,
                "P and R are not both held mapped after postcopy 2");
        w->tot_before = tot_pages(w->dom);
        H_CHECK(xensim_masked_exchange(w->dom, P, R, 0xe8) == 0, "exchange");
        w->tot_after = tot_pages(w->dom);
        H_CHECK(xensim_guest_write(w->dom, P, 8, &v, sizeof(v)) == 0, "write P");
    }
}

static void opts(struct harness_opts *o, struct watch *w, uint32_t src, unsigned int ckpts)
{
    memset(o, 0, sizeof(*o));
    memset(w, 0, sizeof(*w));
    w->dom = src;
    o->save = xcsave_domain_save;
    o->src = src;
    o->dst = src + 1;
    o->stream = XC_STREAM_REMUS;
    o->live = 1;
    o->checkpoints = ckpts;
    o->burst_pages = 16;
    o->between_checkpoints = between;
    o->arg = w;
    o->holes_ok = 1;
}

/* One Remus save of a 240 MiB guest over `ckpts` checkpoints; its counters, and the stream's
 * size in `bytes` (if not NULL). */
static XcsaveCacheStats remus_n(const char *name, struct watch *w, int exchange,
                                unsigned int ckpts, uint64_t *bytes)
{
    struct harness_opts o;
    struct harness_result r;
    XcsaveCacheStats s;

    opts(&o, w, 1, ckpts);
    w->exchange = exchange;
    harness_make_pair(1, 2, MEM, 0x3401e5u);
    H_CHECK(harness_round_trip(&o, &r) == 0, "%s: %s", name, r.failure);
    if (bytes)
        *bytes = r.stream_bytes;
    s = stats_of(1);
    printf("%s: dom0 %d: peak mapped %llu MiB, peak VMAs %llu, maps %llu (warm checkpoints "
           "3-5: %llu), hits %llu misses %llu invalidations %llu\n", name, xensim_dom0_mode(),
           (unsigned long long)(s.peak_mapped_bytes / MiB), (unsigned long long)s.peak_vmas,
           (unsigned long long)s.maps, (unsigned long long)(w->maps_last - w->maps_at_2),
           (unsigned long long)s.hits, (unsigned long long)s.misses,
           (unsigned long long)s.invalidations);
    H_CHECK(s.maps == s.unmaps && s.vmas == 0, "%s: mappings left", name);
    xensim_destroy_domain(1);
    xensim_destroy_domain(2);
    return s;
}

/* One Remus save of a 240 MiB guest over 5 checkpoints; its counters. */
static XcsaveCacheStats remus(const char *name, struct watch *w, int exchange)
{
    return remus_n(name, w, exchange, 5, NULL);
}

static int whole(const XcsaveCacheStats *s)
{
    return s->peak_mapped_bytes >= MEM;
}

static void dom0(void)
{
    static const struct {
        int mode;
        const char *unpopulated, *name;
        int whole;
    } m[] = {
        {XENSIM_DOM0_PV, "no", "dom0/pv", 1},
        {XENSIM_DOM0_PVH, "yes", "dom0/pvh-unpopulated", 1},
        {XENSIM_DOM0_PVH_BALLOON, "no", "dom0/pvh-balloon", 0},
    };
    struct watch w;

    for (unsigned int i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        XcsaveCacheStats s;

        xensim_set_dom0_mode(m[i].mode);
        setenv("XCSAVE_DOM0_UNPOPULATED", m[i].unpopulated, 1);
        s = remus(m[i].name, &w, 0);
        if (m[i].whole) {
            H_CHECK(whole(&s), "%s: the guest was not mapped whole", m[i].name);
            H_CHECK(w.maps_last == w.maps_at_2, "%s: %llu map calls in warm checkpoints",
                    m[i].name, (unsigned long long)(w.maps_last - w.maps_at_2));
        } else {
            H_CHECK(s.peak_mapped_bytes < MEM / 2, "%s: %llu MiB mapped: not bounded",
                    m[i].name, (unsigned long long)(s.peak_mapped_bytes / MiB));
            H_CHECK(w.maps_last > w.maps_at_2, "%s: no per-batch map in warm checkpoints",
                    m[i].name);
        }
    }
    unsetenv("XCSAVE_DOM0_UNPOPULATED");
    xensim_set_dom0_mode(XENSIM_DOM0_PV);
}

static void vma(void)
{
    struct watch w;
    XcsaveCacheStats s;

    setenv("XCSAVE_CACHE_WHOLE_VMAS", "40", 1);
    s = remus("vma/40", &w, 0);
    H_CHECK(whole(&s), "vma/40: not whole");
    H_CHECK(s.peak_vmas <= 41, "vma/40: %llu VMAs at peak", (unsigned long long)s.peak_vmas);
    setenv("XCSAVE_CACHE_WHOLE_VMAS", "4", 1);
    s = remus("vma/4", &w, 0);
    H_CHECK(!whole(&s), "vma/4: mapped whole in 4 VMAs?");
    unsetenv("XCSAVE_CACHE_WHOLE_VMAS");
}

static void explicit(void)
{
    struct watch w;
    XcsaveCacheStats s;

    setenv("XCSAVE_CACHE_MB", "64", 1);
    s = remus("explicit/env", &w, 0);
    unsetenv("XCSAVE_CACHE_MB");
    H_CHECK(s.peak_mapped_bytes <= 64 * MiB, "explicit/env: %llu MiB mapped under "
            "XCSAVE_CACHE_MB=64", (unsigned long long)(s.peak_mapped_bytes / MiB));
    H_CHECK(xcsave_cache_init(64 * MiB, 0, 1, 0) == 0, "xcsave_cache_init");
    s = remus("explicit/init", &w, 0);
    H_CHECK(xcsave_cache_teardown() == 0, "xcsave_cache_teardown");
    H_CHECK(s.peak_mapped_bytes <= 64 * MiB, "explicit/init: %llu MiB mapped under a "
            "64 MiB xcsave_cache_init budget", (unsigned long long)(s.peak_mapped_bytes / MiB));
    s = remus("explicit/default-again", &w, 0);
    H_CHECK(whole(&s), "explicit/default-again: not whole after the init settings went");
}

struct job {
    struct harness_opts o;
    struct watch w;
    struct harness_result r;
    char path[64];
};

static void *run_job(void *arg)
{
    struct job *j = arg;

    harness_round_trip(&j->o, &j->r);
    return NULL;
}

/* Two concurrent saves (domains 1 and 3) under a cap; how many mapped their guest whole. */
static int concurrent(const char *cap)
{
    struct job j[2];
    pthread_t t[2];
    int n = 0;

    setenv("XCSAVE_CACHE_WHOLE_MB", cap, 1);
    for (int i = 0; i < 2; i++) {
        uint32_t src = 1 + 2 * i;

        opts(&j[i].o, &j[i].w, src, 6);
        snprintf(j[i].path, sizeof(j[i].path), "%s/stream-%u.bin",
                 getenv("XENSIM_DIR") ? getenv("XENSIM_DIR") : "/tmp", src);
        j[i].o.stream_path = j[i].path;
        j[i].o.no_compare = 1; /* two 240 MiB pairs: equality is the other cases' */
        harness_make_pair(src, src + 1, MEM, 0xca9u + src);
    }
    for (int i = 0; i < 2; i++)
        H_CHECK(pthread_create(&t[i], NULL, run_job, &j[i]) == 0, "thread");
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        uint32_t src = 1 + 2 * i;
        XcsaveCacheStats s;

        H_CHECK(j[i].r.failure[0] == 0, "cap %s, d%u: %s", cap, src, j[i].r.failure);
        s = stats_of(src);
        printf("cap %s MiB: d%u peak mapped %llu MiB\n", cap, src,
               (unsigned long long)(s.peak_mapped_bytes / MiB));
        n += whole(&s);
        H_CHECK(s.maps == s.unmaps && s.vmas == 0, "d%u: mappings left", src);
        xensim_destroy_domain(src);
        xensim_destroy_domain(src + 1);
    }
    unsetenv("XCSAVE_CACHE_WHOLE_MB");
    return n;
}

static void cap(void)
{
    int n = concurrent("400");

    H_CHECK(n == 1, "cap 400 MiB: %d of 2 concurrent saves mapped 240 MiB whole", n);
    n = concurrent("1000");
    H_CHECK(n == 2, "cap 1000 MiB: %d of 2 concurrent saves mapped whole", n);
}

static void exchange(void)
{
    struct watch w;
    XcsaveCacheStats s = remus("exchange", &w, 1);

    printf("exchange: tot_pages %llu -> %llu\n", (unsigned long long)w.tot_before,
           (unsigned long long)w.tot_after);
    H_CHECK(whole(&s), "exchange: not whole");
    H_CHECK(w.tot_after == w.tot_before + 1, "exchange: tot_pages %llu -> %llu: masked",
            (unsigned long long)w.tot_before, (unsigned long long)w.tot_after);
    H_CHECK(s.invalidations > 0, "exchange: the cache did not flush");
}

static void release_case(void)
{
    setenv("XCSAVE_CACHE_PATROL", "64", 1);
    for (int mode = 1; mode <= 2; mode++) {
        const char *name = mode == 1 ? "release" : "release+exchange";
        struct harness_opts o;
        struct harness_result r;
        struct watch w;
        XcsaveCacheStats s;

        opts(&o, &w, 1, 5);
        w.release = mode;
        harness_make_pair(1, 2, MEM, 0x3401e5u);
        H_CHECK(harness_round_trip(&o, &r) == 0, "%s: %s", name, r.failure);
        s = stats_of(1);
        printf("%s: peak mapped %llu MiB, maps %llu, invalidations %llu, tot_pages %llu at "
               "postcopy 2, %llu at postcopy 4\n", name,
               (unsigned long long)(s.peak_mapped_bytes / MiB), (unsigned long long)s.maps,
               (unsigned long long)s.invalidations, (unsigned long long)w.tot_before,
               (unsigned long long)w.tot_after);
        H_CHECK(s.maps == s.unmaps && s.vmas == 0, "%s: mappings left", name);
        H_CHECK(whole(&s), "%s: not whole", name);
        if (mode == 1) {
            H_CHECK(s.invalidations == 0, "release: the cache flushed (%llu buckets): it took "
                    "its own release of RB's frame for the guest's",
                    (unsigned long long)s.invalidations);
            H_CHECK(w.tot_after == w.tot_before - 1, "release: tot_pages %llu -> %llu: RB's "
                    "frame is still held at postcopy 4", (unsigned long long)w.tot_before,
                    (unsigned long long)w.tot_after);
        } else {
            H_CHECK(s.invalidations > 0, "release+exchange: the cache did not flush: the "
                    "visit's release masked P2's new frame");
        }
        xensim_destroy_domain(1);
        xensim_destroy_domain(2);
    }
    setenv("XCSAVE_CACHE_PATROL", "0", 1);
}

static void expiry(void)
{
    static const char *const patrol[] = {"0", "64"};

    setenv("XCSAVE_CACHE_MAX_AGE", "3", 1);
    for (unsigned int i = 0; i < 2; i++) {
        struct watch w;
        uint64_t bytes;
        XcsaveCacheStats s;
        char name[40];

        snprintf(name, sizeof(name), "expiry/patrol=%s", patrol[i]);
        setenv("XCSAVE_CACHE_PATROL", patrol[i], 1);
        s = remus_n(name, &w, 0, 12, &bytes);
        printf("%s: stream %llu MiB for a %llu MiB guest, expirations %llu\n", name,
               (unsigned long long)(bytes / MiB), (unsigned long long)(MEM / MiB),
               (unsigned long long)s.expirations);
        H_CHECK(whole(&s), "%s: not whole", name);
        /* With the patrol off, the buckets expire (as visits); with it on, never. */
        H_CHECK(i == 0 ? s.expirations > 0 : s.expirations == 0,
                "%s: %llu expirations", name, (unsigned long long)s.expirations);
        H_CHECK(bytes < MEM + MEM / 2, "%s: the stream is %llu MiB for a %llu MiB guest: "
                "expiry sent the guest again", name, (unsigned long long)(bytes / MiB),
                (unsigned long long)(MEM / MiB));
    }
    setenv("XCSAVE_CACHE_PATROL", "0", 1);
    unsetenv("XCSAVE_CACHE_MAX_AGE");
}

static void resave(void)
{
    struct harness_opts o;
    struct harness_result r;
    struct watch w;
    struct xensim_domain_config cd = {.mem_bytes = MEM, .empty = 1, .paused = 1};
    XcsaveCacheStats s;

    setenv("XCSAVE_CACHE_PATROL", "64", 1);
    harness_make_pair(1, 2, MEM, 0x3401e5u);
    opts(&o, &w, 1, 4);
    w.random_pages = 1024;
    o.save = NULL; /* the stock saver first */
    H_CHECK(harness_round_trip(&o, &r) == 0, "resave: stock: %s", r.failure);
    H_CHECK(r.compared >= 4, "resave: stock: %u states compared", r.compared);
    H_CHECK(harness_resume_saved(1) == 0, "resave: resume d1 after the stock save");
    xensim_destroy_domain(2);
    H_CHECK(xensim_create_domain(2, &cd) == 0, "create d2");
    opts(&o, &w, 1, 6);
    w.random_pages = 1024;
    H_CHECK(harness_round_trip(&o, &r) == 0, "resave: xcsave: %s", r.failure);
    H_CHECK(r.compared >= 6, "resave: xcsave: %u states compared", r.compared);
    s = stats_of(1);
    printf("resave: xcsave after stock: %u states equal, peak mapped %llu MiB, maps %llu, "
           "hits %llu\n", r.compared, (unsigned long long)(s.peak_mapped_bytes / MiB),
           (unsigned long long)s.maps, (unsigned long long)s.hits);
    H_CHECK(whole(&s), "resave: the guest was not mapped whole");
    H_CHECK(s.maps == s.unmaps && s.vmas == 0, "resave: mappings left");
    xensim_destroy_domain(1);
    xensim_destroy_domain(2);
    setenv("XCSAVE_CACHE_PATROL", "0", 1);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0;

    H_CHECK(!getenv("XCSAVE_CACHE_MB"), "XCSAVE_CACHE_MB is set: whole-guest mode is off");
    /* The patrol maps a share of the cached buckets after each postcopy, outside the
     * downtime (test_cache_p2m): off here, so that a map call counted between two
     * checkpoints can only be the downtime's. */
    setenv("XCSAVE_CACHE_PATROL", "0", 1);
    /* Whole-guest mode is the default (64 GiB cap): dom0, vma and exchange run with no
     * setting of it, cap sets the cap. */
    unsetenv("XCSAVE_CACHE_WHOLE_MB");
#define CASE(s) (!only || !strcmp(only, s)) && ++ran
    if (CASE("dom0"))
        dom0();
    if (CASE("vma"))
        vma();
    if (CASE("cap"))
        cap();
    if (CASE("explicit"))
        explicit();
    if (CASE("exchange"))
        exchange();
    if (CASE("release"))
        release_case();
    if (CASE("expiry"))
        expiry();
    if (CASE("resave"))
        resave();
    H_CHECK(ran, "unknown case %s", only);
    printf("test_cache_whole: ok\n");
    return 0;
}
