// SPDX-License-Identifier: GPL-3.0-only
/*
 * libxcsave.so exports exactly xc_domain_save and xc_domain_restore under the node of the Xen
 * release it is built for (XEN_GUEST_NODE: @@VERS_4.17.0 on 4.17, @@libxenguest_4.20.0 on 4.20)
 * and its own xcsave_* API under XCSAVE_1.0, nothing else, has the SONAME libxcsave.so.0, and
 * the versioned symbols resolve with dlvsym as a toolstack linked against libxenguest would resolve them. It needs
 * that release's libxenctrl and libxenguest SONAMEs, so the loader refuses it on the other
 * release (docs/decisions.md, "One tree, two Xen releases").
 *
 * It is also inert where LD_PRELOAD puts it but nothing calls it (xl, dash, timeout): its only
 * load-time code is the C runtime's frame_dummy and Rust std's argv capture (no allocation,
 * no thread, no output), and a preloaded shell prints nothing extra and runs one thread.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "xcsave.h"

/* The .init_array entries of `lib` must be frame_dummy and std's ARGV_INIT_ARRAY only. */
static void check_constructors(const char *lib)
{
    unsigned long long addr[16];
    unsigned int n = 0, i, named = 0;
    char cmd[1024], line[512];
    FILE *p;

    snprintf(cmd, sizeof(cmd), "readelf -W -x .init_array '%s'", lib);
    p = popen(cmd, "r");
    H_CHECK(p != NULL, "popen readelf");
    while (fgets(line, sizeof(line), p)) {
        unsigned int w[4];
        unsigned long long at;
        int k, got;

        /* "  0x000660a8 70f00300 00000000 f0b40000 00000000 p......." */
        got = sscanf(line, " 0x%llx %8x %8x %8x %8x", &at, &w[0], &w[1], &w[2], &w[3]);
        for (k = 0; got >= 2 && k + 1 < got - 1; k += 2) {
            /* little-endian 32-bit words, as printed byte by byte */
            unsigned long long lo = __builtin_bswap32(w[k]), hi = __builtin_bswap32(w[k + 1]);

            H_CHECK(n < 16, "too many .init_array entries");
            addr[n++] = lo | hi << 32;
        }
    }
    pclose(p);
    H_CHECK(n > 0, "no .init_array found in %s", lib);
    snprintf(cmd, sizeof(cmd), "nm '%s'", lib);
    p = popen(cmd, "r");
    H_CHECK(p != NULL, "popen nm");
    while (fgets(line, sizeof(line), p)) {
        unsigned long long a;
        char sym[400];

        if (sscanf(line, "%llx %*c %399s", &a, sym) != 2)
            continue;
        for (i = 0; i < n; i++)
            if (a == addr[i]) {
                H_CHECK(!strcmp(sym, "frame_dummy") || strstr(sym, "ARGV_INIT_ARRAY"),
                        "load-time constructor in %s: %s", lib, sym);
                named++;
            }
    }
    pclose(p);
    H_CHECK(named == n, "%u of %u .init_array entries have no symbol", n - named, n);
    printf("load-time code: %u .init_array entries, frame_dummy and std's argv capture\n", n);
}

/* A preloaded shell (with debug logging asked for) prints only its own output, one thread. */
static void check_preload_is_silent(const char *lib)
{
    const char *want = "inert\nThreads:\t1\n";
    char cmd[1024], out[256];
    size_t len;
    FILE *p;

    snprintf(cmd, sizeof(cmd),
             "LD_PRELOAD='%s' XCSAVE_LOG=debug /bin/sh -c "
             "'echo inert; grep ^Threads: /proc/self/status' 2>&1",
             lib);
    p = popen(cmd, "r");
    H_CHECK(p != NULL, "popen preloaded sh");
    len = fread(out, 1, sizeof(out) - 1, p);
    out[len] = 0;
    H_CHECK(pclose(p) == 0, "preloaded sh failed: %s", out);
    H_CHECK(!strcmp(out, want), "preloaded sh printed '%s', want '%s'", out, want);
}

