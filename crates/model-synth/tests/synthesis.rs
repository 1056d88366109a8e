//! The checkpoint on disk: same seed, same bytes; readable by a safetensors reader; and the very
//! bytes the committed transformers fixture was made from.

use sha2::{Digest, Sha256};

fn sha256(path: &std::path::Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn same_seed_same_bytes_and_the_fixture_was_made_from_them() {
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let files = model_synth::synthesize(model_synth::Preset::Tiny, model_synth::DEFAULT_SEED, a.path()).unwrap();
    model_synth::synthesize(model_synth::Preset::Tiny, model_synth::DEFAULT_SEED, b.path()).unwrap();
    model_synth::synthesize(model_synth::Preset::Tiny, model_synth::DEFAULT_SEED + 1, c.path()).unwrap();
    for f in &files {
        let name = f.file_name().unwrap();
        assert_eq!(std::fs::read(f).unwrap(), std::fs::read(b.path().join(name)).unwrap(), "{name:?} differs between runs");
    }
    let weights = |d: &tempfile::TempDir| sha256(&d.path().join("model.safetensors"));
    assert_ne!(weights(&a), weights(&c), "another seed gives other weights");

    let fixture = model_synth::fixture::tiny_reference();
    assert_eq!(fixture.checkpoint.generator_version, model_synth::GENERATOR_VERSION);
    assert_eq!(
        weights(&a),
        fixture.checkpoint.model_safetensors_sha256,
        "the generator changed: bump GENERATOR_VERSION and remake the fixture (see fixtures/make_tiny_reference.py)"
    );
}

#[test]
fn the_checkpoint_has_every_llama_tensor_in_bf16_with_real_shapes() {
    let dir = tempfile::tempdir().unwrap();
    model_synth::synthesize(model_synth::Preset::Tiny, 1, dir.path()).unwrap();
    let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let shape = model_synth::Preset::Tiny.shape();
    assert_eq!(st.len(), shape.tensors().len());
    for (name, dims) in shape.tensors() {
        let t = st.tensor(&name).unwrap();
        assert_eq!(t.dtype(), safetensors::Dtype::BF16, "{name}");
        assert_eq!(t.shape(), dims.as_slice(), "{name}");
    }
    // Values: finite, centred, with the intended spread (q_proj: 1/sqrt(64) = 0.125).
    let q = st.tensor("model.layers.0.self_attn.q_proj.weight").unwrap();
    let vals: Vec<f32> = q.data().chunks_exact(2).map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)).collect();
    let mean = vals.iter().sum::<f32>() / vals.len() as f32;
    let std = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / vals.len() as f32).sqrt();
    assert!(vals.iter().all(|v| v.is_finite()));
    assert!(mean.abs() < 0.01 && (std - 0.125).abs() < 0.005, "mean {mean} std {std}");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["rope_scaling"]["rope_type"], "llama3");
    assert_eq!(config["vocab_size"], 128_256);
}
