// SPDX-License-Identifier: GPL-3.0-only
//! Stock's record order rules and checkpoint buffering, as a pure state machine
//! (`restore()`, `handle_checkpoint()`, `buffer_record()` in `xg_sr_restore.c`, 4.17/4.20).
//!
//! - Until the first CHECKPOINT every record is applied as it arrives (a plain stream never
//!   leaves this phase).
//! - After it, records are held until the next CHECKPOINT, and applied, in order, only once
//!   the checkpoint callback has returned `XGR_CHECKPOINT_SUCCESS`.
//! - A stream that breaks while records are held (an I/O error, EOF, a record past the
//!   maximum length, or an END) fails over: the held records are dropped and the guest stays
//!   at the last complete checkpoint.
//!
//! One deliberate difference, never visible on a stream stock accepts: stock checks a held
//! record only when it applies it, after the records before it in the checkpoint were
//! applied. Here each record is checked when it is read; the first error is kept and reported
//! at the CHECKPOINT where stock would report it, after the same callback, but before any of
//! the checkpoint is applied. The guest is then still at its last complete checkpoint.

use super::records::Record;
use super::{Error, ErrorKind, Result};
use crate::abi::xen::StreamType;
use crate::stream::rec;

/// `XGR_CHECKPOINT_ERROR`: stop with an error.
pub const XGR_CHECKPOINT_ERROR: i32 = 0;
/// `XGR_CHECKPOINT_SUCCESS`: the checkpoint is complete, go on reading.
pub const XGR_CHECKPOINT_SUCCESS: i32 = 1;
/// `XGR_CHECKPOINT_FAILOVER`: fail over to the last complete checkpoint.
pub const XGR_CHECKPOINT_FAILOVER: i32 = 2;

/// What the restore does with the record it just read.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Apply this record now.
    Apply(Record),
    /// Apply an inferred STATIC_DATA_END (version 2 stream), then this PAGE_DATA.
    InferStaticDataEnd(Record),
    /// An optional record stock ignores ("Ignoring optional record").
    Ignore(u32),
    /// Held in the pending checkpoint.
    Buffered,
    /// A CHECKPOINT: call the checkpoint callback, pass its result to
    /// [`Sequencer::checkpoint_done`].
    Checkpoint,
    /// END outside a checkpoint: the stream is complete; see [`finish`].
    End,
    /// Fail over to the last complete checkpoint (the held records are dropped); see
    /// [`finish`].
    Failover,
    /// Stop: the restore fails with this error.
    Fail(Error),
}

/// The outcome of a CHECKPOINT once its callback has answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Commit {
    /// Apply these records, in order (none at the first checkpoint), then, for COLO, run the
    /// secondary's steps (see [`colo_callback`]).
    Apply(Vec<Record>),
    /// Fail over to the last complete checkpoint.
    Failover,
    /// Stop with this error.
    Fail(Error),
}

/// Stock's order rules and checkpoint buffer for one restore.
#[derive(Debug)]
pub struct Sequencer {
    stream_type: StreamType,
    version: u32,
    bound: usize,
    seen_static_data_end: bool,
    buffering: bool,
    pending: Vec<Record>,
    held: usize,
    poison: Option<Error>,
    finished: bool,
}

impl Sequencer {
    /// A sequencer for a stream of this type and version whose pending checkpoint may hold
    /// at most `bound` bytes (counted by [`Record::held_bytes`]).
    pub fn new(stream_type: StreamType, version: u32, bound: usize) -> Sequencer {
        Sequencer {
            stream_type,
            version,
            bound,
            seen_static_data_end: false,
            buffering: false,
            pending: Vec::new(),
            held: 0,
            poison: None,
            finished: false,
        }
    }

    /// Whether records are being held (after the first complete checkpoint).
    pub fn buffering(&self) -> bool {
        self.buffering
    }

    /// Bytes held by the pending checkpoint.
    pub fn held(&self) -> usize {
        self.held
    }

    /// No record is read after this: drop what is held.
    fn close(&mut self) {
        self.finished = true;
        self.pending = Vec::new();
        self.held = 0;
    }

    fn stop(&mut self, step: Step) -> Step {
        self.close();
        step
    }

    /// Stock's order checks, and the v2 inference of STATIC_DATA_END.
    fn check_order(&mut self, r: &Record) -> Result<bool> {
        match r {
            Record::StaticDataEnd => {
                if self.seen_static_data_end {
                    return Err(Error::Order("Multiple STATIC_DATA_END records found"));
                }
                self.seen_static_data_end = true;
                Ok(false)
            }
            Record::PageData(_) if !self.seen_static_data_end => {
                if self.version < 3 {
                    self.seen_static_data_end = true;
                    Ok(true)
                } else {
                    Err(Error::Order("No STATIC_DATA_END seen"))
                }
            }
            _ => Ok(false),
        }
    }

