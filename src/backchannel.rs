// SPDX-License-Identifier: GPL-3.0-only
//! The COLO back channel: parse the secondary's CHECKPOINT_DIRTY_PFN_LIST record.
//!
//! The record comes from another host and is treated as untrusted. Its header is checked
//! before anything of its body is read: the format's maximum (stock's E2BIG), the type, a
//! length that is a multiple of 8, and a length of at most 8 × `p2m_size` (the secondary
//! reports each dirty pfn once, so a longer list cannot be valid). The body is then read in
//! chunks of [`CHUNK`] bytes, a small buffer on the stack, and every pfn is checked against
//! the p2m size as it arrives.
//!
//! [`merge_dirty_pfn_list`] sets each pfn straight into the caller's bitmap: its peak memory
//! is the chunk, whatever the record's size (a valid 128 MiB record included). A record that
//! fails half-way leaves the bits of its valid prefix set; the caller fails the save then, as
//! stock does, so the extra bits are never acted upon.
//!
//! The secondary's answer is awaited through a [`Channel`]: bytes with a clock per answer, so
//! that a silent or slow-drip secondary ends in ETIMEDOUT instead of a primary suspended
//! forever (`XCSAVE_BACKCHANNEL_TIMEOUT_MS`; the fd behind it is `xen::fdio::FdReader`).

use crate::abi::xen::BACKCHANNEL_HEADER_LEN;
use crate::stream::{rec, rec_type_name, REC_LENGTH_MAX};
use std::io::{ErrorKind, Read};
use std::time::Duration;

/// The back channel as the save engine reads it: a byte source with a clock for each answer.
pub trait Channel: Read {
    /// Start the clock of one answer (one record): from now on, a read fails with ETIMEDOUT
    /// once the answer has taken longer than [`Channel::timeout`], however many bytes have
    /// arrived, so a slow drip cannot keep it alive. Without a timeout, nothing changes.
    fn start_answer(&mut self);
    /// How long one answer may take; None waits forever (as stock).
    fn timeout(&self) -> Option<Duration>;
}

/// Bytes already in memory (tests, the fuzz targets): they never time out.
impl Channel for &[u8] {
    fn start_answer(&mut self) {}
    fn timeout(&self) -> Option<Duration> {
        None
    }
}

/// Bytes of a record body read at a time (a multiple of 8: whole pfns per chunk).
pub const CHUNK: usize = 4096;

/// Why a back-channel record was rejected.
#[derive(Debug, PartialEq, Eq)]
pub enum BackChannelError {
    /// Reading failed with this errno (EOF mid-record is reported as `Truncated`; a
    /// [`Channel`] whose answer ran out of time gives ETIMEDOUT).
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
    /// The list holds more pfns than the guest's p2m has (length > 8 × `p2m_size`).
    LongerThanP2m {
        /// The record's body length.
        length: u32,
        /// The guest's p2m size in pfns.
        p2m_size: u64,
    },
    /// A pfn lies outside the guest's p2m (or outside the caller's bitmap).
    PfnOutOfRange(u64),
    /// Xen 4.20's header pad (see `abi::xen::BACKCHANNEL_HEADER_LEN`) is not zero.
    HeaderPad(u64),
}

impl BackChannelError {
    /// The errno reported to the caller for this error.
    pub fn errno(&self) -> i32 {
        match self {
            BackChannelError::Io(e) => *e,
            BackChannelError::Truncated { .. } => libc::EIO,
            BackChannelError::TooLong(_) => libc::E2BIG,
            _ => libc::EINVAL,
        }
    }

