//! Effect sizes between two samples: Cliff's delta and the Hodges–Lehmann shift.

use super::describe::median;
use super::hypothesis::rank_sum_sorted;
use super::sorting::sorted;

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
    fn cliffs_delta_counts_pairs_with_ties() {
        // Pairs (a > b) − (a < b) over 3 × 3: a = [1, 2, 3], b = [2, 2, 4]: 1: −3, 2: −1, 3: +1 → −3/9.
        assert!((cliffs_delta(&[1.0, 2.0, 3.0], &[2.0, 2.0, 4.0]) + 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(cliffs_delta(&[5.0, 6.0], &[1.0]), 1.0);
    }
}
