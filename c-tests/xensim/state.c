// SPDX-License-Identifier: GPL-3.0-only
/*
 * xensim shared state: the state file in $XENSIM_DIR (domains' metadata,
 * counters, fault rules, all under one robust process-shared mutex) and the
 * per-domain files (RAM frame pool, p2m, log-dirty bitmap).
 */

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <stdint.h>
#define __XEN_TOOLS__ 1
#include <xen/xen.h>
#include <xen/hvm/params.h>
#include <xen/hvm/save.h>
#include <xen/sched.h>

#include "sim.h"

struct sim_state *sim;
int sim_strict_mode;

static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sim_local_dom locals[SIM_MAX_DOMS];
static char ram_dir[4096];
static int env_cost_set, env_unmap_set, env_dom0_set;
static uint64_t env_cost_call, env_cost_page, env_unmap, env_dom0;
static int env_dom0_mode = -1;  /* XENSIM_DOM0, -1: unset */

void sim_log(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n = snprintf(buf, sizeof(buf), "xensim[%d]: ", (int)getpid());

    va_start(ap, fmt);
    vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    strcat(buf, "\n");
    if (write(2, buf, strlen(buf)) < 0) {
        /* nothing sensible to do */
    }
}

void sim_strict_fail(const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    sim_log("STRICT: %s", buf);
    abort();
}

int xensim_strict(void)
{
    return sim_strict_mode;
}

static uint64_t env_u64(const char *name, uint64_t def, int *set)
{
    const char *v = getenv(name);

    if (!v || !*v)
        return def;
    if (set)
        *set = 1;
    return strtoull(v, NULL, 0);
}

int sim_attach(void)
{
    const char *dir;
    char path[4200];
    int fd, rc = 0;
    struct stat st;

    if (__atomic_load_n(&sim, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&attach_lock);
    if (sim)
        goto out;
    dir = getenv("XENSIM_DIR");
    if (!dir || !*dir) {
        sim_log("XENSIM_DIR is not set");
        rc = -ENOENT;
        goto out;
    }
    sim_strict_mode = (int)env_u64("XENSIM_STRICT", 0, NULL);
    {
        const char *rd = getenv("XENSIM_RAM_DIR");
        snprintf(ram_dir, sizeof(ram_dir), "%s", rd && *rd ? rd : dir);
    }
    env_cost_call = env_u64("XENSIM_COST_CALL_NS", 0, &env_cost_set);
    env_cost_page = env_u64("XENSIM_COST_PAGE_NS", 0, &env_cost_set);
    env_unmap = env_u64("XENSIM_COST_UNMAP_PAGE_NS", 0, &env_unmap_set);
    env_dom0 = env_u64("XENSIM_DOM0_FRAMES", 0, &env_dom0_set);
    {
        const char *m = getenv("XENSIM_DOM0");
        if (m && *m) {
            env_dom0_mode = !strcmp(m, "pv")            ? XENSIM_DOM0_PV
                            : !strcmp(m, "pvh")         ? XENSIM_DOM0_PVH
                            : !strcmp(m, "pvh-balloon") ? XENSIM_DOM0_PVH_BALLOON
                                                        : -1;
            if (env_dom0_mode < 0)
                sim_log("XENSIM_DOM0=%s: not pv, pvh or pvh-balloon (ignored)", m);
        }
    }

    snprintf(path, sizeof(path), "%s/state", dir);
    fd = sim_sys_open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        sim_log("cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    flock(fd, LOCK_EX);
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out_close;
    }
    if ((size_t)st.st_size < sizeof(struct sim_state)) {
        struct sim_state *s;
        pthread_mutexattr_t ma;

        if (ftruncate(fd, (off_t)sizeof(struct sim_state)) < 0) {
            rc = -errno;
            goto out_close;
        }
        s = sim_sys_mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED,
                         fd, 0);
        if (s == MAP_FAILED) {
            rc = -errno;
            goto out_close;
        }
        memset(s, 0, sizeof(*s));
        pthread_mutexattr_init(&ma);
        pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(&s->lock, &ma);
        pthread_mutexattr_destroy(&ma);
        s->size = sizeof(*s);
        s->cost_call_ns = env_cost_call;
        s->cost_page_ns = env_cost_page;
        __atomic_store_n(&s->magic, SIM_MAGIC, __ATOMIC_RELEASE);
        sim = s;
    } else {
        struct sim_state *s =
            sim_sys_mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED,
                         fd, 0);
        if (s == MAP_FAILED) {
            rc = -errno;
            goto out_close;
        }
        if (s->magic != SIM_MAGIC || s->size != sizeof(*s)) {
            sim_log("%s: bad state file (stale xensim build?)", path);
            sim_sys_munmap(s, sizeof(*s));
            rc = -EINVAL;
            goto out_close;
        }
        sim = s;
    }
    if (env_cost_set) {
        sim->cost_call_ns = env_cost_call;
        sim->cost_page_ns = env_cost_page;
    }
    if (env_unmap_set)
        sim->cost_unmap_page_ns = env_unmap;
    if (env_dom0_set)
        sim->dom0_frames_limit = env_dom0;
    if (env_dom0_mode >= 0)
        sim->dom0_mode = (uint64_t)env_dom0_mode;
    for (int i = 0; i < SIM_MAX_DOMS; i++)
        locals[i].ramfd = -1;
out_close:
    flock(fd, LOCK_UN);
    sim_sys_close(fd);
out:
    pthread_mutex_unlock(&attach_lock);
    return rc;
}

int xensim_init(void)
{
    return sim_attach();
}

void sim_lock(void)
{
    int rc = pthread_mutex_lock(&sim->lock);

    if (rc == EOWNERDEAD) {
        sim_log("state lock owner died; recovering");
        pthread_mutex_consistent(&sim->lock);
    } else if (rc) {
        sim_log("state lock failed: %s", strerror(rc));
        abort();
    }
}

void sim_unlock(void)
{
    pthread_mutex_unlock(&sim->lock);
}

struct sim_dom *sim_find(uint32_t domid)
{
    for (int i = 0; i < SIM_MAX_DOMS; i++)
        if (sim->doms[i].used && sim->doms[i].domid == domid)
            return &sim->doms[i];
    return NULL;
}

struct sim_dom *sim_find_ge(uint32_t domid)
{
    struct sim_dom *best = NULL;

    for (int i = 0; i < SIM_MAX_DOMS; i++) {
        struct sim_dom *d = &sim->doms[i];
        if (d->used && d->domid >= domid && (!best || d->domid < best->domid))
            best = d;
    }
    return best;
}

static void file_path(char *buf, size_t len, const struct sim_dom *d,
                      const char *kind)
{
    snprintf(buf, len, "%s/d%u-g%llu.%s", ram_dir, d->domid,
             (unsigned long long)d->gen, kind);
}

static void *map_file(const struct sim_dom *d, const char *kind, uint64_t len,
                      int create, int *fd_out)
{
    char path[4200];
    int fd;
    void *p;

    file_path(path, sizeof(path), d, kind);
    fd = sim_sys_open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
    if (fd < 0)
        return NULL;
    if (create && ftruncate(fd, (off_t)len) < 0) {
        sim_sys_close(fd);
        return NULL;
    }
    p = sim_sys_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (fd_out && p != MAP_FAILED)
        *fd_out = fd;
    else
        sim_sys_close(fd);
    return p == MAP_FAILED ? NULL : p;
}

