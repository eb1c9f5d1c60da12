// SPDX-License-Identifier: GPL-3.0-only
/*
 * xensim device layer: interposes the libc entry points the Xen libraries
 * (and Rust's std/libc) use on /dev/xen/privcmd, /proc/xen/privcmd and
 * /dev/xen/hypercall, and emulates the privcmd ioctls with Linux's
 * semantics.  Everything else goes straight to the kernel via syscall(2),
 * which is what the libc wrappers do too (and avoids dlsym recursion).
 */

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <stdint.h>
#define __XEN_TOOLS__ 1
#include <xen/xen.h>
#include <xen/sys/privcmd.h>

#include "sim.h"

#define MAX_FDS 65536
enum { FD_NONE, FD_PRIVCMD, FD_HYPERCALL };
static unsigned char fdkind[MAX_FDS];

/* ---- raw kernel entry points ---- */

void *sim_sys_mmap(void *addr, size_t len, int prot, int flags, int fd,
                   off_t off)
{
    long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
    return r == -1 ? MAP_FAILED : (void *)r;
}

int sim_sys_munmap(void *addr, size_t len)
{
    return (int)syscall(SYS_munmap, addr, len);
}

int sim_sys_open(const char *path, int flags, int mode)
{
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

int sim_sys_close(int fd)
{
    return (int)syscall(SYS_close, fd);
}

/* ---- privcmd VMAs (process-local) ---- */

/* A mapped guest page: the frame it pins (see sim_frame_unref). */
struct vpage {
    uint32_t frame;
    uint16_t slot;     /* domain slot, VP_NONE if nothing is mapped */
    uint16_t gen;      /* low bits of the domain's generation */
};
#define VP_NONE 0xffffu

struct vma {
    uintptr_t start;
    size_t npages;
    int prot;
    int locked;        /* a first MMAPBATCH has claimed it */
    int frames;        /* ... and took dom0 frames for it (PVH dom0) */
    struct vpage *pg;  /* per page: what is mapped there */
};

static pthread_mutex_t vma_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vma *vmas;
static size_t nr_vmas, cap_vmas;
/* guest pages unmapped by the last vma_remove_range calls (for the unmap
 * cost, paid outside the locks); protected by vma_lock */
static uint64_t unmapped_pages;

static size_t vma_lower_bound(uintptr_t addr)
{
    size_t lo = 0, hi = nr_vmas;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (vmas[mid].start + vmas[mid].npages * SIM_PAGE <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo; /* first VMA whose end > addr */
}

static int vma_insert(const struct vma *v)
{
    size_t i = vma_lower_bound(v->start);

    if (nr_vmas == cap_vmas) {
        size_t nc = cap_vmas ? cap_vmas * 2 : 64;
        struct vma *n = realloc(vmas, nc * sizeof(*n));
        if (!n)
            return -ENOMEM;
        vmas = n;
        cap_vmas = nc;
    }
    memmove(&vmas[i + 1], &vmas[i], (nr_vmas - i) * sizeof(*vmas));
    vmas[i] = *v;
    nr_vmas++;
    return 0;
}

/* Forget [addr, addr+len) of the privcmd VMAs; returns VMAs touched.
 * Caller holds vma_lock. */
static int vma_remove_range(uintptr_t addr, size_t len)
{
    uintptr_t end = addr + len;
    size_t i = vma_lower_bound(addr);
    int touched = 0, locked = 0;
    uint64_t total_dropped = 0;

    while (i < nr_vmas && vmas[i].start < end) {
        struct vma *v = &vmas[i];
        uintptr_t vend = v->start + v->npages * SIM_PAGE;
        uintptr_t cs = addr > v->start ? addr : v->start;
        uintptr_t ce = end < vend ? end : vend;
        size_t first = (cs - v->start) / SIM_PAGE;
        size_t last = (ce - v->start + SIM_PAGE - 1) / SIM_PAGE;
        uint64_t dropped = 0;

        touched++;
        if (v->locked && v->frames) {
            /* the dom0 frames behind these pages go back */
            __atomic_fetch_sub(&sim->ctr.dom0_frames, (uint64_t)(last - first),
                               __ATOMIC_RELAXED);
        }
        for (size_t p = first; p < last; p++) {
            if (v->pg[p].slot == VP_NONE)
                continue;
            if (!locked) {
                sim_lock();   /* order: vma_lock, then the state lock */
                locked = 1;
            }
            sim_frame_unref(v->pg[p].slot, v->pg[p].gen, v->pg[p].frame);
            dropped++;
        }
        __atomic_fetch_sub(&sim->ctr.live_pages, dropped, __ATOMIC_RELAXED);
        total_dropped += dropped;
        if (first == 0 && last == v->npages) {
            free(v->pg);
            memmove(&vmas[i], &vmas[i + 1], (nr_vmas - i - 1) * sizeof(*vmas));
            nr_vmas--;
            __atomic_fetch_sub(&sim->ctr.live_vmas, 1, __ATOMIC_RELAXED);
            continue;
        }
        if (first == 0) {            /* trim head */
            memmove(v->pg, v->pg + last, (v->npages - last) * sizeof(*v->pg));
            v->start += last * SIM_PAGE;
            v->npages -= last;
        } else if (last == v->npages) { /* trim tail */
            v->npages = first;
        } else {                     /* split */
            struct vma right = *v;
            right.start = v->start + last * SIM_PAGE;
            right.npages = v->npages - last;
            right.pg = malloc(right.npages * sizeof(*right.pg));
            if (!right.pg)
                abort();
            memcpy(right.pg, v->pg + last, right.npages * sizeof(*right.pg));
            v->npages = first;
            if (vma_insert(&right))
                abort();
            __atomic_fetch_add(&sim->ctr.live_vmas, 1, __ATOMIC_RELAXED);
        }
        i++;
    }
    if (locked)
        sim_unlock();
    unmapped_pages += total_dropped;
    return touched;
}

static struct vma *vma_find(uintptr_t addr)
{
    size_t i = vma_lower_bound(addr);

    if (i < nr_vmas && vmas[i].start <= addr)
        return &vmas[i];
    return NULL;
}

/* ---- hypercall buffers (process-local), for strict-mode pointer checks ---- */

struct region {
    uintptr_t start, end;
};

static pthread_mutex_t hbuf_lock = PTHREAD_MUTEX_INITIALIZER;
static struct region *hbufs;
static size_t nr_hbufs, cap_hbufs;

static void hbuf_add(uintptr_t start, size_t len)
{
    pthread_mutex_lock(&hbuf_lock);
    if (nr_hbufs == cap_hbufs) {
        size_t nc = cap_hbufs ? cap_hbufs * 2 : 64;
        struct region *n = realloc(hbufs, nc * sizeof(*n));
        if (!n)
            abort();
        hbufs = n;
        cap_hbufs = nc;
    }
    hbufs[nr_hbufs++] = (struct region){start, start + len};
    pthread_mutex_unlock(&hbuf_lock);
}

static void hbuf_remove(uintptr_t start, size_t len)
{
    uintptr_t end = start + len;

    pthread_mutex_lock(&hbuf_lock);
    for (size_t i = 0; i < nr_hbufs;) {
        struct region *r = &hbufs[i];
        if (r->end <= start || r->start >= end) {
            i++;
            continue;
        }
        if (r->start < start && r->end > end) {   /* hole in the middle */
            struct region right = {end, r->end};
            r->end = start;
            pthread_mutex_unlock(&hbuf_lock);
            hbuf_add(right.start, right.end - right.start);
            return;
        }
        if (r->start < start)
            r->end = start;
        else if (r->end > end)
            r->start = end;
        else {
            hbufs[i] = hbufs[--nr_hbufs];
            continue;
        }
        i++;
    }
    pthread_mutex_unlock(&hbuf_lock);
}

int sim_in_hcall_buf(const void *p, size_t len)
{
    uintptr_t a = (uintptr_t)p;
    int ok = 0;

    if (!len)
        return 1;
    pthread_mutex_lock(&hbuf_lock);
    for (size_t i = 0; i < nr_hbufs && !ok; i++)
        ok = a >= hbufs[i].start && a + len <= hbufs[i].end;
    pthread_mutex_unlock(&hbuf_lock);
    return ok;
}

/*
 * Linux marks privcmd VMAs VM_DONTCOPY: a forked child has none.  The
 * placeholder and guest mappings get MADV_DONTFORK, and the child forgets
 * the table (its locks may have been held by other threads at fork time).
 */
static void vma_atfork_child(void);
static void vma_atfork_register_once(void)
{
    pthread_atfork(NULL, NULL, vma_atfork_child);
}

static void vma_atfork_child(void)
{
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

    vma_lock = fresh;
    for (size_t i = 0; i < nr_vmas; i++)
        free(vmas[i].pg);
    nr_vmas = 0;
    hbuf_lock = fresh;
}

static void vma_register_atfork(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, vma_atfork_register_once);
}

/* ---- path classification ---- */

static int xen_path_kind(const char *path)
{
    if (!path)
        return FD_NONE;
    if (!strcmp(path, "/dev/xen/privcmd") || !strcmp(path, "/proc/xen/privcmd"))
        return FD_PRIVCMD;
    if (!strcmp(path, "/dev/xen/hypercall"))
        return FD_HYPERCALL;
    return FD_NONE;
}

static int open_xen(int kind, int flags)
{
    int fd;

    if (sim_attach()) {
        errno = ENOENT;
        return -1;
    }
    fd = sim_sys_open("/dev/null", O_RDWR | (flags & O_CLOEXEC), 0);
    if (fd < 0)
        return -1;
    if (fd >= MAX_FDS) {
        sim_sys_close(fd);
        errno = EMFILE;
        return -1;
    }
    __atomic_store_n(&fdkind[fd], (unsigned char)kind, __ATOMIC_RELEASE);
    return fd;
}

static int fd_kind(int fd)
{
    if (fd < 0 || fd >= MAX_FDS)
        return FD_NONE;
    return __atomic_load_n(&fdkind[fd], __ATOMIC_ACQUIRE);
}

static int do_openat(int dirfd, const char *path, int flags, int mode)
{
    int kind = xen_path_kind(path);

    if (kind)
        return open_xen(kind, flags);
    return (int)syscall(SYS_openat, dirfd, path, flags, mode);
}

#define MODE_ARG(flags, mode)                                    \
    do {                                                         \
        if ((flags) & (O_CREAT | __O_TMPFILE)) {                 \
            va_list ap;                                          \
            va_start(ap, flags);                                 \
            mode = va_arg(ap, int);                              \
            va_end(ap);                                          \
        }                                                        \
    } while (0)

int open(const char *path, int flags, ...)
{
    int mode = 0;
    MODE_ARG(flags, mode);
    return do_openat(AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    int mode = 0;
    MODE_ARG(flags, mode);
    return do_openat(AT_FDCWD, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    int mode = 0;
    MODE_ARG(flags, mode);
    return do_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    int mode = 0;
    MODE_ARG(flags, mode);
    return do_openat(dirfd, path, flags, mode);
}

int __open_2(const char *path, int flags);
int __open_2(const char *path, int flags)
{
    return do_openat(AT_FDCWD, path, flags, 0);
}

int __open64_2(const char *path, int flags);
int __open64_2(const char *path, int flags)
{
    return do_openat(AT_FDCWD, path, flags, 0);
}

int close(int fd)
{
    if (fd_kind(fd))
        __atomic_store_n(&fdkind[fd], FD_NONE, __ATOMIC_RELEASE);
    return sim_sys_close(fd);
}

/* ---- mmap / munmap ---- */

static void *privcmd_mmap(void *addr, size_t len, int prot, int flags)
{
    struct vma v = {0};
    void *p;

    if (!len || len % SIM_PAGE) {
        errno = EINVAL;
        return MAP_FAILED;
    }
    /* An inaccessible placeholder: pages fault until MMAPBATCH maps them. */
    p = sim_sys_mmap(addr, len, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
                         (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)),
                     -1, 0);
    if (p == MAP_FAILED)
        return p;
    vma_register_atfork();
    madvise(p, len, MADV_DONTFORK);
    v.start = (uintptr_t)p;
    v.npages = len / SIM_PAGE;
    v.prot = prot;
    v.pg = malloc(v.npages * sizeof(*v.pg));
    if (!v.pg) {
        sim_sys_munmap(p, len);
        errno = ENOMEM;
        return MAP_FAILED;
    }
    for (size_t i = 0; i < v.npages; i++)
        v.pg[i].slot = VP_NONE;
    pthread_mutex_lock(&vma_lock);
    vma_remove_range(v.start, len);
    if (vma_insert(&v)) {
        pthread_mutex_unlock(&vma_lock);
        free(v.pg);
        sim_sys_munmap(p, len);
        errno = ENOMEM;
        return MAP_FAILED;
    }
    pthread_mutex_unlock(&vma_lock);
    __atomic_fetch_add(&sim->ctr.privcmd_mmaps, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&sim->ctr.live_vmas, 1, __ATOMIC_RELAXED);
    return p;
}

static void *do_mmap(void *addr, size_t len, int prot, int flags, int fd,
                     off_t off)
{
    switch (fd_kind(fd)) {
    case FD_PRIVCMD:
        return privcmd_mmap(addr, len, prot, flags);
    case FD_HYPERCALL: {
        /* Every hypercall buffer is its own fresh shared region. */
        void *p = sim_sys_mmap(addr, len, prot,
                               MAP_SHARED | MAP_ANONYMOUS |
                                   (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)),
                               -1, 0);
        if (p != MAP_FAILED)
            hbuf_add((uintptr_t)p, len);
        return p;
    }
    default:
        break;
    }
    if ((flags & MAP_FIXED) && nr_vmas && sim) {
        void *p = sim_sys_mmap(addr, len, prot, flags, fd, off);
        if (p != MAP_FAILED) {
            pthread_mutex_lock(&vma_lock);
            vma_remove_range((uintptr_t)p, len);
            pthread_mutex_unlock(&vma_lock);
        }
        return p;
    }
    return sim_sys_mmap(addr, len, prot, flags, fd, off);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return do_mmap(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return do_mmap(addr, len, prot, flags, fd, off);
}

int munmap(void *addr, size_t len)
{
    if (__atomic_load_n(&nr_hbufs, __ATOMIC_RELAXED))
        hbuf_remove((uintptr_t)addr, len);
    if (__atomic_load_n(&nr_vmas, __ATOMIC_RELAXED) && sim) {
        int touched;

        uint64_t pages;

        pthread_mutex_lock(&vma_lock);
        touched = vma_remove_range((uintptr_t)addr,
                                   (len + SIM_PAGE - 1) & ~(SIM_PAGE - 1));
        pages = unmapped_pages;
        unmapped_pages = 0;
        pthread_mutex_unlock(&vma_lock);
        if (touched)
            __atomic_fetch_add(&sim->ctr.privcmd_munmaps, 1, __ATOMIC_RELAXED);
        if (pages && sim->cost_unmap_page_ns) {
            int rc = sim_sys_munmap(addr, len);
            sim_busy_wait(sim->cost_unmap_page_ns * pages);
            return rc;
        }
    }
    return sim_sys_munmap(addr, len);
}

/* ---- MMAPBATCH ---- */

/* Reserve dom0 frames for a VMA's first MMAPBATCH: a PVH dom0's privcmd
 * (xen_feature(XENFEAT_auto_translated_physmap)) calls alloc_empty_pages for
 * every page of the VMA; a PV dom0 takes none.  Returns 1 if frames were
 * taken, 0 if none (PV), -ENOMEM beyond the budget (ballooned PVH only: the
 * unpopulated allocator costs address space, not RAM). */
static int dom0_frames_take(uint64_t pages)
{
    int rc = 1;

    sim_lock();
    if (sim->dom0_mode == XENSIM_DOM0_PV) {
        rc = 0;
    } else if (sim->dom0_mode == XENSIM_DOM0_PVH_BALLOON &&
               sim->dom0_frames_limit &&
               sim->ctr.dom0_frames + pages > sim->dom0_frames_limit) {
        sim->ctr.dom0_frame_failures++;
        rc = -ENOMEM;
    } else {
        /* atomic: munmap gives frames back without the state lock */
        uint64_t now = __atomic_add_fetch(&sim->ctr.dom0_frames, pages,
                                          __ATOMIC_RELAXED);
        if (now > sim->ctr.dom0_frames_peak)
            sim->ctr.dom0_frames_peak = now;
    }
    sim_unlock();
    return rc;
}

static int map_fault(uint32_t domid, uint64_t gfn)
{
    for (int i = 0; i < SIM_MAX_FAULTS; i++) {
        struct sim_fault *f = &sim->faults[i];
        if (f->domid != domid || f->gfn != gfn)
            continue;
        if (f->kind == FK_MAPGFN) {
            sim->ctr.faults_injected++;
            return -f->err;
        }
        if (f->kind == FK_PAGED && f->nth) {
            f->nth--;
            sim->ctr.faults_injected++;
            return -ENOENT;
        }
    }
    return 0;
}

/*
 * The body shared by V1 and V2: maps num gfns at addr with the VMA rules of
 * Linux's privcmd_ioctl_mmap_batch, filling errs[] with 0 or -errno.
 * Returns 0, or -errno for the whole call (before any mapping).
 */
static int mmapbatch(uint32_t domid, uintptr_t addr, unsigned int num,
                     const xen_pfn_t *arr, int *errs, int *paged)
{
    struct vma *v;
    struct sim_dom *d;
    struct sim_local_dom *l;
    uint32_t *frames;
    int ramfd = -1, prot, rc, dead;
    uint16_t slot = VP_NONE, gen = 0;
    uint64_t ok = 0;
    size_t first;

    *paged = 0;
    if (num == 0 || addr % SIM_PAGE) {
        if (sim_strict_mode)
            sim_strict_fail("MMAPBATCH: num %u addr %#lx", num,
                            (unsigned long)addr);
        return -EINVAL;
    }
    pthread_mutex_lock(&vma_lock);
    v = vma_find(addr);
    if (!v) {
        pthread_mutex_unlock(&vma_lock);
        if (sim_strict_mode)
            sim_strict_fail("MMAPBATCH at %#lx: not a privcmd VMA",
                            (unsigned long)addr);
        return -EINVAL;
    }
    first = (addr - v->start) / SIM_PAGE;
    if (!v->locked) {
        if (first != 0 || num != v->npages) {
            pthread_mutex_unlock(&vma_lock);
            if (sim_strict_mode)
                sim_strict_fail("first MMAPBATCH on VMA %#lx+%zu pages must "
                                "cover it exactly (got %#lx, %u pages)",
                                (unsigned long)v->start, v->npages,
                                (unsigned long)addr, num);
            return -EINVAL;
        }
        rc = dom0_frames_take(v->npages);
        if (rc < 0) {
            pthread_mutex_unlock(&vma_lock);
            return rc;
        }
        v->frames = rc;
        v->locked = 1;
    } else {
        int bad = first + num > v->npages;
        for (size_t p = first; !bad && p < first + num; p++)
            bad = v->pg[p].slot != VP_NONE;
        if (bad) {
            pthread_mutex_unlock(&vma_lock);
            if (sim_strict_mode)
                sim_strict_fail("MMAPBATCH %#lx+%u pages: outside VMA "
                                "%#lx+%zu or over mapped pages",
                                (unsigned long)addr, num,
                                (unsigned long)v->start, v->npages);
            return -EINVAL;
        }
    }
    prot = v->prot;
    pthread_mutex_unlock(&vma_lock);

    frames = malloc(num * sizeof(*frames));
    if (!frames)
        return -ENOMEM;
    sim_lock();
    rc = sim_account(XENSIM_OP_IOCTL, 4, domid);
    sim->ctr.mmapbatch_calls++;
    if (rc) {
        sim_unlock();
        free(frames);
        return rc;
    }
    d = sim_find(domid);
    l = d ? sim_local(d) : NULL;
    dead = !d || !l || d->dying;
    for (unsigned int i = 0; i < num; i++) {
        int e = dead ? -ESRCH : 0;
        frames[i] = SIM_INVALID;
        if (!e)
            e = map_fault(domid, arr[i]);
        if (!e && (arr[i] >= d->p2m_cap || l->p2m[arr[i]] == SIM_INVALID))
            e = -EINVAL;
        if (!e) {
            frames[i] = l->p2m[arr[i]];
            sim_frame_ref(l, frames[i]);  /* the mapping pins the frame */
        } else if (e == -ENOENT)
            *paged = 1;
        errs[i] = e;
        if (e)
            sim->ctr.map_errors++;
    }
    if (l) {
        ramfd = l->ramfd;
        slot = (uint16_t)(d - sim->doms);
        gen = (uint16_t)d->gen;
    }
    sim_unlock();

    for (unsigned int i = 0; i < num;) {
        unsigned int j = i + 1;
        void *p;
        uint64_t t0;

        if (frames[i] == SIM_INVALID) {
            i++;
            continue;
        }
        while (j < num && frames[j] != SIM_INVALID &&
               frames[j] == frames[j - 1] + 1)
            j++;
        t0 = sim_now_ns();
        p = sim_sys_mmap((void *)(addr + (uintptr_t)i * SIM_PAGE),
                         (size_t)(j - i) * SIM_PAGE, prot,
                         MAP_SHARED | MAP_FIXED, ramfd,
                         (off_t)frames[i] * (off_t)SIM_PAGE);
        __atomic_fetch_add(&sim->ctr.mmap_ns, sim_now_ns() - t0,
                           __ATOMIC_RELAXED);
        __atomic_fetch_add(&sim->ctr.mmap_syscalls, 1, __ATOMIC_RELAXED);
        if (p != MAP_FAILED)
            madvise(p, (size_t)(j - i) * SIM_PAGE, MADV_DONTFORK);
        if (p == MAP_FAILED) {
            sim_lock();
            for (unsigned int k = i; k < j; k++) {
                errs[k] = -EFAULT;
                sim_frame_unref(slot, gen, frames[k]);
                frames[k] = SIM_INVALID;
            }
            sim_unlock();
        } else {
            ok += j - i;
        }
        i = j;
    }
    pthread_mutex_lock(&vma_lock);
    v = vma_find(addr);
    for (unsigned int i = 0; i < num; i++) {
        size_t p;

        if (frames[i] == SIM_INVALID)
            continue;
        p = v ? (addr - v->start) / SIM_PAGE + i : 0;
        if (v && addr >= v->start && p < v->npages) {
            v->pg[p] = (struct vpage){frames[i], slot, gen};
        } else {
            /* unmapped under our feet by another thread */
            sim_lock();
            sim_frame_unref(slot, gen, frames[i]);
            sim_unlock();
            ok--;
        }
    }
    pthread_mutex_unlock(&vma_lock);
    free(frames);
    __atomic_fetch_add(&sim->ctr.pages_mapped, ok, __ATOMIC_RELAXED);
    __atomic_fetch_add(&sim->ctr.live_pages, ok, __ATOMIC_RELAXED);
    sim_busy_wait(sim->cost_call_ns + sim->cost_page_ns * ok);
    return 0;
}

static int ioctl_mmapbatch_v2(privcmd_mmapbatch_v2_t *m)
{
    int paged, rc;
    uint64_t t0 = sim_now_ns();

    if (!m || !m->arr || !m->err) {
        if (sim_strict_mode)
            sim_strict_fail("MMAPBATCH_V2 with NULL pointers");
        return -EFAULT;
    }
    rc = mmapbatch(m->dom, (uintptr_t)m->addr, m->num, m->arr, m->err, &paged);
    __atomic_fetch_add(&sim->ctr.mmapbatch_ns, sim_now_ns() - t0,
                       __ATOMIC_RELAXED);
    if (rc)
        return rc;
    return paged ? -ENOENT : 0;
}

static int ioctl_mmapbatch_v1(privcmd_mmapbatch_t *m)
{
    int paged, rc, *errs;

    if (!m || !m->arr || m->num <= 0) {
        if (sim_strict_mode)
            sim_strict_fail("MMAPBATCH (v1) with bad arguments");
        return -EINVAL;
    }
    errs = calloc((size_t)m->num, sizeof(int));
    if (!errs)
        return -ENOMEM;
    rc = mmapbatch(m->dom, (uintptr_t)m->addr, (unsigned)m->num, m->arr, errs,
                   &paged);
    for (int i = 0; !rc && i < m->num; i++) {
        if (errs[i] == -ENOENT)
            m->arr[i] |= PRIVCMD_MMAPBATCH_PAGED_ERROR;
        else if (errs[i])
            m->arr[i] |= PRIVCMD_MMAPBATCH_MFN_ERROR;
    }
    free(errs);
    if (rc)
        return rc;
    return paged ? -ENOENT : 0;
}

/* The request numbers encode the argument size: a caller built against
 * a different struct layout sends a different number. */
static const unsigned long known_ioctls[] = {
    IOCTL_PRIVCMD_HYPERCALL, IOCTL_PRIVCMD_MMAPBATCH,
    IOCTL_PRIVCMD_MMAPBATCH_V2, IOCTL_PRIVCMD_DM_OP, IOCTL_PRIVCMD_RESTRICT,
    IOCTL_PRIVCMD_MMAP_RESOURCE, IOCTL_PRIVCMD_UNIMPLEMENTED,
};

static int privcmd_ioctl(unsigned long req, void *arg)
{
    unsigned int nr = _IOC_NR(req);
    int rc;

    if (sim_strict_mode && _IOC_TYPE(req) == 'P') {
        for (size_t i = 0; i < sizeof(known_ioctls) / sizeof(known_ioctls[0]);
             i++)
            if (_IOC_NR(known_ioctls[i]) == nr && known_ioctls[i] != req)
                sim_strict_fail("privcmd ioctl %u with size %u, want %u", nr,
                                (unsigned int)_IOC_SIZE(req),
                                (unsigned int)_IOC_SIZE(known_ioctls[i]));
    }

    if (req == IOCTL_PRIVCMD_HYPERCALL) {
        privcmd_hypercall_t *h = arg;
        long r;
        if (!h) {
            if (sim_strict_mode)
                sim_strict_fail("HYPERCALL ioctl with NULL argument");
            return -EFAULT;
        }
        sim_lock();
        sim_account(XENSIM_OP_IOCTL, 0, DOMID_INVALID);
        sim_unlock();
        r = sim_hypercall(h->op, (const uint64_t *)h->arg);
        if (r < 0)
            return (int)r;
        if (r > 0x7fffffff) {
            if (sim_strict_mode)
                sim_strict_fail("hypercall %llu result %ld does not fit an "
                                "ioctl return", (unsigned long long)h->op, r);
            return -EOVERFLOW;
        }
        return (int)r;
    }
    if (req == IOCTL_PRIVCMD_MMAPBATCH_V2)
        return ioctl_mmapbatch_v2(arg);
    if (req == IOCTL_PRIVCMD_MMAPBATCH)
        return ioctl_mmapbatch_v1(arg);

    sim_lock();
    rc = sim_account(XENSIM_OP_IOCTL, (int)nr, DOMID_INVALID);
    sim_unlock();
    if (rc)
        return rc;
    if (req == IOCTL_PRIVCMD_DM_OP) {
        privcmd_dm_op_t *op = arg;
        if (!op)
            return -EFAULT;
        if (op->num == 0)
            return 0;
        sim_log("UNHANDLED ioctl DM_OP (%u bufs) for d%u", op->num, op->dom);
        __atomic_fetch_add(&sim->ctr.unhandled, 1, __ATOMIC_RELAXED);
        return -ENOSYS;
    }
    if (req == IOCTL_PRIVCMD_RESTRICT)
        return 0;
    if (req == IOCTL_PRIVCMD_MMAP_RESOURCE)
        return -ENOTTY;   /* same errno as the UNIMPLEMENTED probe */
    if (req == IOCTL_PRIVCMD_UNIMPLEMENTED)
        return -ENOTTY;
    if (_IOC_TYPE(req) == 'P') {
        sim_log("UNHANDLED privcmd ioctl %u", nr);
        __atomic_fetch_add(&sim->ctr.unhandled, 1, __ATOMIC_RELAXED);
        return -ENOSYS;
    }
    return -ENOTTY;
}

int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    void *arg;
    int kind = fd_kind(fd), rc;

    va_start(ap, req);
    arg = va_arg(ap, void *);
    va_end(ap);
    if (kind == FD_NONE)
        return (int)syscall(SYS_ioctl, fd, req, arg);
    if (kind == FD_HYPERCALL) {
        errno = ENOTTY;
        return -1;
    }
    rc = privcmd_ioctl(req, arg);
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    return rc;
}
