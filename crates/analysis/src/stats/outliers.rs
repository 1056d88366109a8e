//! Outliers by Tukey's fences.

use super::percentiles::quantile;
use super::sorting::sorted;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_flag_far_values_only() {
        let f = Fences::of(&[1.0, 2.0, 3.0, 4.0, 5.0, 100.0]);
        assert!(f.is_outlier(100.0) && !f.is_outlier(5.0));
    }
}
