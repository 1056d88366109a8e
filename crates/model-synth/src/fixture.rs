//! The golden reference for the `tiny` checkpoint: transformers float32 logits and greedy tokens
//! for fixed prompts, made by `fixtures/make_tiny_reference.py`. Engine crates load it in their tests.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct FixtureCheckpoint {
    pub preset: String,
    pub seed: u64,
    pub generator_version: u32,
    pub model_safetensors_sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TinyReference {
    pub reference: String,
    pub checkpoint: FixtureCheckpoint,
    pub steps: usize,
    pub prompts: Vec<Vec<u32>>,
    /// `steps` greedy tokens per prompt.
    pub tokens: Vec<Vec<u32>>,
    /// Logits of each prompt's last position (filled from the safetensors file).
    #[serde(skip)]
    pub logits: Vec<Vec<f32>>,
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Reads `tiny-reference.json` and `tiny-reference.safetensors`; panics with the path on any
/// problem (it is for tests, where a missing fixture is a broken checkout).
pub fn tiny_reference() -> TinyReference {
    let dir = fixtures_dir();
    let json_path = dir.join("tiny-reference.json");
    let text = std::fs::read_to_string(&json_path).unwrap_or_else(|e| panic!("{}: {e}", json_path.display()));
    let mut r: TinyReference = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", json_path.display()));
    let st_path = dir.join("tiny-reference.safetensors");
    let bytes = std::fs::read(&st_path).unwrap_or_else(|e| panic!("{}: {e}", st_path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e}", st_path.display()));
    let view = st.tensor("logits").unwrap_or_else(|e| panic!("{}: {e}", st_path.display()));
    let [rows, cols] = view.shape() else { panic!("{}: logits is not 2-D", st_path.display()) };
    assert_eq!(*rows, r.prompts.len(), "{}: one row of logits per prompt", st_path.display());
    let floats: Vec<f32> = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    r.logits = floats.chunks(*cols).map(<[f32]>::to_vec).collect();
    r
}

/// Largest |got − want| over the largest |want|: the figure the 1e-4 tolerance applies to.
pub fn max_rel_error(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "logit vectors differ in length");
    let max_abs = got.iter().zip(want).map(|(a, b)| (*a as f64 - *b as f64).abs()).fold(0.0, f64::max);
    max_abs / want.iter().map(|v| (*v as f64).abs()).fold(0.0, f64::max)
}
