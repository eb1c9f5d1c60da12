// SPDX-License-Identifier: GPL-3.0-only
/*
 * xcsave's stream, restored by the STOCK xc_domain_restore, ends equal to the source, for
 * every stream type: plain non-live, plain live with a background dirtier, Remus and COLO
 * (equal at every checkpoint), and verify-stream-v2 accepts each stream.
 *
 * Sub-cases: plain, live, remus, colo, symbol (plain through the exported xc_domain_save
 * symbol rather than xcsave_domain_save), verify (live with XCFLAGS_DEBUG: a VERIFY record and
 * a second full pass that the stock restore checks). No argument runs them all.
 */
#include <errno.h>
#include <string.h>

#include "harness.h"
#include "xcsave.h"

#define MEM (64ull << 20)

static unsigned int next_dom = 1;

static void read_exact(FILE *f, void *buf, size_t n, const char *what)
{
    H_CHECK(fread(buf, 1, n, f) == n, "stream file: short read of %s", what);
}

/*
 * The verify pass of a debug save: after the VERIFY record (type 0xd), every page sent must
 * equal the (suspended) source's page. Returns the number of pages checked.
 */
static uint64_t check_verify_pass(const char *path, uint32_t src)
{
    static unsigned char page[4096], guest[4096];
    FILE *f = fopen(path, "rb");
    uint64_t checked = 0;
    int verifying = 0;
    uint32_t hdr[2];

    H_CHECK(f != NULL, "open %s: %s", path, strerror(errno));
    H_CHECK(fseek(f, 40, SEEK_SET) == 0, "seek past the headers");
    while (fread(hdr, sizeof(hdr), 1, f) == 1) {
        uint32_t type = hdr[0], len = hdr[1], count, i, with_data = 0;
        uint64_t *pfns;

        if (type == 0xd)
            verifying = 1;
        if (type != 1 || !verifying) {
            H_CHECK(fseek(f, (len + 7) & ~7u, SEEK_CUR) == 0, "skip record");
            continue;
        }
        read_exact(f, &count, 4, "PAGE_DATA count");
        read_exact(f, hdr, 4, "PAGE_DATA reserved");
        pfns = calloc(count, sizeof(*pfns));
        H_CHECK(pfns != NULL, "calloc");
        read_exact(f, pfns, count * sizeof(*pfns), "PAGE_DATA pfns");
        for (i = 0; i < count; i++) {
            uint64_t pfn = pfns[i] & 0x000fffffffffffffull;
            uint32_t t = (uint32_t)(pfns[i] >> 32);

            if (t == 0xf0000000u || t == 0xd0000000u || t == 0xe0000000u)
                continue; /* hole / broken / alloc-only: no data */
            with_data++;
            read_exact(f, page, sizeof(page), "page");
            H_CHECK(xensim_guest_read(src, pfn, 0, guest, sizeof(guest)) == 0,
                    "read source pfn %#llx", (unsigned long long)pfn);
            H_CHECK(!memcmp(page, guest, sizeof(page)),
                    "verify pass: pfn %#llx differs from the source",
                    (unsigned long long)pfn);
            checked++;
        }
        H_CHECK(len == 8 + 8 * count + 4096ull * with_data, "PAGE_DATA length %u", len);
        free(pfns);
    }
    fclose(f);
    H_CHECK(verifying, "no VERIFY record in the stream");
    return checked;
}

/* xcsave with XCFLAGS_DEBUG added to the harness's flags. */
static int save_debug(xc_interface *xch, int io_fd, uint32_t dom, uint32_t flags,
                      struct save_callbacks *cb, xc_stream_type_t st, int recv_fd)
{
    return xcsave_domain_save(xch, io_fd, dom, flags | XCFLAGS_DEBUG, cb, st, recv_fd);
}

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
    if (save == save_debug) {
        char path[512];

        snprintf(path, sizeof(path), "%s/stream.bin", getenv("XENSIM_DIR"));
        printf("%s: %llu pages of the verify pass equal the source\n", name,
               (unsigned long long)check_verify_pass(path, src));
    }
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
    if (CASE("verify"))
        run("verify", save_debug, XC_STREAM_PLAIN, 1, 0, 0);
    if (CASE("remus"))
        run("remus", xcsave_domain_save, XC_STREAM_REMUS, 1, 4, 2000);
    if (CASE("colo"))
        run("colo", xcsave_domain_save, XC_STREAM_COLO, 1, 4, 2000);
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    printf("ok: %d case(s)\n", ran);
    return 0;
}
