// SPDX-License-Identifier: GPL-3.0-only
//! The COLO back channel comes from another host: any byte string must end in a list of
//! in-range pfns or a clean error, never a panic, an abort or an allocation the bytes do not
//! pay for. Input: 4 bytes of p2m size, then the channel's bytes (several records). The list
//! reader and the bitmap merge must agree on every record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcsave::backchannel::{merge_dirty_pfn_list, read_dirty_pfn_list, BackChannelError};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let p2m = u32::from_le_bytes(data[..4].try_into().unwrap()) as u64;
    let (mut r, mut m) = (&data[4..], &data[4..]);
    // The bitmap is compared only up to 16 Mi pfns (2 MiB), to keep each run cheap.
    let check_merge = p2m <= 1 << 24;
    let mut words = vec![
        0u64;
        if check_merge {
            p2m.div_ceil(64) as usize
        } else {
            0
        }
    ];
    for _ in 0..16 {
        let before = r.len();
        let merged = if check_merge {
            Some(merge_dirty_pfn_list(&mut m, p2m, &mut words))
        } else {
            None
        };
        match read_dirty_pfn_list(&mut r, p2m) {
            Ok(pfns) => {
                assert!(pfns.iter().all(|&p| p < p2m), "pfn out of range accepted");
                assert!(
                    pfns.len() as u64 <= p2m,
                    "list longer than the p2m accepted"
                );
                if let Some(merged) = merged {
                    assert!(pfns
                        .iter()
                        .all(|&p| words[(p / 64) as usize] & (1 << (p % 64)) != 0));
                    assert_eq!(merged, Ok(pfns.len() as u64));
                    assert_eq!(r.len(), m.len());
                }
                // One record consumed: a header (8 bytes) and a padded body of 8 * n bytes.
                assert_eq!(before - r.len(), 8 + 8 * pfns.len());
            }
            Err(e) => {
                if let Some(merged) = merged {
                    assert_eq!(merged.err().as_ref(), Some(&e));
                }
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
