// SPDX-License-Identifier: GPL-3.0-only
/*
 * The cost of one patrol visit (docs/coherence.md §8.1), issue 14's design, measured before it
 * is built: map a 1 MiB bucket afresh (one MMAPBATCH of 256 gfns through libxenforeignmemory,
 * as the cache maps a bucket), compare it page by page with a mapping of the same bucket made
 * earlier, unmap it. Prints the time per visit split into map, compare and unmap, and the
 * per-checkpoint cost at the default share for a 1 GiB and a 16 GiB guest, with the bounded
 * default budget (B_max = the budget's buckets) and in whole-guest mode (B_max = every bucket
 * of the guest, plus whole.rs's 16 edge buckets).
 *   build/tests/tool_patrol_cost [visits [cost_page_ns]]
 * cost_page_ns is xensim's per-mapped-page busy wait (default 0): on xensim the map is an
 * mmap of a file; on real Xen each page is a hypercall-level operation, so the map column is
 * the one to take from real hardware (make bench, phase 2). The compare column is real.
 */
#define XC_WANT_COMPAT_MAP_FOREIGN_API 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"

#define MiB (1024ull * 1024)
#define BUCKET 256

int main(int argc, char **argv)
{
    unsigned int visits = argc > 1 ? (unsigned int)atoi(argv[1]) : 200;
    uint64_t cost = argc > 2 ? strtoull(argv[2], NULL, 0) : 0;
    unsigned int n = argc > 3 ? (unsigned int)atoi(argv[3]) : 64;
    struct xensim_domain_config cfg = {.mem_bytes = 64 * MiB};
    xc_interface *xch = harness_xc_open();
    xen_pfn_t gfns[BUCKET];
    int errs[BUCKET];
    double t_map = 0, t_cmp = 0, t_unmap = 0;
    uint8_t *old;
    unsigned int differ = 0;

    xensim_set_cost(0, cost);
    xensim_destroy_all();
    H_CHECK(xensim_create_domain(1, &cfg) == 0, "create");
    H_CHECK(xensim_fill(1, 3) == 0, "fill");
    for (unsigned int i = 0; i < BUCKET; i++)
        gfns[i] = 0x1000 + i;
    old = xc_map_foreign_bulk(xch, 1, PROT_READ, gfns, errs, BUCKET);
    H_CHECK(old != NULL, "map the cached bucket");
    for (unsigned int v = 0; v < visits; v++) {
        double t0 = harness_now(), t1, t2;
        uint8_t *fresh = xc_map_foreign_bulk(xch, 1, PROT_READ, gfns, errs, BUCKET);
        H_CHECK(fresh != NULL, "map afresh");
        t1 = harness_now();
        for (unsigned int i = 0; i < BUCKET; i++)
            differ += !errs[i] && memcmp(old + i * 4096ul, fresh + i * 4096ul, 4096) != 0;
        t2 = harness_now();
        munmap(fresh, BUCKET * 4096ul);
        t_map += t1 - t0;
        t_cmp += t2 - t1;
        t_unmap += harness_now() - t2;
    }
    munmap(old, BUCKET * 4096ul);
    H_CHECK(differ == 0, "%u pages differ with no p2m change", differ);
    {
        double per = (t_map + t_cmp + t_unmap) / visits * 1e6;
        printf("patrol visit of a 1 MiB bucket, %u visits, xensim cost %llu ns/page: "
               "map %.1f us, compare %.1f us, unmap %.1f us, total %.1f us\n", visits,
               (unsigned long long)cost, t_map / visits * 1e6, t_cmp / visits * 1e6,
               t_unmap / visits * 1e6, per);
        unsigned int s1 = n > 1 ? (252 + n - 2) / (n - 1) : 252;
        unsigned int s16 = n > 1 ? (1020 + n - 2) / (n - 1) : 1020;
        printf("per checkpoint at N = %u: 1 GiB guest (share %u) %.2f ms, 16 GiB guest "
               "(share %u) %.2f ms\n", n, s1, s1 * per / 1e3, s16, s16 * per / 1e3);
        for (unsigned int gib = 1; gib <= 16; gib *= 4) {
            unsigned int b = gib * 1024 + 16, sh = n > 1 ? (b + n - 2) / (n - 1) : b;
            printf("whole-guest mode, N = %u: %u GiB guest (B_max %u, share %u) %.2f ms per "
                   "checkpoint\n", n, gib, b, sh, sh * per / 1e3);
        }
    }
    xensim_destroy_all();
    harness_xc_close(xch);
    return 0;
}
