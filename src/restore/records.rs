// SPDX-License-Identifier: GPL-3.0-only
//! The records an x86 HVM/PVH restore acts on, decoded and validated as the 4.17/4.20 stock
//! restore validates them (`xg_sr_restore.c`, `xg_sr_restore_x86_hvm.c`,
//! `xg_sr_common_x86.c`), plus the page-type rules of `xg_sr_common.h`.

use super::{Error, Result};
use crate::abi::xen::{page_type_has_data, pfinfo, PAGE_SIZE};
use crate::stream::{self, rec};

/// `sizeof(xen_cpuid_leaf_t)`: leaf, subleaf, eax, ebx, ecx, edx.
pub const CPUID_LEAF_SIZE: usize = 24;
/// `sizeof(xen_msr_entry_t)`: idx, flags, val.
pub const MSR_ENTRY_SIZE: usize = 16;
/// `sizeof(struct xc_sr_rec_x86_tsc_info)`.
pub const TSC_INFO_SIZE: usize = 24;
/// The HVM_PARAMS and PAGE_DATA headers: count, reserved.
pub const COUNT_HEADER_SIZE: usize = 8;
/// One HVM_PARAMS entry: index, value.
pub const HVM_PARAM_ENTRY_SIZE: usize = 16;

/// Whether a page of type `t` is backed by guest RAM and must be populated (stock's
/// `page_type_to_populate`): every data-carrying type, and XALLOC; not XTAB or BROKEN.
pub fn page_type_to_populate(t: u32) -> bool {
    t == pfinfo::XALLOC || page_type_has_data(u64::from(t))
}

/// One PAGE_DATA record: `count` pfns with their types, and the contents of the pages whose
/// type carries data, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageData {
    /// The pfns, in record order (duplicates allowed, as stock allows them).
    pub pfns: Vec<u64>,
    /// `XEN_DOMCTL_PFINFO_*` type of each pfn (already validated as known).
    pub types: Vec<u32>,
    /// `PAGE_SIZE` bytes for each pfn whose type has stream data, in order.
    pub data: Vec<u8>,
}

impl PageData {
    /// Each pfn with its type and, for data-carrying types, its page.
    pub fn pages(&self) -> impl Iterator<Item = (u64, u32, Option<&[u8]>)> + '_ {
        let mut pages = self.data.chunks_exact(PAGE_SIZE);
        self.pfns.iter().zip(&self.types).map(move |(&pfn, &t)| {
            let page = if page_type_has_data(u64::from(t)) {
                pages.next()
            } else {
                None
            };
            (pfn, t, page)
        })
    }

    /// Number of pages with data.
    pub fn nr_data_pages(&self) -> usize {
        self.data.len() / PAGE_SIZE
    }
}

/// `struct xc_sr_rec_x86_tsc_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscInfo {
    /// TSC mode.
    pub mode: u32,
    /// Frequency in kHz.
    pub khz: u32,
    /// Elapsed nanoseconds.
    pub nsec: u64,
    /// Incarnation.
    pub incarnation: u32,
}

/// One record of an x86 HVM/PVH stream, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// END.
    End,
    /// PAGE_DATA.
    PageData(PageData),
    /// X86_TSC_INFO.
    TscInfo(TscInfo),
    /// HVM_CONTEXT: the opaque blob for `xc_domain_hvm_setcontext` (never empty).
    HvmContext(Vec<u8>),
    /// HVM_PARAMS: (index, value) pairs in record order (possibly none).
    HvmParams(Vec<(u64, u64)>),
    /// VERIFY: later pages are compared, not written.
    Verify,
    /// CHECKPOINT.
    Checkpoint,
    /// STATIC_DATA_END.
    StaticDataEnd,
    /// X86_CPUID_POLICY: whole `xen_cpuid_leaf_t`s (never empty).
    CpuidPolicy(Vec<u8>),
    /// X86_MSR_POLICY: whole `xen_msr_entry_t`s (never empty).
    MsrPolicy(Vec<u8>),
    /// A record with the optional bit set, which stock ignores (its body was skipped).
    Optional(u32),
}