static void local_drop(struct sim_local_dom *l)
{
    if (l->ram)
        sim_sys_munmap(l->ram, l->ram_len);
    if (l->p2m)
        sim_sys_munmap(l->p2m, l->p2m_len);
    if (l->dirty)
        sim_sys_munmap(l->dirty, l->dirty_len);
    if (l->refs)
        sim_sys_munmap(l->refs, l->refs_len);
    if (l->ramfd >= 0)
        sim_sys_close(l->ramfd);
    memset(l, 0, sizeof(*l));
    l->ramfd = -1;
}

static int local_open(struct sim_dom *d, struct sim_local_dom *l, int create)
{
    local_drop(l);
    l->ram_len = d->frame_cap * SIM_PAGE;
    l->p2m_len = d->p2m_cap * sizeof(uint32_t);
    l->dirty_len = ((d->p2m_cap + 63) / 64) * 8;
    l->refs_len = d->frame_cap * sizeof(uint32_t);
    l->ram = map_file(d, "ram", l->ram_len, create, &l->ramfd);
    l->p2m = map_file(d, "p2m", l->p2m_len, create, NULL);
    l->dirty = map_file(d, "dirty", l->dirty_len, create, NULL);
    l->refs = map_file(d, "refs", l->refs_len, create, NULL);
    if (!l->ram || !l->p2m || !l->dirty || !l->refs) {
        int e = errno ? errno : EIO;
        sim_log("d%u: cannot map domain files: %s", d->domid, strerror(e));
        local_drop(l);
        return -e;
    }
    l->gen = d->gen;
    return 0;
}

struct sim_local_dom *sim_local(struct sim_dom *d)
{
    struct sim_local_dom *l = &locals[d - sim->doms];

    if (l->gen == d->gen && l->ram)
        return l;
    if (local_open(d, l, 0) < 0)
        return NULL;
    return l;
}

int sim_running(const struct sim_dom *d)
{
    return d->pause_count == 0 && !d->shutdown && !d->dying;
}

void sim_mark_dirty(struct sim_dom *d, struct sim_local_dom *l, uint64_t gfn)
{
    if (d->logdirty && gfn < d->p2m_cap)
        l->dirty[gfn / 64] |= 1ul << (gfn % 64);
}

int64_t sim_alloc_frame(struct sim_dom *d)
{
    if (d->next_frame >= d->frame_cap)
        return -ENOMEM;
    return (int64_t)d->next_frame++;
}

void sim_frame_ref(struct sim_local_dom *l, uint32_t frame)
{
    l->refs[frame]++;
}

void sim_frame_release(struct sim_dom *d, struct sim_local_dom *l,
                       uint32_t frame)
{
    if (l->refs[frame] & SIM_REFMASK) {
        l->refs[frame] |= SIM_RELEASED;  /* stays allocated and counted */
        d->held_pages++;
    } else
        d->tot_pages--;
}

void sim_frame_unref(unsigned int slot, uint16_t gen, uint32_t frame)
{
    struct sim_dom *d;
    struct sim_local_dom *l;

    if (slot >= SIM_MAX_DOMS)
        return;
    d = &sim->doms[slot];
    if (!d->used || (uint16_t)d->gen != gen)
        return;   /* the domain is gone: its frames went with it */
    l = sim_local(d);
    if (!l || frame >= d->frame_cap || !(l->refs[frame] & SIM_REFMASK))
        return;
    l->refs[frame]--;
    if (l->refs[frame] == SIM_RELEASED) {
        l->refs[frame] = 0;
        d->tot_pages--;
        d->held_pages--;
    }
}

int sim_populate(struct sim_dom *d, uint64_t gfn)
{
    struct sim_local_dom *l = sim_local(d);
    int64_t f;

    if (!l)
        return -EIO;
    if (gfn >= d->p2m_cap)
        return -EINVAL;
    if (d->tot_pages >= d->max_pages)
        return -ENOMEM;
    f = sim_alloc_frame(d);
    if (f < 0)
        return (int)f;
    /* A fresh frame of the sparse pool file reads as zeroes. */
    if (l->p2m[gfn] != SIM_INVALID)
        sim_frame_release(d, l, l->p2m[gfn]);
    d->tot_pages++;
    l->p2m[gfn] = (uint32_t)f;
    if (gfn > d->max_gpfn)
        d->max_gpfn = gfn;
    sim_p2m_added(d, l, gfn);
    return 0;
}

/*
 * Xen 4.17's p2m_add_page (xen/arch/x86/mm/p2m.c) marks nothing dirty; from
 * 4.19.5, 4.20.3, 4.21.1 and 4.22 on ("x86/mm: update log-dirty bitmap when
 * manipulating P2M", 98fccdf0ac) it marks every gfn it adds that is not a
 * grant mapping: populate, XENMAPSPACE_gmfn, grant_table, shared_info.
 */
void sim_p2m_added(struct sim_dom *d, struct sim_local_dom *l, uint64_t gfn)
{
    if (sim->p2m_add_marks_dirty)
        sim_mark_dirty(d, l, gfn);
}

int sim_map_grant(struct sim_dom *d, struct sim_local_dom *l, uint64_t gfn)
{
    if (gfn >= d->p2m_cap)
        return -EINVAL;
    if (d->gnttab_gfn != ~0ull)
        l->p2m[d->gnttab_gfn] = SIM_INVALID;
    if (l->p2m[gfn] != SIM_INVALID && gfn != d->gnttab_gfn)
        sim_frame_release(d, l, l->p2m[gfn]);   /* guest_remove_page */
    l->p2m[gfn] = (uint32_t)d->gnttab_frame;
    d->gnttab_gfn = gfn;
    sim_p2m_added(d, l, gfn);
    return 0;
}

int sim_depopulate(struct sim_dom *d, uint64_t gfn)
{
    struct sim_local_dom *l = sim_local(d);

    if (!l)
        return -EIO;
    if (gfn >= d->p2m_cap || l->p2m[gfn] == SIM_INVALID)
        return -ENOENT;
    sim_frame_release(d, l, l->p2m[gfn]);
    l->p2m[gfn] = SIM_INVALID;
    return 0;
}

void sim_die(struct sim_dom *d)
{
    d->dying = 1;
}

void sim_busy_wait(uint64_t ns)
{
    struct timespec a, b;

    if (!ns)
        return;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do {
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ull +
                 (uint64_t)(b.tv_nsec - a.tv_nsec) < ns);
}

void sim_fill_page(uint8_t *page, uint64_t seed, uint64_t gfn)
{
    uint64_t x = (seed ^ (gfn * 0x9e3779b97f4a7c15ull)) | 1;
    uint64_t *w = (uint64_t *)page;

    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x |= 1;
    for (unsigned int i = 0; i < SIM_PAGE / 8; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w[i] = x;
    }
}

/* ---- accounting and faults ---- */

