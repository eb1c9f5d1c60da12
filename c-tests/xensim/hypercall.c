// SPDX-License-Identifier: GPL-3.0-only
/*
 * xensim hypercall emulation: what the x86 HVM save and restore paths of
 * the Xen 4.17 libraries issue through IOCTL_PRIVCMD_HYPERCALL.  Arguments
 * are ordinary addresses in this process.  Unknown operations log
 * "UNHANDLED <op>/<subop>" and return -ENOSYS.
 */

#include <stdio.h>
#include <string.h>

#include <stdint.h>
#define __XEN_TOOLS__ 1
#include <xen/xen.h>
#include <xen/domctl.h>
#include <xen/features.h>
#include <xen/grant_table.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/hvm/save.h>
#include <xen/memory.h>
#include <xen/sched.h>
#include <xen/sysctl.h>
#include <xen/version.h>

#include "sim.h"

/* As Xen 4.17's CPUID_MAX_SERIALISED_LEAVES / MSR_MAX_SERIALISED_ENTRIES. */
#define MAX_SERIALISED_LEAVES (14 + 2 + 5 + 1 + 62 + 34 + 2)
#define MAX_SERIALISED_MSRS   2
/* Xen's memory_op continuation encoding (not in the public headers). */
#define MEMOP_EXTENT_SHIFT 6

/* Strict mode: hypercall memory must live in hypercall buffers, as Xen
 * needs (libxc bounces everything through them). */
static void buf_check(const void *p, size_t len, const char *what)
{
    if (sim_strict_mode && p && len && !sim_in_hcall_buf(p, len))
        sim_strict_fail("hypercall argument %s (%p+%zu) is not in a "
                        "/dev/xen/hypercall buffer", what, p, len);
}

static long unhandled(const char *what, uint64_t op, uint64_t sub)
{
    sim_log("UNHANDLED %s %llu/%llu", what, (unsigned long long)op,
            (unsigned long long)sub);
    sim->ctr.unhandled++;
    return -ENOSYS;
}

/* Domain an operation targets: absent or dying -> NULL (ESRCH). */
static struct sim_dom *live_dom(uint32_t domid)
{
    struct sim_dom *d = sim_find(domid);

    return d && !d->dying ? d : NULL;
}

/* The opening shared by the handlers of a call on one domain, in two steps so that the
 * domid is read only from a present argument:
 *     if ((rc = arg_in(p, sizeof(*p), "what")) ||
 *         (rc = dom_call(op, sub, p->domid, &d)))
 *         return rc;
 * arg_in: a NULL argument is EFAULT; in strict mode it must lie in a hypercall buffer.
 * dom_call: the call is counted (a fault rule may fail it), and the domain must be alive
 * (ESRCH); *d is set on success. */
static long arg_in(const void *p, size_t len, const char *what)
{
    if (!p)
        return -EFAULT;
    buf_check(p, len, what);
    return 0;
}

static long dom_call(unsigned int op, int sub, uint32_t domid, struct sim_dom **d)
{
    long rc = sim_account(op, sub, domid);

    if (rc)
        return rc;
    *d = live_dom(domid);
    return *d ? 0 : -ESRCH;
}

/* ---- xen_version ---- */