impl Record {
    /// The record type number.
    pub fn rtype(&self) -> u32 {
        match self {
            Record::End => rec::END,
            Record::PageData(_) => rec::PAGE_DATA,
            Record::TscInfo(_) => rec::X86_TSC_INFO,
            Record::HvmContext(_) => rec::HVM_CONTEXT,
            Record::HvmParams(_) => rec::HVM_PARAMS,
            Record::Verify => rec::VERIFY,
            Record::Checkpoint => rec::CHECKPOINT,
            Record::StaticDataEnd => rec::STATIC_DATA_END,
            Record::CpuidPolicy(_) => rec::X86_CPUID_POLICY,
            Record::MsrPolicy(_) => rec::X86_MSR_POLICY,
            Record::Optional(t) => *t,
        }
    }

    /// Heap and inline bytes this record holds while buffered in a checkpoint.
    pub fn held_bytes(&self) -> usize {
        let heap = match self {
            Record::PageData(p) => p.data.len() + 8 * p.pfns.len() + 4 * p.types.len(),
            Record::HvmContext(b) | Record::CpuidPolicy(b) | Record::MsrPolicy(b) => b.len(),
            Record::HvmParams(v) => HVM_PARAM_ENTRY_SIZE * v.len(),
            _ => 0,
        };
        std::mem::size_of::<Record>() + heap
    }
}