int sim_account(unsigned int op, int subop, uint32_t domid)
{
    unsigned int o = op < SIM_NR_OPS ? op : SIM_NR_OPS - 1;
    unsigned int s = (subop >= 0 && subop < SIM_NR_SUBOPS) ? (unsigned)subop
                                                          : SIM_NR_SUBOPS - 1;
    int rc = 0;

    __atomic_fetch_add(&sim->ctr.by_op[o][s], 1, __ATOMIC_RELAXED);
    if (op < XENSIM_OP_IOCTL)
        __atomic_fetch_add(&sim->ctr.hypercalls, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < SIM_MAX_FAULTS; i++) {
        struct sim_fault *f = &sim->faults[i];

        if ((f->kind != FK_CALL && f->kind != FK_DIE) || f->op != op ||
            (f->subop != XENSIM_SUBOP_ANY && f->subop != subop))
            continue;
        if ((f->kind == FK_DIE || f->domid != XENSIM_ANY_DOM) &&
            f->domid != domid)
            continue;
        f->seen++;
        if (f->seen < f->nth || f->seen > f->nth + f->repeat)
            continue;
        sim->ctr.faults_injected++;
        if (f->kind == FK_DIE) {
            struct sim_dom *d = sim_find(f->domid);
            if (d) {
                sim_log("fault: d%u dies at op %u/%d", f->domid, op, subop);
                sim_die(d);
            }
        } else if (!rc) {
            sim_log("fault: op %u/%d call %llu fails with %d", op, subop,
                    (unsigned long long)f->seen, f->err);
            rc = -f->err;
        }
    }
    return rc;
}

static int add_fault(const struct sim_fault *nf)
{
    int rc = sim_attach();

    if (rc)
        return rc;
    sim_lock();
    for (int i = 0; i < SIM_MAX_FAULTS; i++) {
        if (sim->faults[i].kind == FK_NONE) {
            sim->faults[i] = *nf;
            sim_unlock();
            return 0;
        }
    }
    sim_unlock();
    return -ENOSPC;
}

int xensim_fault_call(unsigned int op, int subop, unsigned int nth,
                      unsigned int repeat, int err)
{
    return xensim_fault_call_dom(XENSIM_ANY_DOM, op, subop, nth, repeat, err);
}

int xensim_fault_call_dom(uint32_t domid, unsigned int op, int subop,
                          unsigned int nth, unsigned int repeat, int err)
{
    struct sim_fault f = {.kind = FK_CALL, .op = op, .subop = subop,
                          .domid = domid, .nth = nth ? nth : 1,
                          .repeat = repeat, .err = err};
    return add_fault(&f);
}

int xensim_fault_map_gfn(uint32_t domid, uint64_t gfn, int err)
{
    struct sim_fault f = {.kind = FK_MAPGFN, .domid = domid, .gfn = gfn,
                          .err = err};
    return add_fault(&f);
}

int xensim_fault_paged(uint32_t domid, uint64_t gfn, unsigned int attempts)
{
    struct sim_fault f = {.kind = FK_PAGED, .domid = domid, .gfn = gfn,
                          .nth = attempts, .err = ENOENT};
    return add_fault(&f);
}

int xensim_fault_die(uint32_t domid, unsigned int op, int subop,
                     unsigned int nth)
{
    struct sim_fault f = {.kind = FK_DIE, .domid = domid, .op = op,
                          .subop = subop, .nth = nth ? nth : 1};
    return add_fault(&f);
}

void xensim_fault_clear(void)
{
    if (sim_attach())
        return;
    sim_lock();
    memset(sim->faults, 0, sizeof(sim->faults));
    sim_unlock();
}

/* ---- counters and cost ---- */

void xensim_counters(struct xensim_counters *c)
{
    memset(c, 0, sizeof(*c));
    if (sim_attach())
        return;
#define LD(x) __atomic_load_n(&sim->ctr.x, __ATOMIC_RELAXED)
    c->mmapbatch_calls = LD(mmapbatch_calls);
    c->pages_mapped = LD(pages_mapped);
    c->map_errors = LD(map_errors);
    c->mmap_syscalls = LD(mmap_syscalls);
    c->privcmd_mmaps = LD(privcmd_mmaps);
    c->privcmd_munmaps = LD(privcmd_munmaps);
    c->live_privcmd_vmas = LD(live_vmas);
    c->live_privcmd_pages = LD(live_pages);
    c->hypercalls = LD(hypercalls);
    c->unhandled = LD(unhandled);
    c->faults_injected = LD(faults_injected);
    c->mmapbatch_ns = LD(mmapbatch_ns);
    c->mmap_ns = LD(mmap_ns);
    c->hypercall_ns = LD(hypercall_ns);
    c->dom0_frames = LD(dom0_frames);
    c->dom0_frames_peak = LD(dom0_frames_peak);
    c->dom0_frame_failures = LD(dom0_frame_failures);
#undef LD
}

void xensim_counters_reset(void)
{
    if (sim_attach())
        return;
    sim_lock();
    sim->ctr.mmapbatch_calls = sim->ctr.pages_mapped = 0;
    sim->ctr.map_errors = sim->ctr.mmap_syscalls = 0;
    sim->ctr.privcmd_mmaps = sim->ctr.privcmd_munmaps = 0;
    sim->ctr.hypercalls = sim->ctr.unhandled = sim->ctr.faults_injected = 0;
    sim->ctr.mmapbatch_ns = sim->ctr.mmap_ns = sim->ctr.hypercall_ns = 0;
    sim->ctr.dom0_frames_peak = sim->ctr.dom0_frames;
    sim->ctr.dom0_frame_failures = 0;
    memset(sim->ctr.by_op, 0, sizeof(sim->ctr.by_op));
    sim_unlock();
}

uint64_t xensim_hypercall_count(unsigned int op, int subop)
{
    uint64_t n = 0;

    if (sim_attach() || op >= SIM_NR_OPS)
        return 0;
    if (subop >= 0)
        return __atomic_load_n(
            &sim->ctr.by_op[op][subop < SIM_NR_SUBOPS ? subop
                                                      : SIM_NR_SUBOPS - 1],
            __ATOMIC_RELAXED);
    for (int s = 0; s < SIM_NR_SUBOPS; s++)
        n += __atomic_load_n(&sim->ctr.by_op[op][s], __ATOMIC_RELAXED);
    return n;
}

void xensim_set_cost(uint64_t call_ns, uint64_t page_ns)
{
    if (sim_attach())
        return;
    sim->cost_call_ns = call_ns;
    sim->cost_page_ns = page_ns;
}

void xensim_set_unmap_cost(uint64_t page_ns)
{
    if (sim_attach())
        return;
    sim->cost_unmap_page_ns = page_ns;
}

void xensim_set_dom0_frames(uint64_t limit)
{
    if (sim_attach())
        return;
    sim->dom0_frames_limit = limit;
}

void xensim_set_dom0_mode(int mode)
{
    if (sim_attach() || mode < XENSIM_DOM0_PV || mode > XENSIM_DOM0_PVH_BALLOON)
        return;
    sim->dom0_mode = (uint64_t)mode;
}

int xensim_dom0_mode(void)
{
    return sim_attach() ? -1 : (int)sim->dom0_mode;
}

/* ---- guest model defaults ---- */

static void add_leaf(struct sim_dom *d, uint32_t leaf, uint32_t sub, uint32_t a,
                     uint32_t b, uint32_t c, uint32_t dd)
{
    if (d->nr_leaves < SIM_MAX_LEAVES)
        d->leaves[d->nr_leaves++] =
            (struct sim_cpuid_leaf){leaf, sub, a, b, c, dd};
}

/*
 * A self-consistent policy in the canonical order and shape that
 * libxenguest's serialiser produces (basic 0..0xd with subleaves, the two
 * hypervisor limit leaves, extended 0x80000000..0x80000008), so that
 * get -> deserialise -> serialise -> set round-trips unchanged.
 */
