// SPDX-License-Identifier: GPL-3.0-only
/*
 * Interposition with the real, unmodified libxl-save-helper (a program linked only against
 * the stock libxenguest): with LD_PRELOAD=libxcsave.so its xc_domain_save runs xcsave's code,
 * and the stream it writes is restored by the stock helper into a domain equal to the source.
 *
 * Proof that xcsave ran: its own debug line ("xcsave: saving d...") reaches libxl's logger
 * through the helper's log messages. The control run, without xcsave preloaded, must not have
 * that line (so the check can fail) and must give the same restored state.
 *
 * Sub-cases: preload, control. No argument runs both. A third, diverted, runs the helper at
 * $XCSAVE_DIVERTED_HELPER (xcsave-xl's wrapper in place of the stock helper, after `dpkg -i`;
 * scripts/check-deb.sh) with nothing of xcsave's preloaded by the test: the wrapper must
 * bring xcsave in by itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "savehelper.h"

#define MEM (32ull << 20)

/* Save through `helper`, xensim preloaded (and libxcsave too if preload_xcsave); xcsave's
 * line must be in the helper's log exactly when expect_xcsave. */
static void run(const char *name, const char *helper, int preload_xcsave, int expect_xcsave)
{
    static uint32_t next = 1;
    uint32_t src = next++, dst = next++;
    const char *sim = lsh_env("XENSIM_LIB");
    const char *lib = lsh_env("XCSAVE_LIB"), *dir = lsh_env("XENSIM_DIR");
    char save_preload[1024], path[512];
    uint32_t sc = src;
    struct lsh_callbacks scb, rcb;
    struct lsh_result sr, rr;
    struct xensim_diff diff;
    int fd, rc, xcsave_ran;

    harness_make_pair(src, dst, MEM, 0xa11ce000u + src);
    snprintf(save_preload, sizeof(save_preload), "%s %s", sim, lib);
    snprintf(path, sizeof(path), "%s/%s.stream", dir, name);

    memset(&scb, 0, sizeof(scb));
    scb.suspend = lsh_suspend_domain;
    scb.switch_qemu_logdirty = lsh_no_qemu_logdirty;
    scb.data = &sc;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    H_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    rc = lsh_save(helper, preload_xcsave ? save_preload : sim, fd, -1, src, 0,
                  XC_STREAM_PLAIN, &scb, &sr);
    close(fd);
    printf("%s: save helper rc %d, complete %d retval %d errno %d, %u messages, exit %#x\n",
           name, rc, sr.complete_seen, sr.retval, sr.errnoval, sr.messages, sr.exit_status);
    H_CHECK(rc == 0 && sr.complete_seen && sr.retval == 0 && !sr.protocol_error,
            "%s: save helper failed (rc %d, retval %d, errno %d); log:\n%s", name, rc,
            sr.retval, sr.errnoval, sr.log ? sr.log : "");
    H_CHECK(sr.callbacks[LSH_SUSPEND] == 1, "%s: %u suspend callbacks", name,
            sr.callbacks[LSH_SUSPEND]);
    xcsave_ran = lsh_log_contains(&sr, "xcsave: saving d");
    if (expect_xcsave)
        H_CHECK(xcsave_ran, "%s: no xcsave line in the helper's log:\n%s", name,
                sr.log ? sr.log : "");
    else
        H_CHECK(!xcsave_ran, "%s: xcsave ran without being preloaded", name);
    H_CHECK(lsh_log_contains(&sr, "Saving domain"), "%s: stock's log line missing", name);

    memset(&rcb, 0, sizeof(rcb));
    rcb.static_data_done = lsh_no_missing_static_data;
    rcb.restore_results = lsh_ignore_results;
    fd = open(path, O_RDONLY);
    H_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    rc = lsh_restore(helper, sim, fd, -1, dst, 1, 0, 2, 0, XC_STREAM_PLAIN, &rcb, &rr);
    close(fd);
    printf("%s: restore helper rc %d, complete %d retval %d errno %d\n", name, rc,
           rr.complete_seen, rr.retval, rr.errnoval);
    H_CHECK(rc == 0 && rr.complete_seen && rr.retval == 0 && !rr.protocol_error,
            "%s: stock restore helper failed (retval %d errno %d); log:\n%s", name, rr.retval,
            rr.errnoval, rr.log ? rr.log : "");

    rc = xensim_compare_domains(src, dst, XENSIM_CMP_ALL, &diff);
    H_CHECK(rc == 0, "%s: restored d%u differs from d%u: %s", name, dst, src,
            rc > 0 ? diff.text : strerror(-rc));
    printf("%s: restored domain equals the source\n", name);
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
        ran++, run("preload", lsh_env("XCSAVE_SAVE_HELPER"), 1, 1);
    if (!only || !strcmp(only, "control"))
        ran++, run("control", lsh_env("XCSAVE_SAVE_HELPER"), 0, 0);
    if (only && !strcmp(only, "diverted"))
        ran++, run("diverted", lsh_env("XCSAVE_DIVERTED_HELPER"), 0, 1);
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    return 0;
}
