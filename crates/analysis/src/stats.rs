//! The statistics the report states, each checked against scipy on committed fixtures
//! (`fixtures/make_scipy_fixtures.py`): descriptive figures, intervals, outliers, and the tests
//! between two engines.

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// Quantile with linear interpolation between order statistics (numpy's default, "type 7").
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "quantile of an empty sample");
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

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

pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample variance (n − 1 in the denominator).
pub fn variance(xs: &[f64]) -> f64 {
    let m = mean(xs);
    xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() as f64 - 1.0)
}

/// Median by selection, O(n) (numpy's median for even n: the mean of the two middle values).
pub fn median(xs: &[f64]) -> f64 {
    assert!(!xs.is_empty(), "median of an empty sample");
    let mut v = xs.to_vec();
    let n = v.len();
    let (_, &mut upper, _) = v.select_nth_unstable_by(n / 2, |a, b| a.total_cmp(b));
    if n % 2 == 1 {
        upper
    } else {
        let lower = v[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

/// Tukey's fences: beyond 1.5 IQR is an outlier, beyond 3 IQR a far-out one.
#[derive(Debug, Clone, PartialEq)]
pub struct Fences {
    pub q1: f64,
    pub q3: f64,
    pub inner: (f64, f64),
    pub outer: (f64, f64),
}

impl Fences {
    pub fn of(xs: &[f64]) -> Fences {
        Fences::of_sorted(&sorted(xs))
    }
    pub fn of_sorted(s: &[f64]) -> Fences {
        let (q1, q3) = (quantile(s, 0.25), quantile(s, 0.75));
        let iqr = q3 - q1;
        Fences { q1, q3, inner: (q1 - 1.5 * iqr, q3 + 1.5 * iqr), outer: (q1 - 3.0 * iqr, q3 + 3.0 * iqr) }
    }
    pub fn is_outlier(&self, x: f64) -> bool {
        x < self.inner.0 || x > self.inner.1
    }
}

/// Confidence interval for the mean from Student's t.
pub fn t_interval(xs: &[f64], level: f64) -> Option<(f64, f64)> {
    if xs.len() < 2 {
        return None;
    }
    let n = xs.len() as f64;
    let t = StudentsT::new(0.0, 1.0, n - 1.0).ok()?.inverse_cdf(0.5 + level / 2.0);
    let half = t * (variance(xs) / n).sqrt();
    let m = mean(xs);
    Some((m - half, m + half))
}

/// A small, fixed generator so resampling is reproducible across platforms and crate updates.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * n as f64) as usize
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestResult {
    pub statistic: f64,
    pub p_value: f64,
}

/// Welch's two-sample t-test, two-sided (unequal variances).
pub fn welch_t(a: &[f64], b: &[f64]) -> Option<TestResult> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (va, vb) = (variance(a) / na, variance(b) / nb);
    let se2 = va + vb;
    if se2 == 0.0 {
        return None;
    }
    let t = (mean(a) - mean(b)) / se2.sqrt();
    let df = se2 * se2 / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    Some(TestResult { statistic: t, p_value: (2.0 * dist.cdf(-t.abs())).min(1.0) })
}

/// The rank sum of `a` in the pooled sample (average ranks for ties, 1-based) and the sizes of
/// the tie groups, from both samples sorted: one merge, O(m + n).
fn rank_sum_sorted(a: &[f64], b: &[f64]) -> (f64, Vec<usize>) {
    let (mut i, mut j, mut before) = (0usize, 0usize, 0usize);
    let mut r1 = 0.0;
    let mut ties = Vec::new();
    while i < a.len() || j < b.len() {
        let v = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => {
                if x.total_cmp(&y).is_le() {
                    x
                } else {
                    y
                }
            }
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => unreachable!(),
        };
        let ca = a[i..].iter().take_while(|&&x| x == v).count();
        let cb = b[j..].iter().take_while(|&&y| y == v).count();
        let t = ca + cb;
        // The group holds ranks before+1 ..= before+t; each of its values gets their average.
        r1 += ca as f64 * (before as f64 + (t as f64 + 1.0) / 2.0);
        if t > 1 {
            ties.push(t);
        }
        before += t;
        i += ca;
        j += cb;
    }
    (r1, ties)
}

/// Number of ways to reach each U value for sizes (m, n): the exact null distribution.
fn u_counts(m: usize, n: usize) -> Vec<f64> {
    // c[i][j][u]: arrangements of i values of the first sample and j of the second with statistic u.
    let max_u = m * n;
    let mut prev: Vec<Vec<f64>> = vec![vec![0.0; max_u + 1]; n + 1];
    for row in prev.iter_mut() {
        row[0] = 1.0; // i = 0: U = 0 whatever j is
    }
    for _ in 1..=m {
        let mut cur: Vec<Vec<f64>> = vec![vec![0.0; max_u + 1]; n + 1];
        cur[0][0] = 1.0;
        for j in 1..=n {
            for u in 0..=max_u {
                // The largest value belongs to the first sample (adds j to U) or to the second.
                let a = if u >= j { prev[j][u - j] } else { 0.0 };
                cur[j][u] = a + cur[j - 1][u];
            }
        }
        prev = cur;
    }
    prev[n].clone()
}

/// Mann-Whitney U test, two-sided, as scipy's `mannwhitneyu(a, b, method="auto")`: the exact
/// distribution when both samples are smaller than 8 and there are no ties, otherwise the normal
/// approximation with tie correction and continuity correction. The statistic is U of `a`.
pub fn mann_whitney_u(a: &[f64], b: &[f64]) -> Option<TestResult> {
    mann_whitney_u_sorted(&sorted(a), &sorted(b))
}

/// [`mann_whitney_u`] of two samples already sorted.
pub fn mann_whitney_u_sorted(a: &[f64], b: &[f64]) -> Option<TestResult> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (m, n) = (a.len(), b.len());
    let (r1, ties) = rank_sum_sorted(a, b);
    let u1 = r1 - (m * (m + 1)) as f64 / 2.0;
    let u2 = (m * n) as f64 - u1;
    let u = u1.max(u2);
    let p = if m < 8 && n < 8 && ties.is_empty() {
        let counts = u_counts(m, n);
        let total: f64 = counts.iter().sum();
        // P(U >= u) for the larger U, doubled.
        let upper: f64 = counts[(u.round() as usize)..].iter().sum::<f64>() / total;
        (2.0 * upper).min(1.0)
    } else {
        let (mf, nf) = (m as f64, n as f64);
        let nn = mf + nf;
        let tie_term: f64 = ties.iter().map(|&t| (t * t * t - t) as f64).sum::<f64>() / (nn * (nn - 1.0));
        let sd = (mf * nf / 12.0 * ((nn + 1.0) - tie_term)).sqrt();
        if sd == 0.0 {
            1.0
        } else {
            let z = (u - mf * nf / 2.0 - 0.5) / sd;
            (2.0 * (1.0 - Normal::new(0.0, 1.0).ok()?.cdf(z))).min(1.0)
        }
    };
    Some(TestResult { statistic: u1, p_value: p })
}

