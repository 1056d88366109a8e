//! Spearman's rank correlation: how far two measures rise and fall together, in any monotone
//! relation and unmoved by a few extreme values (host readings have long tails).

/// Fewer pairs than this get no ρ in any report: below it even a strong ρ is common by chance.
pub const MIN_PAIRS: usize = 10;

/// The |ρ| that n unrelated pairs exceed by chance about 5 % of the time (two-sided, the normal
/// approximation 1.96 / √(n − 1)): a ρ smaller than it in one run says little.
pub fn chance_level(n: usize) -> f64 {
    1.96 / ((n.max(2) - 1) as f64).sqrt()
}

/// Ranks from 1, ties given their average rank.
fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut r = vec![0.0; xs.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && xs[order[j + 1]] == xs[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            r[k] = rank;
        }
        i = j + 1;
    }
    r
}

/// Spearman's ρ of paired values (None below 3 pairs, or when either side is constant).
pub fn spearman(xs: &[f64], ys: &[f64]) -> Option<f64> {
    assert_eq!(xs.len(), ys.len(), "paired values");
    if xs.len() < 3 {
        return None;
    }
    let (rx, ry) = (ranks(xs), ranks(ys));
    let m = (xs.len() + 1) as f64 / 2.0;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - m) * (b - m);
        sxx += (a - m) * (a - m);
        syy += (b - m) * (b - m);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotone_relations_are_plus_or_minus_one_and_ties_share_ranks() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(spearman(&x, &[1.0, 8.0, 27.0, 64.0, 1000.0]), Some(1.0));
        assert_eq!(spearman(&x, &[5.0, 4.0, 3.0, 2.0, -100.0]), Some(-1.0));
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 30.0]), vec![1.5, 3.0, 1.5, 4.0]);
        // A textbook case: ρ = 1 − 6 Σd² / (n(n² − 1)) with d = (0, 0, 1, −1, 0) gives 0.9.
        let rho = spearman(&x, &[1.0, 2.0, 4.0, 3.0, 5.0]).unwrap();
        assert!((rho - 0.9).abs() < 1e-12, "{rho}");
        assert_eq!(spearman(&x, &[2.0; 5]), None);
        assert_eq!(spearman(&x[..2], &[1.0, 2.0]), None);
        assert!((chance_level(30) - 0.364).abs() < 1e-3);
    }
}
