// SPDX-License-Identifier: GPL-3.0-only
//! The COLO back channel: parse the secondary's CHECKPOINT_DIRTY_PFN_LIST record.
//!
//! The record comes from another host and is treated as untrusted: its length is checked
//! before anything is allocated, the body is read incrementally (a lying header cannot make
//! us reserve memory it does not send), and every pfn is checked against the p2m size.

use crate::hooks;
use crate::stream::{padding, rec, rec_type_name, REC_LENGTH_MAX};
use std::io::{ErrorKind, Read};

/// Why a back-channel record was rejected.
#[derive(Debug, PartialEq, Eq)]
pub enum BackChannelError {
    /// Reading failed with this errno (EOF mid-record is reported as `Truncated`).
    Io(i32),
    /// The stream ended before the header or body was complete.
    Truncated {
        /// Bytes expected.
        wanted: usize,
        /// Bytes received.
        got: usize,
    },
    /// The record length exceeds the format's maximum.
    TooLong(u32),
    /// The record is not a CHECKPOINT_DIRTY_PFN_LIST.
    WrongType(u32),
    /// The body length is not a multiple of 8.
    BadLength(u32),
    /// A pfn lies outside the guest's p2m.
    PfnOutOfRange(u64),
    /// No memory for the record (its length was valid).
    NoMemory(usize),
    /// Xen 4.20's header pad (see [`read_record`]) is not zero.
    HeaderPad(u64),
}

impl BackChannelError {
    /// The errno reported to the caller for this error.
    pub fn errno(&self) -> i32 {
        match self {
            BackChannelError::Io(e) => *e,
            BackChannelError::Truncated { .. } => libc::EIO,
            BackChannelError::TooLong(_) => libc::E2BIG,
            BackChannelError::NoMemory(_) => libc::ENOMEM,
            _ => libc::EINVAL,
        }
    }

    /// A log message in the words of the stock saver where it has one.
    pub fn message(&self) -> String {
        match self {
            BackChannelError::Io(e) => format!(
                "Failed to read Record Header from stream ({} = {})",
                e,
                std::io::Error::from_raw_os_error(*e)
            ),
            BackChannelError::Truncated { wanted, got } => {
                format!("Back channel record truncated: wanted {wanted} bytes, got {got}")
            }
            BackChannelError::TooLong(l) => format!(
                "Record (0x{:08x}, {}) length {:#x} exceeds max ({:#x})",
                rec::CHECKPOINT_DIRTY_PFN_LIST,
                rec_type_name(rec::CHECKPOINT_DIRTY_PFN_LIST),
                l,
                REC_LENGTH_MAX
            ),
            BackChannelError::WrongType(t) => {
                format!("Expect dirty bitmap record, but received {t}")
            }
            BackChannelError::BadLength(l) => {
                format!("Invalid dirty pfn list record length {l}")
            }
            BackChannelError::PfnOutOfRange(p) => format!("Invalid pfn {p:#x}"),
            BackChannelError::NoMemory(n) => {
                format!("Unable to allocate {n} bytes for the dirty pfn list")
            }
            BackChannelError::HeaderPad(p) => {
                format!("Dirty pfn list record header pad {p:#x} is not zero")
            }
        }
    }
}

/// Read exactly `buf.len()` bytes, retrying EINTR; EOF early is `Truncated`.
fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> Result<(), BackChannelError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(BackChannelError::Truncated {
                    wanted: buf.len(),
                    got,
                })
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(BackChannelError::Io(e.raw_os_error().unwrap_or(libc::EIO))),
        }
    }
    Ok(())
}

/// A record read from the back channel: its type and body (padding stripped).
#[derive(Debug)]
pub struct RawRecord {
    /// Record type.
    pub rtype: u32,
    /// Record body, `length` bytes.
    pub body: Vec<u8>,
}

/// The bytes a secondary writes before a record's body. Xen 4.18+'s restore
/// (`send_checkpoint_dirty_pfn_list` since commit efe8de1f91) writes its whole in-memory
/// `struct xc_sr_record` as the header: type, length and the NULL `data` pointer, 16 bytes,
/// where the stream format (and 4.17) has 8. Stock 4.20's saver reads 8 and fails at the next
/// record ("Expect dirty bitmap record, but received ..."); the 4.20 build reads all 16 and
/// requires the pointer's 8 bytes to be zero (docs/decisions.md).
#[cfg(xen = "4.17")]
const HEADER_LEN: usize = 8;
/// See the 4.17 variant.
#[cfg(xen = "4.20")]
const HEADER_LEN: usize = 16;

