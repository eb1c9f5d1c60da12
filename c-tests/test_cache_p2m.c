// SPDX-License-Identifier: GPL-3.0-only
/*
 * The mapping cache under p2m changes its counters cannot see (docs/coherence.md §7-§8).
 * Remus, 32 MiB guest; the burst dirties gfns 0-0x7f after every postcopy, so bucket 0
 * (gfns 0-0xff, 1 MiB) stays cached and P = 0xc5 in it is held mapped without being
 * written. XCSAVE_CACHE_PATROL=N (the patrol's bound, docs/coherence.md §8) is 4 here.
 * One case alone: c-tests/run.sh test_cache_p2m:case
 * Each case runs the stock saver first where stock is the reference, then xcsave.
 *  move:          after the 2nd postcopy the guest moves Q's frame onto P (XENMAPSPACE_gmfn)
 *                 and writes P: tot_pages does not move (P's old frame is held). Claim: the
 *                 secondary's P equals the primary's within N checkpoints (stock: at once);
 *  move-unwritten: the same without the write: stock itself leaves P stale on 4.17 (no dirty
 *                 mark, test_sim_p2m:unlogged-move); the patrol's claim is stronger: equal
 *                 within N. xcsave only;
 *  exchange:      after a populate that flushes the cache (so R's bucket is not mapped
 *                 again), a masked exchange: P gets a new frame, R is released, tot_pages
 *                 unchanged; then P is written: within N;
 *  grant:         the grant frame placed over P: secondary equal at every checkpoint (the
 *                 page is Xen's and typed XTAB), and P's old frame no longer held by N + 1
 *                 checkpoints later (pins released promptly);
 *  maxpages:      the guest at max_pages balloons P out after one postcopy and in after the
 *                 next: the re-populate must succeed, as with stock; equal at every
 *                 checkpoint (a released gfn may stay on the secondary);
 *  highgfn:       64 KiB buckets, a guest whose address space is 2^25 gfns populates its
 *                 top gfn between checkpoints: the saver's RssAnon must not grow by 4 MiB
 *                 (the bucket index would grow by 2^21 buckets x 12 bytes = 24 MiB).
 *                 The stock restore runs in this process (harness.c's restore thread), so
 *                 RssAnon also holds its heap: a PAGE_DATA record of 1,024 pages is a 4 MiB
 *                 malloc in libxenguest's read_record. glibc's dynamic mmap threshold rises
 *                 to the largest mmapped chunk freed so far (the earlier cases free bigger
 *                 ones), after which such a record comes from the restore thread's arena and
 *                 may stay resident after it is freed: RssAnon grew 6.5-8 MiB whenever the
 *                 saver sent full batches after postcopy 2 (a whole-guest cache resends the
 *                 pages its flush unmapped before the patrol saw them, docs/coherence.md
 *                 §8.1). The case fixes the threshold at 1 MiB (mallopt), so freed buffers
 *                 that big go back to the kernel and RssAnon counts what is live.
 */
#define XC_WANT_COMPAT_MAP_FOREIGN_API 1
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "test_rel.h"
#include "xcsave.h"

#define MiB (1024ull * 1024)
#define P 0xc5ull
#define Q 0x1c5ull
#define R 0x2c5ull
#define PATROL 4u
#define TOP_P2M (1ull << 25)

enum kase { MOVE, MOVE_UNWRITTEN, EXCHANGE, GRANT, MAXPAGES, HIGHGFN };
static enum kase kase;
static const char *saver;
static long rss_first, rss_last;
static unsigned int exchanged;   /* checkpoint of the exchange (0: not yet) */

