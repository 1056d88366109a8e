//! The arithmetic: matrix products against mapped weights, RMSNorm, RoPE, attention.
//!
//! Dot products keep 16 independent accumulators so the compiler can vectorise them without
//! reassociating floats; on CPUs with AVX2 and FMA a second copy is compiled for those instructions
//! and chosen at run time, so one binary is fast here and safe on any x86-64.

use rayon::prelude::*;

/// A borrowed view of one matrix's elements, as the checkpoint stores them.
#[derive(Clone, Copy)]
pub enum Rows<'a> {
    Bf16(&'a [u16]),
    F32(&'a [f32]),
}

const LANES: usize = 16;

#[inline(always)]
fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

#[inline(always)]
fn dot_generic<const FMA: bool>(w: Rows<'_>, offset: usize, x: &[f32]) -> f32 {
    let n = x.len();
    let mut acc = [0f32; LANES];
    let full = n / LANES * LANES;
    macro_rules! body {
        ($w:expr, $conv:expr) => {{
            let w = &$w[offset..offset + n];
            for (wc, xc) in w[..full].chunks_exact(LANES).zip(x[..full].chunks_exact(LANES)) {
                for j in 0..LANES {
                    let a = $conv(wc[j]);
                    acc[j] = if FMA { a.mul_add(xc[j], acc[j]) } else { acc[j] + a * xc[j] };
                }
            }
            let mut tail = 0f32;
            for i in full..n {
                tail += $conv(w[i]) * x[i];
            }
            tail
        }};
    }
    let tail = match w {
        Rows::Bf16(w) => body!(w, bf16_to_f32),
        Rows::F32(w) => body!(w, |v: f32| v),
    };
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(w: Rows<'_>, offset: usize, x: &[f32]) -> f32 {
    dot_generic::<true>(w, offset, x)
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

pub fn simd_level() -> &'static str {
    if has_avx2() {
        "avx2+fma"
    } else {
        "portable"
    }
}

/// Σ w[offset + i] · x[i]
#[inline]
pub fn dot(w: Rows<'_>, offset: usize, x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports the features `dot_avx2` was compiled for.
        return unsafe { dot_avx2(w, offset, x) };
    }
    dot_generic::<false>(w, offset, x)
}

/// Copies `len` elements from `offset` into `out` as f32.
pub fn widen_row(w: Rows<'_>, offset: usize, len: usize, out: &mut [f32]) {
    match w {
        Rows::Bf16(w) => out.iter_mut().zip(&w[offset..offset + len]).for_each(|(o, &b)| *o = bf16_to_f32(b)),
        Rows::F32(w) => out[..len].copy_from_slice(&w[offset..offset + len]),
    }
}

/// `out[t][r] = Σ_c x[t][c] · w[r][c]` for `n` input rows; `w` is `rows × cols`.
///
/// Threads split the weight rows, so each weight is read from memory once per call whatever `n` is:
/// batching tokens (prefill, batched decode) multiplies work per byte read.
pub fn matmul(out: &mut [f32], x: &[f32], w: Rows<'_>, rows: usize, cols: usize, n: usize) {
    debug_assert_eq!(x.len(), n * cols);
    debug_assert_eq!(out.len(), n * rows);
    let block = (rows / (rayon::current_num_threads() * 16)).clamp(8, 256);
    if n == 1 {
        out.par_chunks_mut(block).enumerate().for_each(|(b, o)| {
            for (i, v) in o.iter_mut().enumerate() {
                *v = dot(w, (b * block + i) * cols, x);
            }
        });
        return;
    }
    // Transposed per block (weight row, then token), scattered into `out` afterwards.
    let mut t = vec![0f32; rows * n];
    t.par_chunks_mut(block * n).enumerate().for_each(|(b, o)| {
        for (i, per_token) in o.chunks_mut(n).enumerate() {
            let r = b * block + i;
            for (k, v) in per_token.iter_mut().enumerate() {
                *v = dot(w, r * cols, &x[k * cols..(k + 1) * cols]);
            }
        }
    });
    for r in 0..rows {
        for k in 0..n {
            out[k * rows + r] = t[r * n + k];
        }
    }
}

/// Llama RMSNorm: x / sqrt(mean(x²) + eps) · weight, row by row.
pub fn rms_norm(out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let d = weight.len();
    for (o, xr) in out.chunks_mut(d).zip(x.chunks(d)) {
        let ms = xr.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for ((o, &v), &g) in o.iter_mut().zip(xr).zip(weight) {
            *o = g * (v * inv);
        }
    }
}

/// Rotary embedding of one head in place, "rotate half" layout (as transformers' Llama).
pub fn rope(head: &mut [f32], pos: usize, inv_freq: &[f32]) {
    let half = head.len() / 2;
    for (i, &f) in inv_freq.iter().enumerate() {
        let angle = pos as f32 * f;
        let (sin, cos) = angle.sin_cos();
        let (a, b) = (head[i], head[i + half]);
        head[i] = a * cos - b * sin;
        head[i + half] = b * cos + a * sin;
    }
}

/// One query head against `len` cached positions: softmax(q·K/√d)·V. `k` and `v` are laid out
/// position-major with `stride` floats per position; this head's slice starts at `offset`.
pub fn attend(out: &mut [f32], q: &[f32], k: &[f32], v: &[f32], len: usize, stride: usize, offset: usize, scores: &mut Vec<f32>) {
    let d = q.len();
    let scale = 1.0 / (d as f32).sqrt();
    scores.clear();
    scores.extend((0..len).map(|p| {
        let kp = &k[p * stride + offset..p * stride + offset + d];
        q.iter().zip(kp).map(|(a, b)| a * b).sum::<f32>() * scale
    }));
    let max = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    out.fill(0.0);
    for (p, s) in scores.iter().enumerate() {
        let w = s / sum;
        let vp = &v[p * stride + offset..p * stride + offset + d];
        for (o, &x) in out.iter_mut().zip(vp) {
            *o += w * x;
        }
    }
}

pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(w: &[f32], x: &[f32], rows: usize, cols: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; rows * n];
        for k in 0..n {
            for r in 0..rows {
                out[k * rows + r] = (0..cols).map(|c| (w[r * cols + c] as f64 * x[k * cols + c] as f64)).sum::<f64>() as f32;
            }
        }
        out
    }

    #[test]
    fn matmul_matches_a_naive_product_for_single_and_batched_inputs() {
        let (rows, cols) = (37, 53); // not multiples of the lane count or the block
        let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
        let bf: Vec<u16> = w.iter().map(|v| (v.to_bits() >> 16) as u16).collect();
        let wb: Vec<f32> = bf.iter().map(|&b| bf16_to_f32(b)).collect();
        for n in [1, 3] {
            let x: Vec<f32> = (0..n * cols).map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0).collect();
            let mut out = vec![0.0; rows * n];
            matmul(&mut out, &x, Rows::F32(&w), rows, cols, n);
            let want = naive(&w, &x, rows, cols, n);
            assert!(out.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4), "f32, n={n}");
            matmul(&mut out, &x, Rows::Bf16(&bf), rows, cols, n);
            let want = naive(&wb, &x, rows, cols, n);
            assert!(out.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4), "bf16, n={n}");
        }
    }

    #[test]
    fn attention_weights_sum_to_one() {
        // Identical keys: every position gets the same weight, so the output is the mean of V.
        let q = [1.0, 2.0];
        let k = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
        let v = [1.0, 10.0, 2.0, 20.0, 3.0, 30.0];
        let mut out = [0.0; 2];
        attend(&mut out, &q, &k, &v, 3, 2, 0, &mut Vec::new());
        assert!((out[0] - 2.0).abs() < 1e-6 && (out[1] - 20.0).abs() < 1e-5, "{out:?}");
    }

    #[test]
    fn rope_at_position_zero_is_the_identity_and_preserves_norm_elsewhere() {
        let inv = [1.0, 0.1];
        let mut h = [1.0, 2.0, 3.0, 4.0];
        rope(&mut h, 0, &inv);
        assert_eq!(h, [1.0, 2.0, 3.0, 4.0]);
        rope(&mut h, 7, &inv);
        let norm: f32 = h.iter().map(|v| v * v).sum();
        assert!((norm - 30.0).abs() < 1e-4);
    }
}