fn invalid(rtype: u32, what: String) -> Error {
    Error::Invalid { rtype, what }
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// Check an X86_TSC_INFO length before its body is read.
pub fn check_tsc_info_length(length: u32) -> Result<()> {
    if length as usize != TSC_INFO_SIZE {
        return Err(invalid(
            rec::X86_TSC_INFO,
            format!("X86_TSC_INFO record wrong size: length {length}, expected {TSC_INFO_SIZE}"),
        ));
    }
    Ok(())
}

/// Decode an X86_TSC_INFO body (24 bytes; the reserved word is ignored, as stock does).
pub fn decode_tsc_info(body: &[u8]) -> Result<TscInfo> {
    check_tsc_info_length(body.len() as u32)?;
    Ok(TscInfo {
        mode: u32_at(body, 0),
        khz: u32_at(body, 4),
        nsec: u64_at(body, 8),
        incarnation: u32_at(body, 16),
    })
}

/// Check an HVM_CONTEXT length: stock's `update_blob()` refuses an empty blob.
pub fn check_hvm_context_length(length: u32) -> Result<()> {
    if length == 0 {
        return Err(invalid(
            rec::HVM_CONTEXT,
            "Unable to allocate 0 bytes for hvm context".into(),
        ));
    }
    Ok(())
}

/// Check a CPUID or MSR policy length: non-zero, whole entries.
pub fn check_policy_length(rtype: u32, length: u32) -> Result<()> {
    let (name, size) = match rtype {
        rec::X86_CPUID_POLICY => ("X86_CPUID_POLICY", CPUID_LEAF_SIZE),
        _ => ("X86_MSR_POLICY", MSR_ENTRY_SIZE),
    };
    if length == 0 || !(length as usize).is_multiple_of(size) {
        return Err(invalid(
            rtype,
            format!("{name} size {length} should be multiple of {size}"),
        ));
    }
    Ok(())
}

/// Check an HVM_PARAMS record: the record `length` against the header's `count`.
pub fn check_hvm_params(length: u32, count: u32) -> Result<()> {
    let expected = COUNT_HEADER_SIZE as u64 + count as u64 * HVM_PARAM_ENTRY_SIZE as u64;
    if length as u64 != expected {
        return Err(invalid(
            rec::HVM_PARAMS,
            format!(
                "HVM_PARAMS record truncated: header {COUNT_HEADER_SIZE}, count {count}, \
                 expected len {}, got {length}",
                expected - COUNT_HEADER_SIZE as u64
            ),
        ));
    }
    Ok(())
}

/// Check an HVM_PARAMS length before its header is read.
pub fn check_hvm_params_header(length: u32) -> Result<()> {
    if (length as usize) < COUNT_HEADER_SIZE {
        return Err(invalid(
            rec::HVM_PARAMS,
            format!(
                "HVM_PARAMS record truncated: length {length}, header size {COUNT_HEADER_SIZE}"
            ),
        ));
    }
    Ok(())
}

/// Validate one PAGE_DATA entry (index `i` of the record): the pfn below `pfn_limit` and a
/// known type. Bits 52–59 are reserved and ignored, as stock ignores them.
pub fn decode_page_entry(entry: u64, i: usize, pfn_limit: u64) -> Result<(u64, u32)> {
    let pfn = entry & stream::PAGE_DATA_PFN_MASK;
    let ptype = ((entry & stream::PAGE_DATA_TYPE_MASK) >> 32) as u32;
    if pfn >= pfn_limit {
        return Err(invalid(
            rec::PAGE_DATA,
            format!("pfn {pfn:#x} (index {i}) outside domain maximum"),
        ));
    }
    if !crate::abi::xen::is_known_page_type(ptype) {
        return Err(invalid(
            rec::PAGE_DATA,
            format!("Unknown type {ptype:#x} for pfn {pfn:#x} (index {i})"),
        ));
    }
    Ok((pfn, ptype))
}

/// Check a PAGE_DATA record's `length` and `count` before its pfn list is read.
pub fn check_page_data_header(length: u32, count: u32, max_batch: u32) -> Result<()> {
    if count < 1 {
        return Err(invalid(
            rec::PAGE_DATA,
            "Expected at least 1 pfn in PAGE_DATA record".into(),
        ));
    }
    if (length as u64) < COUNT_HEADER_SIZE as u64 + 8 * count as u64 {
        return Err(invalid(
            rec::PAGE_DATA,
            format!(
                "PAGE_DATA record (length {length}) too short to contain {count} pfns worth of \
                 information"
            ),
        ));
    }
    if count > max_batch {
        return Err(invalid(
            rec::PAGE_DATA,
            format!("PAGE_DATA record of {count} pfns exceeds the batch bound {max_batch}"),
        ));
    }
    Ok(())
}

/// Check a PAGE_DATA record's `length` against its count and number of data pages.
pub fn check_page_data_length(length: u32, count: u32, pages_of_data: u32) -> Result<()> {
    let pfns = 8 * count as u64;
    let data = PAGE_SIZE as u64 * pages_of_data as u64;
    if length as u64 != COUNT_HEADER_SIZE as u64 + pfns + data {
        return Err(invalid(
            rec::PAGE_DATA,
            format!(
                "PAGE_DATA record wrong size: length {length}, expected {COUNT_HEADER_SIZE} + \
                 {pfns} + {data}"
            ),
        ));
    }
    Ok(())
}

/// The PAGE_DATA minimum length (its count header).
pub fn check_page_data_min(length: u32) -> Result<()> {
    if (length as usize) < COUNT_HEADER_SIZE {
        return Err(invalid(
            rec::PAGE_DATA,
            format!("PAGE_DATA record truncated: length {length}, min {COUNT_HEADER_SIZE}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::page_data_entry;

    #[test]
    fn populate_rules_match_stock() {
        assert!(page_type_to_populate(pfinfo::NOTAB));
        assert!(page_type_to_populate(pfinfo::XALLOC));
        assert!(page_type_to_populate((2 << 28) | pfinfo::LPINTAB));
        assert!(!page_type_to_populate(pfinfo::XTAB));
        assert!(!page_type_to_populate(pfinfo::BROKEN));
        assert!(
            !page_type_to_populate(5 << 28),
            "unknown types never populate"
        );
    }

    #[test]
    fn page_entries() {
        assert_eq!(decode_page_entry(7, 0, 8).unwrap(), (7, 0));
        let e = decode_page_entry(8, 3, 8).unwrap_err();
        assert_eq!(e.message(), "pfn 0x8 (index 3) outside domain maximum");
        let x = page_data_entry(5, pfinfo::XTAB as u64);
        assert_eq!(decode_page_entry(x, 0, 8).unwrap(), (5, pfinfo::XTAB));
        // Reserved bits 52..59 are ignored, as stock ignores them.
        assert_eq!(decode_page_entry((0xff << 52) | 5, 0, 8).unwrap(), (5, 0));
        let bad = page_data_entry(5, 6 << 28);
        let e = decode_page_entry(bad, 2, 8).unwrap_err();
        assert_eq!(e.message(), "Unknown type 0x60000000 for pfn 0x5 (index 2)");
        assert_eq!(e.errno(), libc::EINVAL);
    }

    #[test]
    fn page_data_header_checks() {
        assert!(check_page_data_min(7).is_err());
        assert!(check_page_data_min(8).is_ok());
        assert!(check_page_data_header(8, 0, 1024).is_err());
        assert!(check_page_data_header(15, 1, 1024).is_err());
        assert!(check_page_data_header(16, 1, 1024).is_ok());
        // Stock accepts any count the length covers; we bound it by the batch size.
        let n = 1025;
        assert!(check_page_data_header(8 + 8 * n, n, 1024).is_err());
        assert!(check_page_data_header(8 + 8 * n, n, 2048).is_ok());
        // Large counts do not overflow.
        assert!(check_page_data_header(u32::MAX, u32::MAX, u32::MAX).is_err());
        assert!(check_page_data_length(16 + 4096, 1, 1).is_ok());
        assert!(check_page_data_length(16, 1, 1).is_err());
        assert!(check_page_data_length(u32::MAX, u32::MAX, u32::MAX).is_err());
    }

    #[test]
    fn small_record_checks() {
        let body = stream::tsc_info_body(2, 1_000_000, 99, 4);
        let t = decode_tsc_info(&body).unwrap();
        assert_eq!(
            t,
            TscInfo {
                mode: 2,
                khz: 1_000_000,
                nsec: 99,
                incarnation: 4
            }
        );
        assert!(decode_tsc_info(&body[..23]).is_err());
        assert!(check_hvm_context_length(0).is_err());
        assert!(check_hvm_context_length(1).is_ok());
        assert!(check_policy_length(rec::X86_CPUID_POLICY, 48).is_ok());
        assert!(check_policy_length(rec::X86_CPUID_POLICY, 32).is_err());
        assert!(check_policy_length(rec::X86_CPUID_POLICY, 0).is_err());
        assert!(check_policy_length(rec::X86_MSR_POLICY, 32).is_ok());
        assert!(check_policy_length(rec::X86_MSR_POLICY, 24).is_err());
        assert!(check_hvm_params_header(7).is_err());
        assert!(
            check_hvm_params(8, 0).is_ok(),
            "stock tolerates empty HVM_PARAMS"
        );
        assert!(check_hvm_params(40, 2).is_ok());
        assert!(check_hvm_params(40, 3).is_err());
        assert!(check_hvm_params(8, u32::MAX).is_err());
    }

    #[test]
    fn pages_pair_data_with_data_types() {
        let p = PageData {
            pfns: vec![1, 2, 3],
            types: vec![0, pfinfo::XTAB, 1 << 28],
            data: [vec![0xaa; PAGE_SIZE], vec![0xbb; PAGE_SIZE]].concat(),
        };
        let v: Vec<_> = p.pages().map(|(f, t, d)| (f, t, d.map(|d| d[0]))).collect();
        assert_eq!(
            v,
            vec![
                (1, 0, Some(0xaa)),
                (2, pfinfo::XTAB, None),
                (3, 1 << 28, Some(0xbb))
            ]
        );
        assert_eq!(p.nr_data_pages(), 2);
        let r = Record::PageData(p);
        assert_eq!(r.rtype(), rec::PAGE_DATA);
        assert!(r.held_bytes() >= 2 * PAGE_SIZE + 36);
    }
}
