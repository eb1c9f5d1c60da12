// SPDX-License-Identifier: GPL-3.0-only
/*
 * Coherence of the mapping cache when the guest's p2m changes without a log-dirty mark
 * (Xen 4.17 under HAP): between Remus checkpoints the primary balloon-replaces a page the
 * cache holds mapped (new frame, new content, not dirty), then writes it (dirty).
 *  same:  the write comes in the same interval: the secondary must equal the primary at
 *         every checkpoint, as with the stock saver;
 *  later: the write comes one interval later: at the end the secondary must equal the
 *         primary (what the stock saver also produces), never the old frame's content.
 * Each case runs the stock saver first, then xcsave, on the same scenario.
 *
 * The cache detects this through tot_pages: on Xen a frame the guest releases stays
 * allocated to it, and counted, while a foreign mapping references it (guest_remove_page
 * keeps the page; free_domheap_pages adjusts tot_pages only when the last reference goes).
 * xensim models this (test_sim_balloon checks it); the test fails if it does not.
 */
#define XC_WANT_COMPAT_MAP_FOREIGN_API 1
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"
#include "xcsave.h"

#define MiB (1024ull * 1024)
/* Outside the burst's pages (gfns 0-0x7f), inside their 1 MiB bucket: the cache maps only
 * buckets that checkpoints keep dirtying, and this page must be held mapped, unwritten. */
#define BGFN 0xc5ull

static unsigned int write_at;

static void between(void *arg, unsigned int k)
{
    uint64_t v = 0x1234abcd;

    (void)arg;
    if (k == 2)
        H_CHECK(xensim_balloon_replace(1, BGFN, 0xba11) == 0, "replace");
    if (k == write_at)
        H_CHECK(xensim_guest_write(1, BGFN, 0, &v, sizeof(v)) == 0, "guest write");
}

/* Does a foreign mapping keep a released frame counted in tot_pages, as on Xen? */
static int pins_counted(void)
{
    xc_interface *xch = harness_xc_open();
    struct xensim_domain_config cfg = {.mem_bytes = 16 * MiB};
    struct xensim_dominfo before, during, after;
    xen_pfn_t g = BGFN;
    int err, ok;
    void *m;

    xensim_destroy_all();
    H_CHECK(xensim_create_domain(1, &cfg) == 0, "create");
    H_CHECK(xensim_dominfo(1, &before) == 0, "dominfo");
    m = xc_map_foreign_bulk(xch, 1, PROT_READ, &g, &err, 1);
    H_CHECK(m && !err, "map gfn");
    H_CHECK(xensim_balloon_replace(1, BGFN, 1) == 0, "replace");
    H_CHECK(xensim_dominfo(1, &during) == 0, "dominfo");
    munmap(m, 4096);
    H_CHECK(xensim_dominfo(1, &after) == 0, "dominfo");
    ok = during.tot_pages == before.tot_pages + 1 && after.tot_pages == before.tot_pages;
    printf("pins: tot_pages %llu, %llu while the old frame is mapped, %llu after unmap\n",
           (unsigned long long)before.tot_pages, (unsigned long long)during.tot_pages,
           (unsigned long long)after.tot_pages);
    xensim_destroy_all();
    harness_xc_close(xch);
    return ok;
}

static void run(const char *name, harness_save_fn save, unsigned int write_k)
{
    struct harness_opts o = {
        .save = save, .src = 1, .dst = 2, .stream = XC_STREAM_REMUS, .live = 1,
        .checkpoints = 5, .burst_pages = 32, .between_checkpoints = between,
    };
    struct harness_result r;
    static uint8_t a[4096], b[4096];
    XcsaveCacheStats s;
    int rc;

    write_at = write_k;
    /* "later": the checkpoint after the replace differs for every saver; check the end */
    o.no_compare = write_k != 2;
    xensim_destroy_all();
    harness_make_pair(1, 2, 32 * MiB, 11);
    rc = harness_round_trip(&o, &r);
    H_CHECK(rc == 0, "%s: %s", name, r.failure);
    /* The primary keeps running after failover, but nothing writes BGFN any more. */
    H_CHECK(xensim_guest_read(1, BGFN, 0, a, sizeof(a)) == 0, "read primary");
    H_CHECK(xensim_guest_read(2, BGFN, 0, b, sizeof(b)) == 0, "read secondary");
    H_CHECK(memcmp(a, b, sizeof(a)) == 0, "%s: the secondary's gfn %#llx is not the primary's",
            name, (unsigned long long)BGFN);
    if (save == xcsave_domain_save) {
        H_CHECK(xcsave_cache_stats(1, &s) == 0, "stats");
        printf("%s: ok; cache hits %llu maps %llu invalidations %llu\n", name,
               (unsigned long long)s.hits, (unsigned long long)s.maps,
               (unsigned long long)s.invalidations);
        H_CHECK(!s.disabled && s.invalidations > 0, "%s: the cache never invalidated", name);
    } else {
        printf("%s: ok\n", name);
    }
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0, pins;

#define CASE(n) (!only || !strcmp(only, n)) && ++ran
    pins = pins_counted();
    /* xensim models Xen's accounting (a released frame stays in tot_pages while a foreign
     * mapping holds it); the cache's coherence rests on it, so its absence is a failure. */
    H_CHECK(pins, "xensim does not keep a released, still-mapped frame in tot_pages as Xen "
                  "does (docs/coherence.md)");
    if (CASE("same")) {
        run("same/stock", harness_stock_save(), 2);
        run("same/xcsave", xcsave_domain_save, 2);
    }
    if (CASE("later")) {
        run("later/stock", harness_stock_save(), 3);
        run("later/xcsave", xcsave_domain_save, 3);
    }
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    printf("ok: %d case(s)\n", ran);
    return 0;
}
