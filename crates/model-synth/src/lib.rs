//! Hugging Face-layout Llama-3 checkpoints with seeded random weights.
//!
//! No machine of this project can download Llama-3.2-1B-Instruct, and speed depends on shapes and
//! dtype, not on the values of the weights. So [`synthesize`] writes a checkpoint with the exact
//! shapes of the real model (or a toy one for CPU tests): `config.json` in the standard Llama-3.2 form,
//! `model.safetensors` (bf16; sharded with `model.safetensors.index.json` for the 3B and 8B
//! presets, as the real checkpoints are), a byte-level BPE `tokenizer.json` with the full 128,256-token
//! vocabulary and the Llama-3 special tokens, `tokenizer_config.json` with a chat template,
//! `generation_config.json`, and `synthetic.json`, which says what this is. Same preset and seed,
//! same bytes.

pub mod fixture;
mod shape;
mod tokenizer;
mod weights;

use std::path::{Path, PathBuf};

pub use shape::{LlamaShape, Preset};

/// Bumped whenever the bytes written for a given (preset, seed) change; fixtures record it.
pub const GENERATOR_VERSION: u32 = 2;
pub const DEFAULT_SEED: u64 = 20241;

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("unknown preset `{0}` (known: llama-3.2-1b, llama-3.2-3b, llama-3.1-8b, tiny)")]
    UnknownPreset(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io { path: path.to_path_buf(), source }
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    std::fs::write(path, bytes).map_err(io_err(path))
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), SynthError> {
    let mut text = serde_json::to_string_pretty(value).expect("json values serialise");
    text.push('\n');
    write_file(path, text.as_bytes())
}

/// Writes the whole checkpoint into `out` (created if needed). Returns the files written.
pub fn synthesize(preset: Preset, seed: u64, out: &Path) -> Result<Vec<PathBuf>, SynthError> {
    synthesize_shape(preset.shape(), preset, seed, out)
}

/// The tiny model written in shards of at most 1 MB with `model.safetensors.index.json`: what the
/// engines' tests load to show that a sharded checkpoint is the same model.
pub fn synthesize_tiny_sharded(seed: u64, out: &Path) -> Result<Vec<PathBuf>, SynthError> {
    let shape = LlamaShape { max_shard_bytes: Some(1 << 20), ..Preset::Tiny.shape() };
    synthesize_shape(shape, Preset::Tiny, seed, out)
}

/// Rewrites `dir/config.json` the way transformers 5 writes the same model: `rope_theta` and the
/// llama3 scaling inside `rope_parameters`, `dtype` for `torch_dtype`. Engines must read it as the
/// same model (their reference tests check).
pub fn rewrite_config_as_transformers_5(dir: &Path) -> Result<(), SynthError> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("our own config.json parses");
    let o = v.as_object_mut().expect("config.json is an object");
    let mut params = o.remove("rope_scaling").unwrap_or_else(|| serde_json::json!({ "rope_type": "default" }));
    params["rope_theta"] = o.remove("rope_theta").expect("config.json has rope_theta");
    o.insert("rope_parameters".into(), params);
    if let Some(dtype) = o.remove("torch_dtype") {
        o.insert("dtype".into(), dtype);
    }
    write_json(&path, &v)
}

/// [`synthesize`] with the preset's shape changed (tests: the tiny model sharded, for one).
pub fn synthesize_shape(shape: LlamaShape, preset: Preset, seed: u64, out: &Path) -> Result<Vec<PathBuf>, SynthError> {
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let files = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "synthetic.json"].map(|f| out.join(f));
    write_json(&files[0], &shape.config_json())?;
    write_json(&files[1], &shape.generation_config_json())?;
    write_json(&files[2], &tokenizer::tokenizer_json())?;
    write_json(&files[3], &tokenizer::tokenizer_config_json())?;
    write_json(
        &files[4],
        &serde_json::json!({
            "generator": "model-synth",
            "generator_version": GENERATOR_VERSION,
            "preset": preset.name(),
            "seed": seed,
            "note": "Seeded random weights with the shapes of the preset. Speed and memory are representative; generated text is not.",
        }),
    )?;
    let mut written = files.to_vec();
    written.extend(weights::write_weights(&shape, seed, out)?);
    Ok(written)
}
