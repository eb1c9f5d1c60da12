// SPDX-License-Identifier: GPL-3.0-only
/*
 * xensim-ctl: drive the simulated hypervisor in $XENSIM_DIR from scripts
 * and multi-process tests.  Run without arguments for usage.
 * Exit status: 0 ok, 1 "different" (compare), 2 error.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xensim.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: xensim-ctl COMMAND [ARGS]   (state in $XENSIM_DIR)\n"
            "  create DOMID MEM_MIB [empty] [paused]\n"
            "  destroy DOMID | destroy-all\n"
            "  fill DOMID SEED\n"
            "  info DOMID\n"
            "  pause|unpause|suspend|resume DOMID\n"
            "  logdirty DOMID 0|1\n"
            "  write DOMID GFN OFFSET BYTE      (a guest write)\n"
            "  dirty DOMID FIRST COUNT RATE SECONDS  (run the dirtier)\n"
            "  balloon-replace DOMID GFN SEED | balloon-out|balloon-in DOMID GFN\n"
            "  exchange DOMID GFN OTHER SEED | move-gmfn DOMID SRC DST\n"
            "  grant-over DOMID GFN | max-pages DOMID PAGES\n"
            "  p2m-marks-dirty 0|1      (1: Xen >= 4.20.3 marks p2m additions dirty)\n"
            "  compare DOMID_REF DOMID [ram|all]\n"
            "  stats | stats-reset | count OP SUBOP\n"
            "  cost CALL_NS PAGE_NS\n"
            "  dom0 pv|pvh|pvh-balloon           (the dom0 model, XENSIM_DOM0)\n"
            "  fault-call OP SUBOP NTH REPEAT ERRNO [DOMID]\n"
            "  fault-map DOMID GFN ERRNO | fault-paged DOMID GFN ATTEMPTS\n"
            "  fault-die DOMID OP SUBOP NTH | fault-clear\n");
    exit(2);
}

static uint64_t num(const char *s)
{
    char *end;
    uint64_t v;

    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno || *end || end == s) {
        fprintf(stderr, "xensim-ctl: bad number '%s'\n", s);
        exit(2);
    }
    return v;
}

static int check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "xensim-ctl: %s: %s\n", what, strerror(-rc));
        exit(2);
    }
    return rc;
}

int main(int argc, char **argv)
{
    const char *cmd;

    if (argc < 2)
        usage();
    cmd = argv[1];
    check(xensim_init(), "init");
#define NEED(n)                                                              \
    do {                                                                     \
        if (argc < (n) + 2)                                                  \
            usage();                                                         \
    } while (0)
    if (!strcmp(cmd, "create")) {
        struct xensim_domain_config c = {0};
        NEED(2);
        c.mem_bytes = num(argv[3]) << 20;
        for (int i = 4; i < argc; i++) {
            if (!strcmp(argv[i], "empty"))
                c.empty = 1;
            else if (!strcmp(argv[i], "paused"))
                c.paused = 1;
            else
                usage();
        }
        check(xensim_create_domain((uint32_t)num(argv[2]), &c), "create");
    } else if (!strcmp(cmd, "destroy")) {
        NEED(1);
        check(xensim_destroy_domain((uint32_t)num(argv[2])), "destroy");
    } else if (!strcmp(cmd, "destroy-all")) {
        xensim_destroy_all();
    } else if (!strcmp(cmd, "fill")) {
        NEED(2);
        check(xensim_fill((uint32_t)num(argv[2]), num(argv[3])), "fill");
    } else if (!strcmp(cmd, "info")) {
        struct xensim_dominfo i;
        NEED(1);
        check(xensim_dominfo((uint32_t)num(argv[2]), &i), "info");
        printf("domid %u paused %d shutdown %d reason %u dying %d running %d "
               "logdirty %d tot_pages %llu held_pages %llu max_pages %llu "
               "p2m_size %#llx "
               "store_pfn %#llx console_pfn %#llx\n",
               i.domid, i.paused, i.shutdown, i.shutdown_reason, i.dying,
               i.running, i.logdirty, (unsigned long long)i.tot_pages,
               (unsigned long long)i.held_pages,
               (unsigned long long)i.max_pages,
               (unsigned long long)i.p2m_size,
               (unsigned long long)i.hvm_param[1],
               (unsigned long long)i.hvm_param[17]);
    } else if (!strcmp(cmd, "pause") || !strcmp(cmd, "unpause") ||
               !strcmp(cmd, "suspend") || !strcmp(cmd, "resume")) {
        uint32_t d;
        NEED(1);
        d = (uint32_t)num(argv[2]);
        check(cmd[0] == 'p'   ? xensim_pause(d)
              : cmd[0] == 'u' ? xensim_unpause(d)
              : cmd[0] == 's' ? xensim_suspend(d)
                              : xensim_resume(d),
              cmd);
    } else if (!strcmp(cmd, "logdirty")) {
        NEED(2);
        check(xensim_set_logdirty((uint32_t)num(argv[2]), (int)num(argv[3])),
              "logdirty");
    } else if (!strcmp(cmd, "write")) {
        uint8_t b;
        NEED(4);
        b = (uint8_t)num(argv[5]);
        check(xensim_guest_write((uint32_t)num(argv[2]), num(argv[3]),
                                 (size_t)num(argv[4]), &b, 1),
              "write");
    } else if (!strcmp(cmd, "dirty")) {
        struct xensim_dirtier *dt;
        NEED(5);
        dt = xensim_dirtier_start((uint32_t)num(argv[2]), num(argv[3]),
                                  num(argv[4]), num(argv[5]), 1);
        if (!dt)
            check(-EINVAL, "dirtier");
        sleep((unsigned int)num(argv[6]));
        printf("%llu pages written\n",
               (unsigned long long)xensim_dirtier_stop(dt));
    } else if (!strcmp(cmd, "balloon-replace")) {
        NEED(3);
        check(xensim_balloon_replace((uint32_t)num(argv[2]), num(argv[3]),
                                     num(argv[4])),
              "balloon-replace");
    } else if (!strcmp(cmd, "exchange")) {
        NEED(4);
        check(xensim_masked_exchange((uint32_t)num(argv[2]), num(argv[3]),
                                     num(argv[4]), num(argv[5])),
              "exchange");
    } else if (!strcmp(cmd, "move-gmfn")) {
        NEED(3);
        check(xensim_move_gmfn((uint32_t)num(argv[2]), num(argv[3]),
                               num(argv[4])),
              "move-gmfn");
    } else if (!strcmp(cmd, "grant-over")) {
        NEED(2);
        check(xensim_grant_over((uint32_t)num(argv[2]), num(argv[3])),
              "grant-over");
    } else if (!strcmp(cmd, "max-pages")) {
        NEED(2);
        check(xensim_set_max_pages((uint32_t)num(argv[2]), num(argv[3])),
              "max-pages");
    } else if (!strcmp(cmd, "p2m-marks-dirty")) {
        NEED(1);
        xensim_set_p2m_add_marks_dirty((int)num(argv[2]));
    } else if (!strcmp(cmd, "balloon-out") || !strcmp(cmd, "balloon-in")) {
        NEED(2);
        check(cmd[8] == 'o' ? xensim_balloon_out((uint32_t)num(argv[2]),
                                                 num(argv[3]))
                            : xensim_balloon_in((uint32_t)num(argv[2]),
                                                num(argv[3])),
              cmd);
    } else if (!strcmp(cmd, "compare")) {
        struct xensim_diff diff;
        unsigned int what = XENSIM_CMP_ALL;
        int rc;
        NEED(2);
        if (argc > 4 && !strcmp(argv[4], "ram"))
            what = XENSIM_CMP_RAM;
        rc = check(xensim_compare_domains((uint32_t)num(argv[2]),
                                          (uint32_t)num(argv[3]), what, &diff),
                   "compare");
        if (rc) {
            printf("different: %s: %s\n", diff.what, diff.text);
            return 1;
        }
        printf("equal\n");
    } else if (!strcmp(cmd, "stats")) {
        struct xensim_counters c;
        xensim_counters(&c);
        printf("mmapbatch_calls %llu\npages_mapped %llu\nmap_errors %llu\n"
               "mmap_syscalls %llu\nprivcmd_mmaps %llu\nprivcmd_munmaps %llu\n"
               "live_privcmd_vmas %llu\nlive_privcmd_pages %llu\n"
               "hypercalls %llu\nunhandled %llu\nfaults_injected %llu\n"
               "mmapbatch_ns %llu\nmmap_ns %llu\nhypercall_ns %llu\n",
               (unsigned long long)c.mmapbatch_calls,
               (unsigned long long)c.pages_mapped,
               (unsigned long long)c.map_errors,
               (unsigned long long)c.mmap_syscalls,
               (unsigned long long)c.privcmd_mmaps,
               (unsigned long long)c.privcmd_munmaps,
               (unsigned long long)c.live_privcmd_vmas,
               (unsigned long long)c.live_privcmd_pages,
               (unsigned long long)c.hypercalls,
               (unsigned long long)c.unhandled,
               (unsigned long long)c.faults_injected,
               (unsigned long long)c.mmapbatch_ns,
               (unsigned long long)c.mmap_ns,
               (unsigned long long)c.hypercall_ns);
    } else if (!strcmp(cmd, "stats-reset")) {
        xensim_counters_reset();
    } else if (!strcmp(cmd, "count")) {
        NEED(2);
        printf("%llu\n", (unsigned long long)xensim_hypercall_count(
                             (unsigned int)num(argv[2]),
                             !strcmp(argv[3], "any") ? XENSIM_SUBOP_ANY
                                                     : (int)num(argv[3])));
    } else if (!strcmp(cmd, "cost")) {
        NEED(2);
        xensim_set_cost(num(argv[2]), num(argv[3]));
    } else if (!strcmp(cmd, "dom0")) {
        NEED(1);
        if (!strcmp(argv[2], "pv"))
            xensim_set_dom0_mode(XENSIM_DOM0_PV);
        else if (!strcmp(argv[2], "pvh"))
            xensim_set_dom0_mode(XENSIM_DOM0_PVH);
        else if (!strcmp(argv[2], "pvh-balloon"))
            xensim_set_dom0_mode(XENSIM_DOM0_PVH_BALLOON);
        else
            usage();
    } else if (!strcmp(cmd, "fault-call")) {
        NEED(5);
        if (argc > 7)
            check(xensim_fault_call_dom((uint32_t)num(argv[7]),
                                        (unsigned int)num(argv[2]),
                                        (int)num(argv[3]),
                                        (unsigned int)num(argv[4]),
                                        (unsigned int)num(argv[5]),
                                        (int)num(argv[6])),
                  "fault-call");
        else
            check(xensim_fault_call((unsigned int)num(argv[2]),
                                    (int)num(argv[3]),
                                    (unsigned int)num(argv[4]),
                                    (unsigned int)num(argv[5]),
                                    (int)num(argv[6])),
                  "fault-call");
    } else if (!strcmp(cmd, "fault-map")) {
        NEED(3);
        check(xensim_fault_map_gfn((uint32_t)num(argv[2]), num(argv[3]),
                                   (int)num(argv[4])),
              "fault-map");
    } else if (!strcmp(cmd, "fault-paged")) {
        NEED(3);
        check(xensim_fault_paged((uint32_t)num(argv[2]), num(argv[3]),
                                 (unsigned int)num(argv[4])),
              "fault-paged");
    } else if (!strcmp(cmd, "fault-die")) {
        NEED(4);
        check(xensim_fault_die((uint32_t)num(argv[2]),
                               (unsigned int)num(argv[3]), (int)num(argv[4]),
                               (unsigned int)num(argv[5])),
              "fault-die");
    } else if (!strcmp(cmd, "fault-clear")) {
        xensim_fault_clear();
    } else {
        usage();
    }
    return 0;
}
