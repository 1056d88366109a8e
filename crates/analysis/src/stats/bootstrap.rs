//! Percentile-bootstrap intervals, seeded: of any statistic, of the median (resampled or exact),
//! and of a ratio of medians.

use seeded_rng::SplitMix64;

use super::percentiles::quantile;
use super::sorting::sorted;

fn resample(xs: &[f64], rng: &mut SplitMix64, buf: &mut Vec<f64>) {
    buf.clear();
    buf.extend((0..xs.len()).map(|_| xs[rng.below(xs.len())]));
}

/// The median of one bootstrap resample of the sorted `s`, drawn exactly as [`resample`] followed
/// by [`median`] would (same generator calls, same value), in O(n) without sorting: because `s`
/// is sorted, the resample's order statistics are `s` at the order statistics of the drawn
/// indices, which a count per index gives.
fn resampled_median_of_sorted(s: &[f64], rng: &mut SplitMix64, counts: &mut Vec<u32>) -> f64 {
    let n = s.len();
    counts.clear();
    counts.resize(n, 0);
    for _ in 0..n {
        counts[rng.below(n)] += 1;
    }
    let upper_rank = n / 2; // 0-based rank of the upper middle value
    let (mut seen, mut lower) = (0usize, None);
    for (i, &c) in counts.iter().enumerate() {
        let c = c as usize;
        if c == 0 {
            continue;
        }
        if n % 2 == 0 && lower.is_none() && seen + c >= upper_rank {
            lower = Some(s[i]);
        }
        if seen + c > upper_rank {
            return match lower {
                Some(lower) => (lower + s[i]) / 2.0,
                None => s[i],
            };
        }
        seen += c;
    }
    unreachable!("n draws reach rank n / 2")
}

/// [`bootstrap`] of the median of a sorted sample: the same interval, computed faster.
fn bootstrap_median_of_sorted(s: &[f64], level: f64, resamples: usize, seed: u64) -> Option<(f64, f64)> {
    if s.len() < 2 {
        return None;
    }
    let mut rng = SplitMix64(seed);
    let mut counts = Vec::with_capacity(s.len());
    let mut stats: Vec<f64> = (0..resamples).map(|_| resampled_median_of_sorted(s, &mut rng, &mut counts)).collect();
    stats.sort_unstable_by(|a, b| a.total_cmp(b));
    Some((quantile(&stats, (1.0 - level) / 2.0), quantile(&stats, (1.0 + level) / 2.0)))
}

/// Percentile bootstrap interval of `stat` over `resamples` resamples, seeded.
pub fn bootstrap(xs: &[f64], stat: impl Fn(&[f64]) -> f64, level: f64, resamples: usize, seed: u64) -> Option<(f64, f64)> {
    if xs.len() < 2 {
        return None;
    }
    let mut rng = SplitMix64(seed);
    let mut buf = Vec::with_capacity(xs.len());
    let mut stats: Vec<f64> = (0..resamples)
        .map(|_| {
            resample(xs, &mut rng, &mut buf);
            stat(&buf)
        })
        .collect();
    stats.sort_by(|a, b| a.total_cmp(b));
    Some((quantile(&stats, (1.0 - level) / 2.0), quantile(&stats, (1.0 + level) / 2.0)))
}

/// Samples above this size get the median's bootstrap interval in closed form (below), the limit
/// the resampled one tends to; below it, resampling is cheap. Every cell of the committed runs is
/// below it (≤ 20 requests); a million-request run is far above.
pub const EXACT_BOOTSTRAP_ABOVE: usize = 200;

/// Percentile-bootstrap interval for the median: resampled (seeded) up to
/// [`EXACT_BOOTSTRAP_ABOVE`] values, exact above. The second is the same bootstrap with infinitely
/// many resamples: the median of a resample (its ⌈n/2⌉-th order statistic) is ≤ x₍ₖ₎ exactly when
/// at least ⌈n/2⌉ of the n draws are ≤ x₍ₖ₎, which is Binomial(n, k/n).
/// The sample is resampled in sorted order, so the interval does not depend on the order of `xs`.
pub fn median_interval(xs: &[f64], level: f64, resamples: usize, seed: u64) -> Option<(f64, f64)> {
    median_interval_sorted(&sorted(xs), level, resamples, seed)
}

/// [`median_interval`] of a sample already sorted.
pub fn median_interval_sorted(s: &[f64], level: f64, resamples: usize, seed: u64) -> Option<(f64, f64)> {
    if s.len() <= EXACT_BOOTSTRAP_ABOVE {
        return bootstrap_median_of_sorted(s, level, resamples, seed);
    }
    median_interval_exact(s, level)
}