static void between(void *arg, unsigned int k)
{
    uint64_t v = 0x600d0000 + k;
    struct xensim_dominfo i;

    (void)arg;
    switch (kase) {
    case MOVE:
    case MOVE_UNWRITTEN:
        if (k == 2)
            H_CHECK(xensim_move_gmfn(1, Q, P) == 0, "move");
        if (k == 2 && kase == MOVE)
            H_CHECK(xensim_guest_write(1, P, 8, &v, sizeof(v)) == 0, "write P");
        break;
    case EXCHANGE:
        /* A populate the counters see: every bucket is unmapped at the next check, and
         * only those the checkpoints ask for come back (bucket 0, not R's). */
        if (k == 1)
            H_CHECK(xensim_balloon_in(1, 0xa0) == 0, "populate 0xa0");
        /* once P is held mapped (the cache maps bucket 0 again as checkpoints ask) */
        if (k >= 2 && !exchanged && (!strcmp(saver, "stock") || xensim_gfn_mapped(1, P) > 0)) {
            struct xensim_dominfo i0;
            exchanged = k;
            H_CHECK(xensim_dominfo(1, &i0) == 0, "dominfo");
            H_CHECK(xensim_masked_exchange(1, P, R, 0xe8) == 0, "exchange");
            H_CHECK(xensim_dominfo(1, &i) == 0, "dominfo");
            printf("%s: exchange after postcopy %u: tot_pages %llu -> %llu, held %llu\n",
                   saver, k,
                   (unsigned long long)i0.tot_pages, (unsigned long long)i.tot_pages,
                   (unsigned long long)i.held_pages);
            H_CHECK(xensim_guest_write(1, P, 8, &v, sizeof(v)) == 0, "write P");
        }
        break;
    case GRANT:
        if (k == 2)
            H_CHECK(xensim_grant_over(1, P) == 0, "grant over P");
        if (k == 2 + PATROL + 1) {
            H_CHECK(xensim_dominfo(1, &i) == 0, "dominfo");
            H_CHECK(i.held_pages == 0, "%s: P's old frame is still held %u checkpoints after "
                    "the grant frame replaced it (held_pages %llu)", saver, PATROL + 1,
                    (unsigned long long)i.held_pages);
        }
        break;
    case MAXPAGES:
        if (k == 2)
            H_CHECK(xensim_balloon_out(1, P) == 0, "balloon out P");
        if (k == 3) {
            int rc = xensim_balloon_in(1, P);
            H_CHECK(xensim_dominfo(1, &i) == 0, "dominfo");
            H_CHECK(rc == 0, "%s: re-populating P at max_pages failed (%s): tot_pages %llu "
                    "max_pages %llu, %llu released frame(s) still held by a mapping", saver,
                    strerror(-rc), (unsigned long long)i.tot_pages,
                    (unsigned long long)i.max_pages, (unsigned long long)i.held_pages);
            H_CHECK(xensim_guest_write(1, P, 8, &v, sizeof(v)) == 0, "write P");
        }
        break;
    case HIGHGFN:
        if (k == 1)
            rss_first = rel_status_kib("RssAnon");
        if (k == 2)
            H_CHECK(xensim_balloon_in(1, TOP_P2M - 1) == 0, "populate the top gfn");
        if (k >= 4)
            rss_last = rel_status_kib("RssAnon");
        break;
    }
}

static void pair(uint64_t p2m_pages)
{
    struct xensim_domain_config cs = {.mem_bytes = 32 * MiB, .p2m_pages = p2m_pages};
    struct xensim_domain_config cd = {.mem_bytes = 32 * MiB, .empty = 1, .paused = 1};

    xensim_destroy_all();
    H_CHECK(xensim_create_domain(1, &cs) == 0, "create primary");
    H_CHECK(xensim_fill(1, 17) == 0, "fill");
    H_CHECK(xensim_create_domain(2, &cd) == 0, "create secondary");
}

/* P on the primary and on the secondary, after failover (nothing writes P any more). */
static int p_equal(void)
{
    static uint8_t a[4096], b[4096];

    H_CHECK(xensim_guest_read(1, P, 0, a, sizeof(a)) == 0, "read primary P");
    H_CHECK(xensim_guest_read(2, P, 0, b, sizeof(b)) == 0, "read secondary P");
    return !memcmp(a, b, sizeof(a));
}

