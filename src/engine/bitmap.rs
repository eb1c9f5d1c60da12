// SPDX-License-Identifier: GPL-3.0-only
//! Bit operations on `unsigned long` bitmaps, laid out as Xen and libxenctrl lay them out on
//! x86_64: bit `p` is bit `p % 64` of word `p / 64`.

/// Set bits `0..nbits`.
pub fn set_all(words: &mut [u64], nbits: u64) {
    let full = (nbits / 64) as usize;
    words[..full].iter_mut().for_each(|w| *w = !0);
    let rest = nbits % 64;
    if rest != 0 {
        words[full] |= (1u64 << rest) - 1;
    }
}

/// Set bit `p`.
pub fn set(words: &mut [u64], p: u64) {
    words[(p / 64) as usize] |= 1 << (p % 64);
}

/// Clear every bit.
pub fn clear(words: &mut [u64]) {
    words.iter_mut().for_each(|w| *w = 0);
}

/// `dst |= src`, over the shorter of the two.
pub fn or_into(dst: &mut [u64], src: &[u64]) {
    dst.iter_mut().zip(src).for_each(|(d, s)| *d |= *s);
}

/// Words needed for `nbits` bits.
pub fn words_for(nbits: u64) -> usize {
    nbits.div_ceil(64) as usize
}

/// The index of the first non-zero word of `words` at or after `from`.
pub fn next_nonzero(words: &[u64], from: usize) -> Option<usize> {
    let rest = words.get(from..)?;
    // Eight words (512 pfns) at a time, OR-reduced without a branch per word: a checkpoint's
    // bitmap is mostly zero words (16K of them for a 4 GiB p2m).
    let mut chunks = rest.chunks_exact(8);
    let mut base = from;
    for c in &mut chunks {
        if c.iter().fold(0, |a, &w| a | w) != 0 {
            return c.iter().position(|&w| w != 0).map(|o| base + o);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&w| w != 0)
        .map(|o| base + o)
}

/// Word `i` of a bitmap of `nbits` bits with the bits at or past `nbits` cleared.
pub fn below(word: u64, i: usize, nbits: u64) -> u64 {
    let base = i as u64 * 64;
    if base + 64 <= nbits {
        word
    } else if base >= nbits {
        0
    } else {
        word & ((1u64 << (nbits - base)) - 1)
    }
}

/// The set bits below `nbits`, in increasing order.
#[cfg(test)]
pub fn iter_set(words: &[u64], nbits: u64) -> impl Iterator<Item = u64> + '_ {
    words
        .iter()
        .enumerate()
        .filter(|(_, w)| **w != 0)
        .flat_map(|(i, &w)| {
            let base = i as u64 * 64;
            (0..64u64)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| base + b)
        })
        .take_while(move |&p| p < nbits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_all_and_iterate() {
        for n in [0u64, 1, 63, 64, 65, 130] {
            let mut w = vec![0u64; words_for(n) + 1];
            set_all(&mut w, n);
            let got: Vec<u64> = iter_set(&w, n).collect();
            assert_eq!(got, (0..n).collect::<Vec<_>>(), "n = {n}");
            assert_eq!(w[words_for(n)], 0, "no bit past n = {n}");
        }
    }

    #[test]
    fn nonzero_words_and_tails() {
        let w = [0u64, 0, 5, 0, 1 << 63];
        assert_eq!(next_nonzero(&w, 0), Some(2));
        assert_eq!(next_nonzero(&w, 2), Some(2));
        assert_eq!(next_nonzero(&w, 3), Some(4));
        assert_eq!(next_nonzero(&w, 5), None);
        assert_eq!(next_nonzero(&w, 9), None);
        // Across the eight-word chunks and in the remainder.
        let mut long = vec![0u64; 27];
        assert_eq!(next_nonzero(&long, 0), None);
        for i in [0usize, 7, 8, 15, 16, 23, 24, 26] {
            long[i] = 1 << (i % 64);
            for from in 0..=i {
                assert_eq!(
                    next_nonzero(&long, from),
                    Some(i),
                    "bit in word {i} from {from}"
                );
            }
            assert_eq!(next_nonzero(&long, i + 1), None);
            long[i] = 0;
        }
        assert_eq!(below(!0, 0, 64), !0);
        assert_eq!(below(!0, 1, 64), 0);
        assert_eq!(below(!0, 1, 70), 0x3f);
        assert_eq!(below(!0, 0, 3), 7);
    }

    #[test]
    fn set_or_clear() {
        let mut a = vec![0u64; 3];
        let mut b = vec![0u64; 3];
        set(&mut a, 5);
        set(&mut b, 129);
        set(&mut b, 5);
        or_into(&mut a, &b);
        assert_eq!(iter_set(&a, 192).collect::<Vec<_>>(), vec![5, 129]);
        assert_eq!(iter_set(&a, 100).collect::<Vec<_>>(), vec![5]);
        clear(&mut a);
        assert_eq!(iter_set(&a, 192).count(), 0);
    }
}