/// The smallest two-sided p-value [`mann_whitney_u`] can give for samples of these sizes (two
/// completely separated samples, no ties). When it is not below α, no data of that size can make
/// the test reject: 3 requests against 3 can never reach p < 0.05 (the exact minimum is 0.1).
pub fn mann_whitney_min_p(m: usize, n: usize) -> f64 {
    let above: Vec<f64> = (0..m).map(|i| (n + i) as f64).collect();
    let below: Vec<f64> = (0..n).map(|i| i as f64).collect();
    mann_whitney_u(&above, &below).map_or(1.0, |t| t.p_value)
}

/// Holm's step-down adjustment of p-values (family-wise error), in the input order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (k, &i) in order.iter().enumerate() {
        running = running.max(((m - k) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Cliff's delta: P(a > b) − P(a < b), from −1 to 1.
pub fn cliffs_delta(a: &[f64], b: &[f64]) -> f64 {
    cliffs_delta_sorted(&sorted(a), &sorted(b))
}

/// [`cliffs_delta`] of two samples already sorted, from the rank sum: U of `a` counts the pairs
/// with a > b plus half the ties, so #(a > b) − #(a < b) = 2U − mn.
pub fn cliffs_delta_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (m, n) = (a.len() as f64, b.len() as f64);
    let u = rank_sum_sorted(a, b).0 - m * (m + 1.0) / 2.0;
    (2.0 * u - m * n) / (m * n)
}

/// Hodges–Lehmann shift: the median of all differences a_i − b_j.
pub fn hodges_lehmann(a: &[f64], b: &[f64]) -> f64 {
    let d: Vec<f64> = a.iter().flat_map(|x| b.iter().map(move |y| x - y)).collect();
    median(&d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_sort_orders_exactly_as_total_cmp() {
        let mut rng = SplitMix64(11);
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
    fn smallest_mann_whitney_p_by_sample_size() {
        // Exact: 2 / C(6, 3) for 3 against 3; 2 / C(10, 5) for 5 against 5.
        assert!((mann_whitney_min_p(3, 3) - 0.1).abs() < 1e-12);
        assert!((mann_whitney_min_p(5, 5) - 2.0 / 252.0).abs() < 1e-12);
        assert!(mann_whitney_min_p(10, 10) < 0.001);
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&s, 0.5), 2.5);
        assert_eq!(quantile(&s, 0.25), 1.75);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
    }

    #[test]
    fn exact_u_distribution_has_the_right_total_and_symmetry() {
        let c = u_counts(3, 4);
        assert_eq!(c.iter().sum::<f64>(), 35.0); // C(7, 3)
        for u in 0..=12 {
            assert_eq!(c[u], c[12 - u]);
        }
    }

    #[test]
    fn holm_is_monotone_and_capped() {
        assert_eq!(holm(&[0.01, 0.04, 0.03]), vec![0.03, 0.06, 0.06]);
        assert_eq!(holm(&[0.5, 0.9]), vec![1.0, 1.0]);
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

    #[test]
    fn cliffs_delta_counts_pairs_with_ties() {
        // Pairs (a > b) − (a < b) over 3 × 3: a = [1, 2, 3], b = [2, 2, 4]: 1: −3, 2: −1, 3: +1 → −3/9.
        assert!((cliffs_delta(&[1.0, 2.0, 3.0], &[2.0, 2.0, 4.0]) + 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(cliffs_delta(&[5.0, 6.0], &[1.0]), 1.0);
    }

    #[test]
    fn fences_flag_far_values_only() {
        let f = Fences::of(&[1.0, 2.0, 3.0, 4.0, 5.0, 100.0]);
        assert!(f.is_outlier(100.0) && !f.is_outlier(5.0));
    }
}
