// SPDX-License-Identifier: GPL-3.0-only
//! The receiving side of migration stream v2 (issue 15), first phase: the pure pieces of a
//! cached `xc_domain_restore` for x86 HVM/PVH that need no hypervisor (docs/restore.md).
//!
//! - [`reader`]: the image and domain headers, then one record at a time from any
//!   [`std::io::Read`], every length and count checked before anything is allocated;
//! - [`records`]: the typed records the HVM/PVH restore acts on, and the page-type rules;
//! - [`checkpoint`]: stock's record order rules and checkpoint buffering as a state machine
//!   (records between CHECKPOINT markers are applied only once the checkpoint is complete).
//!
//! The stream comes from another host. Nothing here trusts it: every error is a value with
//! stock's message and an errno, never a panic.

pub mod checkpoint;
pub mod reader;
pub mod records;

use crate::stream::{rec_type_name, REC_LENGTH_MAX};

/// How an error affects the stream, which decides what a checkpointed restore does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The stream itself failed (I/O error, EOF, a length past the maximum): no further record
    /// can be read. Stock's `read_record()` failure: fatal before the first checkpoint,
    /// failover after it.
    Stream,
    /// A record was read whole but its content is invalid; the stream is still in step.
    /// Stock finds these when it processes the record: fatal at once before the first
    /// checkpoint, at the next CHECKPOINT after it.
    Record,
    /// This host ran out of memory or past a bound of its own. Always fatal: a local shortage
    /// must never make the secondary take over from a primary that is alive.
    Resource,
}

/// Why reading or sequencing the stream failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Reading failed with this errno.
    Io {
        /// What was being read, in stock's words.
        what: &'static str,
        /// The errno.
        errno: i32,
    },
    /// The stream ended early.
    Truncated {
        /// What was being read, in stock's words.
        what: &'static str,
        /// Bytes wanted.
        wanted: usize,
        /// Bytes received.
        got: usize,
    },
    /// The image header's marker is wrong.
    BadMarker(u64),
    /// The image header's id is not "XENF".
    BadId(u32),
    /// The stream version is not 2 or 3.
    BadVersion(u32),
    /// The stream is big-endian.
    BigEndian,
    /// The domain header does not fit an x86 HVM domain.
    WrongDomain(String),
    /// A record's length is past `REC_LENGTH_MAX`.
    TooLong {
        /// Record type.
        rtype: u32,
        /// Its length.
        length: u32,
    },
    /// A record's content is invalid (message in stock's words where stock has one).
    Invalid {
        /// Record type.
        rtype: u32,
        /// What is wrong.
        what: String,
    },
    /// A mandatory record this restore does not handle.
    NotHandled(u32),
    /// A record out of stock's order rules.
    Order(&'static str),
    /// No memory for something of this many bytes.
    NoMemory(usize),
    /// A pending checkpoint holds more than the buffer bound.
    BufferFull {
        /// Bytes the checkpoint would hold.
        held: usize,
        /// The bound.
        bound: usize,
    },
}

impl Error {
    /// The class of the error (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } | Error::Truncated { .. } | Error::TooLong { .. } => ErrorKind::Stream,
            Error::NoMemory(_) | Error::BufferFull { .. } => ErrorKind::Resource,
            _ => ErrorKind::Record,
        }
    }

    /// The errno reported to the caller.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Io { errno, .. } => *errno,
            Error::Truncated { .. } => libc::EIO,
            Error::TooLong { .. } => libc::E2BIG,
            Error::NoMemory(_) | Error::BufferFull { .. } => libc::ENOMEM,
            _ => libc::EINVAL,
        }
    }

    /// The log line, in the stock restore's words where it has them.
    pub fn message(&self) -> String {
        match self {
            Error::Io { what, errno } => format!(
                "Failed to read {what} from stream ({errno} = {})",
                crate::error::Errno(*errno).describe()
            ),
            Error::Truncated { what, wanted, got } => {
                format!("Failed to read {what} from stream: wanted {wanted} bytes, got {got}")
            }
            Error::BadMarker(m) => format!("Invalid marker: Got 0x{m:016x}"),
            Error::BadId(id) => format!("Invalid ID: Expected 0x58454e46, Got 0x{id:08x}"),
            Error::BadVersion(v) => {
                format!("Invalid Version: Expected 2 <= ver <= 3, Got {v}")
            }
            Error::BigEndian => "Unable to handle big endian streams".into(),
            Error::WrongDomain(what) => what.clone(),
            Error::TooLong { rtype, length } => format!(
                "Record (0x{rtype:08x}, {}) length {length:#x} exceeds max ({REC_LENGTH_MAX:#x})",
                rec_type_name(*rtype)
            ),
            Error::Invalid { what, .. } => what.clone(),
            Error::NotHandled(t) => {
                format!(
                    "Mandatory record {t:#x} ({}) not handled",
                    rec_type_name(*t)
                )
            }
            Error::Order(what) => (*what).into(),
            Error::NoMemory(n) => format!("Unable to allocate {n} bytes for record data"),
            Error::BufferFull { held, bound } => format!(
                "Checkpoint needs {held} bytes of buffered records, more than the bound {bound}"
            ),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// Result of this module's steps.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_errnos() {
        let io = Error::Io {
            what: "Record Header",
            errno: libc::ECONNRESET,
        };
        assert_eq!(io.kind(), ErrorKind::Stream);
        assert_eq!(io.errno(), libc::ECONNRESET);
        assert!(io
            .message()
            .contains("Failed to read Record Header from stream"));
        let long = Error::TooLong {
            rtype: 1,
            length: u32::MAX,
        };
        assert_eq!(
            (long.kind(), long.errno()),
            (ErrorKind::Stream, libc::E2BIG)
        );
        assert!(long.message().contains("Page data"));
        assert_eq!(Error::NotHandled(4).kind(), ErrorKind::Record);
        assert_eq!(
            Error::NotHandled(4).message(),
            "Mandatory record 0x4 (x86 PV record) not handled"
        );
        let full = Error::BufferFull { held: 2, bound: 1 };
        assert_eq!(
            (full.kind(), full.errno()),
            (ErrorKind::Resource, libc::ENOMEM)
        );
        assert_eq!(Error::Order("x").errno(), libc::EINVAL);
    }
}