/// The percentile-bootstrap interval of the median with infinitely many resamples (see
/// [`median_interval`]), of a sorted sample of any size ≥ 2.
pub fn median_interval_exact(s: &[f64], level: f64) -> Option<(f64, f64)> {
    if s.len() < 2 {
        return None;
    }
    let n = s.len() as u64;
    let m = n.div_ceil(2);
    // P(median* ≤ x₍ₖ₎) = P(Bin(n, k/n) ≥ m), increasing in k: binary search for each tail.
    let p_at_most = |k: u64| -> f64 {
        if k >= n {
            return 1.0;
        }
        let bin = statrs::distribution::Binomial::new(k as f64 / n as f64, n).expect("valid binomial");
        use statrs::distribution::DiscreteCDF;
        bin.sf(m - 1)
    };
    let first_reaching = |target: f64| -> usize {
        let (mut lo, mut hi) = (1u64, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if p_at_most(mid) >= target {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo as usize - 1
    };
    Some((s[first_reaching((1.0 - level) / 2.0)], s[first_reaching((1.0 + level) / 2.0)]))
}

/// Ratio of medians `a / b` with a bootstrap interval (both samples resampled independently).
pub fn ratio_of_medians(a: &[f64], b: &[f64], level: f64, resamples: usize, seed: u64) -> Option<(f64, (f64, f64))> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    // Both resampled in sorted order (see `resampled_median_of_sorted`): the interval does not
    // depend on the order the values came in.
    let (a, b) = (sorted(a), sorted(b));
    let point = quantile(&a, 0.5) / quantile(&b, 0.5);
    let mut rng = SplitMix64(seed);
    let (mut ca, mut cb) = (Vec::new(), Vec::new());
    let mut stats: Vec<f64> = (0..resamples)
        .map(|_| resampled_median_of_sorted(&a, &mut rng, &mut ca) / resampled_median_of_sorted(&b, &mut rng, &mut cb))
        .collect();
    stats.sort_unstable_by(|x, y| x.total_cmp(y));
    Some((point, (quantile(&stats, (1.0 - level) / 2.0), quantile(&stats, (1.0 + level) / 2.0))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::median;

    #[test]
    fn counting_resampled_medians_equal_materialised_ones() {
        for n in [2usize, 3, 10, 11, 400, 1001] {
            let mut g = SplitMix64(n as u64);
            // Ties included: values on a coarse grid.
            let s = sorted(&(0..n).map(|_| (g.next_u64() % 50) as f64).collect::<Vec<_>>());
            let (mut r1, mut r2) = (SplitMix64(7), SplitMix64(7));
            let (mut buf, mut counts) = (Vec::new(), Vec::new());
            for _ in 0..200 {
                resample(&s, &mut r1, &mut buf);
                assert_eq!(median(&buf).to_bits(), resampled_median_of_sorted(&s, &mut r2, &mut counts).to_bits(), "n = {n}");
            }
            assert_eq!(bootstrap(&s, median, 0.95, 300, 5), bootstrap_median_of_sorted(&s, 0.95, 300, 5));
        }
    }

    #[test]
    fn bootstrap_is_reproducible_and_covers_the_median() {
        let xs: Vec<f64> = (0..50).map(|i| (i * 37 % 50) as f64).collect();
        let a = bootstrap(&xs, median, 0.95, 2000, 1).unwrap();
        assert_eq!(a, bootstrap(&xs, median, 0.95, 2000, 1).unwrap());
        assert!(a.0 < median(&xs) && median(&xs) < a.1, "{a:?}");
    }

    #[test]
    fn exact_median_bootstrap_agrees_with_resampling() {
        // Just above the switch, the closed form and 4000 seeded resamples give the same order
        // statistics, give or take one neighbour.
        let n = EXACT_BOOTSTRAP_ABOVE + 1;
        let xs: Vec<f64> = (0..n).map(|i| ((i * 7919) % n) as f64).collect();
        let exact = median_interval(&xs, 0.95, 0, 0).unwrap();
        let resampled = bootstrap(&xs, median, 0.95, 4000, 3).unwrap();
        assert!((exact.0 - resampled.0).abs() <= 2.0 && (exact.1 - resampled.1).abs() <= 2.0, "{exact:?} vs {resampled:?}");
        // The sample is 0..n: the interval is the median ± 1.96 × √n / 2 order statistics.
        let (half, m) = (1.96 * (n as f64).sqrt() / 2.0, (n / 2) as f64);
        assert!((exact.0 - (m - half)).abs() <= 2.0 && (exact.1 - (m + half)).abs() <= 2.0, "{exact:?}");
    }
}
