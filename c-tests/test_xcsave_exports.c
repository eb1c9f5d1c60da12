// SPDX-License-Identifier: GPL-3.0-only
/*
 * libxcsave.so exports exactly xc_domain_save@@VERS_4.17.0 and its own xcsave_* API under
 * XCSAVE_1.0, nothing else, has the SONAME libxcsave.so.0, and the versioned symbols resolve
 * with dlvsym as a toolstack linked against libxenguest would resolve them.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "xcsave.h"

int main(void)
{
    const char *lib = getenv("XCSAVE_LIB");
    char cmd[1024], line[512], sym[400];
    unsigned int stock = 0, ours = 0, total = 0;
    int soname = 0;
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
        if (!strcmp(sym, "xc_domain_save@@VERS_4.17.0"))
            stock++;
        else if (!strncmp(sym, "xcsave_", 7) && strstr(sym, "@@XCSAVE_1.0"))
            ours++;
        else
            H_FAIL("unexpected export: %s", sym);
    }
    H_CHECK(pclose(p) == 0, "nm failed on %s", lib);
    printf("%u exports: xc_domain_save@@VERS_4.17.0 x%u, xcsave_*@@XCSAVE_1.0 x%u\n", total,
           stock, ours);
    H_CHECK(stock == 1, "xc_domain_save@@VERS_4.17.0 exported %u times", stock);
    H_CHECK(ours >= 1, "no xcsave_* export");

    snprintf(cmd, sizeof(cmd), "objdump -p '%s'", lib);
    p = popen(cmd, "r");
    H_CHECK(p != NULL, "popen objdump");
    while (fgets(line, sizeof(line), p))
        if (strstr(line, "SONAME") && strstr(line, "libxcsave.so.0"))
            soname = 1;
    pclose(p);
    H_CHECK(soname, "SONAME libxcsave.so.0 missing");

    h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    H_CHECK(h != NULL, "dlopen %s: %s", lib, dlerror());
    H_CHECK(dlvsym(h, "xc_domain_save", "VERS_4.17.0") != NULL,
            "xc_domain_save@VERS_4.17.0 does not resolve");
    H_CHECK(dlvsym(h, "xcsave_domain_save", "XCSAVE_1.0") != NULL,
            "xcsave_domain_save@XCSAVE_1.0 does not resolve");
    H_CHECK(dlsym(h, "rust_begin_unwind") == NULL && dlsym(h, "rust_eh_personality") == NULL,
            "Rust internals leak");
    dlclose(h);
    return 0;
}
