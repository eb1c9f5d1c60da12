// SPDX-License-Identifier: GPL-3.0-only
//! Pure encoding of the Xen migration stream v2 (revision 3), as written by the 4.17 saver.
//!
//! Everything is little-endian, as the image header announces. Records are an 8-byte header
//! (type, length) followed by `length` bytes of body and zero padding to an 8-byte boundary.
//! The spec is `docs/specs/libxc-migration-stream.pandoc` in Xen's tree. Page size, batch
//! size and page types are Xen facts, in `abi::xen`.

use crate::abi::xen::{PAGE_SHIFT, PAGE_SIZE};

/// Image header marker.
pub const IHDR_MARKER: u64 = 0xffff_ffff_ffff_ffff;
/// Image header id ("XENF"), stored big-endian.
pub const IHDR_ID: u32 = 0x5845_4E46;
/// Stream version written.
pub const IHDR_VERSION: u32 = 3;
/// Domain type of the x86 PV stream.
pub const DHDR_TYPE_X86_PV: u32 = 1;
/// Domain type of the x86 HVM stream (HVM and PVH guests).
pub const DHDR_TYPE_X86_HVM: u32 = 2;
/// Records are padded to `1 << REC_ALIGN_ORDER` bytes.
pub const REC_ALIGN_ORDER: u32 = 3;
/// Largest record body the stock tools accept (128 MiB).
pub const REC_LENGTH_MAX: u32 = 128 << 20;
/// The pfn bits of a PAGE_DATA entry (bits 52–59 are reserved, 60–63 the type).
pub const PAGE_DATA_PFN_MASK: u64 = 0x000f_ffff_ffff_ffff;
/// The type bits of a PAGE_DATA entry; shifted right by 32 they give `XEN_DOMCTL_PFINFO_*`.
pub const PAGE_DATA_TYPE_MASK: u64 = 0xf000_0000_0000_0000;

/// Record types used by the x86 HVM saver (and the COLO back channel).
pub mod rec {
    /// End of stream.
    pub const END: u32 = 0x00;
    /// A batch of pages.
    pub const PAGE_DATA: u32 = 0x01;
    /// TSC mode and frequency.
    pub const X86_TSC_INFO: u32 = 0x08;
    /// The opaque HVM context blob.
    pub const HVM_CONTEXT: u32 = 0x09;
    /// Selected HVM params.
    pub const HVM_PARAMS: u32 = 0x0a;
    /// Verify mode marker (debug saves).
    pub const VERIFY: u32 = 0x0d;
    /// End of one checkpoint.
    pub const CHECKPOINT: u32 = 0x0e;
    /// COLO back channel: the secondary's dirty pfns.
    pub const CHECKPOINT_DIRTY_PFN_LIST: u32 = 0x0f;
    /// End of the static data.
    pub const STATIC_DATA_END: u32 = 0x10;
    /// Serialised CPUID leaves.
    pub const X86_CPUID_POLICY: u32 = 0x11;
    /// Serialised MSR entries.
    pub const X86_MSR_POLICY: u32 = 0x12;
    /// Set on record types a receiver may ignore.
    pub const OPTIONAL: u32 = 0x8000_0000;
}

/// Bytes of padding after a body of `len` bytes.
pub fn padding(len: usize) -> usize {
    let align = 1usize << REC_ALIGN_ORDER;
    (align - len % align) % align
}

/// Zero bytes used for padding.
pub static ZEROES: [u8; 8] = [0; 8];

/// The 24-byte image header.
pub fn image_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..8].copy_from_slice(&IHDR_MARKER.to_le_bytes());
    h[8..12].copy_from_slice(&IHDR_ID.to_be_bytes());
    h[12..16].copy_from_slice(&IHDR_VERSION.to_be_bytes());
    // options: little endian (0), stored big-endian; reserved fields zero.
    h
}

/// The 16-byte domain header. `xen_version` is `xc_version(XENVER_version)`: major<<16|minor.
pub fn domain_header(guest_type: u32, xen_version: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&guest_type.to_le_bytes());
    h[4..6].copy_from_slice(&(PAGE_SHIFT as u16).to_le_bytes());
    h[8..12].copy_from_slice(&((xen_version >> 16) & 0xffff).to_le_bytes());
    h[12..16].copy_from_slice(&(xen_version & 0xffff).to_le_bytes());
    h
}

/// The 8-byte record header.
pub fn record_header(rtype: u32, length: u32) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[0..4].copy_from_slice(&rtype.to_le_bytes());
    h[4..8].copy_from_slice(&length.to_le_bytes());
    h
}

/// A record too long for the format.
#[derive(Debug, PartialEq, Eq)]
pub struct TooLong {
    /// The record type.
    pub rtype: u32,
    /// The padded length that was asked for.
    pub length: usize,
}

