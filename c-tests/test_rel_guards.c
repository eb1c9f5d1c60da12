// SPDX-License-Identifier: GPL-3.0-only
/*
 * Issue 14: what the saver must refuse or give up on instead of hanging, corrupting or
 * aborting. Run one case: make check-c T=test_rel_guards:stalled. Each
 * case runs in a child process with a watchdog (SIGALRM kills a save that hangs), so a hang
 * or an abort is reported as a failure, not as a stuck test.
 *  stalled:   a COLO secondary that never answers (back channel open, silent): with
 *             XCSAVE_BACKCHANNEL_TIMEOUT_MS=1000, -1/ETIMEDOUT, a logged reason, log-dirty
 *             off, no mapping left (stock, and xcsave before issue 14: the save hangs with
 *             the primary suspended; the watchdog reports it);
 *  slowdrip:  a secondary that sends one byte every 300 ms and never finishes its record:
 *             the timeout covers the whole answer, not each read: -1/ETIMEDOUT;
 *  ebusy:     a second save of a domain that a Remus save in this process is saving:
 *             -1/EBUSY at once; the first save then ends normally (0);
 *  nullcb:    NULL callbacks through xc_domain_save: -1/EINVAL, with and without
 *             XCSAVE_DISABLE=1 (stock asserts on NULL callbacks);
 *  sharedxch: two concurrent saves on one xc_interface, 3 rounds: each either succeeds or
 *             is refused with -1/EBUSY (never an assertion in libxenctrl).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "test_rel.h"
#include "xcsave.h"

#define MiB (1024ull * 1024)
#define WATCHDOG 30   /* seconds: a save still running then is hung */

/* Run fn in a child; the child's exit status 0 means the case passed. */
static void in_child(const char *name, void (*fn)(void))
{
    pid_t pid;
    int st;

    fflush(stdout);
    pid = fork();
    H_CHECK(pid >= 0, "fork");
    if (pid == 0) {
        alarm(WATCHDOG);
        fn();
        fflush(stdout);
        _exit(0);
    }
    H_CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
    H_CHECK(!WIFSIGNALED(st), "%s: the child was killed by signal %d (%s)%s", name,
            WTERMSIG(st), strsignal(WTERMSIG(st)),
            WTERMSIG(st) == SIGALRM ? ": the save hung" : "");
    H_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: child exit %d", name,
            WEXITSTATUS(st));
    printf("%s: ok\n", name);
}

/* ---- the back channel ---- */

static int drip;   /* 1: the feeder sends one byte every 300 ms, forever */

static void *feeder(void *arg)
{
    int fd = *(int *)arg;
    /* a list of 4096 pfns: a valid length for any guest here, never completed */
    const uint32_t hdr[] = {BC_HDR(0xf, 8 * 4096)};
    const uint8_t *b = (const uint8_t *)hdr;

    for (size_t i = 0; drip; i++) {
        uint8_t c = i < sizeof(hdr) ? b[i] : 0;
        if (write(fd, &c, 1) != 1)
            break;
        usleep(300 * 1000);
    }
    pause();   /* keep the write end open: the secondary is alive but silent */
    return NULL;
}

static void colo_timeout(void)
{
    struct rel_log lg;
    xc_interface *xch;
    /* one domain per case: both cases may run in one xensim */
    struct rel_save s = {.dom = drip ? 45 : 40, .stream = XC_STREAM_COLO, .live = 1,
                         .checkpoints = 3};
    struct save_callbacks cb = {.suspend = rel_cb_suspend, .postcopy = rel_cb_postcopy,
                                .checkpoint = rel_cb_checkpoint, .wait_checkpoint = rel_cb_wait,
                                .switch_qemu_logdirty = rel_cb_qemu, .data = &s};
    struct rel_drain d = {.bytes = 0};
    struct xensim_dominfo di;
    uint64_t before[2], after[2];
    int p[2], back[2], rc, err;
    pthread_t tf, td;

    setenv("XCSAVE_BACKCHANNEL_TIMEOUT_MS", "1000", 1);
    rel_log_init(&lg);
    xch = rel_xc_open(&lg);
    rel_make_domain(s.dom, 16 * MiB);
    H_CHECK(pipe(p) == 0 && pipe(back) == 0, "pipe");
    d.fd = p[0];
    pthread_create(&td, NULL, rel_drain_thread, &d);
    pthread_create(&tf, NULL, feeder, &back[1]);
    rel_live(before);
    errno = 0;
    rc = xcsave_domain_save(xch, p[1], s.dom, XCFLAGS_LIVE, &cb, XC_STREAM_COLO, back[0]);
    err = errno;
    rel_live(after);
    printf("%s secondary: rc %d errno %d (%s)\n", drip ? "slow-drip" : "stalled", rc, err,
           strerror(err));
    H_CHECK(rc == -1 && err == ETIMEDOUT, "want -1/ETIMEDOUT");
    H_CHECK(rel_log_has(&lg, "timed out"), "no reason logged");
    H_CHECK(xensim_dominfo(s.dom, &di) == 0 && !di.logdirty, "log-dirty left on");
    H_CHECK(after[0] == before[0], "privcmd mappings left");
}

static void stalled(void)
{
    drip = 0;
    colo_timeout();
}

static void slowdrip(void)
{
    drip = 1;
    colo_timeout();
}

/* ---- a second save of the same domain ---- */

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int at_gate, opened;