static void run(enum kase c, const char *name, harness_save_fn save)
{
    struct harness_opts o = {
        .save = save, .src = 1, .dst = 2, .stream = XC_STREAM_REMUS, .live = 1,
        .checkpoints = 2 + PATROL + 2, .burst_pages = 32, .between_checkpoints = between,
        .holes_ok = 1,
    };
    struct harness_result r;
    struct xensim_dominfo i;
    XcsaveCacheStats s;

    kase = c;
    exchanged = 0;
    saver = save == xcsave_domain_save ? "xcsave" : "stock";
    /* Only the bound is claimed for these: compare P at the end, at least N later. */
    o.no_compare = c == MOVE || c == MOVE_UNWRITTEN || c == EXCHANGE || c == HIGHGFN;
    if (c == EXCHANGE)
        o.checkpoints += 6;   /* the exchange waits until P is held */
    pair(c == HIGHGFN ? TOP_P2M : 0);
    if (c == MAXPAGES) {
        H_CHECK(xensim_dominfo(1, &i) == 0, "dominfo");
        H_CHECK(xensim_set_max_pages(1, i.tot_pages) == 0, "max_pages = tot_pages");
    }
    H_CHECK(harness_round_trip(&o, &r) == 0, "%s/%s: %s", name, saver, r.failure);
    if (c == EXCHANGE)
        H_CHECK(exchanged && exchanged + PATROL + 1 <= o.checkpoints, "%s/%s: the exchange "
                "came at postcopy %u of %u: P was never held mapped early enough", name, saver,
                exchanged, o.checkpoints);
    if (o.no_compare && c != HIGHGFN)
        H_CHECK(p_equal(), "%s/%s: the secondary's P differs from the primary's at the end, >= %u "
                "checkpoints after the change", name, saver, PATROL + 1);
    if (c == HIGHGFN)
        printf("highgfn/%s: RssAnon %ld KiB at postcopy 1, %ld KiB at the last\n", saver,
               rss_first, rss_last);
    if (c == HIGHGFN)
        H_CHECK(rss_first > 0 && rss_last - rss_first < 4096, "%s/%s: RssAnon grew by %ld KiB after the guest "
                "populated gfn %#llx", name, saver, rss_last - rss_first, TOP_P2M - 1);
    if (save == xcsave_domain_save && xcsave_cache_stats(1, &s) == 0)
        printf("%s/%s: ok (%u states compared); cache hits %llu maps %llu invalidations "
               "%llu\n", name, saver, r.compared, (unsigned long long)s.hits,
               (unsigned long long)s.maps, (unsigned long long)s.invalidations);
    else
        printf("%s/%s: ok (%u states compared)\n", name, saver, r.compared);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0;
    char n[16];

    snprintf(n, sizeof(n), "%u", PATROL);
    setenv("XCSAVE_CACHE_PATROL", n, 1);
#define CASE(s) (!only || !strcmp(only, s)) && ++ran
    if (CASE("move")) {
        run(MOVE, "move", harness_stock_save());
        run(MOVE, "move", xcsave_domain_save);
    }
    if (CASE("move-unwritten"))
        run(MOVE_UNWRITTEN, "move-unwritten", xcsave_domain_save);
    if (CASE("exchange")) {
        run(EXCHANGE, "exchange", harness_stock_save());
        run(EXCHANGE, "exchange", xcsave_domain_save);
    }
    if (CASE("grant")) {
        run(GRANT, "grant", harness_stock_save());
        run(GRANT, "grant", xcsave_domain_save);
    }
    if (CASE("maxpages")) {
        run(MAXPAGES, "maxpages", harness_stock_save());
        run(MAXPAGES, "maxpages", xcsave_domain_save);
    }
    if (CASE("highgfn")) {
        setenv("XCSAVE_CACHE_BUCKET_KB", "64", 1);
        H_CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1, "mallopt");
        run(HIGHGFN, "highgfn", xcsave_domain_save);
        unsetenv("XCSAVE_CACHE_BUCKET_KB");
    }
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    printf("ok: %d case(s)\n", ran);
    return 0;
}
