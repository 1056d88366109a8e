//! SplitMix64 (Steele, Lea and Flood 2014): the one seeded generator of the project, for synthetic
//! weights, prompt ids, arrival times and bootstrap resampling. Defined here, not taken from a
//! crate, so a seed gives the same bytes on any machine and with any dependency version.

#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1), never 0 (so its logarithm is finite).
    pub fn open_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * n as f64) as usize
    }

    /// Uniform in [-1, 1), with 24 bits of the draw.
    pub fn symmetric_f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_the_published_one() {
        // Reference outputs of SplitMix64 seeded with 1234567 (the generator's reference code).
        let mut g = SplitMix64(1234567);
        let first: Vec<u64> = (0..3).map(|_| g.next_u64()).collect();
        assert_eq!(first, [6457827717110365317, 3203168211198807973, 9817491932198370423]);
    }

    #[test]
    fn draws_stay_in_their_ranges() {
        let mut g = SplitMix64(9);
        for _ in 0..10_000 {
            let u = g.open_unit();
            assert!(u > 0.0 && u < 1.0);
            assert!(g.below(7) < 7);
        }
    }

    #[test]
    fn symmetric_draws_cover_the_interval_with_the_right_spread() {
        let mut rng = SplitMix64(7);
        let xs: Vec<f32> = (0..100_000).map(|_| rng.symmetric_f32()).collect();
        let mean = xs.iter().sum::<f32>() / xs.len() as f32;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / xs.len() as f32;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0 / 3.0).abs() < 0.01, "variance {var}");
        assert!(xs.iter().all(|x| (-1.0..1.0).contains(x)));
    }
}
