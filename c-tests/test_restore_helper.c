// SPDX-License-Identifier: GPL-3.0-only
/*
 * The receiving side with the real, unmodified libxl-save-helper (issue 15): with
 * LD_PRELOAD=libxcsave.so, `libxl-save-helper --restore-domain` runs xcsave's
 * xc_domain_restore, which restores a stream the stock helper saved into a domain equal to the
 * source, and reports the store and console gfns libxl reads (its restore_results message).
 *
 * Proof that xcsave restored: its own debug line ("xcsave: restoring d... with xcsave")
 * reaches libxl's logger through the helper's log messages. The control run, without xcsave
 * preloaded, must not have that line (so the check can fail) and must give the same state.
 *
 * Sub-cases: preload, control. No argument runs both.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "savehelper.h"

#define MEM (32ull << 20)

static void run(const char *name, int preload_xcsave)
{
    static uint32_t next = 1;
    uint32_t src = next++, dst = next++;
    const char *helper = lsh_env("XCSAVE_SAVE_HELPER"), *sim = lsh_env("XENSIM_LIB");
    const char *lib = lsh_env("XCSAVE_LIB"), *dir = lsh_env("XENSIM_DIR");
    char preload[1024], path[512];
    uint32_t sc = src;
    struct lsh_callbacks scb, rcb;
    struct lsh_result sr, rr;
    struct xensim_diff diff;
    struct xensim_dominfo si;
    int fd, rc, xcsave_ran;

    harness_make_pair(src, dst, MEM, 0x4e57000u + src);
    snprintf(preload, sizeof(preload), "%s %s", sim, lib);
    snprintf(path, sizeof(path), "%s/%s.stream", dir, name);

    memset(&scb, 0, sizeof(scb));
    scb.suspend = lsh_suspend_domain;
    scb.switch_qemu_logdirty = lsh_no_qemu_logdirty;
    scb.data = &sc;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    H_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    rc = lsh_save(helper, sim, fd, -1, src, 0, XC_STREAM_PLAIN, &scb, &sr);
    close(fd);
    H_CHECK(rc == 0 && sr.complete_seen && sr.retval == 0 && !sr.protocol_error,
            "%s: stock save helper failed (retval %d, errno %d)", name, sr.retval, sr.errnoval);

    H_CHECK(xensim_dominfo(src, &si) == 0, "source info");
    memset(&rcb, 0, sizeof(rcb));
    rcb.static_data_done = lsh_no_missing_static_data;
    rcb.restore_results = lsh_ignore_results;
    fd = open(path, O_RDONLY);
    H_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    rc = lsh_restore(helper, preload_xcsave ? preload : sim, fd, -1, dst,
                     (unsigned)si.hvm_param[HVM_PARAM_STORE_EVTCHN], 0,
                     (unsigned)si.hvm_param[HVM_PARAM_CONSOLE_EVTCHN], 0, XC_STREAM_PLAIN,
                     &rcb, &rr);
    close(fd);
    printf("%s: restore helper rc %d, complete %d retval %d errno %d, %u messages, "
           "store %#llx console %#llx\n",
           name, rc, rr.complete_seen, rr.retval, rr.errnoval, rr.messages,
           (unsigned long long)rr.store_gfn, (unsigned long long)rr.console_gfn);
    H_CHECK(rc == 0 && rr.complete_seen && rr.retval == 0 && !rr.protocol_error,
            "%s: restore helper failed (retval %d errno %d); log:\n%s", name, rr.retval,
            rr.errnoval, rr.log ? rr.log : "");
    xcsave_ran = lsh_log_contains(&rr, "with xcsave (");
    if (preload_xcsave)
        H_CHECK(xcsave_ran, "%s: no xcsave line in the restore helper's log:\n%s", name,
                rr.log ? rr.log : "");
    else
        H_CHECK(!xcsave_ran, "%s: xcsave restored without being preloaded", name);
    H_CHECK(rr.store_gfn == si.hvm_param[HVM_PARAM_STORE_PFN] &&
                rr.console_gfn == si.hvm_param[HVM_PARAM_CONSOLE_PFN],
            "%s: restore_results %#llx/%#llx, source params %#llx/%#llx", name,
            (unsigned long long)rr.store_gfn, (unsigned long long)rr.console_gfn,
            (unsigned long long)si.hvm_param[HVM_PARAM_STORE_PFN],
            (unsigned long long)si.hvm_param[HVM_PARAM_CONSOLE_PFN]);
    rc = xensim_compare_domains(src, dst, XENSIM_CMP_ALL, &diff);
    H_CHECK(rc == 0, "%s: restored d%u differs from d%u: %s", name, dst, src,
            rc > 0 ? diff.text : strerror(-rc));
    printf("%s: restored domain equals the source%s\n", name,
           preload_xcsave ? " (restored by xcsave)" : "");
    lsh_result_free(&sr);
    lsh_result_free(&rr);
    xensim_destroy_domain(src);
    xensim_destroy_domain(dst);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0;

    if (!only || !strcmp(only, "preload"))
        ran++, run("preload", 1);
    if (!only || !strcmp(only, "control"))
        ran++, run("control", 0);
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    return 0;
}