void sim_default_cpu_policy(struct sim_dom *d)
{
    const uint32_t nosub = 0xffffffffu; /* XEN_CPUID_NO_SUBLEAF */

    d->nr_leaves = 0;
    add_leaf(d, 0, nosub, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69);
    add_leaf(d, 1, nosub, 0x000906ea, 0x00010800, 0xf6fa3203, 0x178bfbff);
    for (uint32_t l = 2; l <= 0xd; l++) {
        switch (l) {
        case 4: /* cache: subleaf 0 with type 0 terminates */
            add_leaf(d, 4, 0, 0, 0, 0, 0);
            break;
        case 7: /* max_subleaf 0 */
            add_leaf(d, 7, 0, 0, 0x009c07ab, 0, 0x84000000);
            break;
        case 0xb: /* topology: subleaf 0 type 0 terminates */
            add_leaf(d, 0xb, 0, 0, 0, 0, 0);
            break;
        case 0xd: /* xcr0 = x87|SSE: subleaves 0 and 1 only */
            add_leaf(d, 0xd, 0, 3, 0x240, 0x240, 0);
            add_leaf(d, 0xd, 1, 0, 0, 0, 0);
            break;
        default:
            add_leaf(d, l, nosub, l == 6 ? 4 : 0, 0, 0, 0);
            break;
        }
    }
    add_leaf(d, 0x40000000, nosub, 0, 0, 0, 0);
    add_leaf(d, 0x40000100, nosub, 0, 0, 0, 0);
    add_leaf(d, 0x80000000, nosub, 0x80000008, 0, 0, 0);
    add_leaf(d, 0x80000001, nosub, 0, 0, 0x00000121, 0x2c100800);
    for (uint32_t l = 0x80000002; l <= 0x80000007; l++)
        add_leaf(d, l, nosub, 0x20202020 + (l & 0xf), 0x20202020,
                 0x20202020, 0x20202020);
    add_leaf(d, 0x80000008, nosub, 0x3027, 0, 0, 0);
    d->nr_msrs = 2;
    d->msrs[0] = (struct sim_msr){0xce, 0, 0};      /* PLATFORM_INFO */
    d->msrs[1] = (struct sim_msr){0x10a, 0, 0};     /* ARCH_CAPABILITIES */
}

static void ctx_add(struct sim_dom *d, uint16_t type, uint16_t inst,
                    uint32_t len, uint64_t seed)
{
    uint8_t *p = d->hvmctx + d->hvmctx_size;

    if (d->hvmctx_size + 8 + len > SIM_HVMCTX_MAX)
        return;
    /* struct hvm_save_descriptor: u16 typecode, u16 instance, u32 length */
    memcpy(p, &type, 2);
    memcpy(p + 2, &inst, 2);
    memcpy(p + 4, &len, 4);
    p += 8;
    for (uint32_t i = 0; i < len; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (uint8_t)(seed >> 56);
    }
    d->hvmctx_size += 8 + len;
}

/*
 * An HVM context blob shaped like a 1-vCPU guest's: the save header, then
 * CPU, PIC x2, IOAPIC, LAPIC, LAPIC_REGS, PCI_IRQ, ISA_IRQ, PCI_LINK, PIT,
 * RTC, HPET, PMTIMER, MTRR, XSAVE, VMCE, TSC_ADJUST and the END record, at
 * the public structures' sizes.  Contents are deterministic from `seed`;
 * the toolstack carries the blob opaquely.
 */
void sim_default_hvmctx(struct sim_dom *d, uint64_t seed)
{
    struct hvm_save_descriptor desc = {1, 0, sizeof(struct hvm_save_header)};
    struct hvm_save_header hdr = {
        .magic = HVM_FILE_MAGIC, .version = HVM_FILE_VERSION,
        .changeset = seed, .cpuid = 0x000906ea, .gtsc_khz = 2400000,
    };
    unsigned int v;

    d->hvmctx_size = 0;
    memcpy(d->hvmctx, &desc, sizeof(desc));
    memcpy(d->hvmctx + sizeof(desc), &hdr, sizeof(hdr));
    d->hvmctx_size = sizeof(desc) + sizeof(hdr);
    for (v = 0; v < (d->vcpus ? d->vcpus : 1); v++)
        ctx_add(d, 2, (uint16_t)v, sizeof(struct hvm_hw_cpu), seed + 2 + v);
    ctx_add(d, 3, 0, sizeof(struct hvm_hw_vpic), seed + 3);
    ctx_add(d, 3, 1, sizeof(struct hvm_hw_vpic), seed + 4);
    ctx_add(d, 4, 0, sizeof(struct hvm_hw_vioapic), seed + 5);
    for (v = 0; v < (d->vcpus ? d->vcpus : 1); v++) {
        ctx_add(d, 5, (uint16_t)v, sizeof(struct hvm_hw_lapic), seed + 6);
        ctx_add(d, 6, (uint16_t)v, sizeof(struct hvm_hw_lapic_regs), seed + 7);
    }
    ctx_add(d, 7, 0, sizeof(struct hvm_hw_pci_irqs), seed + 8);
    ctx_add(d, 8, 0, sizeof(struct hvm_hw_isa_irqs), seed + 9);
    ctx_add(d, 9, 0, sizeof(struct hvm_hw_pci_link), seed + 10);
    ctx_add(d, 10, 0, sizeof(struct hvm_hw_pit), seed + 11);
    ctx_add(d, 11, 0, sizeof(struct hvm_hw_rtc), seed + 12);
    ctx_add(d, 12, 0, sizeof(struct hvm_hw_hpet), seed + 13);
    ctx_add(d, 13, 0, sizeof(struct hvm_hw_pmtimer), seed + 14);
    for (v = 0; v < (d->vcpus ? d->vcpus : 1); v++) {
        ctx_add(d, 14, (uint16_t)v, sizeof(struct hvm_hw_mtrr), seed + 15);
        /* XSAVE: header + legacy area (512) + xsave header (64) for
         * xcr0 = x87|SSE, as Xen's size for such a vCPU. */
        ctx_add(d, 16, (uint16_t)v,
                (uint32_t)offsetof(struct hvm_hw_cpu_xsave, save_area) + 576,
                seed + 16);
        ctx_add(d, 18, (uint16_t)v, sizeof(struct hvm_vmce_vcpu), seed + 17);
        ctx_add(d, 19, (uint16_t)v, sizeof(struct hvm_tsc_adjust), seed + 18);
    }
    ctx_add(d, 0, 0, 0, 0);
}

/* ---- domains ---- */

static int layout_present(uint64_t gfn, uint64_t ram_pages)
{
    if (gfn >= SIM_SPECIAL_FIRST && gfn < SIM_SPECIAL_END)
        return 1;
    if (gfn >= SIM_VGA_FIRST && gfn < SIM_VGA_END)
        return 0;
    if (ram_pages <= SIM_LOWMEM_END)
        return gfn < ram_pages;
    if (gfn < SIM_LOWMEM_END)
        return 1;
    return gfn >= SIM_HIGHMEM_START &&
           gfn < SIM_HIGHMEM_START + (ram_pages - SIM_LOWMEM_END);
}

static uint64_t layout_top(uint64_t ram_pages)
{
    uint64_t top = SIM_SPECIAL_END - 1;

    if (ram_pages > SIM_LOWMEM_END)
        top = SIM_HIGHMEM_START + (ram_pages - SIM_LOWMEM_END) - 1;
    return top;
}