static int blocking_checkpoint(void *data)
{
    (void)data;
    pthread_mutex_lock(&gate_lock);
    at_gate = 1;
    pthread_cond_broadcast(&gate_cond);
    while (!opened)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    return 0;   /* failover: the first save ends with 0 */
}

struct first {
    xc_interface *xch;
    struct rel_save s;
    int rc;
};

static void *first_save(void *arg)
{
    struct first *f = arg;
    struct save_callbacks cb = {.suspend = rel_cb_suspend, .postcopy = rel_cb_postcopy,
                                .checkpoint = blocking_checkpoint,
                                .switch_qemu_logdirty = rel_cb_qemu, .data = &f->s};
    struct rel_drain d = {.bytes = 0};
    int p[2];
    pthread_t td;

    H_CHECK(pipe(p) == 0, "pipe");
    d.fd = p[0];
    pthread_create(&td, NULL, rel_drain_thread, &d);
    f->rc = xcsave_domain_save(f->xch, p[1], f->s.dom, XCFLAGS_LIVE, &cb, XC_STREAM_REMUS, -1);
    close(p[1]);
    pthread_join(td, NULL);
    return NULL;
}

static void ebusy(void)
{
    struct rel_log lg1, lg2;
    struct first f = {.s = {.dom = 41, .stream = XC_STREAM_REMUS, .live = 1}};
    struct rel_save s2 = {.dom = 41, .stream = XC_STREAM_PLAIN};
    xc_interface *xch2;
    pthread_t t;

    rel_log_init(&lg1);
    rel_log_init(&lg2);
    f.xch = rel_xc_open(&lg1);
    xch2 = rel_xc_open(&lg2);
    rel_make_domain(41, 16 * MiB);
    pthread_create(&t, NULL, first_save, &f);
    pthread_mutex_lock(&gate_lock);
    while (!at_gate)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    /* The first save sits in its checkpoint callback, log-dirty on. */
    rel_save_run(&s2, xcsave_domain_save, xch2);
    printf("second save of d41: rc %d errno %d (%s)\n", s2.rc, s2.err, strerror(s2.err));
    pthread_mutex_lock(&gate_lock);
    opened = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    pthread_join(t, NULL);
    printf("first save of d41: rc %d\n", f.rc);
    H_CHECK(s2.rc == -1 && s2.err == EBUSY, "the second save was not refused with EBUSY");
    H_CHECK(f.rc == 0, "the first save failed after the refused second one");
}

/* ---- NULL callbacks ---- */

static void nullcb(void)
{
    struct rel_log lg;
    xc_interface *xch;
    int p[2], rc, err;

    rel_log_init(&lg);
    xch = rel_xc_open(&lg);
    rel_make_domain(42, 16 * MiB);
    H_CHECK(pipe(p) == 0, "pipe");
    for (int disable = 0; disable < 2; disable++) {
        if (disable)
            setenv("XCSAVE_DISABLE", "1", 1);
        printf("NULL callbacks%s: calling xc_domain_save\n", disable ? ", XCSAVE_DISABLE=1" : "");
        fflush(stdout);
        errno = 0;
        rc = xc_domain_save(xch, p[1], 42, 0, NULL, XC_STREAM_PLAIN, -1);
        err = errno;
        printf("NULL callbacks%s: rc %d errno %d (%s)\n", disable ? ", XCSAVE_DISABLE=1" : "",
               rc, err, strerror(err));
        fflush(stdout);
        H_CHECK(rc == -1 && err == EINVAL, "want -1/EINVAL");
    }
}

/* ---- one xc_interface, two saves ---- */

struct shared {
    xc_interface *xch;
    struct rel_save s;
};

static void *shared_save(void *arg)
{
    struct shared *sh = arg;

    rel_save_run(&sh->s, xcsave_domain_save, sh->xch);
    return NULL;
}

static void sharedxch(void)
{
    struct rel_log lg;
    xc_interface *xch;

    rel_log_init(&lg);
    xch = rel_xc_open(&lg);
    rel_make_domain(43, 32 * MiB);
    rel_make_domain(44, 32 * MiB);
    for (int round = 0; round < 3; round++) {
        struct shared a = {xch, {.dom = 43, .stream = XC_STREAM_PLAIN, .live = 1}};
        struct shared b = {xch, {.dom = 44, .stream = XC_STREAM_PLAIN, .live = 1}};
        pthread_t ta, tb;

        pthread_create(&ta, NULL, shared_save, &a);
        pthread_create(&tb, NULL, shared_save, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        printf("round %d: rc %d/%d errno %d/%d\n", round, a.s.rc, b.s.rc, a.s.err, b.s.err);
        fflush(stdout);
        H_CHECK(a.s.rc == 0 || (a.s.rc == -1 && a.s.err == EBUSY), "first save");
        H_CHECK(b.s.rc == 0 || (b.s.rc == -1 && b.s.err == EBUSY), "second save");
        H_CHECK(a.s.rc == 0 || b.s.rc == 0, "both refused");
    }
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0;

#define CASE(n) (!only || !strcmp(only, n)) && ++ran
    if (CASE("stalled"))
        in_child("stalled", stalled);
    if (CASE("slowdrip"))
        in_child("slowdrip", slowdrip);
    if (CASE("ebusy"))
        in_child("ebusy", ebusy);
    if (CASE("nullcb"))
        in_child("nullcb", nullcb);
    if (CASE("sharedxch"))
        in_child("sharedxch", sharedxch);
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    printf("ok: %d case(s)\n", ran);
    return 0;
}
