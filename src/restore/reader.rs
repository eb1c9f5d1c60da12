// SPDX-License-Identifier: GPL-3.0-only
//! Read migration stream v2 from an untrusted [`Read`]: the image and domain headers, then one
//! record at a time (8-byte header, body, padding to 8 bytes).
//!
//! Bounds, all checked before the bytes they pay for are allocated:
//! - a record body is at most `REC_LENGTH_MAX` (128 MiB), as in stock;
//! - bodies are read in chunks and grown fallibly, so memory follows the bytes actually
//!   received: a header that lies about its length costs nothing it does not send; the one
//!   exception is PAGE_DATA's pages, allocated at once (at most `max_batch` pages, 4 MiB)
//!   once the pfn list has arrived and the length has been checked against it;
//! - PAGE_DATA: at most `max_batch` pfns (1024, stock's MAX_BATCH_SIZE; stock itself accepts
//!   any count the length covers), every pfn below `pfn_limit`, every type known, and the
//!   length equal to the header, the pfn list and one page per data-carrying type;
//! - bodies this restore does not keep (END, CHECKPOINT, optional records, …) are skipped
//!   without being stored.
//!
//! The reader never reads past the record it returns: after a CHECKPOINT the caller's
//! callback may read the toolstack's own records from the same descriptor.
//!
//! After a content error ([`ErrorKind::Record`](super::ErrorKind)) the rest of the record has
//! been consumed and the stream is still in step, as after stock's `read_record()`.

use super::records::{self, PageData, Record};
use super::{Error, Result};
use crate::abi::xen::{page_type_has_data, MAX_BATCH_SIZE, PAGE_SHIFT, PAGE_SIZE};
use crate::fallible;
use crate::stream::{self, padding, rec, DHDR_TYPE_X86_HVM, IHDR_ID, IHDR_MARKER, REC_LENGTH_MAX};
use std::io::{ErrorKind, Read};

/// Bytes read per chunk when a body is read incrementally or skipped.
const CHUNK: usize = 16 * 1024;

/// The bounds the stream is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Every pfn must be below this (the restore derives it from the guest; docs/restore.md).
    pub pfn_limit: u64,
    /// Most pfns in one PAGE_DATA record.
    pub max_batch: u32,
}

impl Limits {
    /// Bounds for a guest whose pfns are below `pfn_limit`, with stock's batch size.
    pub fn new(pfn_limit: u64) -> Limits {
        Limits {
            pfn_limit,
            max_batch: MAX_BATCH_SIZE as u32,
        }
    }
}

/// The image header's facts the restore uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// Stream version (2 or 3).
    pub version: u32,
}

/// The domain header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainHeader {
    /// `DHDR_TYPE_*`.
    pub guest_type: u32,
    /// Page shift.
    pub page_shift: u16,
    /// Xen major version of the sender (0: converted from the legacy format).
    pub xen_major: u32,
    /// Xen minor version (or the conversion script's version).
    pub xen_minor: u32,
}

impl DomainHeader {
    /// Stock's x86 HVM setup check: an HVM stream with 4 KiB pages.
    pub fn check_x86_hvm(&self) -> Result<()> {
        if self.guest_type != DHDR_TYPE_X86_HVM {
            let name = match self.guest_type {
                stream::DHDR_TYPE_X86_PV => "x86 PV",
                _ => "Reserved",
            };
            return Err(Error::WrongDomain(format!(
                "Unable to restore {name} domain into an x86 HVM domain"
            )));
        }
        if self.page_shift as u32 != PAGE_SHIFT {
            // Stock prints 1 << page_shift; a shift of 32 or more is printed as such.
            let size = 1u64.checked_shl(self.page_shift as u32).unwrap_or(0);
            return Err(Error::WrongDomain(format!(
                "Invalid page size {size} for x86 HVM domains"
            )));
        }
        Ok(())
    }
}