impl std::fmt::Display for TooLong {
    /// Stock's message for a record over [`REC_LENGTH_MAX`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Record (0x{:08x}, {}) length {:#x} exceeds max ({:#x})",
            self.rtype,
            rec_type_name(self.rtype),
            self.length,
            REC_LENGTH_MAX
        )
    }
}

/// The header and the padding that frame a record body of `len` bytes.
pub fn record_frame(rtype: u32, len: usize) -> Result<([u8; 8], &'static [u8]), TooLong> {
    let padded = len + padding(len);
    if padded > REC_LENGTH_MAX as usize {
        return Err(TooLong {
            rtype,
            length: padded,
        });
    }
    Ok((record_header(rtype, len as u32), &ZEROES[..padding(len)]))
}

/// A whole record whose body is the concatenation of `parts`, padded, as one buffer.
#[cfg(test)]
pub fn encode_record(rtype: u32, parts: &[&[u8]]) -> Result<Vec<u8>, TooLong> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let (hdr, pad) = record_frame(rtype, len)?;
    let mut out = Vec::with_capacity(8 + len + pad.len());
    out.extend_from_slice(&hdr);
    for p in parts {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(pad);
    Ok(out)
}

/// The body of an X86_TSC_INFO record.
pub fn tsc_info_body(mode: u32, khz: u32, nsec: u64, incarnation: u32) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[0..4].copy_from_slice(&mode.to_le_bytes());
    b[4..8].copy_from_slice(&khz.to_le_bytes());
    b[8..16].copy_from_slice(&nsec.to_le_bytes());
    b[16..20].copy_from_slice(&incarnation.to_le_bytes());
    b
}

/// The body of an HVM_PARAMS record: count, reserved, then (index, value) pairs.
pub fn hvm_params_body(entries: &[(u64, u64)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + 16 * entries.len());
    b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    for (i, v) in entries {
        b.extend_from_slice(&i.to_le_bytes());
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

/// The PAGE_DATA pfn entry: the type in the top bits, the pfn below, as stock builds it
/// (`type << 32 | pfn`).
pub fn page_data_entry(pfn: u64, ptype: u64) -> u64 {
    ptype.wrapping_shl(32) | pfn
}

/// Everything of a PAGE_DATA record that precedes the page contents: record header, the
/// count header and the pfn list. `entries` come from [`page_data_entry`], `nr_pages` is the
/// number of pages with data that follow.
pub fn page_data_prefix(entries: &[u64], nr_pages: usize) -> Result<Vec<u8>, TooLong> {
    let length = 8 + 8 * entries.len() + PAGE_SIZE * nr_pages;
    if length > REC_LENGTH_MAX as usize {
        return Err(TooLong {
            rtype: rec::PAGE_DATA,
            length,
        });
    }
    let mut out = Vec::with_capacity(16 + 8 * entries.len());
    out.extend_from_slice(&record_header(rec::PAGE_DATA, length as u32));
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.to_le_bytes());
    }
    Ok(out)
}

/// Stock's name of a record type, for messages.
pub fn rec_type_name(t: u32) -> &'static str {
    match t {
        rec::END => "End",
        rec::PAGE_DATA => "Page data",
        rec::X86_TSC_INFO => "x86 TSC info",
        rec::HVM_CONTEXT => "HVM context",
        rec::HVM_PARAMS => "HVM params",
        rec::VERIFY => "Verify",
        rec::CHECKPOINT => "Checkpoint",
        rec::CHECKPOINT_DIRTY_PFN_LIST => "Checkpoint dirty pfn list",
        rec::STATIC_DATA_END => "Static data end",
        rec::X86_CPUID_POLICY => "x86 CPUID policy",
        rec::X86_MSR_POLICY => "x86 MSR policy",
        2..=7 | 0x0b | 0x0c => "x86 PV record",
        _ => "Reserved",
    }
}

/// Where stream bytes go: the caller's io_fd, or memory in tests.
pub trait Sink {
    /// Write all of `parts`, in order, as one logical write (retrying short writes).
    fn write_parts(&mut self, parts: &[&[u8]]) -> crate::error::Result<()>;
}