/// Read one record (header, body, padding) from `r`.
pub fn read_record<R: Read + ?Sized>(r: &mut R) -> Result<RawRecord, BackChannelError> {
    let mut hdr = [0u8; HEADER_LEN];
    read_full(r, &mut hdr)?;
    let rtype = u32::from_le_bytes(hdr[0..4].try_into().expect("4 bytes"));
    let length = u32::from_le_bytes(hdr[4..8].try_into().expect("4 bytes"));
    if let Some(pad) = hdr.get(8..16) {
        let pad = u64::from_le_bytes(pad.try_into().expect("8 bytes"));
        if pad != 0 {
            return Err(BackChannelError::HeaderPad(pad));
        }
    }
    if length > REC_LENGTH_MAX {
        return Err(BackChannelError::TooLong(length));
    }
    let total = length as usize + padding(length as usize);
    // Read in bounded chunks so that memory follows the bytes actually received.
    let mut body = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    while body.len() < total {
        let want = (total - body.len()).min(chunk.len());
        match read_full(r, &mut chunk[..want]) {
            Ok(()) => {
                // Grow fallibly: a valid length may still be more than this process has.
                if body.capacity() - body.len() < want {
                    let more = (total - body.len()).min(body.len().max(want));
                    hooks::try_reserve(&mut body, more)
                        .map_err(|_| BackChannelError::NoMemory(body.len() + more))?;
                }
                body.extend_from_slice(&chunk[..want])
            }
            Err(BackChannelError::Truncated { got, .. }) => {
                return Err(BackChannelError::Truncated {
                    wanted: total,
                    got: body.len() + got,
                })
            }
            Err(e) => return Err(e),
        }
    }
    body.truncate(length as usize);
    Ok(RawRecord { rtype, body })
}

/// Validate a CHECKPOINT_DIRTY_PFN_LIST record against a p2m of `p2m_size` pfns and return
/// its pfns (unordered, duplicates allowed, as the secondary sends them).
pub fn parse_dirty_pfn_list(
    record: &RawRecord,
    p2m_size: u64,
) -> Result<Vec<u64>, BackChannelError> {
    if record.rtype != rec::CHECKPOINT_DIRTY_PFN_LIST {
        return Err(BackChannelError::WrongType(record.rtype));
    }
    if !record.body.len().is_multiple_of(8) {
        return Err(BackChannelError::BadLength(record.body.len() as u32));
    }
    let n = record.body.len() / 8;
    let mut pfns: Vec<u64> =
        hooks::try_with_capacity(n).map_err(|_| BackChannelError::NoMemory(record.body.len()))?;
    for c in record.body.chunks_exact(8) {
        let pfn = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        if pfn >= p2m_size {
            return Err(BackChannelError::PfnOutOfRange(pfn));
        }
        pfns.push(pfn);
    }
    Ok(pfns)
}