void sim_destroy_locked(struct sim_dom *d)
{
    static const char *const kinds[] = {"ram", "p2m", "dirty", "refs"};
    struct sim_local_dom *l = &locals[d - sim->doms];
    char path[4200];

    if (l->gen == d->gen)
        local_drop(l);
    for (unsigned int i = 0; i < 4; i++) {
        file_path(path, sizeof(path), d, kinds[i]);
        unlink(path);
    }
    memset(d, 0, sizeof(*d));
}

int sim_create_locked(uint32_t domid, uint64_t ram_pages, int empty,
                      int paused, unsigned int vcpus, uint64_t p2m_pages)
{
    struct sim_dom *d = NULL;
    struct sim_local_dom *l;
    uint64_t gfn;
    int rc;

    if (domid == 0 || domid >= DOMID_FIRST_RESERVED)
        return -EINVAL;
    if (sim_find(domid))
        return -EEXIST;
    for (int i = 0; i < SIM_MAX_DOMS; i++)
        if (!sim->doms[i].used) {
            d = &sim->doms[i];
            break;
        }
    if (!d)
        return -ENOSPC;
    memset(d, 0, sizeof(*d));
    d->domid = domid;
    d->gen = ++sim->gen_counter;
    d->vcpus = vcpus ? vcpus : 1;
    d->pause_count = paused ? 1 : 0;
    d->max_gpfn = layout_top(ram_pages);
    if (ram_pages) {
        d->p2m_cap = d->max_gpfn + 1 + 4096;  /* room for a scratch gfn */
        d->max_pages = ram_pages + SIM_SPECIAL_NR + 256;
    } else {
        /* Created by hypercall: size unknown until max_mem; keep room for
         * a 16 GiB guest (the files are sparse). */
        d->p2m_cap = SIM_HIGHMEM_START + (16ull << 18) + 4096;
        d->max_pages = 0;
    }
    if (p2m_pages > d->p2m_cap)
        d->p2m_cap = p2m_pages;
    d->frame_cap = (ram_pages ? d->max_pages : (16ull << 18)) + 65536 + 1;
    d->gnttab_gfn = ~0ull;
    d->gtsc_khz = 2400000;
    sim_default_cpu_policy(d);
    sim_default_hvmctx(d, empty ? 0x7a7a7a7aull + domid : domid);
    l = &locals[d - sim->doms];
    rc = local_open(d, l, 1);
    if (rc) {
        memset(d, 0, sizeof(*d));
        return rc;
    }
    memset(l->p2m, 0xff, l->p2m_len);
    d->gnttab_frame = (uint64_t)sim_alloc_frame(d);
    if (!empty) {
        for (gfn = 0; gfn <= d->max_gpfn; gfn++)
            if (layout_present(gfn, ram_pages)) {
                l->p2m[gfn] = (uint32_t)d->next_frame++;
                d->tot_pages++;
            }
        d->params[HVM_PARAM_PAGING_RING_PFN] = SIM_SPECIAL_FIRST + 0;
        d->params[HVM_PARAM_MONITOR_RING_PFN] = SIM_SPECIAL_FIRST + 1;
        d->params[HVM_PARAM_SHARING_RING_PFN] = SIM_SPECIAL_FIRST + 2;
        d->params[HVM_PARAM_BUFIOREQ_PFN] = SIM_SPECIAL_FIRST + 3;
        d->params[HVM_PARAM_STORE_PFN] = SIM_SPECIAL_FIRST + 4;
        d->params[HVM_PARAM_IOREQ_PFN] = SIM_SPECIAL_FIRST + 5;
        d->params[HVM_PARAM_IDENT_PT] = SIM_SPECIAL_FIRST + 6;
        d->params[HVM_PARAM_CONSOLE_PFN] = SIM_SPECIAL_FIRST + 7;
        /* a guest with PV drivers: vector callback 0xf3 (as Linux) */
        d->params[HVM_PARAM_CALLBACK_IRQ] =
            ((uint64_t)HVM_PARAM_CALLBACK_TYPE_VECTOR << 56) | 0xf3;
        d->params[HVM_PARAM_STORE_EVTCHN] = 1;
        d->params[HVM_PARAM_CONSOLE_EVTCHN] = 2;
        d->params[HVM_PARAM_ACPI_IOPORTS_LOCATION] = 1;
        d->params[HVM_PARAM_TIMER_MODE] = 1;
        d->params[HVM_PARAM_HPET_ENABLED] = 1;
        d->params[HVM_PARAM_VM86_TSS_SIZED] =
            ((uint64_t)0x80 << 32) | 0xfeffa000ull;
        d->params[HVM_PARAM_X87_FIP_WIDTH] = 8;
    }
    d->used = 1;
    return 0;
}

int xensim_create_domain(uint32_t domid, const struct xensim_domain_config *cfg)
{
    int rc = sim_attach();

    if (rc)
        return rc;
    if (!cfg || cfg->mem_bytes < SIM_PAGE)
        return -EINVAL;
    sim_lock();
    rc = sim_create_locked(domid, cfg->mem_bytes / SIM_PAGE, cfg->empty,
                           cfg->paused, cfg->vcpus, cfg->p2m_pages);
    if (!rc && cfg->pv)
        sim_find(domid)->pv = 1;
    sim_unlock();
    return rc;
}

int xensim_destroy_domain(uint32_t domid)
{
    struct sim_dom *d;
    int rc = sim_attach();

    if (rc)
        return rc;
    sim_lock();
    d = sim_find(domid);
    if (d)
        sim_destroy_locked(d);
    sim_unlock();
    return d ? 0 : -ESRCH;
}

void xensim_destroy_all(void)
{
    if (sim_attach())
        return;
    sim_lock();
    for (int i = 0; i < SIM_MAX_DOMS; i++)
        if (sim->doms[i].used)
            sim_destroy_locked(&sim->doms[i]);
    sim_unlock();
}

/* Lock and look up; on success returns with the lock held. */
static int get_dom(uint32_t domid, struct sim_dom **dp, struct sim_local_dom **lp)
{
    int rc = sim_attach();

    if (rc)
        return rc;
    sim_lock();
    *dp = sim_find(domid);
    if (!*dp) {
        sim_unlock();
        return -ESRCH;
    }
    *lp = sim_local(*dp);
    if (!*lp) {
        sim_unlock();
        return -EIO;
    }
    return 0;
}

static int special_zero(const struct sim_dom *d, uint64_t gfn)
{
    return (d->params[HVM_PARAM_IOREQ_PFN] &&
            gfn == d->params[HVM_PARAM_IOREQ_PFN]) ||
           (d->params[HVM_PARAM_BUFIOREQ_PFN] &&
            gfn == d->params[HVM_PARAM_BUFIOREQ_PFN]);
}

int xensim_fill(uint32_t domid, uint64_t seed)
{
    struct sim_dom *d;
    struct sim_local_dom *l;
    int rc = get_dom(domid, &d, &l);

    if (rc)
        return rc;
    for (uint64_t gfn = 0; gfn < d->p2m_cap; gfn++) {
        uint32_t f = l->p2m[gfn];
        if (f == SIM_INVALID)
            continue;
        if (special_zero(d, gfn))
            memset(l->ram + (uint64_t)f * SIM_PAGE, 0, SIM_PAGE);
        else
            sim_fill_page(l->ram + (uint64_t)f * SIM_PAGE, seed, gfn);
    }
    sim_unlock();
    return 0;
}

