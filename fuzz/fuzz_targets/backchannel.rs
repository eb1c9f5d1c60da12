// SPDX-License-Identifier: GPL-3.0-only
//! The COLO back channel comes from another host: any byte string must end in in-range pfns
//! set in the bitmap or a clean error, never a panic, an abort or an allocation. Input: 4
//! bytes of p2m size, then the channel's bytes (several records), merged one record at a
//! time into the bitmap as the engine does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcsave::backchannel::{merge_dirty_pfn_list, BackChannelError};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let p2m = u32::from_le_bytes(data[..4].try_into().unwrap()) as u64;
    // The bitmap is compared bit by bit only up to 16 Mi pfns (2 MiB), to keep runs cheap;
    // past that, a smaller bitmap checks the merge's own bound (no index panic).
    let full = p2m <= 1 << 24;
    let mut words = vec![
        0u64;
        if full {
            p2m.div_ceil(64) as usize
        } else {
            1 << 15
        }
    ];
    let mut m = &data[4..];
    for _ in 0..16 {
        let before = m.len();
        let (length, body) = match m.get(..8) {
            Some(h) => (
                u32::from_le_bytes(h[4..8].try_into().unwrap()) as usize,
                &m[8..],
            ),
            None => (0, &m[..0]),
        };
        // Counting the bitmap's bits costs a pass over it: small guests only.
        let ones =
            |w: &[u64]| (p2m <= 1 << 16).then(|| w.iter().map(|w| w.count_ones()).sum::<u32>());
        let ones_before = ones(&words);
        match merge_dirty_pfn_list(&mut m, p2m, &mut words) {
            Ok(n) => {
                // One record consumed: a header (8 bytes) and a body of 8 * n bytes.
                assert_eq!(before - m.len(), 8 + 8 * n as usize);
                assert_eq!(length, 8 * n as usize);
                assert!(n <= p2m, "list longer than the p2m accepted");
                for c in body[..length].chunks_exact(8) {
                    let pfn = u64::from_le_bytes(c.try_into().unwrap());
                    assert!(pfn < p2m, "pfn out of range accepted");
                    assert!(words[(pfn / 64) as usize] & (1 << (pfn % 64)) != 0);
                }
                if let (Some(a), Some(b)) = (ones_before, ones(&words)) {
                    assert!(u64::from(b - a) <= n, "a bit no pfn listed");
                }
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
