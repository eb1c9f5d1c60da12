// SPDX-License-Identifier: GPL-3.0-only
/*
 * The panic boundary: XCSAVE_TEST_PANIC=<stage> forces a panic inside a save (setup: QEMU
 * log-dirty just switched on; batch: a batch's pages mapped; checkpoint: after a CHECKPOINT
 * record, with the mapping cache holding mappings; end: before END; cleanup: after log-dirty is
 * off but before the mappings are released, outside the engine's own catch, so the C
 * surface's boundary catches it and unwinding releases the mappings). The save must return
 * -1/EIO with a logged message, leave no privcmd mapping, log-dirty off in Xen and QEMU and
 * the caller's fds open, and this process must go on: a following save round trip (Remus,
 * with the cache) is correct. Sub-cases: setup, batch, checkpoint, end, cleanup (no argument:
 * all).
 */
#include <stdlib.h>

#include "test_rel.h"

/* stage: the XCSAVE_TEST_PANIC value; tag: how the panic message names it */
static void one(const char *stage, const char *tag, uint32_t dom)
{
    struct rel_log lg;
    xc_interface *xch;
    /* Remus ends at a checkpoint without END: the END stage is reached by a plain save */
    struct rel_save s = {.dom = dom, .stream = strcmp(stage, "end") ? XC_STREAM_REMUS
                                                                    : XC_STREAM_PLAIN,
                         .live = 1, .checkpoints = 3};
    char what[64];

    rel_log_init(&lg);
    xch = rel_xc_open(&lg);
    rel_make_domain(dom, 16ull << 20);
    snprintf(what, sizeof(what), "panic at %s", stage);
    setenv("XCSAVE_TEST_PANIC", stage, 1);
    rel_save_run(&s, xcsave_domain_save, xch);
    unsetenv("XCSAVE_TEST_PANIC");
    printf("%s: rc %d errno %d (%s), %llu bytes written\n", what, s.rc, s.err, strerror(s.err),
           (unsigned long long)s.bytes);
    rel_check_failed(what, &s, EIO);
    H_CHECK(rel_log_has(&lg, "internal error") && rel_log_has(&lg, tag),
            "%s: the panic was not logged", what);
    xc_interface_close(xch);
    xensim_destroy_domain(dom);
    /* the process goes on: the next saves work and are right */
    rel_round_trip(what, dom + 1, XC_STREAM_REMUS);
    rel_round_trip(what, dom + 1, XC_STREAM_PLAIN);
    printf("%s: ok\n", what);
}

int main(int argc, char **argv)
{
    static const char *const stages[] = {"setup", "batch", "checkpoint", "end", "cleanup"};
    static const char *const tags[] = {"Setup", "Batch", "Checkpoint", "End", "Cleanup"};
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0;

    for (unsigned int i = 0; i < 5; i++)
        if (!only || !strcmp(only, stages[i])) {
            one(stages[i], tags[i], 1 + 4 * i);
            ran++;
        }
    if (!ran)
        H_FAIL("unknown stage '%s'", only);
    printf("ok: %d stage(s)\n", ran);
    return 0;
}
