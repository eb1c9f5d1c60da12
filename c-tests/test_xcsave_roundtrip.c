// SPDX-License-Identifier: GPL-3.0-only
/*
 * xcsave's stream, restored by the STOCK xc_domain_restore, ends equal to the source, for
 * every stream type: plain non-live, plain live with a background dirtier, Remus and COLO
 * (equal at every checkpoint), and verify-stream-v2 accepts each stream.
 *
 * Sub-cases: plain, live, remus, colo, symbol (plain through the exported xc_domain_save
 * symbol rather than xcsave_domain_save). No argument runs them all.
 */
#include <string.h>

#include "harness.h"
#include "xcsave.h"

#define MEM (64ull << 20)

static unsigned int next_dom = 1;

static void run(const char *name, harness_save_fn save, xc_stream_type_t stream, int live,
                unsigned int checkpoints, uint64_t dirty_rate)
{
    struct harness_opts o;
    struct harness_result r;
    uint32_t src = next_dom++, dst = next_dom++;
    int rc;

    memset(&o, 0, sizeof(o));
    harness_make_pair(src, dst, MEM, 0x5eed0000u + src);
    o.save = save;
    o.src = src;
    o.dst = dst;
    o.stream = stream;
    o.live = live;
    o.checkpoints = checkpoints;
    if (dirty_rate) {
        o.dirty_rate = dirty_rate;
        o.dirty_first = 0;
        o.dirty_count = MEM / 4096;
    }
    if (stream != XC_STREAM_PLAIN)
        o.burst_pages = 64;
    if (stream == XC_STREAM_COLO)
        o.secondary_pages = 16;

    rc = harness_round_trip(&o, &r);
    printf("%s: save_rc %d errno %d, restore_rc %d, suspends %u, compared %u, "
           "%llu stream bytes, verify %d, dirtier writes %llu, save %.2fs\n",
           name, r.save_rc, r.save_errno, r.restore_rc, r.suspends, r.compared,
           (unsigned long long)r.stream_bytes, r.verify_rc,
           (unsigned long long)r.dirtier_writes, r.save_secs);
    H_CHECK(rc == 0, "%s: round trip failed: %s", name, r.failure);
    H_CHECK(r.verify_rc == 0, "%s: verify-stream-v2 exit %d", name, r.verify_rc);
    if (stream != XC_STREAM_PLAIN)
        H_CHECK(r.compared >= checkpoints, "%s: %u checkpoint states compared, want >= %u",
                name, r.compared, checkpoints);
    if (dirty_rate)
        H_CHECK(r.dirtier_writes > 0, "%s: the dirtier never wrote", name);
    xensim_destroy_domain(src);
    xensim_destroy_domain(dst);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0;

#define CASE(n) (!only || !strcmp(only, n)) && ++ran
    if (CASE("plain"))
        run("plain", xcsave_domain_save, XC_STREAM_PLAIN, 0, 0, 0);
    if (CASE("symbol"))
        run("symbol", xc_domain_save, XC_STREAM_PLAIN, 0, 0, 0);
    if (CASE("live"))
        run("live", xcsave_domain_save, XC_STREAM_PLAIN, 1, 0, 20000);
    if (CASE("remus"))
        run("remus", xcsave_domain_save, XC_STREAM_REMUS, 1, 4, 2000);
    if (CASE("colo"))
        run("colo", xcsave_domain_save, XC_STREAM_COLO, 1, 4, 2000);
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    printf("ok: %d case(s)\n", ran);
    return 0;
}
