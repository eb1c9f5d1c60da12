// SPDX-License-Identifier: GPL-3.0-only
/*
 * Small helpers shared by tool_bench, tool_bench_restore and tool_demo (header-only,
 * static): clocks, whole reads and writes, percentiles, process-resource samples and the
 * dirty working set.
 */
#ifndef XCSAVE_BENCH_H
#define XCSAVE_BENCH_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

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

/* Write all n bytes (retrying short writes and EINTR): 0, or -1 on error or EOF. */
static inline int bench_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read exactly n bytes: 0, or -1 on error or EOF. */
static inline int bench_read_all(int fd, void *p, size_t n)
{
    char *c = p;

    while (n) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
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

/* VmPTE of this process (its page tables), KiB. */
static inline unsigned long bench_vmpte_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long v = 0;

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmPTE:", 6)) {
            v = strtoul(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/*
 * Dirty patterns (the bench's pattern axis). Every pattern dirties n pages per checkpoint:
 *   hot:    bench_hot_set's clustered set, the same at every checkpoint;
 *   drift:  starts as the hot set; every checkpoint BENCH_DRIFT_PCT % of its 64-page runs (the
 *           oldest first) move to fresh random slots, so a run lives 100/BENCH_DRIFT_PCT
 *           checkpoints;
 *   random: n distinct pages drawn uniformly from all of the guest's RAM (above 1 MiB, high
 *           RAM included), afresh at every checkpoint;
 *   sweep:  n consecutive pages of RAM, the next n at the next checkpoint, wrapping around.
 * The state is deterministic in (seed, checkpoint sequence), so every side sees the same sets.
 */
enum bench_pattern { BP_HOT, BP_DRIFT, BP_RANDOM, BP_SWEEP };
static const char *const bench_pattern_name[] = {"hot", "drift", "random", "sweep"};
#define BENCH_DRIFT_PCT 25u

struct bench_pat {
    enum bench_pattern kind;
    uint64_t mem_bytes, seed, step; /* step: checkpoints generated so far */
    unsigned int n;                 /* pages per checkpoint (a multiple of 64) */
    uint64_t *hot;                  /* hot/drift: the current set (n gfns) */
    unsigned int next_run;          /* drift: the oldest run */
    uint64_t *cur;                  /* random/sweep: this checkpoint's set */
    unsigned char *seen;            /* random: per RAM page, drawn this checkpoint */
};

/* RAM page index (0 = gfn 0x100) -> gfn, for the layout of xensim's HVM guests. */
static inline uint64_t bench_ram_gfn(uint64_t idx)
{
    uint64_t g = 0x100 + idx;

    return g < 0xF0000 ? g : g - 0xF0000 + 0x100000;
}

/* RAM pages a pattern may touch: above 1 MiB, short of the last 64 (xensim's VGA hole moves
 * 32 pages of low RAM up). */
static inline uint64_t bench_ram_pages(uint64_t mem_bytes)
{
    return (mem_bytes >> 12) - 0x100 - 64;
}

/* Set up pattern `kind` of *n pages (rounded up to 64); 0 or -1 if it does not fit. */
static inline int bench_pat_init(struct bench_pat *p, enum bench_pattern kind,
                                 uint64_t mem_bytes, unsigned int *n, uint64_t seed)
{
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    p->mem_bytes = mem_bytes;
    p->seed = seed;
    p->hot = bench_hot_set(mem_bytes, n, seed);
    p->n = *n;
    if (!p->hot)
        return -1;
    if (kind == BP_RANDOM || kind == BP_SWEEP) {
        p->cur = malloc((size_t)p->n * sizeof(*p->cur));
        if (!p->cur)
            return -1;
    }
    if (kind == BP_RANDOM) {
        p->seen = calloc(bench_ram_pages(mem_bytes), 1);
        if (!p->seen || p->n > bench_ram_pages(mem_bytes) / 2)
            return -1;
    }
    return 0;
}

/* The set of the next checkpoint (p->n gfns, valid until the next call). */
static inline const uint64_t *bench_pat_next(struct bench_pat *p)
{
    uint64_t ram = bench_ram_pages(p->mem_bytes), s = p->seed ^ (p->step * 0x9e37u);
    unsigned int runs = p->n / BENCH_RUN_PAGES;

    p->step++;
    switch (p->kind) {
    case BP_HOT:
        return p->hot;
    case BP_DRIFT:
        if (p->step > 1) {
            uint64_t pages = p->mem_bytes >> 12, lo = 0x100;
            uint64_t hi = pages < 0xF0000 ? pages : 0xF0000;
            uint64_t slots = (hi - lo) / BENCH_RUN_PAGES;
            unsigned int move = runs * BENCH_DRIFT_PCT / 100 ? runs * BENCH_DRIFT_PCT / 100 : 1;
            for (unsigned int m = 0; m < move; m++) {
                uint64_t slot, base;
                int clash;
                do { /* a slot no run of the set holds */
                    slot = bench_rand(&s) % slots;
                    base = lo + slot * BENCH_RUN_PAGES;
                    clash = 0;
                    for (unsigned int r = 0; r < runs && !clash; r++)
                        clash = p->hot[(size_t)r * BENCH_RUN_PAGES] == base;
                } while (clash);
                for (unsigned int i = 0; i < BENCH_RUN_PAGES; i++)
                    p->hot[(size_t)p->next_run * BENCH_RUN_PAGES + i] = base + i;
                p->next_run = (p->next_run + 1) % runs;
            }
        }
        return p->hot;
    case BP_RANDOM:
        for (unsigned int i = 0; i < p->n; i++) {
            uint64_t idx;
            do
                idx = bench_rand(&s) % ram;
            while (p->seen[idx]);
            p->seen[idx] = 1;
            p->cur[i] = idx;
        }
        for (unsigned int i = 0; i < p->n; i++) {
            p->seen[p->cur[i]] = 0;
            p->cur[i] = bench_ram_gfn(p->cur[i]);
        }
        return p->cur;
    case BP_SWEEP:
        for (unsigned int i = 0; i < p->n; i++)
            p->cur[i] = bench_ram_gfn(((p->step - 1) * p->n + i) % ram);
        return p->cur;
    }
    return p->hot;
}

#endif
