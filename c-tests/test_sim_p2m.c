// SPDX-License-Identifier: GPL-3.0-only
/*
 * The p2m operations of issue 14 on xensim, with Xen's frame refcounts, through the real
 * libxenctrl and the STOCK saver and restore (no xcsave):
 *  ops:      each operation with a foreign mapping held over the page it replaces: the
 *            mapping keeps the old frame, which stays counted in tot_pages (held_pages)
 *            until unmapped; a populate at max_pages is refused while a released frame is
 *            held and succeeds after the unmap; nothing is marked dirty (4.17) unless
 *            p2m-marks-dirty mode (4.19.5+/4.20.3+) is on, where every added gfn is;
 *  remus-balloon, remus-exchange, remus-move, remus-grant: a Remus stream where the
 *            primary does the operation on a page between checkpoints (then re-populates
 *            what it released and writes what changed, as a guest would): the stock saver
 *            keeps the secondary equal at every checkpoint;
 *  marked-exchange, marked-move: the same in p2m-marks-dirty mode, without the writes:
 *            Xen's own dirty mark is enough for the stock saver;
 *  unlogged-move: the move on 4.17 without the writes: the stock saver itself leaves the
 *            secondary's P stale (Xen 4.17 gives no signal), and the harness must say so
 *            at P: what "equal" means for the xcsave tests is "as stock" there.
 * Sub-cases by name (default: all).
 */
#define XC_WANT_COMPAT_MAP_FOREIGN_API 1
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"

#define MiB (1024ull * 1024)
#define P 0xc5ull    /* the page changed: outside the burst (gfns 0-0x7f) */
#define Q 0x1c5ull   /* the page it trades with, in another 1 MiB bucket */

static unsigned int dirty_bit(xc_interface *xch, uint32_t dom, uint64_t p2m_size,
                              uint64_t gfn)
{
    DECLARE_HYPERCALL_BUFFER(unsigned long, bmp);
    xc_shadow_op_stats_t stats;
    size_t bytes = ((p2m_size + 63) / 64) * 8;
    unsigned int set;

    bmp = xc_hypercall_buffer_alloc_pages(xch, bmp, (bytes + 4095) / 4096);
    H_CHECK(bmp != NULL, "hypercall buffer");
    memset(bmp, 0, bytes);
    H_CHECK(xc_logdirty_control(xch, dom, XEN_DOMCTL_SHADOW_OP_CLEAN, HYPERCALL_BUFFER(bmp),
                                p2m_size, 0, &stats) == (long long)p2m_size, "CLEAN");
    set = !!(bmp[gfn / 64] & (1ul << (gfn % 64)));
    xc_hypercall_buffer_free_pages(xch, bmp, (bytes + 4095) / 4096);
    return set;
}

static struct xensim_dominfo info(void)
{
    struct xensim_dominfo i;

    H_CHECK(xensim_dominfo(1, &i) == 0, "dominfo");
    return i;
}

enum op { BALLOON, EXCHANGE, MOVE, GRANT };
static const char *const op_name[] = {"balloon", "exchange", "move", "grant"};

static int do_op(enum op op)
{
    switch (op) {
    case BALLOON:
        return xensim_balloon_out(1, P);
    case EXCHANGE:
        return xensim_masked_exchange(1, P, Q, 0xe8);
    case MOVE:
        return xensim_move_gmfn(1, Q, P);
    case GRANT:
        return xensim_grant_over(1, P);
    }
    return -EINVAL;
}