/// Read exactly `buf.len()` bytes, retrying EINTR; EOF early is `Truncated`.
fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8], what: &'static str) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(Error::Truncated {
                    what,
                    wanted: buf.len(),
                    got,
                })
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Io {
                    what,
                    errno: crate::error::Errno::from_io(&e).0,
                })
            }
        }
    }
    Ok(())
}

/// Read and check the 24-byte image header.
pub fn read_image_header<R: Read + ?Sized>(r: &mut R) -> Result<ImageHeader> {
    let mut h = [0u8; 24];
    read_full(r, &mut h, "Image Header")?;
    let marker = u64::from_le_bytes(h[0..8].try_into().expect("8 bytes"));
    let id = u32::from_be_bytes(h[8..12].try_into().expect("4 bytes"));
    let version = u32::from_be_bytes(h[12..16].try_into().expect("4 bytes"));
    let options = u16::from_be_bytes(h[16..18].try_into().expect("2 bytes"));
    if marker != IHDR_MARKER {
        return Err(Error::BadMarker(marker));
    }
    if id != IHDR_ID {
        return Err(Error::BadId(id));
    }
    if !(2..=3).contains(&version) {
        return Err(Error::BadVersion(version));
    }
    if options & 1 != 0 {
        return Err(Error::BigEndian);
    }
    Ok(ImageHeader { version })
}

/// Read the 16-byte domain header (its type is checked by [`DomainHeader::check_x86_hvm`]).
pub fn read_domain_header<R: Read + ?Sized>(r: &mut R) -> Result<DomainHeader> {
    let mut h = [0u8; 16];
    read_full(r, &mut h, "Domain Header")?;
    Ok(DomainHeader {
        guest_type: u32::from_le_bytes(h[0..4].try_into().expect("4 bytes")),
        page_shift: u16::from_le_bytes(h[4..6].try_into().expect("2 bytes")),
        xen_major: u32::from_le_bytes(h[8..12].try_into().expect("4 bytes")),
        xen_minor: u32::from_le_bytes(h[12..16].try_into().expect("4 bytes")),
    })
}

/// The unread rest of one record (body and padding).
struct Body<'r, R: Read + ?Sized> {
    r: &'r mut R,
    total: usize,
    remaining: usize,
}

impl<R: Read + ?Sized> Body<'_, R> {
    /// Read exactly `buf.len()` bytes of this record's body; a short read reports how much
    /// of the whole (padded) body arrived.
    fn read(&mut self, buf: &mut [u8]) -> Result<()> {
        debug_assert!(
            buf.len() <= self.remaining,
            "callers stay inside the record"
        );
        match read_full(self.r, buf, "data for record") {
            Ok(()) => {
                self.remaining -= buf.len();
                Ok(())
            }
            Err(Error::Truncated { what, got, .. }) => Err(Error::Truncated {
                what,
                wanted: self.total,
                got: self.total - self.remaining + got,
            }),
            Err(e) => Err(e),
        }
    }

    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Read `n` bytes into a new vector grown as the bytes arrive.
    fn vec(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut v: Vec<u8> = Vec::new();
        let mut chunk = [0u8; CHUNK];
        while v.len() < n {
            let want = (n - v.len()).min(CHUNK);
            self.read(&mut chunk[..want])?;
            if v.capacity() - v.len() < want {
                // Double, but never past what the record announced.
                let more = (n - v.len()).min(v.len().max(want));
                fallible::try_reserve(&mut v, more).map_err(|_| Error::NoMemory(v.len() + more))?;
            }
            v.extend_from_slice(&chunk[..want]);
        }
        Ok(v)
    }

    /// Consume whatever is left of the record without keeping it.
    fn skip(&mut self) -> Result<()> {
        let mut chunk = [0u8; CHUNK];
        while self.remaining > 0 {
            let want = self.remaining.min(CHUNK);
            self.read(&mut chunk[..want])?;
        }
        Ok(())
    }
}

