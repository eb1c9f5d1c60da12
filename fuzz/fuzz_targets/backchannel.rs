// SPDX-License-Identifier: GPL-3.0-only
//! The COLO back channel comes from another host: any byte string must end in a list of
//! in-range pfns or a clean error, never a panic, an abort or an allocation the bytes do not
//! pay for. Input: 4 bytes of p2m size, then the channel's bytes (several records).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcsave::backchannel::{read_dirty_pfn_list, BackChannelError};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let p2m = u32::from_le_bytes(data[..4].try_into().unwrap()) as u64;
    let mut r = &data[4..];
    for _ in 0..16 {
        let before = r.len();
        match read_dirty_pfn_list(&mut r, p2m) {
            Ok(pfns) => {
                assert!(pfns.iter().all(|&p| p < p2m), "pfn out of range accepted");
                // One record consumed: a header (8 bytes) and a padded body of 8 * n bytes.
                assert_eq!(before - r.len(), 8 + 8 * pfns.len());
            }
            Err(e) => {
                assert!(e.errno() > 0);
                assert!(!e.message().is_empty());
                if let BackChannelError::Truncated { wanted, got } = e {
                    assert!(got < wanted);
                }
                break;
            }
        }
    }
});