static long do_xen_version(uint64_t cmd, void *arg)
{
    switch (cmd) {
    case XENVER_version:
        return (4 << 16) | XENSIM_XEN_MINOR;
    case XENVER_extraversion:
        if (!arg)
            return -EFAULT;
        memset(arg, 0, sizeof(xen_extraversion_t));
        strcpy(arg, XENSIM_XEN_EXTRA);
        return 0;
    case XENVER_capabilities:
        if (!arg)
            return -EFAULT;
        memset(arg, 0, sizeof(xen_capabilities_info_t));
        strcpy(arg, "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p "
                    "hvm-3.0-x86_64");
        return 0;
    case XENVER_changeset:
        if (!arg)
            return -EFAULT;
        memset(arg, 0, sizeof(xen_changeset_info_t));
        strcpy(arg, "xensim");
        return 0;
    case XENVER_pagesize:
        return SIM_PAGE;
    case XENVER_get_features: {
        xen_feature_info_t *f = arg;
        if (!f)
            return -EFAULT;
        if (f->submap_idx != 0)   /* XENFEAT_NR_SUBMAPS is 1 */
            return -EINVAL;
        /* submap 0 of a hardware domain, as 4.17's xen/common/kernel.c */
        f->submap = (1u << XENFEAT_memory_op_vnode_supported) |
                    (1u << XENFEAT_dom0);
        if (sim->dom0_mode == XENSIM_DOM0_PV)
            f->submap |= (1u << XENFEAT_mmu_pt_update_preserve_ad) |
                         (1u << XENFEAT_highmem_assist) |
                         (1u << XENFEAT_gnttab_map_avail_bits) |
                         (1u << XENFEAT_direct_mapped);
        else
            f->submap |= (1u << XENFEAT_writable_page_tables) |
                         (1u << XENFEAT_auto_translated_physmap) |
                         (1u << XENFEAT_hvm_safe_pvclock) |
                         (1u << XENFEAT_hvm_callback_vector) |
                         (1u << XENFEAT_not_direct_mapped);
        return 0;
    }
    default:
        return unhandled("xen_version", cmd, 0);
    }
}

/* ---- memory_op ---- */

static long do_memory_op(uint64_t cmd, void *arg)
{
    unsigned int sub = (unsigned int)(cmd & ((1u << MEMOP_EXTENT_SHIFT) - 1));
    struct sim_dom *d;
    long rc;

    switch (sub) {
    case XENMEM_maximum_gpfn:
    case XENMEM_current_reservation:
    case XENMEM_maximum_reservation: {
        domid_t *dom = arg;
        if ((rc = arg_in(dom, sizeof(*dom), "memory_op domid")) ||
            (rc = dom_call(__HYPERVISOR_memory_op, (int)sub, *dom, &d)))
            return rc;
        if (sub == XENMEM_maximum_gpfn)
            return (long)d->max_gpfn;
        return (long)(sub == XENMEM_current_reservation ? d->tot_pages
                                                        : d->max_pages);
    }
    case XENMEM_populate_physmap:
    case XENMEM_decrease_reservation: {
        struct xen_memory_reservation *r = arg;
        xen_pfn_t *ext;
        unsigned long i;
        if (!r)
            return -EFAULT;
        if ((rc = sim_account(__HYPERVISOR_memory_op, (int)sub, r->domid)))
            return rc;
        if (cmd >> MEMOP_EXTENT_SHIFT) {
            if (sim_strict_mode)
                sim_strict_fail("memory_op continuation start %llu",
                                (unsigned long long)(cmd >> MEMOP_EXTENT_SHIFT));
            return -EINVAL;
        }
        d = live_dom(r->domid);
        if (!d)
            return -ESRCH;
        ext = r->extent_start.p;
        buf_check(r, sizeof(*r), "memory_op reservation");
        if (r->nr_extents && !ext)
            return -EFAULT;
        buf_check(ext, r->nr_extents * sizeof(*ext), "extent_start");
        if (r->extent_order > 9)
            return -EINVAL;
        for (i = 0; i < r->nr_extents; i++) {
            uint64_t base = ext[i] & ~((1ull << r->extent_order) - 1);
            int err = 0;
            for (uint64_t k = 0; !err && k < (1ull << r->extent_order); k++)
                err = sub == XENMEM_populate_physmap
                          ? sim_populate(d, base + k)
                          : sim_depopulate(d, base + k);
            if (err)
                break;
        }
        return (long)i;
    }
    case XENMEM_add_to_physmap: {
        struct xen_add_to_physmap *x = arg;
        struct sim_local_dom *l;
        if ((rc = arg_in(x, sizeof(*x), "add_to_physmap")) ||
            (rc = dom_call(__HYPERVISOR_memory_op, (int)sub, x->domid, &d)))
            return rc;
        l = sim_local(d);
        if (!l)
            return -EIO;
        if (x->space != XENMAPSPACE_grant_table || x->idx != 0)
            return unhandled("memory_op add_to_physmap space", x->space,
                             x->idx);
        return sim_map_grant(d, l, x->gpfn);
    }
    case XENMEM_remove_from_physmap: {
        struct xen_remove_from_physmap *x = arg;
        struct sim_local_dom *l;
        if ((rc = arg_in(x, sizeof(*x), "remove_from_physmap")) ||
            (rc = dom_call(__HYPERVISOR_memory_op, (int)sub, x->domid, &d)))
            return rc;
        l = sim_local(d);
        if (!l)
            return -EIO;
        if (x->gpfn == d->gnttab_gfn) {
            l->p2m[x->gpfn] = SIM_INVALID;
            d->gnttab_gfn = ~0ull;
            return 0;
        }
        return sim_depopulate(d, x->gpfn) ? -EINVAL : 0;
    }
    case XENMEM_get_pod_target:
    case XENMEM_set_pod_target: {
        struct xen_pod_target *pt = arg;
        if ((rc = arg_in(pt, sizeof(*pt), "pod_target")) ||
            (rc = dom_call(__HYPERVISOR_memory_op, (int)sub, pt->domid, &d)))
            return rc;
        /* no populate-on-demand in the model: the target is what is there */
        if (sub == XENMEM_set_pod_target)
            return pt->target_pages >= d->tot_pages ? 0 : -EINVAL;
        pt->target_pages = d->tot_pages;
        pt->tot_pages = d->tot_pages;
        pt->pod_cache_pages = 0;
        pt->pod_entries = 0;
        return 0;
    }
    default:
        sim_account(__HYPERVISOR_memory_op, (int)sub, DOMID_INVALID);
        return unhandled("memory_op", sub, 0);
    }
}