/* One operation over P while this process maps P: what Xen's refcounts imply. */
static void op_semantics(xc_interface *xch, enum op op, int marks)
{
    struct xensim_domain_config cfg = {.mem_bytes = 16 * MiB};
    struct xensim_dominfo i0, i1, i2;
    uint8_t before[4096], q_before[4096], now[4096], seen[4096];
    xen_pfn_t g = P;
    int err;
    uint8_t *m;

    xensim_destroy_all();
    xensim_set_p2m_add_marks_dirty(marks);
    H_CHECK(xensim_create_domain(1, &cfg) == 0, "create");
    H_CHECK(xensim_fill(1, 5) == 0, "fill");
    i0 = info();
    H_CHECK(xc_shadow_control(xch, 1, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0) == 0,
            "log-dirty on");
    (void)dirty_bit(xch, 1, i0.p2m_size, P);   /* clean */
    H_CHECK(xensim_guest_read(1, P, 0, before, 4096) == 0, "read P");
    H_CHECK(xensim_guest_read(1, Q, 0, q_before, 4096) == 0, "read Q");
    m = xc_map_foreign_bulk(xch, 1, PROT_READ, &g, &err, 1);
    H_CHECK(m && !err, "map P");
    /* The domain at its limit: nothing may be populated while a released frame is held. */
    H_CHECK(xensim_set_max_pages(1, i0.tot_pages) == 0, "max_pages");
    H_CHECK(do_op(op) == 0, "%s", op_name[op]);
    i1 = info();
    /* P's old frame: released by the guest, held by our mapping, so still counted. */
    H_CHECK(i1.held_pages == 1, "%s: held_pages %llu, want 1", op_name[op],
            (unsigned long long)i1.held_pages);
    /* exchange: -1 (Q, not held) +1 (P's new frame); move: Q's frame now at P; grant:
     * Xen's page is not counted; balloon: P is a hole. P's old frame counts in each. */
    H_CHECK(i1.tot_pages == i0.tot_pages, "%s: tot_pages %llu -> %llu", op_name[op],
            (unsigned long long)i0.tot_pages, (unsigned long long)i1.tot_pages);
    H_CHECK(memcmp(m, before, 4096) == 0, "%s: the mapping no longer shows the old frame",
            op_name[op]);
    if (op == MOVE || op == EXCHANGE) {
        H_CHECK(xensim_guest_read(1, P, 0, now, 4096) == 0, "read P");
        H_CHECK(memcmp(now, before, 4096) != 0, "%s: P kept its content", op_name[op]);
        if (op == MOVE)
            H_CHECK(memcmp(now, q_before, 4096) == 0, "move: P does not hold Q's frame");
        H_CHECK(xensim_gfn_present(1, Q) == 0, "%s: Q still present", op_name[op]);
    } else {
        H_CHECK(xensim_guest_read(1, P, 0, now, 4096) == (op == GRANT ? 0 : -EINVAL),
                "%s: read P", op_name[op]);
    }
    H_CHECK(dirty_bit(xch, 1, i0.p2m_size, P) == (unsigned int)(marks && op != BALLOON),
            "%s: P's dirty bit is %d in %s mode", op_name[op], !(marks && op != BALLOON),
            marks ? "4.20.3+" : "4.17");
    /* Re-populating a released gfn at max_pages: refused while the old frame is held. */
    if (op != GRANT)
        H_CHECK(xensim_balloon_in(1, op == BALLOON ? P : Q) == -ENOMEM,
                "%s: populate at max_pages was not refused while a frame is held",
                op_name[op]);
    memcpy(seen, m, 4096);
    munmap(m, 4096);
    i2 = info();
    H_CHECK(i2.held_pages == 0 && i2.tot_pages == i0.tot_pages - 1,
            "%s: after the unmap tot_pages %llu held %llu, want %llu and 0", op_name[op],
            (unsigned long long)i2.tot_pages, (unsigned long long)i2.held_pages,
            (unsigned long long)i0.tot_pages - 1);
    if (op != GRANT)
        H_CHECK(xensim_balloon_in(1, op == BALLOON ? P : Q) == 0,
                "%s: populate failed after the unmap", op_name[op]);
    printf("ops: %s (%s): tot_pages %llu, %llu (held %llu) after it, %llu (held %llu) after "
           "the unmap; populate at max_pages refused while held\n", op_name[op],
           marks ? "4.20.3+" : "4.17", (unsigned long long)i0.tot_pages,
           (unsigned long long)i1.tot_pages, (unsigned long long)i1.held_pages,
           (unsigned long long)i2.tot_pages, (unsigned long long)i2.held_pages);
    H_CHECK(xc_shadow_control(xch, 1, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0) == 0, "log-dirty off");
    xensim_set_p2m_add_marks_dirty(0);
    xensim_destroy_all();
}

