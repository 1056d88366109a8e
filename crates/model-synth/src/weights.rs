//! Seeded random bf16 weights, written as one safetensors file.
//!
//! The generator is the project's own SplitMix64 (`seeded-rng`), so the bytes for a seed never
//! change under a dependency update. Each tensor is cut into fixed chunks with their own
//! stream, so the result does not depend on how many threads write it.

use std::io::Write;
use std::path::Path;

use rayon::prelude::*;

use seeded_rng::SplitMix64;

use crate::{LlamaShape, SynthError};

const CHUNK: usize = 1 << 16;

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Round-to-nearest-even f32 → bf16 (the values here are finite).
fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// How each tensor is drawn: `center + U(-1, 1) * spread`.
///
/// Spreads keep a signal of unit scale through every layer (projections get 1/sqrt(fan_in), so
/// each block adds about unit variance to the residual stream), and the tied embedding gets
/// 3/sqrt(hidden) so logits have a standard deviation near 3: neither flat nor one-hot. The
/// embedding stays small beside what the layers add, so the input token does not dominate the
/// output and greedy decoding does not just repeat it. (U(-1, 1) has standard deviation 1/sqrt(3).)
fn distribution(shape: &LlamaShape, name: &str, dims: &[usize]) -> (f32, f32) {
    let unit = 3f32.sqrt();
    if name.ends_with("norm.weight") {
        return (1.0, 0.1);
    }
    if name == "model.embed_tokens.weight" {
        return (0.0, unit * 3.0 / (shape.hidden_size as f32).sqrt());
    }
    (0.0, unit / (dims[1] as f32).sqrt())
}

fn tensor_bytes(seed: u64, name: &str, len: usize, (center, spread): (f32, f32)) -> Vec<u8> {
    let base = seed ^ fnv1a(name);
    let mut out = vec![0u8; len * 2];
    out.par_chunks_mut(CHUNK * 2).enumerate().for_each(|(c, bytes)| {
        let mut rng = SplitMix64(base.wrapping_add((c as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)));
        for pair in bytes.chunks_exact_mut(2) {
            pair.copy_from_slice(&bf16_bits(center + rng.symmetric_f32() * spread).to_le_bytes());
        }
    });
    out
}

pub(crate) fn write_safetensors(shape: &LlamaShape, seed: u64, path: &Path) -> Result<(), SynthError> {
    let tensors = shape.tensors();
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({ "format": "pt" }));
    let mut offset = 0usize;
    for (name, dims) in &tensors {
        let bytes = dims.iter().product::<usize>() * 2;
        header.insert(name.clone(), serde_json::json!({ "dtype": "BF16", "shape": dims, "data_offsets": [offset, offset + bytes] }));
        offset += bytes;
    }
    let mut header = serde_json::to_vec(&header).expect("header serialises");
    // The data section starts 8-byte aligned, as the reference writer does.
    while (header.len() + 8) % 8 != 0 {
        header.push(b' ');
    }
    let err = |source| SynthError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::create(path).map_err(err)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 22, file);
    w.write_all(&(header.len() as u64).to_le_bytes()).map_err(err)?;
    w.write_all(&header).map_err(err)?;
    for (name, dims) in &tensors {
        let len = dims.iter().product();
        w.write_all(&tensor_bytes(seed, name, len, distribution(shape, name, dims))).map_err(err)?;
    }
    w.flush().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3F80);
        assert_eq!(bf16_bits(-2.0), 0xC000);
        // 1 + 2^-8 is halfway between two bf16 values: ties go to the even mantissa (1.0).
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3F80);
        assert_eq!(bf16_bits(1.0 + 3.0 / 256.0), 0x3F82);
    }
}