/* ---- hvm_op ---- */

static long do_hvm_op(uint64_t cmd, void *arg)
{
    xen_hvm_param_t *p = arg;
    struct sim_dom *d;
    long rc;

    if (cmd != HVMOP_get_param && cmd != HVMOP_set_param) {
        sim_account(__HYPERVISOR_hvm_op, (int)cmd, DOMID_INVALID);
        return unhandled("hvm_op", cmd, 0);
    }
    if ((rc = arg_in(p, sizeof(*p), "hvm_op param")) ||
        (rc = dom_call(__HYPERVISOR_hvm_op, (int)cmd, p->domid, &d)))
        return rc;
    if (p->index >= HVM_NR_PARAMS)
        return -EINVAL;
    if (cmd == HVMOP_get_param)
        p->value = d->params[p->index];
    else
        d->params[p->index] = p->value;
    return 0;
}

/* ---- sched_op ---- */

static long do_sched_op(uint64_t cmd, void *arg)
{
    struct sched_remote_shutdown *r = arg;
    struct sim_dom *d;
    long rc;

    if (cmd != SCHEDOP_remote_shutdown) {
        sim_account(__HYPERVISOR_sched_op, (int)cmd, DOMID_INVALID);
        return unhandled("sched_op", cmd, 0);
    }
    if ((rc = arg_in(r, sizeof(*r), "sched_op remote_shutdown")) ||
        (rc = dom_call(__HYPERVISOR_sched_op, (int)cmd, r->domain_id, &d)))
        return rc;
    if (r->reason > SHUTDOWN_MAX)
        return -EINVAL;
    if (!d->shutdown) {
        d->shutdown = 1;
        d->shutdown_reason = r->reason;
    }
    return 0;
}

/* ---- grant_table_op ---- */

static long do_grant_table_op(uint64_t cmd, void *arg, uint64_t count)
{
    struct gnttab_setup_table *s = arg;
    struct sim_dom *d;
    long rc;

    if (cmd != GNTTABOP_setup_table) {
        sim_account(__HYPERVISOR_grant_table_op, (int)cmd, DOMID_INVALID);
        return unhandled("grant_table_op", cmd, 0);
    }
    if (!s || count != 1)
        return -EINVAL;
    buf_check(s, sizeof(*s), "gnttab setup_table");
    if ((rc = sim_account(__HYPERVISOR_grant_table_op, (int)cmd, s->dom)))
        return rc;
    d = live_dom(s->dom);
    if (!d) {
        s->status = GNTST_bad_domain;
        return 0;
    }
    if (s->nr_frames != 1 || !s->frame_list.p) {
        s->status = GNTST_general_error;
        return 0;
    }
    buf_check(s->frame_list.p, sizeof(xen_pfn_t), "gnttab frame_list");
    /* An HVM guest's grant frame is named by the gfn it is mapped at. */
    s->frame_list.p[0] = d->gnttab_gfn;
    s->status = GNTST_okay;
    return 0;
}

