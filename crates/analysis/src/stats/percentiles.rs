//! Percentiles, two definitions: interpolated quantiles (numpy's default, for intervals and
//! spreads) and nearest-rank p50/p90/p99 (the latency figures a service level is written in).

use serde::Serialize;

/// Quantile with linear interpolation between order statistics (numpy's default, "type 7").
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "quantile of an empty sample");
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// Nearest-rank p50, p90 and p99 (the smallest value with at least q of the sample at or below it).
pub fn percentiles(mut xs: Vec<f64>) -> Option<Percentiles> {
    if xs.is_empty() {
        return None;
    }
    // Three selections, not a sort: each places its rank's value where a sort would, and leaves
    // larger values above it, so the next (higher) rank is found among those.
    let rank = |q: f64| ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1;
    let (r50, r90, r99) = (rank(0.50), rank(0.90), rank(0.99));
    let p50 = *xs.select_nth_unstable_by(r50, f64::total_cmp).1;
    let p90 = *xs[r50..].select_nth_unstable_by(r90 - r50, f64::total_cmp).1;
    let p99 = *xs[r90..].select_nth_unstable_by(r99 - r90, f64::total_cmp).1;
    Some(Percentiles { p50, p90, p99 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::median;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&s, 0.5), 2.5);
        assert_eq!(quantile(&s, 0.25), 1.75);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let p = percentiles((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!((p.p50, p.p90, p.p99), (50.0, 90.0, 99.0));
        let p = percentiles(vec![7.0]).unwrap();
        assert_eq!((p.p50, p.p99), (7.0, 7.0));
        // The selections agree with sorting, shuffled input and ties included.
        let mut rng = seeded_rng::SplitMix64(7);
        for n in 1..300 {
            let xs: Vec<f64> = (0..n).map(|_| (rng.next_u64() % 50) as f64).collect();
            let mut s = xs.clone();
            s.sort_by(f64::total_cmp);
            let at = |q: f64| s[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
            let p = percentiles(xs).unwrap();
            assert_eq!((p.p50, p.p90, p.p99), (at(0.5), at(0.9), at(0.99)), "n = {n}");
        }
    }
}