/* Bytes [off, off + len) of populated page gfn of domid, for guest_read/guest_write. On
 * success the simulator stays locked (the caller unlocks) and *p points at the bytes; else
 * it is unlocked and the result is -ESRCH/-EIO (no such domain) or -EINVAL (a range past
 * the page, or a gfn that is not populated). */
static int guest_bytes(uint32_t domid, uint64_t gfn, size_t off, size_t len,
                       struct sim_dom **d, struct sim_local_dom **l, uint8_t **p)
{
    int rc = get_dom(domid, d, l);

    if (rc)
        return rc;
    if (off + len > SIM_PAGE || gfn >= (*d)->p2m_cap ||
        (*l)->p2m[gfn] == SIM_INVALID) {
        sim_unlock();
        return -EINVAL;
    }
    *p = (*l)->ram + (uint64_t)(*l)->p2m[gfn] * SIM_PAGE + off;
    return 0;
}

int xensim_guest_write(uint32_t domid, uint64_t gfn, size_t off,
                       const void *buf, size_t len)
{
    struct sim_dom *d;
    struct sim_local_dom *l;
    uint8_t *p;
    int rc = guest_bytes(domid, gfn, off, len, &d, &l, &p);

    if (rc)
        return rc;
    if (!sim_running(d))
        rc = -EBUSY;
    else {
        memcpy(p, buf, len);
        sim_mark_dirty(d, l, gfn);
    }
    sim_unlock();
    return rc;
}

int xensim_guest_read(uint32_t domid, uint64_t gfn, size_t off, void *buf,
                      size_t len)
{
    struct sim_dom *d;
    struct sim_local_dom *l;
    uint8_t *p;
    int rc = guest_bytes(domid, gfn, off, len, &d, &l, &p);

    if (rc)
        return rc;
    memcpy(buf, p, len);
    sim_unlock();
    return 0;
}

int xensim_gfn_present(uint32_t domid, uint64_t gfn)
{
    struct sim_dom *d;
    struct sim_local_dom *l;
    int rc = get_dom(domid, &d, &l);

    if (rc)
        return rc;
    rc = gfn < d->p2m_cap && l->p2m[gfn] != SIM_INVALID;
    sim_unlock();
    return rc;
}

int xensim_gfn_mapped(uint32_t domid, uint64_t gfn)
{
    struct sim_dom *d;
    struct sim_local_dom *l;
    int rc = get_dom(domid, &d, &l);

    if (rc)
        return rc;
    if (gfn >= d->p2m_cap || l->p2m[gfn] == SIM_INVALID)
        rc = -EINVAL;
    else
        rc = (int)(l->refs[l->p2m[gfn]] & SIM_REFMASK);
    sim_unlock();
    return rc;
}

int xensim_balloon_replace(uint32_t domid, uint64_t gfn, uint64_t seed)
{
    struct sim_dom *d;
    struct sim_local_dom *l;
    int64_t f;
    int rc = get_dom(domid, &d, &l);

    if (rc)
        return rc;
    if (gfn >= d->p2m_cap || l->p2m[gfn] == SIM_INVALID) {
        sim_unlock();
        return -EINVAL;
    }
    f = sim_alloc_frame(d);
    if (f < 0) {
        sim_unlock();
        return (int)f;
    }
    sim_fill_page(l->ram + (uint64_t)f * SIM_PAGE, seed, gfn);
    sim_frame_release(d, l, l->p2m[gfn]);
    d->tot_pages++;
    l->p2m[gfn] = (uint32_t)f;   /* not marked dirty, as 4.17 */
    sim_p2m_added(d, l, gfn);
    sim_unlock();
    return 0;
}

int xensim_masked_exchange(uint32_t domid, uint64_t gfn, uint64_t other,
                           uint64_t seed)
{
    struct sim_dom *d;
    struct sim_local_dom *l;
    int64_t f;
    int rc = get_dom(domid, &d, &l);

    if (rc)
        return rc;
    if (gfn == other || gfn >= d->p2m_cap || other >= d->p2m_cap ||
        l->p2m[gfn] == SIM_INVALID || l->p2m[other] == SIM_INVALID ||
        gfn == d->gnttab_gfn || other == d->gnttab_gfn) {
        sim_unlock();
        return -EINVAL;
    }
    /* decrease_reservation(other), decrease_reservation(gfn) ... */
    sim_frame_release(d, l, l->p2m[other]);
    l->p2m[other] = SIM_INVALID;
    sim_frame_release(d, l, l->p2m[gfn]);
    l->p2m[gfn] = SIM_INVALID;
    /* ... populate_physmap(gfn), refused at max_pages as in assign_pages */
    rc = d->tot_pages >= d->max_pages ? -ENOMEM : 0;
    if (!rc && (f = sim_alloc_frame(d)) < 0)
        rc = (int)f;
    if (!rc) {
        sim_fill_page(l->ram + (uint64_t)f * SIM_PAGE, seed, gfn);
        d->tot_pages++;
        l->p2m[gfn] = (uint32_t)f;
        sim_p2m_added(d, l, gfn);
    }
    sim_unlock();
    return rc;
}

int xensim_move_gmfn(uint32_t domid, uint64_t src, uint64_t dst)
{
    struct sim_dom *d;
    struct sim_local_dom *l;
    int rc = get_dom(domid, &d, &l);

    if (rc)
        return rc;
    if (src >= d->p2m_cap || dst >= d->p2m_cap ||
        l->p2m[src] == SIM_INVALID || src == d->gnttab_gfn) {
        sim_unlock();
        return -EINVAL;
    }
    if (src != dst) {
        /* xenmem_add_to_physmap_one: free dst's page, unmap src, map at dst */
        if (dst == d->gnttab_gfn)
            d->gnttab_gfn = ~0ull;      /* special pages are unhooked */
        else if (l->p2m[dst] != SIM_INVALID)
            sim_frame_release(d, l, l->p2m[dst]);   /* guest_remove_page */
        l->p2m[dst] = l->p2m[src];
        l->p2m[src] = SIM_INVALID;
        if (dst > d->max_gpfn)
            d->max_gpfn = dst;
        sim_p2m_added(d, l, dst);
    }
    sim_unlock();
    return 0;
}

int xensim_grant_over(uint32_t domid, uint64_t gfn)
{
    struct sim_dom *d;
    struct sim_local_dom *l;
    int rc = get_dom(domid, &d, &l);

    if (rc)
        return rc;
    rc = sim_map_grant(d, l, gfn);
    sim_unlock();
    return rc;
}

int xensim_set_max_pages(uint32_t domid, uint64_t max_pages)
{
    struct sim_dom *d;
    struct sim_local_dom *l;
    int rc = get_dom(domid, &d, &l);

    if (rc)
        return rc;
    d->max_pages = max_pages;
    sim_unlock();
    return 0;
}

void xensim_set_p2m_add_marks_dirty(int on)
{
    if (sim_attach())
        return;
    sim_lock();
    sim->p2m_add_marks_dirty = !!on;
    sim_unlock();
}

int xensim_balloon_out(uint32_t domid, uint64_t gfn)
{
    struct sim_dom *d;
    struct sim_local_dom *l;
    int rc = get_dom(domid, &d, &l);

    if (rc)
        return rc;
    rc = sim_depopulate(d, gfn);
    sim_unlock();
    return rc == -ENOENT ? -EINVAL : rc;
}

