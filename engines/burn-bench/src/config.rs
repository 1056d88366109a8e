//! The checkpoint's config (read by `crates/checkpoint`, one reader for every Rust engine) and the
//! rotary tables this engine builds from it.

pub use checkpoint::LlamaConfig;

/// `cos` and `sin` tables for positions `0..positions`, `[positions, head_dim]` row-major, in the
/// "rotate half" layout: column `i` and `i + head_dim/2` share frequency `i`. The sine table
/// carries the sign of `rotate_half` (negative in the first half), so that
/// `rope(x) = x * cos + swap_halves(x) * sin`.
pub fn rope_tables(cfg: &LlamaConfig, positions: usize) -> (Vec<f32>, Vec<f32>) {
    let inv_freq = cfg.inv_freq();
    let d = cfg.head_dim();
    let half = d / 2;
    let mut cos = vec![0f32; positions * d];
    let mut sin = vec![0f32; positions * d];
    for p in 0..positions {
        for (i, &f) in inv_freq.iter().enumerate() {
            let angle = p as f32 * f;
            let (s, c) = angle.sin_cos();
            cos[p * d + i] = c;
            cos[p * d + half + i] = c;
            sin[p * d + i] = -s;
            sin[p * d + half + i] = s;
        }
    }
    (cos, sin)
}