#[cfg(any(test, feature = "testkit"))]
impl Sink for Vec<u8> {
    fn write_parts(&mut self, parts: &[&[u8]]) -> crate::error::Result<()> {
        for p in parts {
            self.extend_from_slice(p);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::xen::{pfinfo, MAX_BATCH_SIZE};

    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }

    #[test]
    fn image_header_layout() {
        let h = image_header();
        assert_eq!(&h[0..8], &[0xff; 8]);
        assert_eq!(&h[8..12], b"XENF");
        assert_eq!(&h[12..16], &[0, 0, 0, 3]);
        assert_eq!(
            &h[16..24],
            &[0; 8],
            "options little-endian and reserved zero"
        );
    }

    #[test]
    fn domain_header_layout() {
        let h = domain_header(DHDR_TYPE_X86_HVM, (4 << 16) | 17);
        assert_eq!(u32_at(&h, 0), 2);
        assert_eq!(u16::from_le_bytes([h[4], h[5]]), 12);
        assert_eq!(&h[6..8], &[0, 0]);
        assert_eq!(u32_at(&h, 8), 4);
        assert_eq!(u32_at(&h, 12), 17);
    }

    #[test]
    fn records_are_padded_to_eight() {
        for len in 0..20usize {
            let body = vec![0xabu8; len];
            let r = encode_record(0x42, &[&body]).unwrap();
            assert_eq!(r.len() % 8, 0, "len {len}");
            assert_eq!(u32_at(&r, 0), 0x42);
            assert_eq!(u32_at(&r, 4) as usize, len, "length excludes padding");
            assert_eq!(&r[8..8 + len], &body[..]);
            assert!(r[8 + len..].iter().all(|&b| b == 0), "padding is zero");
            assert!(r.len() - 8 - len < 8);
        }
    }

    #[test]
    fn empty_records() {
        assert_eq!(encode_record(rec::END, &[]).unwrap(), vec![0u8; 8]);
        let c = encode_record(rec::CHECKPOINT, &[]).unwrap();
        assert_eq!(c, [14, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn split_record_concatenates_parts() {
        let r = encode_record(rec::HVM_PARAMS, &[&[1, 2, 3], &[4, 5]]).unwrap();
        assert_eq!(u32_at(&r, 4), 5);
        assert_eq!(&r[8..13], &[1, 2, 3, 4, 5]);
        assert_eq!(r.len(), 16);
    }

    #[test]
    fn oversized_record_is_refused() {
        let big = vec![0u8; REC_LENGTH_MAX as usize + 1];
        let e = encode_record(rec::HVM_CONTEXT, &[&big]).unwrap_err();
        assert_eq!(e.rtype, rec::HVM_CONTEXT);
        assert!(encode_record(rec::HVM_CONTEXT, &[&big[..REC_LENGTH_MAX as usize]]).is_ok());
    }

    #[test]
    fn tsc_info_layout() {
        let b = tsc_info_body(1, 2_000_000, 0x1122_3344_5566_7788, 7);
        assert_eq!(u32_at(&b, 0), 1);
        assert_eq!(u32_at(&b, 4), 2_000_000);
        assert_eq!(&b[8..16], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(u32_at(&b, 16), 7);
        assert_eq!(u32_at(&b, 20), 0);
    }

    #[test]
    fn hvm_params_layout() {
        let b = hvm_params_body(&[(1, 0xfeff0), (36, 5)]);
        assert_eq!(b.len(), 8 + 32);
        assert_eq!(u32_at(&b, 0), 2);
        assert_eq!(u32_at(&b, 4), 0);
        assert_eq!(&b[8..16], &1u64.to_le_bytes());
        assert_eq!(&b[16..24], &0xfeff0u64.to_le_bytes());
        assert_eq!(&b[24..32], &36u64.to_le_bytes());
        assert_eq!(&b[32..40], &5u64.to_le_bytes());
    }

    #[test]
    fn page_data_framing() {
        let entries = [
            page_data_entry(5, 0),
            page_data_entry(6, pfinfo::XTAB as u64),
            page_data_entry(7, pfinfo::BROKEN as u64),
        ];
        assert_eq!(entries[1], 0xf000_0000_0000_0006);
        assert_eq!(entries[2], 0xd000_0000_0000_0007);
        let p = page_data_prefix(&entries, 1).unwrap();
        assert_eq!(p.len(), 8 + 8 + 24);
        assert_eq!(u32_at(&p, 0), rec::PAGE_DATA);
        assert_eq!(u32_at(&p, 4) as usize, 8 + 24 + PAGE_SIZE);
        assert_eq!(u32_at(&p, 8), 3);
        assert_eq!(u32_at(&p, 12), 0);
        assert_eq!(&p[16..24], &5u64.to_le_bytes());
        assert_eq!(&p[32..40], &entries[2].to_le_bytes());
        // A full batch fits well below the maximum.
        let full = vec![0u64; MAX_BATCH_SIZE];
        assert!(page_data_prefix(&full, MAX_BATCH_SIZE).is_ok());
    }

    #[test]
    fn padding_to_8() {
        assert_eq!(padding(0), 0);
        assert_eq!(padding(1), 7);
        assert_eq!(padding(8), 0);
    }
}
