//! Seeded random bf16 weights, written as one safetensors file or as shards with an index (the
//! layout of every real Llama of 3B and more). Each tensor is generated as it is written: no
//! second copy of the checkpoint is ever held.
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
/// 3/sqrt(hidden) so logits have a standard deviation near 3: neither flat nor one-hot (an untied
/// `lm_head` gets the same spread: at 1/sqrt(hidden) the logits' deviation is 1, and bf16 rounding
/// then flips greedy choices between near-ties over 128,256 tokens within a few steps). The
/// embedding stays small beside what the layers add, so the input token does not dominate the
/// output and greedy decoding does not just repeat it. (U(-1, 1) has standard deviation 1/sqrt(3).)
fn distribution(shape: &LlamaShape, name: &str, dims: &[usize]) -> (f32, f32) {
    let unit = 3f32.sqrt();
    if name.ends_with("norm.weight") {
        return (1.0, 0.1);
    }
    if name == "model.embed_tokens.weight" || name == "lm_head.weight" {
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

/// One safetensors file holding `tensors` (in that order).
fn write_file_of(shape: &LlamaShape, seed: u64, tensors: &[(String, Vec<usize>)], path: &Path) -> Result<(), SynthError> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({ "format": "pt" }));
    let mut offset = 0usize;
    for (name, dims) in tensors {
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
    for (name, dims) in tensors {
        let len = dims.iter().product();
        w.write_all(&tensor_bytes(seed, name, len, distribution(shape, name, dims))).map_err(err)?;
    }
    w.flush().map_err(err)
}

/// Tensors in file order, cut into consecutive groups of at most `max` bytes (a tensor larger
/// than `max` gets a shard of its own), as `save_pretrained` shards.
pub(crate) fn shards(tensors: &[(String, Vec<usize>)], max: usize) -> Vec<Vec<(String, Vec<usize>)>> {
    let mut out: Vec<Vec<(String, Vec<usize>)>> = vec![vec![]];
    let mut size = 0usize;
    for t in tensors {
        let bytes = t.1.iter().product::<usize>() * 2;
        if size + bytes > max && !out.last().unwrap().is_empty() {
            out.push(vec![]);
            size = 0;
        }
        size += bytes;
        out.last_mut().unwrap().push(t.clone());
    }
    out
}

/// `model.safetensors`, or `model-0000i-of-0000N.safetensors` shards and
/// `model.safetensors.index.json` when the shape has a shard limit. Returns the files written.
pub(crate) fn write_weights(shape: &LlamaShape, seed: u64, dir: &Path) -> Result<Vec<std::path::PathBuf>, SynthError> {
    let tensors = shape.tensors();
    let Some(max) = shape.max_shard_bytes else {
        let path = dir.join("model.safetensors");
        write_file_of(shape, seed, &tensors, &path)?;
        return Ok(vec![path]);
    };
    let groups = shards(&tensors, max);
    let n = groups.len();
    let mut files = Vec::new();
    let mut weight_map = serde_json::Map::new();
    for (i, group) in groups.iter().enumerate() {
        let name = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        let path = dir.join(&name);
        write_file_of(shape, seed, group, &path)?;
        for (t, _) in group {
            weight_map.insert(t.clone(), serde_json::Value::String(name.clone()));
        }
        files.push(path);
    }
    let total: usize = tensors.iter().map(|t| t.1.iter().product::<usize>() * 2).sum();
    let index = dir.join("model.safetensors.index.json");
    let text = serde_json::to_string_pretty(&serde_json::json!({ "metadata": { "total_size": total }, "weight_map": weight_map })).unwrap();
    crate::write_file(&index, (text + "\n").as_bytes())?;
    files.push(index);
    Ok(files)
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

    #[test]
    fn an_untied_head_is_drawn_like_the_embedding_so_logits_are_not_flat() {
        let shape = crate::Preset::Llama31_8b.shape();
        let dims = [shape.vocab_size, shape.hidden_size];
        let head = distribution(&shape, "lm_head.weight", &dims);
        assert_eq!(head, distribution(&shape, "model.embed_tokens.weight", &dims));
        // Logits over a unit-scale hidden state: standard deviation spread × sqrt(hidden / 3) = 3.
        assert!((head.1 * (shape.hidden_size as f32 / 3.0).sqrt() - 3.0).abs() < 1e-4);
    }

    #[test]
    fn shards_keep_file_order_and_the_limit() {
        let t = |n: &str, len: usize| (n.to_string(), vec![len]);
        let tensors = vec![t("a", 3), t("b", 3), t("c", 10), t("d", 1)];
        let groups = shards(&tensors, 12);
        let names: Vec<Vec<&str>> = groups.iter().map(|g| g.iter().map(|x| x.0.as_str()).collect()).collect();
        assert_eq!(names, vec![vec!["a", "b"], vec!["c"], vec!["d"]], "6 + 6 bytes fit 12; c (20 bytes) stands alone");
    }

    #[test]
    fn the_8b_preset_shards_as_the_real_checkpoint_does() {
        let shape = crate::Preset::Llama31_8b.shape();
        let groups = shards(&shape.tensors(), shape.max_shard_bytes.unwrap());
        assert_eq!(groups.len(), 4, "four files of at most 5 GB, like Llama-3.1-8B-Instruct");
    }
}