/// Reads records from a stream whose headers have been read.
pub struct Reader<R: Read> {
    r: R,
    limits: Limits,
    /// A PAGE_DATA buffer given back by [`Reader::recycle`], reused by the next PAGE_DATA.
    spare: Vec<u8>,
}

impl<R: Read> Reader<R> {
    /// A reader of records checked against `limits`.
    pub fn new(r: R, limits: Limits) -> Reader<R> {
        Reader {
            r,
            limits,
            spare: Vec::new(),
        }
    }

    /// Give back a PAGE_DATA record's `data` once it is applied: the next PAGE_DATA reads its
    /// pages into it, with no fresh allocation and no zero-filling.
    pub fn recycle(&mut self, data: Vec<u8>) {
        if data.capacity() > self.spare.capacity() {
            self.spare = data;
        }
    }

    /// The bounds in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Bounds for the records read from now on (the pfn limit the guest's CPUID policy
    /// gives, once it is applied).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The underlying stream.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.r
    }

    /// Read the next record. On a [`Record`](super::ErrorKind::Record) error the whole record
    /// has been consumed; on a [`Stream`](super::ErrorKind::Stream) error the stream is
    /// unusable.
    pub fn next_record(&mut self) -> Result<Record> {
        let mut h = [0u8; 8];
        read_full(&mut self.r, &mut h, "Record Header")?;
        let rtype = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes"));
        let length = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
        if length > REC_LENGTH_MAX {
            return Err(Error::TooLong { rtype, length });
        }
        let total = length as usize + padding(length as usize);
        let mut body = Body {
            r: &mut self.r,
            total,
            remaining: total,
        };
        let decoded = decode(&mut body, rtype, length, self.limits, &mut self.spare);
        match decoded {
            Ok(r) => {
                body.skip()?;
                Ok(r)
            }
            Err(e) if e.kind() == super::ErrorKind::Record => {
                body.skip()?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

/// Decode one record's body; what is not consumed here is skipped by the caller.
fn decode<R: Read + ?Sized>(
    body: &mut Body<'_, R>,
    rtype: u32,
    length: u32,
    limits: Limits,
    spare: &mut Vec<u8>,
) -> Result<Record> {
    let len = length as usize;
    Ok(match rtype {
        rec::END => Record::End,
        rec::CHECKPOINT => Record::Checkpoint,
        rec::STATIC_DATA_END => Record::StaticDataEnd,
        rec::VERIFY => Record::Verify,
        rec::PAGE_DATA => Record::PageData(read_page_data(body, length, limits, spare)?),
        rec::X86_TSC_INFO => {
            records::check_tsc_info_length(length)?;
            Record::TscInfo(records::decode_tsc_info(&body.vec(len)?)?)
        }
        rec::HVM_CONTEXT => {
            records::check_hvm_context_length(length)?;
            Record::HvmContext(body.vec(len)?)
        }
        rec::HVM_PARAMS => Record::HvmParams(read_hvm_params(body, length)?),
        rec::X86_CPUID_POLICY => {
            records::check_policy_length(rtype, length)?;
            Record::CpuidPolicy(body.vec(len)?)
        }
        rec::X86_MSR_POLICY => {
            records::check_policy_length(rtype, length)?;
            Record::MsrPolicy(body.vec(len)?)
        }
        t if t & rec::OPTIONAL != 0 => Record::Optional(t),
        t => return Err(Error::NotHandled(t)),
    })
}

fn read_hvm_params<R: Read + ?Sized>(
    body: &mut Body<'_, R>,
    length: u32,
) -> Result<Vec<(u64, u64)>> {
    records::check_hvm_params_header(length)?;
    let count = (body.u64()? & 0xffff_ffff) as u32;
    records::check_hvm_params(length, count)?;
    let mut v: Vec<(u64, u64)> = Vec::new();
    for _ in 0..count {
        let index = body.u64()?;
        let value = body.u64()?;
        if v.len() == v.capacity() {
            // Grow with the entries received, never by the announced count alone.
            let more = v.len().max(16).min(count as usize - v.len());
            fallible::try_reserve(&mut v, more)
                .map_err(|_| Error::NoMemory((v.len() + more) * records::HVM_PARAM_ENTRY_SIZE))?;
        }
        v.push((index, value));
    }
    Ok(v)
}

fn read_page_data<R: Read + ?Sized>(
    body: &mut Body<'_, R>,
    length: u32,
    limits: Limits,
    spare: &mut Vec<u8>,
) -> Result<PageData> {
    records::check_page_data_min(length)?;
    let count = (body.u64()? & 0xffff_ffff) as u32;
    records::check_page_data_header(length, count, limits.max_batch)?;
    // count <= max_batch: the pfn list and arrays are bounded before anything is read into
    // them. The list is read with one read, not one per entry.
    let n = count as usize;
    let mut raw: Vec<u8> = fallible::try_zeroed(8 * n).map_err(|_| Error::NoMemory(8 * n))?;
    body.read(&mut raw)?;
    let mut pfns = fallible::try_with_capacity(n).map_err(|_| Error::NoMemory(8 * n))?;
    let mut types = fallible::try_with_capacity(n).map_err(|_| Error::NoMemory(4 * n))?;
    let mut pages_of_data = 0u32;
    for (i, e) in raw.chunks_exact(8).enumerate() {
        let entry = u64::from_le_bytes(e.try_into().expect("8 bytes"));
        let (pfn, t) = records::decode_page_entry(entry, i, limits.pfn_limit)?;
        if page_type_has_data(u64::from(t)) {
            pages_of_data += 1;
        }
        pfns.push(pfn);
        types.push(t);
    }
    records::check_page_data_length(length, count, pages_of_data)?;
    // The length is now exactly the header, the list and one page per data-carrying type, at
    // most max_batch pages (4 MiB): the pages are read with one read into place, with no
    // staging chunk and no regrowth, into the recycled buffer when there is one (its old bytes
    // are all overwritten before anyone sees them), else into one allocation.
    let len = pages_of_data as usize * PAGE_SIZE;
    let mut data = std::mem::take(spare);
    if data.capacity() < len {
        data = fallible::try_with_capacity(len).map_err(|_| Error::NoMemory(len))?;
    }
    data.resize(len, 0);
    body.read(&mut data)?;
    Ok(PageData { pfns, types, data })
}

#[cfg(test)]
mod tests {
    use super::super::ErrorKind as Kind;
    use super::*;
    use crate::abi::xen::pfinfo;
    use crate::stream::{
        domain_header, encode_record, hvm_params_body, image_header, page_data_entry,
        page_data_prefix, tsc_info_body,
    };

    fn page_data(entries: &[(u64, u32)], fill: u8) -> Vec<u8> {
        let e: Vec<u64> = entries
            .iter()
            .map(|&(p, t)| page_data_entry(p, t as u64))
            .collect();
        let n = entries
            .iter()
            .filter(|(_, t)| page_type_has_data(u64::from(*t)))
            .count();
        let mut out = page_data_prefix(&e, n).unwrap();
        for i in 0..n {
            out.extend(std::iter::repeat_n(fill.wrapping_add(i as u8), PAGE_SIZE));
        }
        out
    }

    fn read_all(bytes: &[u8], limits: Limits) -> Vec<Result<Record>> {
        let mut r = Reader::new(bytes, limits);
        let mut out = Vec::new();
        loop {
            let x = r.next_record();
            let stop = matches!(&x, Err(e) if e.kind() == Kind::Stream);
            out.push(x);
            if stop || r.get_mut().is_empty() {
                return out;
            }
        }
    }

    #[test]
    fn headers_round_trip() {
        let mut s = image_header().to_vec();
        s.extend(domain_header(DHDR_TYPE_X86_HVM, (4 << 16) | 20));
        let mut r = &s[..];
        assert_eq!(
            read_image_header(&mut r).unwrap(),
            ImageHeader { version: 3 }
        );
        let d = read_domain_header(&mut r).unwrap();
        assert_eq!(
            d,
            DomainHeader {
                guest_type: DHDR_TYPE_X86_HVM,
                page_shift: 12,
                xen_major: 4,
                xen_minor: 20
            }
        );
        assert!(d.check_x86_hvm().is_ok());
        assert!(r.is_empty());
    }

    #[test]
    fn bad_headers() {
        let good = image_header();
        let mut h = good;
        h[0] = 0;
        assert!(matches!(
            read_image_header(&mut &h[..]),
            Err(Error::BadMarker(_))
        ));
        let mut h = good;
        h[8] = b'Y';
        assert!(matches!(
            read_image_header(&mut &h[..]),
            Err(Error::BadId(_))
        ));
        for v in [0u32, 1, 4] {
            let mut h = good;
            h[12..16].copy_from_slice(&v.to_be_bytes());
            assert_eq!(read_image_header(&mut &h[..]), Err(Error::BadVersion(v)));
        }
        let mut h = good;
        h[12..16].copy_from_slice(&2u32.to_be_bytes());
        assert_eq!(read_image_header(&mut &h[..]).unwrap().version, 2);
        let mut h = good;
        h[17] = 1;
        assert_eq!(read_image_header(&mut &h[..]), Err(Error::BigEndian));
        for cut in 0..24 {
            let e = read_image_header(&mut &good[..cut]).unwrap_err();
            assert_eq!(e.kind(), Kind::Stream, "cut {cut}");
        }
        let pv = domain_header(stream::DHDR_TYPE_X86_PV, 4 << 16);
        let d = read_domain_header(&mut &pv[..]).unwrap();
        assert_eq!(
            d.check_x86_hvm().unwrap_err().message(),
            "Unable to restore x86 PV domain into an x86 HVM domain"
        );
        let mut big = domain_header(DHDR_TYPE_X86_HVM, 4 << 16);
        big[4] = 21;
        let d = read_domain_header(&mut &big[..]).unwrap();
        assert_eq!(
            d.check_x86_hvm().unwrap_err().message(),
            "Invalid page size 2097152 for x86 HVM domains"
        );
        big[4] = 64;
        let d = read_domain_header(&mut &big[..]).unwrap();
        assert!(d.check_x86_hvm().is_err());
    }

    #[test]
    fn every_hvm_record_round_trips() {
        let mut s = Vec::new();
        s.extend(encode_record(rec::X86_CPUID_POLICY, &[&[1u8; 48]]).unwrap());
        s.extend(encode_record(rec::X86_MSR_POLICY, &[&[2u8; 16]]).unwrap());
        s.extend(encode_record(rec::STATIC_DATA_END, &[]).unwrap());
        s.extend(page_data(
            &[(3, 0), (4, pfinfo::XTAB), (9, pfinfo::XALLOC), (5, 0)],
            7,
        ));
        s.extend(encode_record(rec::X86_TSC_INFO, &[&tsc_info_body(1, 2, 3, 4)]).unwrap());
        s.extend(encode_record(rec::HVM_CONTEXT, &[&[9u8; 13]]).unwrap());
        s.extend(encode_record(rec::HVM_PARAMS, &[&hvm_params_body(&[(1, 0xfeffc)])]).unwrap());
        s.extend(encode_record(rec::VERIFY, &[]).unwrap());
        s.extend(encode_record(rec::CHECKPOINT, &[]).unwrap());
        s.extend(encode_record(rec::OPTIONAL | 0x42, &[&[1, 2, 3]]).unwrap());
        s.extend(encode_record(rec::END, &[]).unwrap());
        let got: Vec<Record> = read_all(&s, Limits::new(16))
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let Record::PageData(p) = &got[3] else {
            panic!("{:?}", got[3])
        };
        assert_eq!(p.pfns, vec![3, 4, 9, 5]);
        assert_eq!(p.types, vec![0, pfinfo::XTAB, pfinfo::XALLOC, 0]);
        assert_eq!(p.nr_data_pages(), 2);
        assert_eq!((p.data[0], p.data[PAGE_SIZE]), (7, 8));
        assert_eq!(
            got.iter().map(|r| r.rtype()).collect::<Vec<_>>(),
            vec![0x11, 0x12, 0x10, 1, 8, 9, 0x0a, 0x0d, 0x0e, 0x8000_0042, 0]
        );
        assert_eq!(got[0], Record::CpuidPolicy(vec![1; 48]));
        assert_eq!(got[5], Record::HvmContext(vec![9; 13]));
        assert_eq!(got[6], Record::HvmParams(vec![(1, 0xfeffc)]));
        assert_eq!(got[4].rtype(), rec::X86_TSC_INFO);
    }

    /// A reader that counts its `read` calls.
    struct Counted<'a> {
        bytes: &'a [u8],
        reads: usize,
    }

    impl Read for Counted<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.reads += 1;
            self.bytes.read(buf)
        }
    }

    #[test]
    fn page_data_takes_four_reads_whatever_its_size() {
        // Header, count, pfn list, pages: not one read per pfn nor per 16 KiB chunk.
        let entries: Vec<(u64, u32)> = (0..1024).map(|p| (p, 0)).collect();
        let s = page_data(&entries, 3);
        let mut c = Counted {
            bytes: &s,
            reads: 0,
        };
        let mut r = Reader::new(&mut c, Limits::new(4096));
        let Record::PageData(p) = r.next_record().unwrap() else {
            panic!("not PAGE_DATA")
        };
        assert_eq!(p.nr_data_pages(), 1024);
        assert_eq!(p.data[1023 * PAGE_SIZE], 3u8.wrapping_add(255)); // page 1023: fill + (1023 as u8)
        drop(r);
        assert_eq!(c.reads, 4);
    }

    #[test]
    fn a_recycled_buffer_is_overwritten_and_sized_to_each_record() {
        let mut s = page_data(&[(1, 0), (2, 0), (3, 0)], 0x10);
        s.extend(page_data(&[(4, 0), (5, pfinfo::XALLOC)], 0x40));
        let big = page_data(&[(6, 0), (7, 0), (8, 0), (9, 0)], 0x70);
        s.extend(&big[..big.len() - PAGE_SIZE - 8]); // the last page cut short
        let mut r = Reader::new(&s[..], Limits::new(16));
        let Record::PageData(a) = r.next_record().unwrap() else {
            panic!("not PAGE_DATA")
        };
        assert_eq!(a.data.len(), 3 * PAGE_SIZE);
        r.recycle(a.data);
        let Record::PageData(b) = r.next_record().unwrap() else {
            panic!("not PAGE_DATA")
        };
        assert_eq!(
            b.data,
            vec![0x40; PAGE_SIZE],
            "no byte of the first record left"
        );
        r.recycle(b.data);
        let e = r.next_record().unwrap_err();
        assert_eq!(e.kind(), Kind::Stream);
        assert!(matches!(e, Error::Truncated { .. }), "{e:?}");
    }

    #[test]
    fn signalling_records_with_a_body_are_accepted_as_stock_does() {
        let s = encode_record(rec::CHECKPOINT, &[&[1, 2, 3, 4, 5, 6, 7, 8, 9]]).unwrap();
        let mut r = Reader::new(&s[..], Limits::new(1));
        assert_eq!(r.next_record().unwrap(), Record::Checkpoint);
        assert!(r.get_mut().is_empty(), "body and padding consumed");
    }

    #[test]
    fn content_errors_leave_the_stream_in_step() {
        let bad: Vec<Vec<u8>> = vec![
            page_data(&[(16, 0)], 0),                             // pfn at the limit
            page_data(&[(1, 5 << 28)], 0),                        // unknown type
            encode_record(rec::PAGE_DATA, &[&[0u8; 4]]).unwrap(), // shorter than its header
            encode_record(rec::PAGE_DATA, &[&[0u8; 8]]).unwrap(), // count 0
            encode_record(rec::X86_TSC_INFO, &[&[0u8; 16]]).unwrap(),
            encode_record(rec::HVM_CONTEXT, &[]).unwrap(),
            encode_record(rec::HVM_PARAMS, &[&[1, 0, 0, 0, 0, 0, 0, 0]]).unwrap(),
            encode_record(rec::X86_CPUID_POLICY, &[&[0u8; 25]]).unwrap(),
            encode_record(rec::X86_MSR_POLICY, &[]).unwrap(),
            encode_record(rec::CHECKPOINT_DIRTY_PFN_LIST, &[&[0u8; 8]]).unwrap(),
            encode_record(4, &[&[0u8; 8]]).unwrap(), // a PV record
        ];
        let end = encode_record(rec::END, &[]).unwrap();
        for (i, b) in bad.iter().enumerate() {
            let s = [&b[..], &end[..]].concat();
            let mut r = Reader::new(&s[..], Limits::new(16));
            let e = r.next_record().unwrap_err();
            assert_eq!(e.kind(), Kind::Record, "{i}: {e:?}");
            assert_eq!(e.errno(), libc::EINVAL);
            assert!(!e.message().is_empty());
            assert_eq!(r.next_record().unwrap(), Record::End, "{i}: in step");
        }
    }

    #[test]
    fn page_data_length_must_match_its_types() {
        // One data page announced, two sent.
        let e = [page_data_entry(1, 0)];
        let mut s = page_data_prefix(&e, 2).unwrap();
        s.extend([0u8; 2 * PAGE_SIZE]);
        let err = Reader::new(&s[..], Limits::new(4))
            .next_record()
            .unwrap_err();
        assert_eq!(
            err.message(),
            format!(
                "PAGE_DATA record wrong size: length {}, expected 8 + 8 + 4096",
                16 + 8192
            )
        );
        // An XTAB pfn with a page: also wrong.
        let e = [page_data_entry(1, pfinfo::XTAB as u64)];
        let mut s = page_data_prefix(&e, 1).unwrap();
        s.extend([0u8; PAGE_SIZE]);
        assert!(Reader::new(&s[..], Limits::new(4)).next_record().is_err());
    }

    #[test]
    fn batch_bound() {
        let entries: Vec<(u64, u32)> = (0..1025).map(|p| (p, pfinfo::XTAB)).collect();
        let s = page_data(&entries, 0);
        let e = Reader::new(&s[..], Limits::new(4096))
            .next_record()
            .unwrap_err();
        assert!(e.message().contains("exceeds the batch bound 1024"), "{e}");
        let limits = Limits {
            pfn_limit: 4096,
            max_batch: 2048,
        };
        assert!(Reader::new(&s[..], limits).next_record().is_ok());
    }

    #[test]
    fn truncation_anywhere_is_a_stream_error() {
        let mut s = page_data(&[(1, 0), (2, 0)], 3);
        s.extend(encode_record(rec::HVM_PARAMS, &[&hvm_params_body(&[(1, 2), (3, 4)])]).unwrap());
        s.extend(encode_record(rec::HVM_CONTEXT, &[&[5u8; 100]]).unwrap());
        for cut in 0..s.len() {
            let all = read_all(&s[..cut], Limits::new(8));
            let last = all.last().unwrap();
            if cut == 0 {
                assert!(matches!(last, Err(Error::Truncated { got: 0, .. })));
                continue;
            }
            let boundary = [
                0usize,
                16 + 16 + 2 * PAGE_SIZE,
                16 + 16 + 2 * PAGE_SIZE + 48,
            ];
            if boundary.contains(&cut) {
                assert!(last.is_ok(), "cut {cut} on a record boundary");
            } else {
                let e = last.as_ref().unwrap_err();
                assert_eq!(e.kind(), Kind::Stream, "cut {cut}: {e:?}");
                assert_eq!(e.errno(), libc::EIO);
            }
        }
    }

    #[test]
    fn huge_lengths_are_refused_before_allocating() {
        let mut s = Vec::new();
        s.extend(rec::HVM_CONTEXT.to_le_bytes());
        s.extend((REC_LENGTH_MAX + 1).to_le_bytes());
        let e = Reader::new(&s[..], Limits::new(1))
            .next_record()
            .unwrap_err();
        assert_eq!(
            e,
            Error::TooLong {
                rtype: rec::HVM_CONTEXT,
                length: REC_LENGTH_MAX + 1
            }
        );
        // The maximum is allowed, and a short body is truncation after what was sent.
        let mut s = Vec::new();
        s.extend(rec::HVM_CONTEXT.to_le_bytes());
        s.extend(REC_LENGTH_MAX.to_le_bytes());
        s.extend([0u8; 100]);
        let e = Reader::new(&s[..], Limits::new(1))
            .next_record()
            .unwrap_err();
        assert!(matches!(e, Error::Truncated { got: 100, .. }), "{e:?}");
        // HVM_PARAMS announcing 8M entries but sending two: no 128 MiB reservation.
        let n = (REC_LENGTH_MAX - 8) / 16;
        let mut s = Vec::new();
        s.extend(rec::HVM_PARAMS.to_le_bytes());
        s.extend((8 + 16 * n).to_le_bytes());
        s.extend(n.to_le_bytes());
        s.extend([0u8; 4 + 32]);
        let e = Reader::new(&s[..], Limits::new(1))
            .next_record()
            .unwrap_err();
        assert_eq!(e.kind(), Kind::Stream);
    }

    #[test]
    fn allocation_failure_is_enomem() {
        let s = page_data(&[(1, 0)], 3);
        let _g = crate::faults::arm_from(|k| (k == "XCSAVE_TEST_FAIL_ALLOC").then(|| "1".into()));
        let e = Reader::new(&s[..], Limits::new(4))
            .next_record()
            .unwrap_err();
        assert_eq!((e.kind(), e.errno()), (Kind::Resource, libc::ENOMEM));
    }

    #[test]
    fn io_errors_keep_their_errno() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(libc::ECONNRESET))
            }
        }
        let e = Reader::new(Failing, Limits::new(1))
            .next_record()
            .unwrap_err();
        assert_eq!((e.kind(), e.errno()), (Kind::Stream, libc::ECONNRESET));
    }

    #[test]
    fn short_reads_and_eintr_are_retried() {
        // A socket that hands out one byte per call and is interrupted every other call.
        struct Trickle<'a>(&'a [u8], bool);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.1 = !self.1;
                if self.1 {
                    return Err(std::io::Error::from(ErrorKind::Interrupted));
                }
                let n = self.0.len().min(buf.len()).min(1);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut s = page_data(&[(1, 0), (2, pfinfo::XTAB)], 4);
        s.extend(encode_record(rec::HVM_PARAMS, &[&hvm_params_body(&[(9, 8)])]).unwrap());
        let mut r = Reader::new(Trickle(&s, false), Limits::new(4));
        let Record::PageData(p) = r.next_record().unwrap() else {
            panic!()
        };
        assert_eq!((p.pfns, p.data), (vec![1, 2], vec![4u8; PAGE_SIZE]));
        assert_eq!(r.next_record().unwrap(), Record::HvmParams(vec![(9, 8)]));
        assert!(r.get_mut().0.is_empty());
    }

    #[test]
    fn reads_never_pass_the_record_end() {
        // A reader that reports every byte it hands out: the record reader must not take
        // bytes of the toolstack's data that follow a CHECKPOINT.
        let mut s = encode_record(rec::CHECKPOINT, &[]).unwrap();
        s.extend(b"libxl's own records");
        let mut src = &s[..];
        let mut r = Reader::new(&mut src, Limits::new(1));
        assert_eq!(r.next_record().unwrap(), Record::Checkpoint);
        assert_eq!(src, b"libxl's own records");
    }
}