/* ---- domctl ---- */

static void fill_dominfo(const struct sim_dom *d,
                         struct xen_domctl_getdomaininfo *i)
{
    memset(i, 0, sizeof(*i));
    i->domain = (domid_t)d->domid;
    i->flags = d->pv ? 0 : XEN_DOMINF_hvm_guest | XEN_DOMINF_hap;
    if (d->dying)
        i->flags |= XEN_DOMINF_dying;
    if (d->shutdown)
        i->flags |= XEN_DOMINF_shutdown |
                    (d->shutdown_reason << XEN_DOMINF_shutdownshift);
    if (d->pause_count)
        i->flags |= XEN_DOMINF_paused;
    if (sim_running(d))
        i->flags |= XEN_DOMINF_running;
    else
        i->flags |= XEN_DOMINF_blocked;
    i->tot_pages = d->tot_pages;
    i->max_pages = d->max_pages;
    i->shared_info_frame = 0xfeffc;
    i->nr_online_vcpus = d->vcpus;
    i->max_vcpu_id = d->vcpus - 1;
    i->gpaddr_bits = 52;
}

static long shadow_op(struct sim_dom *d, struct xen_domctl_shadow_op *s)
{
    struct sim_local_dom *l = sim_local(d);
    uint64_t p2m_size = d->max_gpfn + 1, pages, words, dirty = 0;
    unsigned long *out;

    if (!l)
        return -EIO;
    switch (s->op) {
    case XEN_DOMCTL_SHADOW_OP_OFF:
        d->logdirty = 0;
        memset(l->dirty, 0, l->dirty_len);
        return 0;
    case XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY:
        if (d->logdirty)
            return -EINVAL;
        memset(l->dirty, 0, l->dirty_len);
        d->logdirty = 1;
        return 0;
    case XEN_DOMCTL_SHADOW_OP_ENABLE:
        if (s->mode & XEN_DOMCTL_SHADOW_ENABLE_LOG_DIRTY) {
            if (d->logdirty)
                return -EINVAL;
            memset(l->dirty, 0, l->dirty_len);
            d->logdirty = 1;
        }
        return 0;
    case XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION:
        s->mb = 8;
        return 0;
    case XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION:
        return 0;
    case XEN_DOMCTL_SHADOW_OP_CLEAN:
    case XEN_DOMCTL_SHADOW_OP_PEEK:
        if (!d->logdirty)
            return -EINVAL;
        pages = s->pages < p2m_size ? s->pages : p2m_size;
        words = (pages + 63) / 64;
        out = (unsigned long *)s->dirty_bitmap.p;
        buf_check(out, words * 8, "shadow_op dirty_bitmap");
        /* Xen keeps a running count; here zero words (most of a checkpoint's bitmap) are
         * skipped, so the count costs a load per word rather than a libgcc popcount call. */
        for (uint64_t w = 0; w < (p2m_size + 63) / 64; w++)
            if (l->dirty[w])
                dirty += (uint64_t)__builtin_popcountl(l->dirty[w]);
        if (out) {
            for (uint64_t w = 0; w < words; w++) {
                unsigned long v = l->dirty[w];
                if (w == words - 1 && pages % 64)
                    v &= (1ul << (pages % 64)) - 1;
                out[w] = v;
            }
        }
        if (s->op == XEN_DOMCTL_SHADOW_OP_CLEAN)
            memset(l->dirty, 0, words * 8);
        s->pages = (uint32_t)pages;
        s->stats.dirty_count = (uint32_t)dirty;
        s->stats.fault_count = 0;
        return 0;
    default:
        return unhandled("domctl shadow_op", s->op, 0);
    }
}

static long hvmctx_check(const uint8_t *buf, uint32_t size)
{
    uint32_t off = 0;
    int first = 1;

    while (off + sizeof(struct hvm_save_descriptor) <= size) {
        struct hvm_save_descriptor desc;
        memcpy(&desc, buf + off, sizeof(desc));
        if (first && desc.typecode != 1)
            return -EINVAL;
        first = 0;
        off += (uint32_t)sizeof(desc);
        if (desc.length > size - off)
            return -EINVAL;
        off += desc.length;
        if (desc.typecode == 0)
            return off == size ? 0 : -EINVAL;
    }
    return -EINVAL;
}