int xensim_balloon_in(uint32_t domid, uint64_t gfn)
{
    struct sim_dom *d;
    struct sim_local_dom *l;
    int rc = get_dom(domid, &d, &l);

    if (rc)
        return rc;
    if (gfn < d->p2m_cap && l->p2m[gfn] != SIM_INVALID)
        rc = -EEXIST;
    else
        rc = sim_populate(d, gfn);
    sim_unlock();
    return rc;
}

int xensim_dominfo(uint32_t domid, struct xensim_dominfo *info)
{
    struct sim_dom *d;
    struct sim_local_dom *l;
    int rc = get_dom(domid, &d, &l);

    if (rc)
        return rc;
    memset(info, 0, sizeof(*info));
    info->domid = d->domid;
    info->paused = d->pause_count > 0;
    info->shutdown = d->shutdown;
    info->shutdown_reason = d->shutdown_reason;
    info->dying = d->dying;
    info->running = sim_running(d);
    info->logdirty = d->logdirty;
    info->tot_pages = d->tot_pages;
    info->max_pages = d->max_pages;
    info->held_pages = d->held_pages;
    info->p2m_size = d->max_gpfn + 1;
    memcpy(info->hvm_param, d->params, sizeof(info->hvm_param));
    sim_unlock();
    return 0;
}

static int dom_op(uint32_t domid, int what)
{
    struct sim_dom *d;
    struct sim_local_dom *l;
    int rc = get_dom(domid, &d, &l);

    if (rc)
        return rc;
    switch (what) {
    case 0:
        d->pause_count++;
        break;
    case 1:
        if (d->pause_count > 0)
            d->pause_count--;
        else
            rc = -EINVAL;
        break;
    case 2:
        d->shutdown = 1;
        d->shutdown_reason = SHUTDOWN_suspend;
        break;
    case 3:
        d->shutdown = 0;
        d->shutdown_reason = 0;
        break;
    case 4:
    case 5:
        d->logdirty = what == 4;
        memset(l->dirty, 0, l->dirty_len);
        break;
    }
    sim_unlock();
    return rc;
}

int xensim_pause(uint32_t domid) { return dom_op(domid, 0); }
int xensim_unpause(uint32_t domid) { return dom_op(domid, 1); }
int xensim_suspend(uint32_t domid) { return dom_op(domid, 2); }
int xensim_resume(uint32_t domid) { return dom_op(domid, 3); }
int xensim_set_logdirty(uint32_t domid, int enable)
{
    return dom_op(domid, enable ? 4 : 5);
}

/* ---- dirtier ---- */

struct xensim_dirtier {
    pthread_t thread;
    uint32_t domid;
    uint64_t first, count, rate, seed;
    volatile int stop;
    uint64_t writes;
};