static void ops(void)
{
    xc_interface *xch = harness_xc_open();

    for (int marks = 0; marks < 2; marks++)
        for (enum op op = BALLOON; op <= GRANT; op++)
            op_semantics(xch, op, marks);
    harness_xc_close(xch);
}

static enum op scen_op;
static int scen_writes;

/* After the 2nd postcopy: the operation, then what a guest does next. */
static void between(void *arg, unsigned int k)
{
    uint64_t v = 0x600d0000 + k;

    (void)arg;
    if (k != 2)
        return;
    H_CHECK(do_op(scen_op) == 0, "%s", op_name[scen_op]);
    /* Re-populate what was released (so the primary has no new hole: stream v2 cannot
     * depopulate the secondary) ... */
    if (scen_op == BALLOON)
        H_CHECK(xensim_balloon_in(1, P) == 0, "balloon in P");
    if (scen_op == EXCHANGE || scen_op == MOVE)
        H_CHECK(xensim_balloon_in(1, Q) == 0, "populate Q");
    /* ... and write what changed: on 4.17 the only dirty mark it gets. */
    if (scen_writes) {
        if (scen_op != GRANT)
            H_CHECK(xensim_guest_write(1, P, 8, &v, sizeof(v)) == 0, "write P");
        if (scen_op == EXCHANGE || scen_op == MOVE)
            H_CHECK(xensim_guest_write(1, Q, 8, &v, sizeof(v)) == 0, "write Q");
    }
}

/* 4.17, no writes after the move: stock does not resend P. */
static void unlogged_move(void)
{
    struct harness_opts o = {
        .save = harness_stock_save(), .src = 1, .dst = 2, .stream = XC_STREAM_REMUS,
        .live = 1, .checkpoints = 5, .burst_pages = 32, .between_checkpoints = between,
    };
    struct harness_result r;
    char want[64];

    scen_op = MOVE;
    scen_writes = 0;
    xensim_destroy_all();
    harness_make_pair(1, 2, 32 * MiB, 13);
    H_CHECK(harness_round_trip(&o, &r) != 0, "an unlogged move went unnoticed");
    snprintf(want, sizeof(want), "gfn %#llx", P);
    H_CHECK(strstr(r.failure, want) != NULL, "the difference is not reported at %s: %s",
            want, r.failure);
    printf("unlogged-move: stock leaves P stale on 4.17, detected: %s\n", r.failure);
}

static void remus(enum op op, int marks)
{
    struct harness_opts o = {
        .save = harness_stock_save(), .src = 1, .dst = 2, .stream = XC_STREAM_REMUS,
        .live = 1, .checkpoints = 5, .burst_pages = 32, .between_checkpoints = between,
    };
    struct harness_result r;
    struct xensim_dominfo i;

    scen_op = op;
    scen_writes = !marks;
    xensim_destroy_all();
    xensim_set_p2m_add_marks_dirty(marks);
    harness_make_pair(1, 2, 32 * MiB, 13);
    H_CHECK(harness_round_trip(&o, &r) == 0, "%s%s: %s", marks ? "marked-" : "remus-",
            op_name[op], r.failure);
    i = info();
    H_CHECK(i.held_pages == 0, "a frame is still held after the save: %llu",
            (unsigned long long)i.held_pages);
    printf("%s%s: stock saver, secondary equal at %u checkpoint states\n",
           marks ? "marked-" : "remus-", op_name[op], r.compared);
    H_CHECK(r.compared >= 5, "only %u states compared", r.compared);
    xensim_set_p2m_add_marks_dirty(0);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0;

#define CASE(n) (!only || !strcmp(only, n)) && ++ran
    if (CASE("ops"))
        ops();
    if (CASE("remus-balloon"))
        remus(BALLOON, 0);
    if (CASE("remus-exchange"))
        remus(EXCHANGE, 0);
    if (CASE("remus-move"))
        remus(MOVE, 0);
    if (CASE("remus-grant"))
        remus(GRANT, 0);
    if (CASE("marked-exchange"))
        remus(EXCHANGE, 1);
    if (CASE("marked-move"))
        remus(MOVE, 1);
    if (CASE("unlogged-move"))
        unlogged_move();
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    printf("ok: %d case(s)\n", ran);
    return 0;
}