/* The CPU record of `vcpu` inside a domain's HVM context blob, or NULL. */
static uint8_t *hvmctx_cpu(struct sim_dom *d, uint32_t vcpu)
{
    uint32_t off = 0;

    while (off + sizeof(struct hvm_save_descriptor) <= d->hvmctx_size) {
        struct hvm_save_descriptor desc;
        memcpy(&desc, d->hvmctx + off, sizeof(desc));
        off += (uint32_t)sizeof(desc);
        if (desc.typecode == 0 || desc.length > d->hvmctx_size - off)
            return NULL;
        if (desc.typecode == 2 && desc.instance == vcpu &&
            desc.length >= sizeof(struct hvm_hw_cpu))
            return d->hvmctx + off;
        off += desc.length;
    }
    return NULL;
}

/*
 * get/setvcpucontext for an HVM vCPU: a view of the CPU record of the HVM
 * context (what libxenguest's xc_domain_resume(fast) uses to set the
 * suspend hypercall's return value in rax).  Only the general registers
 * round-trip.
 */
static long vcpucontext(struct sim_dom *d, struct xen_domctl_vcpucontext *vc,
                        int set)
{
    vcpu_guest_context_t *c = vc->ctxt.p;
    uint8_t *cpu;
    struct hvm_hw_cpu hw;

    if (vc->vcpu >= d->vcpus)
        return -EINVAL;
    if (!c)
        return set ? -EINVAL : 0;
    buf_check(c, sizeof(*c), "vcpu context");
    cpu = hvmctx_cpu(d, vc->vcpu);
    if (!cpu)
        return -ENODATA;
    memcpy(&hw, cpu, sizeof(hw));
    if (set) {
        hw.rax = c->user_regs.rax;
        hw.rbx = c->user_regs.rbx;
        hw.rcx = c->user_regs.rcx;
        hw.rdx = c->user_regs.rdx;
        hw.rip = c->user_regs.rip;
        hw.rsp = c->user_regs.rsp;
        memcpy(cpu, &hw, sizeof(hw));
        return 0;
    }
    memset(c, 0, sizeof(*c));
    c->flags = VGCF_online;
    c->user_regs.rax = hw.rax;
    c->user_regs.rbx = hw.rbx;
    c->user_regs.rcx = hw.rcx;
    c->user_regs.rdx = hw.rdx;
    c->user_regs.rip = hw.rip;
    c->user_regs.rsp = hw.rsp;
    return 0;
}

static long cpu_policy_out(const struct sim_dom *d, uint32_t *nr_leaves,
                           xen_cpuid_leaf_t *leaves, uint32_t *nr_msrs,
                           xen_msr_entry_t *msrs)
{
    if (leaves) {
        if (*nr_leaves < d->nr_leaves)
            return -ENOBUFS;
        buf_check(leaves, d->nr_leaves * sizeof(*leaves), "cpu policy leaves");
        for (uint32_t i = 0; i < d->nr_leaves; i++) {
            const struct sim_cpuid_leaf *s = &d->leaves[i];
            leaves[i] = (xen_cpuid_leaf_t){s->leaf, s->subleaf, s->a, s->b,
                                           s->c, s->d};
        }
    }
    if (msrs) {
        if (*nr_msrs < d->nr_msrs)
            return -ENOBUFS;
        buf_check(msrs, d->nr_msrs * sizeof(*msrs), "cpu policy msrs");
        for (uint32_t i = 0; i < d->nr_msrs; i++)
            msrs[i] = (xen_msr_entry_t){d->msrs[i].idx, d->msrs[i].flags,
                                        d->msrs[i].val};
    }
    *nr_leaves = leaves ? d->nr_leaves : MAX_SERIALISED_LEAVES;
    *nr_msrs = msrs ? d->nr_msrs : MAX_SERIALISED_MSRS;
    return 0;
}

