// SPDX-License-Identifier: GPL-3.0-only
//! Save operations for x86 HVM (and PVH) guests, as `xg_sr_save_x86_hvm.c` at 4.17.

use super::{Ctx, Res, SaveOps};
use crate::error::Errno;
use crate::hv::Hypervisor;
use crate::stream::{self, rec};

/// The state of the x86 HVM hooks during one save.
#[derive(Debug, Default)]
pub struct SaveState {
    /// QEMU's log-dirty mode was switched on by setup (cleanup switches it off).
    pub qemu_enabled_logdirty: bool,
}

/// The HVM params the 4.17 saver sends, in its order (zero values are left out).
pub const HVM_PARAMS: [u32; 16] = [
    1,  // STORE_PFN
    5,  // IOREQ_PFN
    6,  // BUFIOREQ_PFN
    27, // PAGING_RING_PFN
    28, // MONITOR_RING_PFN
    29, // SHARING_RING_PFN
    37, // VM86_TSS_SIZED
    17, // CONSOLE_PFN
    19, // ACPI_IOPORTS_LOCATION
    9,  // VIRIDIAN
    12, // IDENT_PT
    34, // VM_GENERATION_ID_ADDR
    32, // IOREQ_SERVER_PFN
    33, // NR_IOREQ_SERVER_PAGES
    36, // X87_FIP_WIDTH
    38, // MCA_CAP
];

/// The x86 HVM operations table.
pub fn ops<H: Hypervisor>() -> SaveOps<H> {
    SaveOps {
        guest_type: stream::DHDR_TYPE_X86_HVM,
        type_name: "x86 HVM",
        pfn_to_gfn: |_, pfn| Some(pfn), // identity: HVM pfns are gfns
        setup,
        static_data,
        start_of_stream: nothing,
        start_of_checkpoint: nothing,
        end_of_checkpoint,
        check_vm_state: nothing,
        cleanup,
    }
}

fn nothing<H: Hypervisor>(_: &mut Ctx<'_, H>) -> Res {
    Ok(())
}

fn setup<H: Hypervisor>(ctx: &mut Ctx<'_, H>) -> Res {
    ctx.p2m_size = ctx
        .xen
        .nr_gpfns(ctx.dom)
        .map_err(|e| ctx.perror("Unable to obtain the guest p2m size", e))?;
    if ctx.cb.switch_qemu_logdirty(ctx.dom, true) != 0 {
        return Err(ctx.perror("Couldn't enable qemu log-dirty mode", Errno::last()));
    }
    ctx.x86_hvm.qemu_enabled_logdirty = true;
    log::debug!("xcsave: d{} p2m_size {:#x}", ctx.dom, ctx.p2m_size);
    Ok(())
}

/// The CPUID and MSR policy records (each left out when empty, as stock does).
fn static_data<H: Hypervisor>(ctx: &mut Ctx<'_, H>) -> Res {
    let policy = match ctx.xen.cpu_policy(ctx.dom) {
        Ok(p) => p,
        Err((e, msg)) => return Err(ctx.perror(&msg, e)),
    };
    if !policy.cpuid.is_empty() {
        ctx.write_record(rec::X86_CPUID_POLICY, &[&policy.cpuid])?;
    }
    if !policy.msrs.is_empty() {
        ctx.write_record(rec::X86_MSR_POLICY, &[&policy.msrs])?;
    }
    Ok(())
}

fn write_tsc_info<H: Hypervisor>(ctx: &mut Ctx<'_, H>) -> Res {
    let t = ctx
        .xen
        .tsc_info(ctx.dom)
        .map_err(|e| ctx.perror("Unable to obtain TSC information", e))?;
    let body = stream::tsc_info_body(t.mode, t.khz, t.nsec, t.incarnation);
    ctx.write_record(rec::X86_TSC_INFO, &[&body])
}

fn write_hvm_context<H: Hypervisor>(ctx: &mut Ctx<'_, H>) -> Res {
    let size = ctx
        .xen
        .hvm_context_size(ctx.dom)
        .map_err(|e| ctx.perror("Couldn't get HVM context size from Xen", e))?;
    let mut buf = crate::fallible::try_zeroed::<u8>(size).map_err(|e| {
        ctx.perror(
            &format!("Unable to allocate {size} bytes for HVM context"),
            e,
        )
    })?;
    let used = ctx
        .xen
        .hvm_context(ctx.dom, &mut buf)
        .map_err(|e| ctx.perror("Couldn't get HVM context from Xen", e))?;
    buf.truncate(used);
    ctx.write_record(rec::HVM_CONTEXT, &[&buf])
        .inspect_err(|s| {
            ctx.perror("error write HVM_CONTEXT record", s.errno);
        })
}

fn write_hvm_params<H: Hypervisor>(ctx: &mut Ctx<'_, H>) -> Res {
    let mut entries = Vec::with_capacity(HVM_PARAMS.len());
    for index in HVM_PARAMS {
        let value = ctx
            .xen
            .hvm_param(ctx.dom, index)
            .map_err(|e| ctx.perror(&format!("Failed to get HVMPARAM at index {index}"), e))?;
        if value != 0 {
            entries.push((index as u64, value));
        }
    }
    if entries.is_empty() {
        return Ok(());
    }
    let body = stream::hvm_params_body(&entries);
    ctx.write_record(rec::HVM_PARAMS, &[&body])
        .inspect_err(|s| {
            ctx.perror("Failed to write HVM_PARAMS record", s.errno);
        })
}

/// TSC_INFO, HVM_CONTEXT, HVM_PARAMS: 4.17's order.
fn end_of_checkpoint<H: Hypervisor>(ctx: &mut Ctx<'_, H>) -> Res {
    write_tsc_info(ctx)?;
    write_hvm_context(ctx)?;
    write_hvm_params(ctx)
}

fn cleanup<H: Hypervisor>(ctx: &mut Ctx<'_, H>) -> Res {
    if ctx.x86_hvm.qemu_enabled_logdirty && ctx.cb.switch_qemu_logdirty(ctx.dom, false) != 0 {
        return Err(ctx.perror("Couldn't disable qemu log-dirty mode", Errno::last()));
    }
    Ok(())
}