    /// Take the result of reading the next record.
    pub fn next(&mut self, read: Result<Record>) -> Step {
        if self.finished {
            return Step::Fail(Error::Order("Record after the end of the stream"));
        }
        let record = match read {
            Ok(r) => r,
            Err(e) => {
                return match (e.kind(), self.buffering) {
                    (ErrorKind::Stream, true) => self.stop(Step::Failover),
                    (ErrorKind::Record, true) => {
                        self.poison_with(e);
                        Step::Buffered
                    }
                    _ => self.stop(Step::Fail(e)),
                }
            }
        };
        match record {
            Record::Checkpoint if self.stream_type == StreamType::Plain => self.stop(Step::Fail(
                Error::Order("Found checkpoint in non-checkpointed stream"),
            )),
            Record::Checkpoint => Step::Checkpoint,
            Record::End if self.buffering => self.stop(Step::Failover),
            Record::End => self.stop(Step::End),
            r if self.buffering => self.buffer(r),
            Record::Optional(t) => Step::Ignore(t),
            r => match self.check_order(&r) {
                Ok(false) => Step::Apply(r),
                Ok(true) => Step::InferStaticDataEnd(r),
                Err(e) => self.stop(Step::Fail(e)),
            },
        }
    }

    fn poison_with(&mut self, e: Error) {
        // Stock applies the held records at the CHECKPOINT; an unhandled one (optional or
        // not) then fails the CHECKPOINT record itself.
        let e = match e {
            Error::NotHandled(t) => not_handled_in_checkpoint(t),
            e => e,
        };
        if self.poison.is_none() {
            self.poison = Some(e);
        }
        self.pending = Vec::new();
        self.held = 0;
    }

    fn buffer(&mut self, r: Record) -> Step {
        if self.poison.is_some() {
            return Step::Buffered;
        }
        if let Record::Optional(t) = r {
            self.poison_with(Error::NotHandled(t));
            return Step::Buffered;
        }
        let infer = match self.check_order(&r) {
            Ok(infer) => infer,
            Err(e) => {
                self.poison_with(e);
                return Step::Buffered;
            }
        };
        let held = self.held + r.held_bytes() + if infer { r.held_bytes() } else { 0 };
        if held > self.bound {
            return self.stop(Step::Fail(Error::BufferFull {
                held,
                bound: self.bound,
            }));
        }
        if self.pending.try_reserve(1 + infer as usize).is_err() {
            return self.stop(Step::Fail(Error::NoMemory(held)));
        }
        if infer {
            self.pending.push(Record::StaticDataEnd);
        }
        self.pending.push(r);
        self.held = held;
        Step::Buffered
    }

    /// The checkpoint callback returned `ret`.
    pub fn checkpoint_done(&mut self, ret: i32) -> Commit {
        match ret {
            XGR_CHECKPOINT_SUCCESS => {}
            XGR_CHECKPOINT_FAILOVER if self.buffering => {
                self.close();
                return Commit::Failover;
            }
            // Stock: at the first checkpoint there is no consistent state to fail over to.
            _ => {
                self.close();
                return Commit::Fail(Error::Order(if ret == XGR_CHECKPOINT_FAILOVER {
                    "Checkpoint callback asked for failover before the first checkpoint"
                } else {
                    "Checkpoint callback failed"
                }));
            }
        }
        if let Some(e) = self.poison.take() {
            self.close();
            return Commit::Fail(e);
        }
        self.buffering = true;
        self.held = 0;
        Commit::Apply(std::mem::take(&mut self.pending))
    }
}

fn not_handled_in_checkpoint(t: u32) -> Error {
    Error::Invalid {
        rtype: rec::CHECKPOINT,
        what: format!(
            "Mandatory record {:#x} ({}) not handled (held record {t:#x} ({}))",
            rec::CHECKPOINT,
            crate::stream::rec_type_name(rec::CHECKPOINT),
            crate::stream::rec_type_name(t)
        ),
    }
}

/// What a COLO secondary's callback result means (`postcopy`, `wait_checkpoint`, `suspend`
/// after a checkpoint): 1 goes on, 2 fails over, anything else fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Fail over (stock's BROKEN_CHANNEL).
    Failover,
    /// Fail with -1.
    Fail,
}

/// Stock's `HANDLE_CALLBACK_RETURN_VALUE`.
pub fn colo_callback(ret: i32) -> Flow {
    match ret {
        1 => Flow::Continue,
        2 => Flow::Failover,
        _ => Flow::Fail,
    }
}

/// What stock does when the stream ends ([`Step::End`]) or fails over ([`Step::Failover`],
/// [`Commit::Failover`], [`Flow::Failover`]); both reach the same code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finish {
    /// Call the guest type's `stream_complete` (HVM: the event channel params, the HVM
    /// context, the grant table seed). COLO already did at every checkpoint.
    pub stream_complete: bool,
    /// Stock's log line once this succeeds.
    pub message: &'static str,
}

/// Stock's `remus_failover:` tail of `restore()`.
pub fn finish(stream_type: StreamType) -> Finish {
    match stream_type {
        StreamType::Colo => Finish {
            stream_complete: false,
            message: "COLO Failover",
        },
        _ => Finish {
            stream_complete: true,
            message: "Restore successful",
        },
    }
}

#[cfg(test)]
mod tests;