static long set_cpu_policy(struct sim_dom *d, struct xen_domctl_cpu_policy *p)
{
    const xen_cpuid_leaf_t *lv = p->leaves.p;
    const xen_msr_entry_t *ms = p->msrs.p;

    if (p->nr_leaves > MAX_SERIALISED_LEAVES || p->nr_leaves > SIM_MAX_LEAVES ||
        p->nr_msrs > MAX_SERIALISED_MSRS || (p->nr_leaves && !lv) ||
        (p->nr_msrs && !ms))
        return -EINVAL;
    buf_check(lv, p->nr_leaves * sizeof(*lv), "set_cpu_policy leaves");
    buf_check(ms, p->nr_msrs * sizeof(*ms), "set_cpu_policy msrs");
    for (uint32_t i = 0; i < p->nr_msrs; i++)
        if (ms[i].flags || (ms[i].idx != 0xce && ms[i].idx != 0x10a)) {
            p->err_msr = ms[i].idx;
            return -EINVAL;
        }
    if (p->nr_leaves) {
        d->nr_leaves = p->nr_leaves;
        for (uint32_t i = 0; i < p->nr_leaves; i++)
            d->leaves[i] = (struct sim_cpuid_leaf){lv[i].leaf, lv[i].subleaf,
                                                   lv[i].a, lv[i].b, lv[i].c,
                                                   lv[i].d};
    }
    if (p->nr_msrs) {
        d->nr_msrs = p->nr_msrs;
        for (uint32_t i = 0; i < p->nr_msrs; i++)
            d->msrs[i] = (struct sim_msr){ms[i].idx, ms[i].flags, ms[i].val};
    }
    return 0;
}

