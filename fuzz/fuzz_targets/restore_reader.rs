// SPDX-License-Identifier: GPL-3.0-only
//! A restore stream comes from another host: any byte string must end in a clean outcome
//! (complete, failover or an error with an errno and a message), never a panic, an abort or
//! an allocation the bytes do not pay for, and nothing outside the bounds may be handed on.
//!
//! Input: 4 bytes of pfn limit, 1 byte of stream type (plain, Remus, COLO), 1 byte whose bits
//! are the checkpoint callback's answers (bit set: success, clear: failover; checkpoint 9 on
//! takes bit 7), then the stream itself from its image header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcsave::abi::xen::StreamType;
use xcsave::abi::xen::{page_type_has_data, MAX_BATCH_SIZE, PAGE_SIZE};
use xcsave::restore::checkpoint::{Commit, Sequencer, Step};
use xcsave::restore::reader::{read_domain_header, read_image_header, Limits, Reader};
use xcsave::restore::records::Record;

/// The pending checkpoint's bound: small, so the bound's path is reached.
const BOUND: usize = 1 << 20;

fn check(r: &Record, limit: u64) {
    if let Record::PageData(p) = r {
        assert!(!p.pfns.is_empty() && p.pfns.len() <= MAX_BATCH_SIZE);
        assert_eq!(p.pfns.len(), p.types.len());
        assert!(p.pfns.iter().all(|&f| f < limit), "pfn past the limit");
        let data = p
            .types
            .iter()
            .filter(|&&t| page_type_has_data(u64::from(t)))
            .count();
        assert_eq!(p.data.len(), data * PAGE_SIZE);
    }
}

fn fail(e: &xcsave::restore::Error) {
    assert!(e.errno() > 0);
    assert!(!e.message().is_empty());
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let limit = u32::from_le_bytes(data[..4].try_into().unwrap()) as u64;
    let st = [StreamType::Plain, StreamType::Remus, StreamType::Colo][data[4] as usize % 3];
    let answers = data[5];
    let mut r = &data[6..];
    let version = match read_image_header(&mut r) {
        Ok(h) => h.version,
        Err(e) => return fail(&e),
    };
    match read_domain_header(&mut r).map(|d| d.check_x86_hvm()) {
        Ok(Ok(())) => {}
        Ok(Err(e)) | Err(e) => return fail(&e),
    }
    let mut reader = Reader::new(r, Limits::new(limit));
    let mut seq = Sequencer::new(st, version, BOUND);
    let mut n = 0u32;
    loop {
        let before = reader.get_mut().len();
        let step = seq.next(reader.next_record());
        assert!(seq.held() <= BOUND);
        match step {
            Step::Apply(rec) | Step::InferStaticDataEnd(rec) => {
                check(&rec, limit);
                // As the engine does: an applied record's pages go back to the reader.
                if let Record::PageData(p) = rec {
                    reader.recycle(p.data);
                }
            }
            Step::Ignore(_) | Step::Buffered => {}
            Step::Checkpoint => {
                let ret = if answers & (1 << n.min(7)) != 0 { 1 } else { 2 };
                n += 1;
                match seq.checkpoint_done(ret) {
                    Commit::Apply(recs) => recs.iter().for_each(|r| check(r, limit)),
                    Commit::Failover => return,
                    Commit::Fail(e) => return fail(&e),
                }
            }
            Step::End | Step::Failover => return,
            Step::Fail(e) => return fail(&e),
        }
        // Every step that goes on consumed at least one record header.
        assert!(reader.get_mut().len() + 8 <= before);
    }
});