/// Read and validate one dirty-pfn-list record from `r`.
pub fn read_dirty_pfn_list<R: Read + ?Sized>(
    r: &mut R,
    p2m_size: u64,
) -> Result<Vec<u64>, BackChannelError> {
    let record = read_record(r)?;
    parse_dirty_pfn_list(&record, p2m_size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::encode_record;

    fn list(pfns: &[u64]) -> Vec<u8> {
        let body: Vec<u8> = pfns.iter().flat_map(|p| p.to_le_bytes()).collect();
        encode_record(rec::CHECKPOINT_DIRTY_PFN_LIST, &[&body]).unwrap()
    }

    #[test]
    fn accepts_unordered_and_duplicates() {
        let bytes = list(&[9, 3, 3, 0, 9]);
        let got = read_dirty_pfn_list(&mut &bytes[..], 10).unwrap();
        assert_eq!(got, vec![9, 3, 3, 0, 9]);
    }

    #[test]
    fn accepts_empty_list() {
        let bytes = list(&[]);
        assert_eq!(
            read_dirty_pfn_list(&mut &bytes[..], 10).unwrap(),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn consumes_exactly_one_record() {
        let mut bytes = list(&[1]);
        bytes.extend(list(&[2]));
        let mut r = &bytes[..];
        assert_eq!(read_dirty_pfn_list(&mut r, 10).unwrap(), vec![1]);
        assert_eq!(read_dirty_pfn_list(&mut r, 10).unwrap(), vec![2]);
        assert!(r.is_empty());
    }

    #[test]
    fn rejects_pfn_at_or_above_p2m_size() {
        let bytes = list(&[1, 10]);
        assert_eq!(
            read_dirty_pfn_list(&mut &bytes[..], 10),
            Err(BackChannelError::PfnOutOfRange(10))
        );
        let bytes = list(&[u64::MAX]);
        let e = read_dirty_pfn_list(&mut &bytes[..], 10).unwrap_err();
        assert_eq!(e, BackChannelError::PfnOutOfRange(u64::MAX));
        assert_eq!(e.errno(), libc::EINVAL);
    }

    #[test]
    fn rejects_wrong_type() {
        let bytes = encode_record(rec::CHECKPOINT, &[]).unwrap();
        let e = read_dirty_pfn_list(&mut &bytes[..], 10).unwrap_err();
        assert_eq!(e, BackChannelError::WrongType(rec::CHECKPOINT));
        assert_eq!(e.errno(), libc::EINVAL);
    }

    #[test]
    fn rejects_bad_length() {
        let bytes = encode_record(rec::CHECKPOINT_DIRTY_PFN_LIST, &[&[1, 0, 0, 0, 0]]).unwrap();
        let e = read_dirty_pfn_list(&mut &bytes[..], 10).unwrap_err();
        assert_eq!(e, BackChannelError::BadLength(5));
        assert_eq!(e.errno(), libc::EINVAL);
    }

    #[test]
    fn rejects_truncation_everywhere() {
        let bytes = list(&[1, 2, 3]);
        for cut in 0..bytes.len() {
            let e = read_dirty_pfn_list(&mut &bytes[..cut], 10).unwrap_err();
            assert!(
                matches!(e, BackChannelError::Truncated { .. }),
                "cut at {cut}: {e:?}"
            );
            assert_eq!(e.errno(), libc::EIO);
        }
    }

    #[test]
    fn rejects_huge_length_without_allocating() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&rec::CHECKPOINT_DIRTY_PFN_LIST.to_le_bytes());
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        let e = read_dirty_pfn_list(&mut &bytes[..], 10).unwrap_err();
        assert_eq!(e, BackChannelError::TooLong(u32::MAX));
        // Just under the maximum but with no body: truncated, after reading what is there.
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&rec::CHECKPOINT_DIRTY_PFN_LIST.to_le_bytes());
        bytes.extend_from_slice(&REC_LENGTH_MAX.to_le_bytes());
        bytes.extend_from_slice(&[0u8; 16]);
        let e = read_dirty_pfn_list(&mut &bytes[..], 10).unwrap_err();
        assert_eq!(
            e,
            BackChannelError::Truncated {
                wanted: REC_LENGTH_MAX as usize,
                got: 16
            }
        );
    }

    #[test]
    fn allocation_failure_is_enomem() {
        let bytes = list(&[1, 2, 3]);
        for n in ["1", "2"] {
            let _g = hooks::arm_from(|k| (k == "XCSAVE_TEST_FAIL_ALLOC").then(|| n.into()));
            let e = read_dirty_pfn_list(&mut &bytes[..], 10).unwrap_err();
            assert!(matches!(e, BackChannelError::NoMemory(_)), "{n}: {e:?}");
            assert_eq!(e.errno(), libc::ENOMEM);
        }
    }

    /// The cargo-fuzz corpus (fuzz/corpus/backchannel, see docs/reliability.md) replayed with
    /// the fuzz target's invariants: every input ends in in-range pfns or a clean error.
    #[test]
    fn fuzz_corpus_replays_cleanly() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/backchannel");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("the fuzz corpus is in the repository") {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            n += 1;
            if data.len() < 4 {
                continue;
            }
            let p2m = u32::from_le_bytes(data[..4].try_into().unwrap()) as u64;
            let mut r = &data[4..];
            for _ in 0..16 {
                match read_dirty_pfn_list(&mut r, p2m) {
                    Ok(pfns) => assert!(pfns.iter().all(|&p| p < p2m)),
                    Err(e) => {
                        assert!(e.errno() > 0 && !e.message().is_empty());
                        break;
                    }
                }
            }
        }
        assert!(n >= 10, "only {n} corpus files");
    }

    #[test]
    fn io_errors_keep_their_errno() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(libc::ECONNRESET))
            }
        }
        let e = read_dirty_pfn_list(&mut Failing, 10).unwrap_err();
        assert_eq!(e, BackChannelError::Io(libc::ECONNRESET));
        assert_eq!(e.errno(), libc::ECONNRESET);
    }
}
