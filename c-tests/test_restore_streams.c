// SPDX-License-Identifier: GPL-3.0-only
/*
 * xcsave's xc_domain_restore against the stock one, stream for stream (issue 15): the same
 * stream file is restored by the stock restore into one empty target and by xcsave's (the
 * public symbol) into another. Both must return the same rc, call the same callbacks in the
 * same order with the same arguments, give the same store/console gfns, and, when they
 * succeed, leave the two guests equal page for page (p2m, RAM, HVM context, params). Every
 * restore, failed or not, leaves no privcmd mapping behind; the map calls of each are printed.
 *
 * Streams: a plain one (stock saver) and a Remus one of 4 checkpoints (xcsave saver), then
 * bad variants of them, one per class of docs/restore.md B.3/B.4:
 *   plain, remus        as saved;
 *   colo                a COLO stream of 4 checkpoints replayed from a file: the same secondary
 *                       steps in the same order (restore_results, postcopy, wait_checkpoint,
 *                       suspend) and byte-identical CHECKPOINT_DIRTY_PFN_LIST records sent back;
 *   noend               Remus cut in the middle of its last checkpoint (a checkpoint with no
 *                       END): stock fails over with rc 0 to the last complete checkpoint;
 *   eof                 plain, cut in the middle of a PAGE_DATA record: -1;
 *   early_eof           Remus cut in the middle of its first pass: -1;
 *   huge                plain, a PAGE_DATA header announcing 0xfffffff0 bytes: -1;
 *   order               plain without its STATIC_DATA_END (v3): PAGE_DATA out of order, -1;
 *   twice               plain with a second STATIC_DATA_END: -1;
 *   pfn                 plain, a pfn of 2^41 (past any guest): xcsave -1/EINVAL before
 *                       touching the guest (stock's result is printed, not compared).
 *   maxphys             plain, a pfn of 2^27: the source's CPUID policy (xensim) gives
 *                       maxphysaddr 39 (leaf 0x80000008 EAX[7:0]), so the guest has no
 *                       pfn at or past 2^27: xcsave -1/EINVAL (stock's result printed);
 *   maxphys_below       the same with 2^27 - 1, inside the guest's limit: xcsave's reader
 *                       lets it through, and both restores fail alike where xensim refuses
 *                       the populate (the same errno, not EINVAL).
 * Sub-case names as above; no argument runs them all.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "xcsave.h"

#define MEM (16ull << 20)
#define SRC_PLAIN 1
#define SRC_REMUS 3
#define SRC_COLO 5

struct stream {
    unsigned char *b;
    size_t n;
};

static struct stream plain_stream, remus_stream, colo_stream;
static int last_stock_err, last_ours_err; /* errno of the last differential's restores */
static unsigned int next_dom = 10;

static struct stream read_file(const char *path)
{
    struct stream s = {0};
    FILE *f = fopen(path, "rb");

    H_CHECK(f != NULL, "open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    s.n = (size_t)ftell(f);
    rewind(f);
    s.b = malloc(s.n);
    H_CHECK(s.b && fread(s.b, 1, s.n, f) == s.n, "read %s", path);
    fclose(f);
    return s;
}

/* Save the source with `save` through the harness (stock restore) and keep the stream. */
static struct stream make_stream(uint32_t src, harness_save_fn save, xc_stream_type_t st)
{
    struct harness_opts o;
    struct harness_result r;
    char path[512];

