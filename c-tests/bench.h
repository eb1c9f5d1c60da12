// SPDX-License-Identifier: GPL-3.0-only
/*
 * Small helpers shared by tool_bench and tool_demo (header-only, static):
 * clocks, percentiles, process-resource samples and the dirty working set.
 */
#ifndef XCSAVE_BENCH_H
#define XCSAVE_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* User + system CPU seconds of this process (every thread). */
static inline double bench_cpu(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Peak resident set of this process, MiB (ru_maxrss). */
static inline double bench_maxrss_mib(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* Current RssAnon (heap, stacks; no file or shmem pages), MiB. */
static inline double bench_rss_anon_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double v = 0;

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "RssAnon:", 8)) {
            v = strtod(line + 8, NULL) / 1024.0;
            break;
        }
    fclose(f);
    return v;
}

/* VMAs of this process now (lines of /proc/self/maps). */
static inline unsigned long bench_proc_vmas(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char buf[65536];
    size_t n;
    unsigned long lines = 0;

    if (!f)
        return 0;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        for (size_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    fclose(f);
    return lines;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile (p in 0..100) of n values (copied, then sorted). */
static inline double bench_pct(const double *v, unsigned int n, double p)
{
    double *s;
    double r;
    unsigned int rank;

    if (!n)
        return 0;
    s = malloc(n * sizeof(*s));
    if (!s)
        return 0;
    memcpy(s, v, n * sizeof(*s));
    qsort(s, n, sizeof(*s), bench_cmp_double);
    rank = (unsigned int)(p / 100.0 * n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    r = s[rank - 1];
    free(s);
    return r;
}

/* splitmix64: deterministic, seedable. */
static inline uint64_t bench_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Pages per cluster of the dirty working set: guests dirty memory in runs. */
#define BENCH_RUN_PAGES 64u

/*
 * The dirty working set of `n` pages of a guest of `mem_bytes`: n / 64 runs of 64 pages
 * (256 KiB, 64-page aligned) at distinct random places in low RAM above 1 MiB (below the
 * 3.75 GiB hole, so never a special page or the VGA hole). The same set is dirtied at every
 * checkpoint. Returns a malloc'd array of n gfns (n rounded up to a multiple of 64).
 */
static inline uint64_t *bench_hot_set(uint64_t mem_bytes, unsigned int *n, uint64_t seed)
{
    uint64_t pages = mem_bytes >> 12, lo = 0x100, hi, slots, *set;
    unsigned int runs = (*n + BENCH_RUN_PAGES - 1) / BENCH_RUN_PAGES;
    unsigned char *used;
    uint64_t s = seed;

    hi = pages < 0xF0000 ? pages : 0xF0000;
    slots = (hi - lo) / BENCH_RUN_PAGES;
    if (!runs || runs > slots / 2)
        return NULL;
    used = calloc(slots, 1);
    set = malloc((size_t)runs * BENCH_RUN_PAGES * sizeof(*set));
    if (!used || !set) {
        free(used);
        free(set);
        return NULL;
    }
    for (unsigned int r = 0; r < runs; r++) {
        uint64_t slot;
        do
            slot = bench_rand(&s) % slots;
        while (used[slot]);
        used[slot] = 1;
        for (unsigned int i = 0; i < BENCH_RUN_PAGES; i++)
            set[(size_t)r * BENCH_RUN_PAGES + i] = lo + slot * BENCH_RUN_PAGES + i;
    }
    free(used);
    *n = runs * BENCH_RUN_PAGES;
    return set;
}

#endif
