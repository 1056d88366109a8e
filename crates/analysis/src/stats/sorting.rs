//! Sorting samples: exact `f64::total_cmp` order, by radix for large cells.

/// A sorted copy. Unstable sorting is exact here: values equal under `total_cmp` are bit-identical.
pub fn sorted(xs: &[f64]) -> Vec<f64> {
    if xs.len() >= RADIX_ABOVE {
        return radix_sorted(xs);
    }
    let mut v = xs.to_vec();
    v.sort_unstable_by(|a, b| a.total_cmp(b));
    v
}

/// From this many values on, [`sorted`] sorts by radix (a large cell holds tens of thousands).
const RADIX_ABOVE: usize = 4096;

/// The values in `f64::total_cmp` order, by a least-significant-digit radix sort on their bits
/// (four passes of 16 bits). The key is what `total_cmp` itself compares: the bits, with every bit
/// flipped for a negative number and only the sign bit for a positive one.
fn radix_sorted(xs: &[f64]) -> Vec<f64> {
    fn key(x: u64) -> u64 {
        x ^ (((x as i64 >> 63) as u64) | (1 << 63))
    }
    fn value(k: u64) -> u64 {
        k ^ ((((k >> 63) ^ 1).wrapping_neg()) | (1 << 63))
    }
    let mut a: Vec<u64> = xs.iter().map(|x| key(x.to_bits())).collect();
    let mut b = vec![0u64; a.len()];
    for shift in [0, 16, 32, 48] {
        let mut counts = vec![0usize; 1 << 16];
        for &k in &a {
            counts[(k >> shift) as usize & 0xFFFF] += 1;
        }
        // A digit that all keys share leaves the order as it is.
        if counts.iter().any(|&c| c == a.len()) {
            continue;
        }
        let mut at = 0;
        for c in counts.iter_mut() {
            (*c, at) = (at, at + *c);
        }
        for &k in &a {
            let d = (k >> shift) as usize & 0xFFFF;
            b[counts[d]] = k;
            counts[d] += 1;
        }
        std::mem::swap(&mut a, &mut b);
    }
    a.into_iter().map(|k| f64::from_bits(value(k))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_sort_orders_exactly_as_total_cmp() {
        let mut rng = seeded_rng::SplitMix64(11);
        let special = [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, -f64::NAN, f64::MIN_POSITIVE / 2.0, -1e-310, 1.0, 1.0];
        for n in [RADIX_ABOVE, RADIX_ABOVE + 1, 50_000] {
            let mut xs: Vec<f64> = (0..n)
                .map(|i| match i % 4 {
                    0 => f64::from_bits(rng.next_u64()),
                    1 => (rng.next_u64() % 1000) as f64 / 7.0,
                    2 => -((rng.next_u64() % 1000) as f64),
                    _ => 20.0 + (rng.next_u64() % 100) as f64 * 1e-3,
                })
                .collect();
            xs[..special.len()].copy_from_slice(&special);
            let mut expected = xs.clone();
            expected.sort_unstable_by(|a, b| a.total_cmp(b));
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&sorted(&xs)), bits(&expected), "n = {n}");
        }
        // Values sharing their high bits skip those passes and still come out sorted.
        let same: Vec<f64> = (0..RADIX_ABOVE).rev().map(|i| 1000.0 + i as f64).collect();
        assert!(sorted(&same).is_sorted());
    }
}
