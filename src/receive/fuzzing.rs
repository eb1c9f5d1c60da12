// SPDX-License-Identifier: GPL-3.0-only
//! One input of the `restore_apply` fuzz target: the apply path ([`domain_restore`]) over
//! the fake guest of `testkit::restore`, with the target's checks. Shared by the fuzz target
//! and the corpus replay in the unit tests (`apply_fuzz_corpus_replays_cleanly`).
//!
//! Input: 1 byte of stream type (plain, Remus, COLO), 1 byte whose bits are the checkpoint
//! callback's answers (bit set: success, clear: failover; checkpoint 9 on takes bit 7), then
//! the stream itself from its image header (a `restore_reader` input without its 4 bytes of
//! pfn limit).

use super::{domain_restore, Outputs, RestoreArgs, RestoreCallbacks, PFN_LIMIT_FALLBACK};
use crate::abi::xen::{StreamType, BACKCHANNEL_HEADER_LEN};
use crate::error::Errno;
use crate::stream::Sink;
use crate::testkit::restore::FakeRestore;

/// Callbacks that answer the checkpoints from the input's bits and always go on otherwise.
struct Cbs {
    answers: u8,
    checkpoints: u32,
}

impl RestoreCallbacks for Cbs {
    fn static_data_done(&mut self, _: u32) -> Option<i32> {
        Some(0)
    }
    fn checkpoint(&mut self) -> i32 {
        let ret = if self.answers & (1 << self.checkpoints.min(7)) != 0 {
            1
        } else {
            2
        };
        self.checkpoints += 1;
        ret
    }
    fn suspend(&mut self) -> i32 {
        1
    }
    fn postcopy(&mut self) -> i32 {
        1
    }
    fn wait_checkpoint(&mut self) -> i32 {
        1
    }
    fn restore_results(&mut self, _: u64, _: u64) {}
}

/// What one input did: the outcome, the checkpoint callbacks made, and the fake guest.
pub struct Applied {
    /// The restore's result.
    pub out: Result<Outputs, Errno>,
    /// Checkpoint callbacks made.
    pub checkpoints: u32,
    /// The guest as the restore left it.
    pub hv: FakeRestore,
}

/// Restore one input into a fresh fake and check what any input must leave: a failure with
/// an errno and a logged reason, no writable mapping alive, no page written at or past the
/// pfn limit, whole records on the COLO back channel. Panics if not (None: input too short).
pub fn apply_input(data: &[u8]) -> Option<Applied> {
    if data.len() < 2 {
        return None;
    }
    let st = [StreamType::Plain, StreamType::Remus, StreamType::Colo][data[0] as usize % 3];
    let mut cb = Cbs {
        answers: data[1],
        checkpoints: 0,
    };
    let hv = FakeRestore {
        dirty: vec![3, 40],
        mixed_pages: true,
        ..FakeRestore::default()
    };
    let mut back: Vec<u8> = Vec::new();
    let args = RestoreArgs {
        dom: 7,
        stream_type: st,
        store_evtchn: 5,
        store_domid: 0,
        console_evtchn: 6,
        console_domid: 0,
    };
    let chan = (st == StreamType::Colo).then_some(&mut back as &mut dyn Sink);
    let out = domain_restore(&hv, &data[2..], chan, &mut cb, args);
    {
        let g = hv.g.borrow();
        if let Err(e) = out {
            assert!(e.0 > 0, "an error without an errno");
            assert!(
                g.calls.iter().any(|c| c.starts_with("error ")),
                "a failure without a logged reason: {:?}",
                g.calls
            );
        }
        assert!(
            g.pages.keys().all(|&p| p < PFN_LIMIT_FALLBACK),
            "a page past the limit"
        );
    }
    assert_eq!(
        hv.live_maps.get(),
        0,
        "a writable mapping outlived the restore"
    );
    // Each dirty list: the release's header, then the fake's two pfns.
    assert_eq!(back.len() % (BACKCHANNEL_HEADER_LEN + 16), 0);
    Some(Applied {
        out,
        checkpoints: cb.checkpoints,
        hv,
    })
}