uint64_t sim_now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void *dirtier_main(void *arg)
{
    struct xensim_dirtier *dt = arg;
    uint64_t start = sim_now_ns(), cursor = 0, budget_done = 0;
    uint64_t x = dt->seed | 1;

    while (!__atomic_load_n(&dt->stop, __ATOMIC_ACQUIRE)) {
        struct timespec ms = {0, 1000000};
        uint64_t due = (sim_now_ns() - start) / 1000 * dt->rate / 1000000;

        nanosleep(&ms, NULL);
        while (budget_done < due && !dt->stop) {
            struct sim_dom *d;
            struct sim_local_dom *l;
            uint64_t gfn, word[8];

            if (get_dom(dt->domid, &d, &l))
                return NULL;
            if (!sim_running(d)) {
                sim_unlock();
                /* no progress while stopped: the vCPU does not run */
                budget_done = due;
                break;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            gfn = dt->first + (cursor++ * 7919 + (x & 0xff)) % dt->count;
            budget_done++;
            if (gfn >= d->p2m_cap || l->p2m[gfn] == SIM_INVALID ||
                (gfn >= SIM_SPECIAL_FIRST && gfn < SIM_SPECIAL_END)) {
                sim_unlock();
                continue;
            }
            for (int i = 0; i < 8; i++)
                word[i] = x + (uint64_t)i * 0x9e3779b97f4a7c15ull + gfn;
            memcpy(l->ram + (uint64_t)l->p2m[gfn] * SIM_PAGE +
                       (x >> 8) % (SIM_PAGE / 64) * 64,
                   word, sizeof(word));
            sim_mark_dirty(d, l, gfn);
            sim_unlock();
            __atomic_fetch_add(&dt->writes, 1, __ATOMIC_RELAXED);
        }
    }
    return NULL;
}

struct xensim_dirtier *xensim_dirtier_start(uint32_t domid, uint64_t first,
                                            uint64_t count, uint64_t rate,
                                            uint64_t seed)
{
    struct xensim_dirtier *dt;

    if (sim_attach() || !count || !rate)
        return NULL;
    dt = calloc(1, sizeof(*dt));
    if (!dt)
        return NULL;
    *dt = (struct xensim_dirtier){.domid = domid, .first = first,
                                  .count = count, .rate = rate, .seed = seed};
    if (pthread_create(&dt->thread, NULL, dirtier_main, dt)) {
        free(dt);
        return NULL;
    }
    return dt;
}

uint64_t xensim_dirtier_writes(const struct xensim_dirtier *d)
{
    return __atomic_load_n(&d->writes, __ATOMIC_RELAXED);
}

uint64_t xensim_dirtier_stop(struct xensim_dirtier *d)
{
    uint64_t n;

    if (!d)
        return 0;
    __atomic_store_n(&d->stop, 1, __ATOMIC_RELEASE);
    pthread_join(d->thread, NULL);
    n = d->writes;
    free(d);
    return n;
}

/* ---- snapshot / compare ---- */

struct xensim_snapshot {
    uint32_t domid;
    uint64_t n;            /* p2m entries */
    uint32_t *p2m;         /* gfn -> gfn (index into data) or invalid */
    uint8_t *data;         /* n pages, sparse */
    uint32_t hvmctx_size;
    uint8_t *hvmctx;
    uint64_t params[SIM_NR_PARAMS];
    uint64_t gnttab_gfn;   /* Xen's grant frame, not guest RAM: never compared */
};

struct view {
    uint64_t n;
    const uint32_t *p2m;
    const uint8_t *ram;
    uint32_t hvmctx_size;
    const uint8_t *hvmctx;
    const uint64_t *params;
    uint64_t gnttab_gfn;
};

struct xensim_snapshot *xensim_snapshot(uint32_t domid)
{
    struct sim_dom *d;
    struct sim_local_dom *l;
    struct xensim_snapshot *s;

    if (get_dom(domid, &d, &l))
        return NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        goto fail;
    s->domid = domid;
    s->n = d->p2m_cap;
    s->p2m = malloc(s->n * sizeof(uint32_t));
    s->hvmctx = malloc(SIM_HVMCTX_MAX);
    s->data = sim_sys_mmap(NULL, s->n * SIM_PAGE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (!s->p2m || !s->hvmctx || s->data == MAP_FAILED) {
        if (s->data == MAP_FAILED)
            s->data = NULL;
        xensim_snapshot_free(s);
        s = NULL;
        goto fail;
    }
    for (uint64_t g = 0; g < s->n; g++) {
        if (l->p2m[g] == SIM_INVALID) {
            s->p2m[g] = SIM_INVALID;
            continue;
        }
        s->p2m[g] = (uint32_t)g;
        memcpy(s->data + g * SIM_PAGE, l->ram + (uint64_t)l->p2m[g] * SIM_PAGE,
               SIM_PAGE);
    }
    s->hvmctx_size = d->hvmctx_size;
    memcpy(s->hvmctx, d->hvmctx, d->hvmctx_size);
    memcpy(s->params, d->params, sizeof(s->params));
    s->gnttab_gfn = d->gnttab_gfn;
fail:
    sim_unlock();
    return s;
}

void xensim_snapshot_free(struct xensim_snapshot *s)
{
    if (!s)
        return;
    if (s->data)
        sim_sys_munmap(s->data, s->n * SIM_PAGE);
    free(s->p2m);
    free(s->hvmctx);
    free(s);
}

/* The params the 4.17 x86 HVM saver puts in the HVM_PARAMS record. */
static const unsigned int migrated_params[] = {
    HVM_PARAM_STORE_PFN, HVM_PARAM_IOREQ_PFN, HVM_PARAM_BUFIOREQ_PFN,
    HVM_PARAM_PAGING_RING_PFN, HVM_PARAM_MONITOR_RING_PFN,
    HVM_PARAM_SHARING_RING_PFN, HVM_PARAM_VM86_TSS_SIZED,
    HVM_PARAM_CONSOLE_PFN, HVM_PARAM_ACPI_IOPORTS_LOCATION,
    HVM_PARAM_VIRIDIAN, HVM_PARAM_IDENT_PT, HVM_PARAM_VM_GENERATION_ID_ADDR,
    HVM_PARAM_IOREQ_SERVER_PFN, HVM_PARAM_NR_IOREQ_SERVER_PAGES,
    HVM_PARAM_X87_FIP_WIDTH, HVM_PARAM_MCA_CAP,
};

static int compare_views(const struct view *a, const struct view *b,
                         unsigned int what, struct xensim_diff *diff)
{
    struct xensim_diff dummy;
    uint64_t skip1 = a->params[HVM_PARAM_STORE_PFN];
    uint64_t skip2 = a->params[HVM_PARAM_CONSOLE_PFN];
    uint64_t n = a->n > b->n ? a->n : b->n;

    if (!diff)
        diff = &dummy;
    memset(diff, 0, sizeof(*diff));
    if (what & XENSIM_CMP_RAM) {
        for (uint64_t g = 0; g < n; g++) {
            uint32_t fa = g < a->n ? a->p2m[g] : SIM_INVALID;
            uint32_t fb = g < b->n ? b->p2m[g] : SIM_INVALID;

            if ((skip1 && g == skip1) || (skip2 && g == skip2) ||
                g == a->gnttab_gfn || g == b->gnttab_gfn)
                continue;
            if (fa == SIM_INVALID && (what & XENSIM_CMP_REF_HOLES))
                continue;
            if ((fa == SIM_INVALID) != (fb == SIM_INVALID)) {
                snprintf(diff->what, sizeof(diff->what), "p2m");
                diff->gfn = g;
                diff->a = fa != SIM_INVALID;
                diff->b = fb != SIM_INVALID;
                snprintf(diff->text, sizeof(diff->text),
                         "gfn %#llx present in ref=%d other=%d",
                         (unsigned long long)g, fa != SIM_INVALID,
                         fb != SIM_INVALID);
                return 1;
            }
            if (fa == SIM_INVALID)
                continue;
            const uint8_t *pa = a->ram + (uint64_t)fa * SIM_PAGE;
            const uint8_t *pb = b->ram + (uint64_t)fb * SIM_PAGE;
            if (memcmp(pa, pb, SIM_PAGE)) {
                uint64_t off = 0;
                while (off < SIM_PAGE && pa[off] == pb[off])
                    off++;
                snprintf(diff->what, sizeof(diff->what), "ram");
                diff->gfn = g;
                diff->index = off;
                diff->a = pa[off];
                diff->b = pb[off];
                snprintf(diff->text, sizeof(diff->text),
                         "gfn %#llx differs at byte %llu (ref %#x other %#x)",
                         (unsigned long long)g, (unsigned long long)off,
                         pa[off], pb[off]);
                return 1;
            }
        }
    }
    if (what & XENSIM_CMP_HVMCTX) {
        if (a->hvmctx_size != b->hvmctx_size ||
            memcmp(a->hvmctx, b->hvmctx, a->hvmctx_size)) {
            uint64_t off = 0;
            while (off < a->hvmctx_size && off < b->hvmctx_size &&
                   a->hvmctx[off] == b->hvmctx[off])
                off++;
            snprintf(diff->what, sizeof(diff->what), "hvm_context");
            diff->index = off;
            diff->a = a->hvmctx_size;
            diff->b = b->hvmctx_size;
            snprintf(diff->text, sizeof(diff->text),
                     "HVM context differs at byte %llu (sizes %u vs %u)",
                     (unsigned long long)off, a->hvmctx_size, b->hvmctx_size);
            return 1;
        }
    }
    if (what & XENSIM_CMP_PARAMS) {
        for (size_t i = 0; i < sizeof(migrated_params) / sizeof(unsigned); i++) {
            unsigned int p = migrated_params[i];
            if (a->params[p] != b->params[p]) {
                snprintf(diff->what, sizeof(diff->what), "param");
                diff->index = p;
                diff->a = a->params[p];
                diff->b = b->params[p];
                snprintf(diff->text, sizeof(diff->text),
                         "HVM param %u: ref %#llx other %#llx", p,
                         (unsigned long long)a->params[p],
                         (unsigned long long)b->params[p]);
                return 1;
            }
        }
    }
    return 0;
}

static void dom_view(struct view *v, const struct sim_dom *d,
                     const struct sim_local_dom *l)
{
    v->n = d->p2m_cap;
    v->p2m = l->p2m;
    v->ram = l->ram;
    v->hvmctx_size = d->hvmctx_size;
    v->hvmctx = d->hvmctx;
    v->params = d->params;
    v->gnttab_gfn = d->gnttab_gfn;
}

int xensim_compare_snapshot(const struct xensim_snapshot *ref, uint32_t domid,
                            unsigned int what, struct xensim_diff *diff)
{
    struct sim_dom *d;
    struct sim_local_dom *l;
    struct view a, b;
    int rc = get_dom(domid, &d, &l);

    if (rc)
        return rc;
    a = (struct view){ref->n, ref->p2m, ref->data, ref->hvmctx_size,
                      ref->hvmctx, ref->params, ref->gnttab_gfn};
    dom_view(&b, d, l);
    rc = compare_views(&a, &b, what, diff);
    sim_unlock();
    return rc;
}

int xensim_compare_domains(uint32_t ref_domid, uint32_t domid,
                           unsigned int what, struct xensim_diff *diff)
{
    struct sim_dom *d1, *d2;
    struct sim_local_dom *l1, *l2;
    struct view a, b;
    int rc = get_dom(ref_domid, &d1, &l1);

    if (rc)
        return rc;
    d2 = sim_find(domid);
    l2 = d2 ? sim_local(d2) : NULL;
    if (!d2 || !l2) {
        sim_unlock();
        return d2 ? -EIO : -ESRCH;
    }
    dom_view(&a, d1, l1);
    dom_view(&b, d2, l2);
    rc = compare_views(&a, &b, what, diff);
    sim_unlock();
    return rc;
}
