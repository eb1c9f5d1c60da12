// SPDX-License-Identifier: GPL-3.0-only
/*
 * Cross-process state: xensim-ctl (a separate process) creates and fills
 * the domains, a forked child runs the stock save into a pipe with its own
 * xc_interface, this process restores, and xensim-ctl compares.
 */
#include <errno.h>
#include <libgen.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char ctl[4200];

static int run_ctl(const char *args)
{
    char cmd[4400];
    int st;

    snprintf(cmd, sizeof(cmd), "%s %s", ctl, args);
    st = system(cmd);
    H_CHECK(st != -1 && WIFEXITED(st), "running %s", cmd);
    return WEXITSTATUS(st);
}

static int c_suspend(void *data)
{
    return xc_domain_shutdown((xc_interface *)data, 1, SHUTDOWN_suspend) == 0;
}

static int c_qemu(uint32_t d, unsigned int e, void *data)
{
    (void)d;
    (void)e;
    (void)data;
    return 0;
}

int main(void)
{
    const char *lib = getenv("XENSIM_LIB");
    char libdir[4096];
    int p[2], st;
    unsigned long store = 0, console = 0;
    pid_t pid;
    xc_interface *xch;
    struct restore_callbacks rcb = {0};

    snprintf(libdir, sizeof(libdir), "%s",
             lib && *lib ? lib : "build/xensim/libxensim.so");
    snprintf(ctl, sizeof(ctl), "%s/xensim-ctl", dirname(libdir));
    H_CHECK(access(ctl, X_OK) == 0, "%s not found", ctl);

    H_CHECK(run_ctl("destroy-all") == 0, "destroy-all");
    H_CHECK(run_ctl("create 1 32") == 0, "create 1");
    H_CHECK(run_ctl("fill 1 4242") == 0, "fill 1");
    H_CHECK(run_ctl("create 2 32 empty paused") == 0, "create 2");
    H_CHECK(run_ctl("compare 1 2 ram") == 1, "an empty target must differ");

    H_CHECK(pipe(p) == 0, "pipe");
    pid = fork();
    H_CHECK(pid >= 0, "fork");
    if (pid == 0) {
        xc_interface *cx;
        struct save_callbacks cb = {.suspend = c_suspend,
                                    .switch_qemu_logdirty = c_qemu};
        close(p[0]);
        cx = harness_xc_open();
        cb.data = cx;
        _exit(harness_stock_save()(cx, p[1], 1, 0, &cb, XC_STREAM_PLAIN, -1)
                  ? 3 : 0);
    }
    close(p[1]);
    xch = harness_xc_open();
    H_CHECK(xc_domain_restore(xch, p[0], 2, 1, &store, 0, 2, &console, 0,
                              XC_STREAM_PLAIN, &rcb, -1) == 0,
            "restore: %s", strerror(errno));
    close(p[0]);
    H_CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
                WEXITSTATUS(st) == 0,
            "the saving child failed (status %#x)", st);
    H_CHECK(run_ctl("compare 1 2") == 0, "target differs from source");
    H_CHECK(run_ctl("stats") == 0, "stats");
    harness_xc_close(xch);
    H_CHECK(run_ctl("destroy-all") == 0, "destroy-all");
    printf("multi-process round trip ok\n");
    return 0;
}
