// SPDX-License-Identifier: GPL-3.0-only
/*
 * Load: 4 saves of 4 domains at once in one process (one thread each), with checkpoints:
 * two Remus (one with a background dirtier), two COLO (the secondaries' writes travel back),
 * each restored by the stock xc_domain_restore and compared at every checkpoint, every
 * stream accepted by verify-stream-v2. Afterwards every domain's cache counters balance
 * (maps == unmaps), and no privcmd mapping is left. Then the same once more, to show the
 * shared state (cache registry, logging) is clean after a concurrent round.
 */
#include <string.h>

#include "test_rel.h"

#define N 4
#define MiB (1024ull * 1024)

struct job {
    struct harness_opts o;
    struct harness_result r;
    char path[96];
    int rc;
};

static void *job_run(void *arg)
{
    struct job *j = arg;

    harness_make_pair(j->o.src, j->o.dst, 32 * MiB, 0xc0c0 + j->o.src);
    j->rc = harness_round_trip(&j->o, &j->r);
    return NULL;
}

static void one_pass(unsigned int pass)
{
    struct job j[N];
    pthread_t t[N];
    const char *dir = getenv("XENSIM_DIR") ? getenv("XENSIM_DIR") : "/tmp";
    uint64_t live[2];

    memset(j, 0, sizeof(j));
    for (unsigned int i = 0; i < N; i++) {
        struct harness_opts *o = &j[i].o;
        o->save = xcsave_domain_save;
        o->src = 1 + 2 * i;
        o->dst = 2 + 2 * i;
        o->stream = i % 2 ? XC_STREAM_COLO : XC_STREAM_REMUS;
        o->live = 1;
        o->checkpoints = 6;
        o->burst_pages = 64;
        o->secondary_pages = i % 2 ? 16 : 0;
        if (i == 2) {
            o->dirty_rate = 2000;
            o->dirty_first = 0x100;
            o->dirty_count = 0x800;
        }
        snprintf(j[i].path, sizeof(j[i].path), "%s/stream-%u.bin", dir, i);
        o->stream_path = j[i].path;
    }
    for (unsigned int i = 0; i < N; i++)
        H_CHECK(pthread_create(&t[i], NULL, job_run, &j[i]) == 0, "pthread_create");
    for (unsigned int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (unsigned int i = 0; i < N; i++) {
        XcsaveCacheStats s;
        H_CHECK(j[i].rc == 0, "pass %u, d%u (%s): %s", pass, j[i].o.src,
                j[i].o.stream == XC_STREAM_COLO ? "COLO" : "Remus", j[i].r.failure);
        H_CHECK(xcsave_cache_stats(j[i].o.src, &s) == 0, "no stats for d%u", j[i].o.src);
        printf("pass %u d%u %s: %u checkpoints compared, %llu bytes, hits %llu maps %llu "
               "unmaps %llu\n", pass, j[i].o.src,
               j[i].o.stream == XC_STREAM_COLO ? "COLO " : "Remus", j[i].r.compared,
               (unsigned long long)j[i].r.stream_bytes, (unsigned long long)s.hits,
               (unsigned long long)s.maps, (unsigned long long)s.unmaps);
        H_CHECK(j[i].r.compared >= 6, "d%u: only %u checkpoints compared", j[i].o.src,
                j[i].r.compared);
        H_CHECK(s.maps == s.unmaps && s.vmas == 0, "d%u: mappings left in its cache",
                j[i].o.src);
        xensim_destroy_domain(j[i].o.src);
        xensim_destroy_domain(j[i].o.dst);
    }
    rel_live(live);
    H_CHECK(live[0] == 0 && live[1] == 0, "%llu privcmd VMAs left",
            (unsigned long long)live[0]);
}

int main(void)
{
    one_pass(1);
    one_pass(2);
    printf("ok: 2 passes of %d concurrent checkpointed saves\n", N);
    return 0;
}
