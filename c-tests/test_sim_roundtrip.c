// SPDX-License-Identifier: GPL-3.0-only
/*
 * Stock xc_domain_save -> stock xc_domain_restore on xensim.
 * Sub-cases: nonlive, live, remus, colo (default: all). On Xen 4.20, colo proves stock's
 * back-channel defect instead (colo_stock_defect).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define MiB (1024ull * 1024)

#if XEN_RELEASE_MINOR != 17
/* Stock COLO from Xen 4.18 on: the secondary's restore writes its back-channel record header
 * as the whole struct xc_sr_record, 16 bytes (BC_HDR in harness.h), and the stock saver reads
 * 8. It takes the NULL pointer for pfn 0 and leaves the list's last pfn in the pipe, so that
 * page is never resent and the secondary differs from the primary (or a later read fails).
 * This proves the defect is in stock 4.20 (and fails, asking for this case to go, once Xen
 * fixes it). xcsave's 4.20 build reads the header whole: test_xcsave_roundtrip:colo. */
static void colo_stock_defect(void)
{
    struct harness_opts o = {
        .src = 1, .dst = 2, .stream = XC_STREAM_COLO, .live = 1, .checkpoints = 6,
        .dirty_rate = 5000, .dirty_first = 0x100, .dirty_count = 4096, .burst_pages = 64,
        .secondary_pages = 16,
    };
    struct harness_result r;

    xensim_destroy_all();
    harness_make_pair(1, 2, 64 * MiB, 1234);
    H_CHECK(harness_round_trip(&o, &r) != 0,
            "colo: stock " XEN_RELEASE "'s COLO kept the secondary equal: is Xen's 16-byte "
            "back-channel header fixed? (then drop this case)");
    H_CHECK(strstr(r.failure, "differs") || strstr(r.failure, "save returned -1"),
            "colo: stock " XEN_RELEASE "'s COLO failed otherwise: %s", r.failure);
    printf("colo: stock %s's COLO fails as expected (16-byte back-channel header): %s\n",
           XEN_RELEASE, r.failure);
}
#endif

static void run(const char *name, xc_stream_type_t stream, int live,
                uint64_t rate, unsigned int ckpts)
{
    struct harness_opts o = {
        .src = 1, .dst = 2, .stream = stream, .live = live,
        .checkpoints = ckpts, .dirty_rate = rate, .dirty_first = 0x100,
        .dirty_count = 4096, .burst_pages = stream ? 64 : 0,
        .secondary_pages = stream == XC_STREAM_COLO ? 16 : 0,
    };
    struct harness_result r;

    uint64_t setctx0;

    xensim_destroy_all();
    harness_make_pair(1, 2, 64 * MiB, 1234);
    setctx0 = xensim_hypercall_count(__HYPERVISOR_domctl,
                                     XEN_DOMCTL_setvcpucontext);
    if (harness_round_trip(&o, &r))
        H_FAIL("%s: %s", name, r.failure);
    /* every fast resume of the primary (a guest with PV drivers) sets the
     * suspend hypercall's return value through setvcpucontext */
    if (stream != XC_STREAM_PLAIN)
        H_CHECK(xensim_hypercall_count(__HYPERVISOR_domctl,
                                       XEN_DOMCTL_setvcpucontext) -
                        setctx0 >= ckpts,
                "%s: %llu setvcpucontext for %u resumes", name,
                (unsigned long long)(xensim_hypercall_count(
                                         __HYPERVISOR_domctl,
                                         XEN_DOMCTL_setvcpucontext) -
                                     setctx0),
                ckpts);
    if (stream != XC_STREAM_PLAIN)
        H_CHECK(r.compared >= ckpts + (stream == XC_STREAM_REMUS),
                "%s: only %u checkpoint states compared", name, r.compared);
    if (rate)
        H_CHECK(r.dirtier_writes > 0, "%s: the dirtier never wrote", name);
    {
        /* the oracle for "truncated at failover": whole records ending at a
         * CHECKPOINT; a plain stream (END) or a cut record is not that */
        char path[4096];
        int ends;
        snprintf(path, sizeof(path), "%s/stream.bin", getenv("XENSIM_DIR"));
        ends = harness_stream_ends_at_checkpoint(path);
        H_CHECK(ends == (stream != XC_STREAM_PLAIN),
                "%s: ends-at-checkpoint says %d", name, ends);
        if (stream != XC_STREAM_PLAIN) {
            H_CHECK(truncate(path, (off_t)r.stream_bytes - 4) == 0, "truncate");
            H_CHECK(!harness_stream_ends_at_checkpoint(path),
                    "%s: a stream cut inside a record passed", name);
        }
    }
    printf("%s: ok: %llu stream bytes, save %.2fs restore %.2fs, %u states "
           "compared, %u suspends, %llu dirtier writes\n",
           name, (unsigned long long)r.stream_bytes, r.save_secs,
           r.restore_secs, r.compared, r.suspends,
           (unsigned long long)r.dirtier_writes);
}

int main(int argc, char **argv)
{
    const char *c = argc > 1 ? argv[1] : "all";
    int all = !strcmp(c, "all"), any = 0;

    if (all || !strcmp(c, "nonlive"))
        run("nonlive", XC_STREAM_PLAIN, 0, 0, 0), any = 1;
    if (all || !strcmp(c, "live"))
        run("live", XC_STREAM_PLAIN, 1, 20000, 0), any = 1;
    if (all || !strcmp(c, "remus"))
        run("remus", XC_STREAM_REMUS, 1, 5000, 6), any = 1;
#if XEN_RELEASE_MINOR == 17
    if (all || !strcmp(c, "colo"))
        run("colo", XC_STREAM_COLO, 1, 5000, 6), any = 1;
#else
    if (all || !strcmp(c, "colo"))
        colo_stock_defect(), any = 1;
#endif
    if (!any)
        H_FAIL("unknown sub-case %s", c);
    xensim_destroy_all();
    return 0;
}
