//! Two-sample tests: Welch's t and Mann-Whitney U (exact or normal, as scipy).

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

use super::describe::{mean, variance};
use super::sorting::sorted;

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
pub(super) fn rank_sum_sorted(a: &[f64], b: &[f64]) -> (f64, Vec<usize>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_mann_whitney_p_by_sample_size() {
        // Exact: 2 / C(6, 3) for 3 against 3; 2 / C(10, 5) for 5 against 5.
        assert!((mann_whitney_min_p(3, 3) - 0.1).abs() < 1e-12);
        assert!((mann_whitney_min_p(5, 5) - 2.0 / 252.0).abs() < 1e-12);
        assert!(mann_whitney_min_p(10, 10) < 0.001);
    }

    #[test]
    fn exact_u_distribution_has_the_right_total_and_symmetry() {
        let c = u_counts(3, 4);
        assert_eq!(c.iter().sum::<f64>(), 35.0); // C(7, 3)
        for u in 0..=12 {
            assert_eq!(c[u], c[12 - u]);
        }
    }
}
