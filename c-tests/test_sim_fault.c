// SPDX-License-Identifier: GPL-3.0-only
/*
 * xensim fault injection against the stock saver/restorer: each fault must
 * give the stock library's error return (-1), not a hang or a crash, and
 * leave no guest mapping behind.  The paged-out case must be retried by
 * the library and succeed.  Sub-cases: map, paged, domctl, shadow, ioctl,
 * hvmctx, die, restore (default: all).
 */
#include <errno.h>
#include <string.h>

#include "harness.h"

#define MiB (1024ull * 1024)

struct fcase {
    const char *name;
    int live;
    int expect_save_fail, expect_restore_fail;
    void (*arm)(void);
};

static void arm_map(void) { xensim_fault_map_gfn(1, 0x200, EPERM); }
static void arm_paged(void) { xensim_fault_paged(1, 0x300, 3); }
static void arm_domctl(void)
{
    xensim_fault_call(__HYPERVISOR_domctl, XEN_DOMCTL_getpageframeinfo3, 2, 0,
                      EINVAL);
}
static void arm_shadow(void)
{
    /* 1st: ENABLE_LOGDIRTY, 2nd: the first CLEAN of the live loop */
    xensim_fault_call(__HYPERVISOR_domctl, XEN_DOMCTL_shadow_op, 2, 0, ENOMEM);
}
static void arm_ioctl(void)
{
    xensim_fault_call_dom(1, XENSIM_OP_IOCTL, 4, 3, 0, EFAULT);
}
static void arm_hvmctx(void)
{
    xensim_fault_call(__HYPERVISOR_domctl, XEN_DOMCTL_gethvmcontext, 1, 0,
                      EINVAL);
}
static void arm_die(void)
{
    xensim_fault_die(1, __HYPERVISOR_domctl, XEN_DOMCTL_getpageframeinfo3, 5);
}
static void arm_restore(void)
{
    xensim_fault_call_dom(2, __HYPERVISOR_memory_op, XENMEM_populate_physmap,
                          3, 0, ENOMEM);
}

static const struct fcase cases[] = {
    {"map", 0, 1, 0, arm_map},
    {"paged", 0, 0, 0, arm_paged},
    {"domctl", 0, 1, 0, arm_domctl},
    {"shadow", 1, 1, 0, arm_shadow},
    {"ioctl", 0, 1, 0, arm_ioctl},
    {"hvmctx", 0, 1, 0, arm_hvmctx},
    {"die", 0, 1, 0, arm_die},
    {"restore", 0, 0, 1, arm_restore},
};

static void run(const struct fcase *fc)
{
    struct harness_opts o = {.src = 1, .dst = 2, .stream = XC_STREAM_PLAIN,
                             .live = fc->live,
                             .expect_save_fail = fc->expect_save_fail,
                             .expect_restore_fail = fc->expect_restore_fail};
    struct harness_result r;
    struct xensim_counters c;

    xensim_destroy_all();
    xensim_fault_clear();
    harness_make_pair(1, 2, 16 * MiB, 7);
    xensim_counters_reset();
    fc->arm();
    if (harness_round_trip(&o, &r))
        H_FAIL("%s: %s", fc->name, r.failure);
    xensim_counters(&c);
    H_CHECK(c.faults_injected > 0, "%s: the fault never fired", fc->name);
    if (fc->expect_save_fail)
        H_CHECK(r.save_rc == -1, "%s: save returned %d, stock returns -1",
                fc->name, r.save_rc);
    if (fc->expect_restore_fail)
        H_CHECK(r.restore_rc == -1, "%s: restore returned %d", fc->name,
                r.restore_rc);
    if (!strcmp(fc->name, "paged"))
        H_CHECK(c.faults_injected == 3 && c.mmapbatch_calls >= 3 + 1,
                "paged: %llu faults, %llu MMAPBATCH calls",
                (unsigned long long)c.faults_injected,
                (unsigned long long)c.mmapbatch_calls);
    H_CHECK(c.live_privcmd_pages == 0 && c.live_privcmd_vmas == 0,
            "%s: %llu pages in %llu VMAs still mapped", fc->name,
            (unsigned long long)c.live_privcmd_pages,
            (unsigned long long)c.live_privcmd_vmas);
    printf("%s: ok (save %d, restore %d, %llu faults injected)\n", fc->name,
           r.save_rc, r.restore_rc, (unsigned long long)c.faults_injected);
    xensim_fault_clear();
}

int main(int argc, char **argv)
{
    const char *want = argc > 1 ? argv[1] : "all";
    int any = 0;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (!strcmp(want, "all") || !strcmp(want, cases[i].name)) {
            run(&cases[i]);
            any = 1;
        }
    if (!any)
        H_FAIL("unknown sub-case %s", want);
    xensim_destroy_all();
    return 0;
}
