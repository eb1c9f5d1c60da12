// SPDX-License-Identifier: GPL-3.0-only
/*
 * The differential oracle: for a paused guest, xcsave's non-live stream is byte-identical to
 * the stock saver's. Both save the same paused domain to files (the domain is resumed from
 * its suspend between the two), and the files are compared byte by byte. On a difference the
 * test names the record and offset where the streams part.
 *
 * Sub-cases: "small" (16 MiB of RAM), "medium" (256 MiB). Both have a p2m up to the special
 * pages at 0xFEFFF, so most batches mix RAM with holes (XTAB entries without data). No
 * argument runs both.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "xcsave.h"

static int cb_suspend(void *data)
{
    uint32_t dom = *(uint32_t *)data;
    int rc = xensim_suspend(dom);

    if (rc)
        printf("xensim_suspend(d%u): %s\n", dom, strerror(-rc));
    return rc == 0;
}

static int cb_logdirty(uint32_t domid, unsigned int enable, void *data)
{
    (void)domid;
    (void)enable;
    (void)data;
    return 0;
}

/* Save `dom` non-live to `path` with `save`; fails the test on error. */
static void save_to(harness_save_fn save, xc_interface *xch, uint32_t dom, const char *path)
{
    struct save_callbacks cb;
    uint32_t d = dom;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600), rc;

    H_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    memset(&cb, 0, sizeof(cb));
    cb.suspend = cb_suspend;
    cb.switch_qemu_logdirty = cb_logdirty;
    cb.data = &d;
    rc = save(xch, fd, dom, 0, &cb, XC_STREAM_PLAIN, -1);
    H_CHECK(rc == 0, "save of d%u to %s: rc %d errno %d (%s)", dom, path, rc, errno,
            strerror(errno));
    close(fd);
    rc = xensim_resume(dom);
    H_CHECK(rc == 0, "resume d%u: %s", dom, strerror(-rc));
    rc = xensim_pause(dom);
    H_CHECK(rc == 0, "pause d%u: %s", dom, strerror(-rc));
}

static void *map_file(const char *path, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY);
    void *p;

    H_CHECK(fd >= 0 && fstat(fd, &st) == 0, "open/stat %s: %s", path, strerror(errno));
    *len = (size_t)st.st_size;
    p = *len ? mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    H_CHECK(!*len || p != MAP_FAILED, "mmap %s: %s", path, strerror(errno));
    close(fd);
    return p;
}

/* Walk the records of `a` to the one holding byte `off`, for the failure message. */
static void describe(const unsigned char *a, size_t len, size_t off, char *out, size_t n)
{
    size_t o = 40;
    unsigned int idx = 0;

    if (off < 40) {
        snprintf(out, n, "in the %s header", off < 24 ? "image" : "domain");
        return;
    }
    while (o + 8 <= len) {
        uint32_t type, length;
        size_t end;

        memcpy(&type, a + o, 4);
        memcpy(&length, a + o + 4, 4);
        end = o + 8 + (((size_t)length + 7) & ~(size_t)7);
        if (off < end) {
            snprintf(out, n, "in record #%u (type %#x, length %u) at stream offset %zu, "
                     "byte %zu of the record", idx, type, length, o, off - o);
            return;
        }
        o = end;
        idx++;
    }
    snprintf(out, n, "past the last record");
}

static void run(const char *name, uint64_t mem)
{
    static uint32_t dom = 1;
    struct xensim_domain_config cfg = {.mem_bytes = mem, .paused = 1};
    char pa[512], pb[512], where[200];
    const char *dir = getenv("XENSIM_DIR");
    xc_interface *xch = harness_xc_open();
    unsigned char *a, *b;
    size_t la, lb, i;
    int rc;

    H_CHECK(dir != NULL, "XENSIM_DIR is not set");
    rc = xensim_create_domain(dom, &cfg);
    H_CHECK(rc == 0, "create d%u: %s", dom, strerror(-rc));
    rc = xensim_fill(dom, 0xd1ff0000u + dom);
    H_CHECK(rc == 0, "fill d%u: %s", dom, strerror(-rc));
    snprintf(pa, sizeof(pa), "%s/%s-stock.bin", dir, name);
    snprintf(pb, sizeof(pb), "%s/%s-xcsave.bin", dir, name);

    save_to(harness_stock_save(), xch, dom, pa);
    save_to(xcsave_domain_save, xch, dom, pb);

    a = map_file(pa, &la);
    b = map_file(pb, &lb);
    for (i = 0; i < la && i < lb && a[i] == b[i]; i++)
        ;
    if (i < la || i < lb) {
        describe(a, la, i, where, sizeof(where));
        H_FAIL("%s: streams differ at byte %zu %s (stock %zu bytes, xcsave %zu bytes)",
               name, i, where, la, lb);
    }
    printf("%s: stock and xcsave streams are byte-identical (%zu bytes)\n", name, la);
    munmap(a, la);
    munmap(b, lb);
    xensim_destroy_domain(dom);
    harness_xc_close(xch);
    dom++;
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0;

    if (!only || !strcmp(only, "small"))
        ran++, run("small", 16ull << 20);
    if (!only || !strcmp(only, "medium"))
        ran++, run("medium", 256ull << 20);
    if (!ran)
        H_FAIL("unknown sub-case '%s'", only);
    return 0;
}