int main(void)
{
    const char *lib = getenv("XCSAVE_LIB");
    char cmd[1024], line[512], sym[400];
    unsigned int stock = 0, stock_restore = 0, ours = 0, total = 0;
    int soname = 0, needs_ctrl = 0, needs_guest = 0;
    FILE *p;
    void *h;

    H_CHECK(lib && *lib, "XCSAVE_LIB is not set (run through c-tests/run.sh)");
    snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s'", lib);
    p = popen(cmd, "r");
    H_CHECK(p != NULL, "popen nm");
    while (fgets(line, sizeof(line), p)) {
        char type;

        if (sscanf(line, "%*s %c %399s", &type, sym) != 2)
            H_FAIL("unparsable nm line: %s", line);
        if (type == 'A')
            continue; /* the version definitions themselves */
        total++;
        if (!strcmp(sym, "xc_domain_save@@" XEN_GUEST_NODE))
            stock++;
        else if (!strcmp(sym, "xc_domain_restore@@" XEN_GUEST_NODE))
            stock_restore++;
        else if (!strncmp(sym, "xcsave_", 7) && strstr(sym, "@@XCSAVE_1.0"))
            ours++;
        else
            H_FAIL("unexpected export: %s", sym);
    }
    H_CHECK(pclose(p) == 0, "nm failed on %s", lib);
    printf("%u exports: xc_domain_save@@" XEN_GUEST_NODE " x%u, xc_domain_restore@@" XEN_GUEST_NODE
           " x%u, xcsave_*@@XCSAVE_1.0 x%u\n",
           total, stock, stock_restore, ours);
    H_CHECK(stock == 1, "xc_domain_save@@" XEN_GUEST_NODE " exported %u times", stock);
    H_CHECK(stock_restore == 1, "xc_domain_restore@@" XEN_GUEST_NODE " exported %u times",
            stock_restore);
    H_CHECK(ours >= 1, "no xcsave_* export");

    snprintf(cmd, sizeof(cmd), "objdump -p '%s'", lib);
    p = popen(cmd, "r");
    H_CHECK(p != NULL, "popen objdump");
    while (fgets(line, sizeof(line), p)) {
        if (strstr(line, "SONAME") && strstr(line, "libxcsave.so.0"))
            soname = 1;
        if (strstr(line, "NEEDED") && strstr(line, "libxenctrl.so." XEN_RELEASE "\n"))
            needs_ctrl = 1;
        if (strstr(line, "NEEDED") && strstr(line, XEN_GUEST_SONAME "\n"))
            needs_guest = 1;
    }
    pclose(p);
    H_CHECK(soname, "SONAME libxcsave.so.0 missing");
    H_CHECK(needs_ctrl && needs_guest,
            "NEEDED libxenctrl.so." XEN_RELEASE " (%d) and " XEN_GUEST_SONAME " (%d) missing",
            needs_ctrl, needs_guest);

    h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    H_CHECK(h != NULL, "dlopen %s: %s", lib, dlerror());
    H_CHECK(dlvsym(h, "xc_domain_save", XEN_GUEST_NODE) != NULL,
            "xc_domain_save@" XEN_GUEST_NODE " does not resolve");
    H_CHECK(dlvsym(h, "xcsave_domain_save", "XCSAVE_1.0") != NULL,
            "xcsave_domain_save@XCSAVE_1.0 does not resolve");
    H_CHECK(dlvsym(h, "xc_domain_restore", XEN_GUEST_NODE) != NULL,
            "xc_domain_restore@" XEN_GUEST_NODE " does not resolve");
    H_CHECK(dlvsym(h, "xcsave_domain_restore", "XCSAVE_1.0") != NULL,
            "xcsave_domain_restore@XCSAVE_1.0 does not resolve");
    H_CHECK(dlsym(h, "rust_begin_unwind") == NULL && dlsym(h, "rust_eh_personality") == NULL,
            "Rust internals leak");
    dlclose(h);

    check_constructors(lib);
    check_preload_is_silent(lib);
    return 0;
}