static long do_domctl(struct xen_domctl *dc)
{
    struct sim_dom *d;
    long rc;

    if (!dc)
        return -EFAULT;
    buf_check(dc, sizeof(*dc), "domctl");
    if (dc->interface_version != XEN_DOMCTL_INTERFACE_VERSION) {
        if (sim_strict_mode)
            sim_strict_fail("domctl %u: interface version %#x, want %#x",
                            dc->cmd, dc->interface_version,
                            XEN_DOMCTL_INTERFACE_VERSION);
        return -EACCES;
    }
    if ((rc = sim_account(__HYPERVISOR_domctl, (int)dc->cmd, dc->domain)))
        return rc;

    switch (dc->cmd) {
    case XEN_DOMCTL_getdomaininfo:
        /* 4.17: the first domain with an id >= the one asked for; from 4.18 (commit
         * 31c6554974) exactly that domain, or ESRCH. */
        d = XENSIM_GETDOMAININFO_EXACT ? sim_find(dc->domain) : sim_find_ge(dc->domain);
        if (!d)
            return -ESRCH;
        fill_dominfo(d, &dc->u.getdomaininfo);
        dc->domain = (domid_t)d->domid;
        return 0;
    case XEN_DOMCTL_createdomain: {
        uint32_t id = dc->domain;
        if (id == 0 || id >= DOMID_FIRST_RESERVED) {
            for (id = 1; id < DOMID_FIRST_RESERVED && sim_find(id); id++)
                ;
        }
        rc = sim_create_locked(id, 0, 1, 1,
                               dc->u.createdomain.max_vcpus
                                   ? dc->u.createdomain.max_vcpus : 1, 0);
        if (rc)
            return rc;
        dc->domain = (domid_t)id;
        return 0;
    }
    default:
        break;
    }

    d = live_dom(dc->domain);
    if (!d)
        return -ESRCH;
    switch (dc->cmd) {
    case XEN_DOMCTL_destroydomain:
        sim_destroy_locked(d);
        return 0;
    case XEN_DOMCTL_pausedomain:
        d->pause_count++;
        return 0;
    case XEN_DOMCTL_unpausedomain:
        if (!d->pause_count)
            return -EINVAL;
        d->pause_count--;
        return 0;
    case XEN_DOMCTL_resumedomain:
        d->shutdown = 0;
        d->shutdown_reason = 0;
        return 0;
    case XEN_DOMCTL_max_mem:
        d->max_pages = dc->u.max_mem.max_memkb >> (SIM_PAGE_SHIFT - 10);
        return 0;
    case XEN_DOMCTL_max_vcpus:
        d->vcpus = dc->u.max_vcpus.max ? dc->u.max_vcpus.max : 1;
        return 0;
    case XEN_DOMCTL_shadow_op:
        return shadow_op(d, &dc->u.shadow_op);
    case XEN_DOMCTL_getpageframeinfo3: {
        xen_pfn_t *arr = dc->u.getpageframeinfo3.array.p;
        struct sim_local_dom *l = sim_local(d);
        uint64_t n = dc->u.getpageframeinfo3.num;
        if (!l)
            return -EIO;
        if (n > 1024) {
            if (sim_strict_mode)
                sim_strict_fail("getpageframeinfo3 num %llu > 1024",
                                (unsigned long long)n);
            return -E2BIG;
        }
        if (n && !arr)
            return -EFAULT;
        buf_check(arr, n * sizeof(*arr), "getpageframeinfo3 array");
        for (uint64_t i = 0; i < n; i++) {
            uint64_t gfn = arr[i];
            arr[i] = (gfn < d->p2m_cap && l->p2m[gfn] != SIM_INVALID &&
                      gfn != d->gnttab_gfn)
                         ? XEN_DOMCTL_PFINFO_NOTAB
                         : XEN_DOMCTL_PFINFO_XTAB;
        }
        return 0;
    }
    case XEN_DOMCTL_gethvmcontext: {
        uint8_t *buf = dc->u.hvmcontext.buffer.p;
        if (!buf) {
            dc->u.hvmcontext.size = d->hvmctx_size;
            return 0;
        }
        if (dc->u.hvmcontext.size < d->hvmctx_size)
            return -ENOSPC;
        buf_check(buf, d->hvmctx_size, "gethvmcontext buffer");
        memcpy(buf, d->hvmctx, d->hvmctx_size);
        dc->u.hvmcontext.size = d->hvmctx_size;
        return 0;
    }
    case XEN_DOMCTL_sethvmcontext: {
        const uint8_t *buf = dc->u.hvmcontext.buffer.p;
        uint32_t size = dc->u.hvmcontext.size;
        if (!buf || size > SIM_HVMCTX_MAX)
            return -EINVAL;
        buf_check(buf, size, "sethvmcontext buffer");
        if ((rc = hvmctx_check(buf, size)))
            return rc;
        memcpy(d->hvmctx, buf, size);
        d->hvmctx_size = size;
        return 0;
    }
    case XEN_DOMCTL_gettscinfo:
        dc->u.tsc_info.tsc_mode = d->tsc_mode;
        dc->u.tsc_info.gtsc_khz = d->gtsc_khz;
        dc->u.tsc_info.incarnation = d->incarnation;
        dc->u.tsc_info.elapsed_nsec = d->elapsed_nsec;
        return 0;
    case XEN_DOMCTL_settscinfo:
        d->tsc_mode = dc->u.tsc_info.tsc_mode;
        d->gtsc_khz = dc->u.tsc_info.gtsc_khz;
        d->incarnation = dc->u.tsc_info.incarnation + 1;
        d->elapsed_nsec = dc->u.tsc_info.elapsed_nsec;
        return 0;
    case XEN_DOMCTL_getvcpucontext:
    case XEN_DOMCTL_setvcpucontext:
        return vcpucontext(d, &dc->u.vcpucontext,
                           dc->cmd == XEN_DOMCTL_setvcpucontext);
    case XEN_DOMCTL_get_cpu_policy: {
        struct xen_domctl_cpu_policy *p = &dc->u.cpu_policy;
        return cpu_policy_out(d, &p->nr_leaves, p->leaves.p, &p->nr_msrs,
                              p->msrs.p);
    }
    case XEN_DOMCTL_set_cpu_policy:
        return set_cpu_policy(d, &dc->u.cpu_policy);
    default:
        return unhandled("domctl", dc->cmd, 0);
    }
}

/* ---- sysctl ---- */