    memset(&o, 0, sizeof(o));
    harness_make_pair(src, src + 1, MEM, 0xd1ff0000u + src);
    snprintf(path, sizeof(path), "%s/source-%u.bin", getenv("XENSIM_DIR"), src);
    o.save = save;
    o.src = src;
    o.dst = src + 1;
    o.stream = st;
    o.live = st != XC_STREAM_PLAIN;
    o.checkpoints = 4;
    o.burst_pages = 32;
    if (st == XC_STREAM_COLO)
        o.secondary_pages = 16;
    o.stream_path = path;
    H_CHECK(harness_round_trip(&o, &r) == 0, "making the stream: %s", r.failure);
    xensim_destroy_domain(src + 1);
    return read_file(path);
}

/* The offset of the k-th record (0-based) of type `type`, or 0. */
static size_t find_record(const struct stream *s, uint32_t type, unsigned int k)
{
    size_t at = 40;

    while (at + 8 <= s->n) {
        uint32_t t, len;

        memcpy(&t, s->b + at, 4);
        memcpy(&len, s->b + at + 4, 4);
        if (t == type && k-- == 0)
            return at;
        at += 8 + ((len + 7u) & ~7u);
    }
    return 0;
}

static size_t record_size(const struct stream *s, size_t at)
{
    uint32_t len;

    memcpy(&len, s->b + at + 4, 4);
    return 8 + ((len + 7u) & ~7u);
}

/* What one restore did. */
struct run {
    uint32_t dom;
    char back[512];               /* COLO: the file the back channel went to */
    int rc, err;
    uint64_t map_calls;           /* MMAPBATCH ioctls during the restore */
    unsigned long store, console;
    char calls[256];
};

static int cb_checkpoint(void *data)
{
    struct run *r = data;

    strncat(r->calls, "C", sizeof(r->calls) - strlen(r->calls) - 1);
    return 1; /* XGR_CHECKPOINT_SUCCESS */
}

static void note(struct run *r, const char *s)
{
    strncat(r->calls, s, sizeof(r->calls) - strlen(r->calls) - 1);
}

/* COLO secondary steps: the first postcopy turns log-dirty on, as libxl does; then the
 * secondary "runs": it writes two pages of its own (k-th resume: gfns 0x20+k and 0x80+3k),
 * which must travel back in the next dirty pfn list. */
static int cb_postcopy(void *data)
{
    struct run *r = data;
    struct xensim_dominfo info;
    unsigned int k = 0;
    const char *p;
    uint64_t v;

    note(r, "P");
    for (p = r->calls; (p = strchr(p, 'P')); p++)
        k++;
    if (k == 1)
        H_CHECK(xensim_set_logdirty(r->dom, 1) == 0, "log-dirty on d%u", r->dom);
    H_CHECK(xensim_dominfo(r->dom, &info) == 0, "info d%u", r->dom);
    if (info.shutdown)
        H_CHECK(xensim_resume(r->dom) == 0, "resume d%u", r->dom);
    if (info.paused)
        H_CHECK(xensim_unpause(r->dom) == 0, "unpause d%u", r->dom);
    v = 0x5ec0000000ull + k;
    H_CHECK(xensim_guest_write(r->dom, 0x20 + k, 8, &v, sizeof(v)) == 0, "guest write");
    H_CHECK(xensim_guest_write(r->dom, 0x80 + 3 * k, 16, &v, sizeof(v)) == 0, "guest write");
    return 1;
}

static int cb_wait(void *data)
{
    note(data, "W");
    return 1;
}

static int cb_suspend(void *data)
{
    struct run *r = data;

    note(r, "U");
    H_CHECK(xensim_suspend(r->dom) == 0, "suspend d%u", r->dom);
    return 1;
}

static void cb_results(xen_pfn_t store, xen_pfn_t console, void *data)
{
    char s[64];

    snprintf(s, sizeof(s), "R%llx/%llx", (unsigned long long)store,
             (unsigned long long)console);
    note(data, s);
}

static int cb_static(unsigned int missing, void *data)
{
    struct run *r = data;
    char s[16];

    snprintf(s, sizeof(s), "S%u", missing);
    strncat(r->calls, s, sizeof(r->calls) - strlen(r->calls) - 1);
    return 0;
}

static struct run restore_one(harness_restore_fn fn, const struct stream *s, uint32_t dst,
                              xc_stream_type_t st, uint32_t src)
{
    struct xensim_domain_config cd = {.mem_bytes = MEM, .empty = 1, .paused = 1};
    struct run r;
    struct restore_callbacks cb = {.static_data_done = cb_static, .data = &r};
    struct xensim_dominfo si;
    struct xensim_counters c;
    char path[512];
    xc_interface *xch = harness_xc_open();
    int fd;

    int back = -1;

    memset(&r, 0, sizeof(r));
    r.dom = dst;
    if (st != XC_STREAM_PLAIN)
        cb.checkpoint = cb_checkpoint;
    if (st == XC_STREAM_COLO) {
        cb.postcopy = cb_postcopy;
        cb.wait_checkpoint = cb_wait;
        cb.suspend = cb_suspend;
        cb.restore_results = cb_results;
        snprintf(r.back, sizeof(r.back), "%s/back-%u.bin", getenv("XENSIM_DIR"), dst);
        back = open(r.back, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        H_CHECK(back >= 0, "open %s", r.back);
    }
    H_CHECK(xensim_create_domain(dst, &cd) == 0, "create d%u", dst);
    H_CHECK(xensim_dominfo(src, &si) == 0, "source info");
    snprintf(path, sizeof(path), "%s/variant.bin", getenv("XENSIM_DIR"));
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    H_CHECK(fd >= 0 && write(fd, s->b, s->n) == (ssize_t)s->n, "write %s", path);
    H_CHECK(lseek(fd, 0, SEEK_SET) == 0, "rewind");
    xensim_counters_reset();
    errno = 0;
    r.rc = fn(xch, fd, dst, (unsigned int)si.hvm_param[HVM_PARAM_STORE_EVTCHN], &r.store, 0,
              (unsigned int)si.hvm_param[HVM_PARAM_CONSOLE_EVTCHN], &r.console, 0, st, &cb, back);
    r.err = errno;
    xensim_counters(&c);
    r.map_calls = c.mmapbatch_calls;
    H_CHECK(c.live_privcmd_vmas == 0, "d%u: %llu privcmd VMAs left after the restore (rc %d)",
            dst, (unsigned long long)c.live_privcmd_vmas, r.rc);
    close(fd);
    if (back >= 0)
        close(back);
    harness_xc_close(xch);
    return r;
}

/* Restore `s` with stock and with xcsave; compare. `want_rc` -2: do not compare with stock. */
static void differential(const char *name, const struct stream *s, xc_stream_type_t st,
                         uint32_t src, int want_rc)
{
    uint32_t a = next_dom++, b = next_dom++;
    struct run stock = restore_one(harness_stock_restore(), s, a, st, src);
    struct run ours = restore_one(xc_domain_restore, s, b, st, src);
    struct xensim_diff diff;
    int cmp;

    last_stock_err = stock.err;
    last_ours_err = ours.err;
    printf("%s: %zu bytes; stock rc %d errno %d calls '%s' map calls %llu; "
           "xcsave rc %d errno %d calls '%s' map calls %llu\n",
           name, s->n, stock.rc, stock.err, stock.calls, (unsigned long long)stock.map_calls,
           ours.rc, ours.err, ours.calls, (unsigned long long)ours.map_calls);
    if (want_rc == -2) {
        H_CHECK(ours.rc == -1 && ours.err == EINVAL, "%s: xcsave rc %d errno %d, want -1/EINVAL",
                name, ours.rc, ours.err);
    } else {
        H_CHECK(stock.rc == want_rc, "%s: stock rc %d, want %d", name, stock.rc, want_rc);
        H_CHECK(ours.rc == want_rc, "%s: xcsave rc %d, want %d", name, ours.rc, want_rc);
        H_CHECK(!strcmp(stock.calls, ours.calls), "%s: callbacks '%s' (stock) vs '%s'", name,
                stock.calls, ours.calls);
    }
    if (st == XC_STREAM_COLO) {
        struct stream bs = read_file(stock.back), bo = read_file(ours.back);

        printf("%s: back channel %zu bytes (stock) vs %zu (xcsave)\n", name, bs.n, bo.n);
        H_CHECK(bs.n == bo.n && !memcmp(bs.b, bo.b, bs.n),
                "%s: the dirty pfn lists sent back differ", name);
        /* 4 checkpoints: a first empty list, then the 2 pages the secondary wrote each time */
        H_CHECK(bo.n >= 8 + 3 * (8 + 16), "%s: %zu bytes sent back, want the secondary's pages",
                name, bo.n);
        free(bs.b);
        free(bo.b);
    }
    if (ours.rc == 0) {
        H_CHECK(stock.store == ours.store && stock.console == ours.console,
                "%s: outputs %#lx/%#lx (stock) vs %#lx/%#lx", name, stock.store, stock.console,
                ours.store, ours.console);
        cmp = xensim_compare_domains(a, b, XENSIM_CMP_ALL, &diff);
        H_CHECK(cmp == 0, "%s: guests differ (%d): %s", name, cmp, diff.text);
        printf("%s: guests equal page for page, outputs %#lx/%#lx\n", name, ours.store,
               ours.console);
    } else {
        H_CHECK(ours.err != 0, "%s: -1 without errno", name);
        H_CHECK(ours.store == 0 && ours.console == 0, "%s: outputs written on failure", name);
    }
    xensim_destroy_domain(a);
    xensim_destroy_domain(b);
}

/* A copy of `s` with bytes [at, at + cut) removed and `ins` (n bytes) inserted at `at`. */
static struct stream edit_stream(const struct stream *s, size_t at, size_t cut, const void *ins,
                            size_t n)
{
    struct stream v = {malloc(s->n - cut + n), s->n - cut + n};

    H_CHECK(v.b != NULL, "malloc");
    memcpy(v.b, s->b, at);
    memcpy(v.b + at, ins, n);
    memcpy(v.b + at + n, s->b + at + cut, s->n - at - cut);
    return v;
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0;
    size_t pd, sde, last_ck, prev_ck;
    struct stream v;

    plain_stream = make_stream(SRC_PLAIN, harness_stock_save(), XC_STREAM_PLAIN);
    remus_stream = make_stream(SRC_REMUS, xcsave_domain_save, XC_STREAM_REMUS);
    colo_stream = make_stream(SRC_COLO, xcsave_domain_save, XC_STREAM_COLO);
    pd = find_record(&plain_stream, 0x1, 0);
    sde = find_record(&plain_stream, 0x10, 0);
    H_CHECK(pd && sde, "plain stream without PAGE_DATA/STATIC_DATA_END");

#define CASE(n) (!only || !strcmp(only, n)) && ++ran
    if (CASE("plain"))
        differential("plain", &plain_stream, XC_STREAM_PLAIN, SRC_PLAIN, 0);
    if (CASE("remus"))
        differential("remus", &remus_stream, XC_STREAM_REMUS, SRC_REMUS, 0);
    if (CASE("colo"))
        differential("colo", &colo_stream, XC_STREAM_COLO, SRC_COLO, 0);
    if (CASE("noend")) {
        unsigned int k = 0;

        while (find_record(&remus_stream, 0xe, k + 1))
            k++;
        H_CHECK(k >= 2, "Remus stream with %u checkpoints", k + 1);
        last_ck = find_record(&remus_stream, 0xe, k);
        prev_ck = find_record(&remus_stream, 0xe, k - 1);
        v = remus_stream;
        v.n = prev_ck + (last_ck - prev_ck) / 2; /* inside the last checkpoint's records */
        differential("noend", &v, XC_STREAM_REMUS, SRC_REMUS, 0);
    }
    if (CASE("early_eof")) {
        v = remus_stream;
        v.n = find_record(&remus_stream, 0x1, 3) + 100;
        differential("early_eof", &v, XC_STREAM_REMUS, SRC_REMUS, -1);
    }
    if (CASE("eof")) {
        v = plain_stream;
        v.n = pd + record_size(&plain_stream, pd) / 2;
        differential("eof", &v, XC_STREAM_PLAIN, SRC_PLAIN, -1);
    }
    if (CASE("huge")) {
        uint32_t hdr[2] = {0x1, 0xfffffff0u};

        v = edit_stream(&plain_stream, pd, 8, hdr, 8);
        differential("huge", &v, XC_STREAM_PLAIN, SRC_PLAIN, -1);
        free(v.b);
    }
    if (CASE("order")) {
        v = edit_stream(&plain_stream, sde, record_size(&plain_stream, sde), NULL, 0);
        differential("order", &v, XC_STREAM_PLAIN, SRC_PLAIN, -1);
        free(v.b);
    }
    if (CASE("twice")) {
        uint32_t hdr[2] = {0x10, 0};

        v = edit_stream(&plain_stream, pd, 0, hdr, 8);
        differential("twice", &v, XC_STREAM_PLAIN, SRC_PLAIN, -1);
        free(v.b);
    }
    if (CASE("pfn")) {
        uint64_t e;

        v = edit_stream(&plain_stream, 0, 0, NULL, 0);
        memcpy(&e, v.b + pd + 16, 8);
        e = (e & ~0x000fffffffffffffull) | (1ull << 41);
        memcpy(v.b + pd + 16, &e, 8);
        differential("pfn", &v, XC_STREAM_PLAIN, SRC_PLAIN, -2);
        free(v.b);
    }
    if ((CASE("maxphys")) || (CASE("maxphys_below"))) {
        uint64_t e, pfn = 1ull << (39 - 12);
        int below = !strcmp(only ? only : "", "maxphys_below");

        for (int pass = 0; pass < 2; pass++) {
            if (only && pass != below)
                continue;
            v = edit_stream(&plain_stream, 0, 0, NULL, 0);
            memcpy(&e, v.b + pd + 16, 8);
            e = (e & ~0x000fffffffffffffull) | (pfn - (uint64_t)pass);
            memcpy(v.b + pd + 16, &e, 8);
            differential(pass ? "maxphys_below" : "maxphys", &v, XC_STREAM_PLAIN, SRC_PLAIN,
                         pass ? -1 : -2);
            if (pass)
                H_CHECK(last_ours_err == last_stock_err && last_ours_err != EINVAL,
                        "maxphys_below: xcsave errno %d, stock %d: refused by the reader?",
                        last_ours_err, last_stock_err);
            free(v.b);
        }
    }
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    printf("ok: %d case(s)\n", ran);
    return 0;
}