    /// A log message in the words of the stock saver where it has one.
    pub fn message(&self) -> String {
        match self {
            BackChannelError::Io(libc::ETIMEDOUT) => {
                "Timed out waiting for the secondary's dirty pfn list".to_string()
            }
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
            BackChannelError::LongerThanP2m { length, p2m_size } => format!(
                "Invalid dirty pfn list record length {length}: more than the {p2m_size} pfns \
                 of the guest's p2m"
            ),
            BackChannelError::PfnOutOfRange(p) => format!("Invalid pfn {p:#x}"),
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

/// Read a record header and check it against a p2m of `p2m_size` pfns; returns the number
/// of pfns the body holds. Nothing of the body is read.
fn read_list_header<R: Read + ?Sized>(r: &mut R, p2m_size: u64) -> Result<u64, BackChannelError> {
    let mut hdr = [0u8; BACKCHANNEL_HEADER_LEN];
    read_full(r, &mut hdr)?;
    let rtype = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let length = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    if let Some(pad) = hdr.get(8..16) {
        let pad = u64::from_le_bytes(pad.try_into().expect("8 bytes"));
        if pad != 0 {
            return Err(BackChannelError::HeaderPad(pad));
        }
    }
    if length > REC_LENGTH_MAX {
        return Err(BackChannelError::TooLong(length));
    }
    if rtype != rec::CHECKPOINT_DIRTY_PFN_LIST {
        return Err(BackChannelError::WrongType(rtype));
    }
    if !length.is_multiple_of(8) {
        return Err(BackChannelError::BadLength(length));
    }
    let n = u64::from(length) / 8;
    if n > p2m_size {
        return Err(BackChannelError::LongerThanP2m { length, p2m_size });
    }
    Ok(n)
}

/// Read the body of `n` pfns in chunks of [`CHUNK`] bytes and hand each in-range pfn to
/// `each`, in the order received. A body of 8 × n bytes needs no padding.
fn for_each_pfn<R: Read + ?Sized>(
    r: &mut R,
    n: u64,
    p2m_size: u64,
    mut each: impl FnMut(u64) -> Result<(), BackChannelError>,
) -> Result<(), BackChannelError> {
    let total = (n * 8) as usize;
    let mut chunk = [0u8; CHUNK];
    let mut done = 0;
    while done < total {
        let want = (total - done).min(CHUNK);
        read_full(r, &mut chunk[..want]).map_err(|e| match e {
            BackChannelError::Truncated { got, .. } => BackChannelError::Truncated {
                wanted: total,
                got: done + got,
            },
            e => e,
        })?;
        for c in chunk[..want].chunks_exact(8) {
            let pfn = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            if pfn >= p2m_size {
                return Err(BackChannelError::PfnOutOfRange(pfn));
            }
            each(pfn)?;
        }
        done += want;
    }
    Ok(())
}

/// Read one CHECKPOINT_DIRTY_PFN_LIST record from `r` and set each of its pfns in `words`, a
/// bitmap of 64-bit words (pfn p is bit p % 64 of word p / 64: the engine's dirty bitmap,
/// which must cover `p2m_size` bits). Returns the number of pfns the record listed
/// (duplicates counted). Memory used: one [`CHUNK`] on the stack, nothing on the heap.
///
/// Errors: `TooLong` (E2BIG) above the format's maximum; `WrongType`, `BadLength`,
/// `LongerThanP2m`, `PfnOutOfRange` (EINVAL; a pfn past the end of `words` too, never an
/// index panic); `Truncated` (EIO); `Io` (its errno, ETIMEDOUT from a [`Channel`] out of
/// time). On an error, bits of the pfns before the bad one may already be set.
pub fn merge_dirty_pfn_list<R: Read + ?Sized>(
    r: &mut R,
    p2m_size: u64,
    words: &mut [u64],
) -> Result<u64, BackChannelError> {
    let n = read_list_header(r, p2m_size)?;
    for_each_pfn(r, n, p2m_size, |pfn| {
        let word = usize::try_from(pfn / 64)
            .ok()
            .and_then(|i| words.get_mut(i))
            .ok_or(BackChannelError::PfnOutOfRange(pfn))?;
        *word |= 1u64 << (pfn % 64);
        Ok(())
    })?;
    Ok(n)
}

/// A record as this build's Xen sends it on the back channel (tests): the stream format's
/// record, with its 8-byte header widened to [`BACKCHANNEL_HEADER_LEN`] (4.20's zero pointer).
#[cfg(test)]
pub(crate) fn back_record(rtype: u32, body: &[u8]) -> Vec<u8> {
    let rec = crate::stream::encode_record(rtype, &[body]).expect("a test record is short");
    let mut out = back_header(rtype, u32::from_le_bytes(rec[4..8].try_into().expect("4")));
    out.extend_from_slice(&rec[8..]);
    out
}

/// A back-channel record header of this build's Xen (tests): type and length, then zeros up
/// to [`BACKCHANNEL_HEADER_LEN`].
#[cfg(test)]
pub(crate) fn back_header(rtype: u32, length: u32) -> Vec<u8> {
    let mut out = rtype.to_le_bytes().to_vec();
    out.extend_from_slice(&length.to_le_bytes());
    out.resize(BACKCHANNEL_HEADER_LEN, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This build's back-channel header length: 8 on 4.17, 16 on 4.20.
    const H: usize = BACKCHANNEL_HEADER_LEN;

    fn list(pfns: &[u64]) -> Vec<u8> {
        let body: Vec<u8> = pfns.iter().flat_map(|p| p.to_le_bytes()).collect();
        back_record(rec::CHECKPOINT_DIRTY_PFN_LIST, &body)
    }

    /// `merge_dirty_pfn_list` into a fresh bitmap of `p2m_size` bits: (count, set bits).
    fn merged(bytes: &[u8], p2m_size: u64) -> Result<(u64, Vec<u64>), BackChannelError> {
        let mut words = vec![0u64; p2m_size.div_ceil(64) as usize];
        let n = merge_dirty_pfn_list(&mut &bytes[..], p2m_size, &mut words)?;
        Ok((n, set_bits(&words)))
    }

    fn set_bits(words: &[u64]) -> Vec<u64> {
        (0..words.len() as u64 * 64)
            .filter(|&p| words[(p / 64) as usize] & (1 << (p % 64)) != 0)
            .collect()
    }

    /// An independent reading of one record from a slice (no chunks, no streaming): its pfns
    /// and its size in bytes, or the errno the merge must give.
    fn reference(bytes: &[u8], p2m: u64) -> Result<(Vec<u64>, usize), i32> {
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        if bytes.len() < H {
            return Err(libc::EIO);
        }
        let (rtype, length) = (word(0), word(4));
        if bytes[8..H].iter().any(|&b| b != 0) {
            return Err(libc::EINVAL);
        }
        if length > REC_LENGTH_MAX {
            return Err(libc::E2BIG);
        }
        if rtype != rec::CHECKPOINT_DIRTY_PFN_LIST || length % 8 != 0 || u64::from(length) / 8 > p2m
        {
            return Err(libc::EINVAL);
        }
        let body = &bytes[H..];
        // Pfns are checked as whole chunks arrive: a body cut short is checked up to its
        // last whole chunk.
        let whole = if body.len() < length as usize {
            body.len() / CHUNK * CHUNK / 8
        } else {
            length as usize / 8
        };
        let pfns: Vec<u64> = body[..whole * 8]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        if pfns.iter().any(|&p| p >= p2m) {
            return Err(libc::EINVAL);
        }
        if body.len() < length as usize {
            return Err(libc::EIO);
        }
        Ok((pfns, H + length as usize))
    }

    #[test]
    fn accepts_unordered_and_duplicates() {
        let bytes = list(&[9, 3, 3, 0, 9]);
        assert_eq!(merged(&bytes, 10).unwrap(), (5, vec![0, 3, 9]));
    }

    #[test]
    fn merge_ors_into_what_is_set() {
        let bytes = list(&[1, 64, 129]);
        let mut words = vec![1u64 << 5, 0, 0];
        assert_eq!(
            merge_dirty_pfn_list(&mut &bytes[..], 130, &mut words),
            Ok(3)
        );
        assert_eq!(words, vec![(1 << 5) | (1 << 1), 1, 1 << 1]);
    }

    #[test]
    fn merge_rejects_a_pfn_past_the_bitmap_without_panicking() {
        // A caller's bitmap shorter than its p2m size: an error, never an index panic.
        let bytes = list(&[200]);
        let mut words = vec![0u64; 2];
        let e = merge_dirty_pfn_list(&mut &bytes[..], 1000, &mut words).unwrap_err();
        assert_eq!(e, BackChannelError::PfnOutOfRange(200));
        assert_eq!(words, vec![0, 0]);
    }

    #[test]
    fn merge_makes_no_allocation() {
        // Every fallible allocation of this thread fails: the merge has none to fail.
        let bytes = list(&(0..2000).collect::<Vec<u64>>());
        let _g = crate::faults::arm_from(|k| (k == "XCSAVE_TEST_FAIL_ALLOC").then(|| "1".into()));
        let mut words = vec![0u64; 32];
        assert_eq!(
            merge_dirty_pfn_list(&mut &bytes[..], 2048, &mut words),
            Ok(2000)
        );
        assert!(words[..31].iter().all(|&w| w == u64::MAX));
    }

    #[test]
    fn accepts_empty_list() {
        let bytes = list(&[]);
        assert_eq!(merged(&bytes, 10).unwrap(), (0, vec![]));
        // Even for a guest with no p2m at all.
        assert_eq!(merged(&bytes, 0).unwrap(), (0, vec![]));
    }

    #[test]
    fn consumes_exactly_one_record() {
        let mut bytes = list(&[1]);
        bytes.extend(list(&[2]));
        let mut r = &bytes[..];
        let mut words = [0u64];
        assert_eq!(merge_dirty_pfn_list(&mut r, 10, &mut words), Ok(1));
        assert_eq!(r.len(), list(&[2]).len());
        assert_eq!(merge_dirty_pfn_list(&mut r, 10, &mut words), Ok(1));
        assert_eq!(words, [(1 << 1) | (1 << 2)]);
        assert!(r.is_empty());
    }

    #[test]
    fn rejects_pfn_at_or_above_p2m_size() {
        let bytes = list(&[1, 10]);
        assert_eq!(merged(&bytes, 10), Err(BackChannelError::PfnOutOfRange(10)));
        let bytes = list(&[u64::MAX]);
        let e = merged(&bytes, 10).unwrap_err();
        assert_eq!(e, BackChannelError::PfnOutOfRange(u64::MAX));
        assert_eq!(e.errno(), libc::EINVAL);
    }

    #[test]
    fn rejects_a_list_longer_than_the_p2m() {
        // The secondary reports each dirty pfn once: at most p2m_size pfns, 8 bytes each.
        let bytes = list(&[1, 1]);
        assert_eq!(merged(&bytes, 2).unwrap(), (2, vec![1]));
        let bytes = list(&[1, 1, 1]);
        let e = merged(&bytes, 2).unwrap_err();
        assert_eq!(
            e,
            BackChannelError::LongerThanP2m {
                length: 24,
                p2m_size: 2
            }
        );
        assert_eq!(e.errno(), libc::EINVAL);
        assert!(e.message().contains("record length 24"), "{}", e.message());
        // Checked on the header: a huge claimed list for a small guest reads no body.
        let bytes = back_header(rec::CHECKPOINT_DIRTY_PFN_LIST, 64 << 20);
        assert_eq!(
            merged(&bytes, 1024),
            Err(BackChannelError::LongerThanP2m {
                length: 64 << 20,
                p2m_size: 1024
            })
        );
    }

    #[test]
    fn rejects_wrong_type() {
        let bytes = back_record(rec::CHECKPOINT, &[]);
        let e = merged(&bytes, 10).unwrap_err();
        assert_eq!(e, BackChannelError::WrongType(rec::CHECKPOINT));
        assert_eq!(e.errno(), libc::EINVAL);
    }

    #[test]
    fn rejects_bad_length() {
        let bytes = back_record(rec::CHECKPOINT_DIRTY_PFN_LIST, &[1, 0, 0, 0, 0]);
        let e = merged(&bytes, 10).unwrap_err();
        assert_eq!(e, BackChannelError::BadLength(5));
        assert_eq!(e.errno(), libc::EINVAL);
    }

    #[test]
    fn rejects_truncation_everywhere() {
        // Three pfns: the cut falls in the header, or in a body that spans more than one
        // chunk (CHUNK / 8 + 3 pfns), so the count of bytes received crosses chunks.
        for n in [3u64, (CHUNK / 8) as u64 + 3] {
            let bytes = list(&(0..n).collect::<Vec<u64>>());
            for cut in (0..bytes.len()).filter(|c| *c < 64 || c % 509 == 0 || *c > bytes.len() - 9)
            {
                let e = merged(&bytes[..cut], n).unwrap_err();
                let body = cut.saturating_sub(H);
                if cut >= H {
                    assert_eq!(
                        e,
                        BackChannelError::Truncated {
                            wanted: n as usize * 8,
                            got: body
                        },
                        "cut at {cut}"
                    );
                }
                assert!(
                    matches!(e, BackChannelError::Truncated { .. }),
                    "cut at {cut}: {e:?}"
                );
                assert_eq!(e.errno(), libc::EIO);
            }
        }
    }

    #[test]
    fn rejects_huge_length_without_reading_on() {
        let bytes = back_header(rec::CHECKPOINT_DIRTY_PFN_LIST, u32::MAX);
        let e = merged(&bytes, 10).unwrap_err();
        assert_eq!(e, BackChannelError::TooLong(u32::MAX));
        assert_eq!(e.errno(), libc::E2BIG);
        // At the maximum, for a guest big enough, but with no body: truncated, after reading
        // what is there.
        let mut bytes = back_header(rec::CHECKPOINT_DIRTY_PFN_LIST, REC_LENGTH_MAX);
        bytes.extend_from_slice(&[0u8; 16]);
        let p2m = u64::from(REC_LENGTH_MAX) / 8;
        let mut words = vec![0u64; p2m.div_ceil(64) as usize];
        let e = merge_dirty_pfn_list(&mut &bytes[..], p2m, &mut words).unwrap_err();
        assert_eq!(
            e,
            BackChannelError::Truncated {
                wanted: REC_LENGTH_MAX as usize,
                got: 16
            }
        );
    }

    #[test]
    fn a_timed_out_answer_says_so() {
        let e = BackChannelError::Io(libc::ETIMEDOUT);
        assert_eq!(e.errno(), libc::ETIMEDOUT);
        assert!(e.message().contains("Timed out"), "{}", e.message());
        assert!(BackChannelError::Io(libc::ECONNRESET)
            .message()
            .contains("Failed to read Record Header"));
    }

    /// The cargo-fuzz corpus (fuzz/corpus/backchannel, see docs/reliability.md) replayed with
    /// the fuzz target's invariants and checked against [`reference`]: each record ends in
    /// the pfns the reference reads (as bits, consuming exactly the record) or in its errno.
    #[test]
    fn fuzz_corpus_replays_cleanly() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/backchannel");
        let (mut n, mut records) = (0, 0);
        for entry in std::fs::read_dir(dir).expect("the fuzz corpus is in the repository") {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            n += 1;
            if data.len() < 4 {
                continue;
            }
            let p2m = u32::from_le_bytes(data[..4].try_into().unwrap()) as u64;
            let mut m = &data[4..];
            // Zeroed pages cost nothing until written, whatever the p2m size.
            let mut words = vec![0u64; p2m.div_ceil(64) as usize];
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..16 {
                let at = data.len() - m.len();
                match (
                    merge_dirty_pfn_list(&mut m, p2m, &mut words),
                    reference(&data[at..], p2m),
                ) {
                    (Ok(count), Ok((pfns, size))) => {
                        records += 1;
                        assert_eq!(count, pfns.len() as u64);
                        assert_eq!(data.len() - m.len() - at, size);
                        seen.extend(pfns);
                        assert!(seen
                            .iter()
                            .all(|&p| words[(p / 64) as usize] & (1 << (p % 64)) != 0));
                        if p2m <= 1 << 24 {
                            let ones: u32 = words.iter().map(|w| w.count_ones()).sum();
                            assert_eq!(ones as usize, seen.len(), "a bit no pfn listed");
                        }
                    }
                    (Err(e), Err(errno)) => {
                        assert_eq!(e.errno(), errno, "{e:?}");
                        assert!(!e.message().is_empty());
                        break;
                    }
                    (got, want) => panic!("merge {got:?}, reference {want:?}"),
                }
            }
        }
        assert!(n >= 10, "only {n} corpus files");
        assert!(records > 0, "no valid record in the corpus");
    }

    #[test]
    fn io_errors_keep_their_errno() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(libc::ECONNRESET))
            }
        }
        let mut words = [0u64];
        let e = merge_dirty_pfn_list(&mut Failing, 10, &mut words).unwrap_err();
        assert_eq!(e, BackChannelError::Io(libc::ECONNRESET));
        assert_eq!(e.errno(), libc::ECONNRESET);
    }
}