static long do_sysctl(struct xen_sysctl *sc)
{
    long rc;

    if (!sc)
        return -EFAULT;
    buf_check(sc, sizeof(*sc), "sysctl");
    if (sc->interface_version != XEN_SYSCTL_INTERFACE_VERSION) {
        if (sim_strict_mode)
            sim_strict_fail("sysctl %u: interface version %#x, want %#x",
                            sc->cmd, sc->interface_version,
                            XEN_SYSCTL_INTERFACE_VERSION);
        return -EACCES;
    }
    if ((rc = sim_account(__HYPERVISOR_sysctl, (int)sc->cmd, DOMID_INVALID)))
        return rc;
    switch (sc->cmd) {
    case XEN_SYSCTL_get_cpu_policy: {
        struct xen_sysctl_cpu_policy *p = &sc->u.cpu_policy;
        static struct sim_dom host;  /* only the policy fields are used */
        if (p->index > XEN_SYSCTL_cpu_policy_hvm_default)
            return -EINVAL;
        if (!host.nr_leaves)
            sim_default_cpu_policy(&host);
        return cpu_policy_out(&host, &p->nr_leaves, p->leaves.p, &p->nr_msrs,
                              p->msrs.p);
    }
    case XEN_SYSCTL_physinfo: {
        struct xen_sysctl_physinfo *pi = &sc->u.physinfo;
        memset(pi, 0, sizeof(*pi));
        pi->threads_per_core = 1;
        pi->cores_per_socket = 2;
        pi->nr_cpus = 2;
        pi->max_cpu_id = 1;
        pi->nr_nodes = 1;
        pi->cpu_khz = 2400000;
        pi->total_pages = 24ull << 18;
        pi->free_pages = 16ull << 18;
        pi->capabilities = XEN_SYSCTL_PHYSCAP_hvm | XEN_SYSCTL_PHYSCAP_hap;
        return 0;
    }
    default:
        return unhandled("sysctl", sc->cmd, 0);
    }
}

/* ---- dispatch ---- */

static long dispatch(uint64_t op, const uint64_t a[6]);

static long do_multicall(multicall_entry_t *calls, uint64_t nr)
{
    if (nr && !calls)
        return -EFAULT;
    buf_check(calls, nr * sizeof(*calls), "multicall list");
    for (uint64_t i = 0; i < nr; i++) {
        if (calls[i].op == __HYPERVISOR_multicall) {
            calls[i].result = (xen_ulong_t)-EINVAL;
            continue;
        }
        calls[i].result = (xen_ulong_t)dispatch(calls[i].op, calls[i].args);
    }
    return 0;
}

static long dispatch(uint64_t op, const uint64_t a[6])
{
    void *p1 = (void *)(uintptr_t)a[1];

    switch (op) {
    case __HYPERVISOR_xen_version:
        sim_account(__HYPERVISOR_xen_version, (int)a[0], DOMID_INVALID);
        return do_xen_version(a[0], p1);
    case __HYPERVISOR_memory_op:
        return do_memory_op(a[0], p1);
    case __HYPERVISOR_multicall:
        sim_account(__HYPERVISOR_multicall, 0, DOMID_INVALID);
        return do_multicall((multicall_entry_t *)(uintptr_t)a[0], a[1]);
    case __HYPERVISOR_domctl:
        return do_domctl((struct xen_domctl *)(uintptr_t)a[0]);
    case __HYPERVISOR_sysctl:
        return do_sysctl((struct xen_sysctl *)(uintptr_t)a[0]);
    case __HYPERVISOR_hvm_op:
        return do_hvm_op(a[0], p1);
    case __HYPERVISOR_sched_op:
        return do_sched_op(a[0], p1);
    case __HYPERVISOR_grant_table_op:
        return do_grant_table_op(a[0], p1, a[2]);
    default:
        sim_account((unsigned int)(op < 64 ? op : 63), 0, DOMID_INVALID);
        return unhandled("hypercall", op, a[0]);
    }
}

long sim_hypercall(uint64_t op, const uint64_t arg[5])
{
    uint64_t a[6] = {arg[0], arg[1], arg[2], arg[3], arg[4], 0};
    long rc;

    uint64_t t0;

    if (sim_attach())
        return -ENODEV;
    t0 = sim_now_ns();
    sim_lock();
    rc = dispatch(op, a);
    sim_unlock();
    __atomic_fetch_add(&sim->ctr.hypercall_ns, sim_now_ns() - t0,
                       __ATOMIC_RELAXED);
    return rc;
}
