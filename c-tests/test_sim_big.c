// SPDX-License-Identifier: GPL-3.0-only
/*
 * A 4 GiB guest (RAM above 3.75 GiB relocated past the MMIO hole): stock
 * non-live save + stock restore, target equal to source.  Prints where the
 * time went: the simulator's own work (hypercall emulation, MMAPBATCH
 * bookkeeping) against the real mmap calls that map guest pages.
 * Optional argument: guest size in MiB (default 4096).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

int main(int argc, char **argv)
{
    uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 4096;
    struct harness_opts o = {.src = 1, .dst = 2, .stream = XC_STREAM_PLAIN};
    char stream[128], verify_txt[160];
    int rc;
    struct harness_result r;
    struct xensim_counters c;
    struct xensim_dominfo si;
    double t0, t_fill, sim_s, mmap_s;

    H_CHECK(mib >= 1, "bad size");
    t0 = harness_now();
    harness_make_pair(1, 2, mib << 20, 42);
    t_fill = harness_now() - t0;
    H_CHECK(xensim_dominfo(1, &si) == 0, "dominfo");
    if (mib > 3840) {
        /* the MMIO hole is absent, RAM continues at 4 GiB */
        H_CHECK(xensim_gfn_present(1, 0xf0000) == 0, "hole start present");
        H_CHECK(xensim_gfn_present(1, 0xfeff0) == 0, "hole present");
        H_CHECK(xensim_gfn_present(1, 0x100000) == 1, "high RAM absent");
        H_CHECK(si.p2m_size == 0x100000 + ((mib << 8) - 0xf0000),
                "p2m_size %#llx", (unsigned long long)si.p2m_size);
    }
    /* the 4 GiB stream copy goes to a disk-backed file (evictable page
     * cache) rather than next to the guests' RAM on tmpfs */
    snprintf(stream, sizeof(stream), "/tmp/xensim-big-%d.bin", (int)getpid());
    o.stream_path = stream;
    xensim_counters_reset();
    rc = harness_round_trip(&o, &r);
    unlink(stream);
    snprintf(verify_txt, sizeof(verify_txt), "%s.verify.txt", stream);
    unlink(verify_txt);
    if (rc) {
        H_FAIL("%llu MiB round trip: %s", (unsigned long long)mib, r.failure);
    }
    xensim_counters(&c);
    sim_s = (double)(c.hypercall_ns + c.mmapbatch_ns - c.mmap_ns) / 1e9;
    mmap_s = (double)c.mmap_ns / 1e9;
    H_CHECK(c.live_privcmd_pages == 0 && c.live_privcmd_vmas == 0,
            "mappings leaked: %llu pages in %llu VMAs",
            (unsigned long long)c.live_privcmd_pages,
            (unsigned long long)c.live_privcmd_vmas);
    printf("guest %llu MiB (%llu pages, p2m_size %#llx): create+fill %.2fs\n",
           (unsigned long long)mib, (unsigned long long)si.tot_pages,
           (unsigned long long)si.p2m_size, t_fill);
    printf("save+restore wall %.2fs (save %.2fs, restore %.2fs), stream %.1f "
           "MiB\n", r.wall_secs, r.save_secs, r.restore_secs,
           (double)r.stream_bytes / 1048576.0);
    printf("mapping: %llu MMAPBATCH calls, %llu pages, %llu mmap(2) calls "
           "taking %.2fs\n", (unsigned long long)c.mmapbatch_calls,
           (unsigned long long)c.pages_mapped,
           (unsigned long long)c.mmap_syscalls, mmap_s);
    printf("sim overhead: %.3fs (%llu hypercalls %.3fs, MMAPBATCH "
           "bookkeeping %.3fs) = %.1f%% of wall\n", sim_s,
           (unsigned long long)c.hypercalls, (double)c.hypercall_ns / 1e9,
           (double)(c.mmapbatch_ns - c.mmap_ns) / 1e9,
           100.0 * sim_s / r.wall_secs);
    xensim_destroy_all();
    return 0;
}
