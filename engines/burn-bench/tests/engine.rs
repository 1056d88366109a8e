//! The engine in-process (CPU build): the KV cache, batch rows, and the errors of the Model calls.

use burn_bench::Engine;
use shared_protocol::{Dtype, ErrorKind, LoadRequest, Model, PROTOCOL_VERSION};

fn tiny() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    model_synth::synthesize(model_synth::Preset::Tiny, model_synth::DEFAULT_SEED, dir.path()).unwrap();
    dir
}

fn engine(dir: &std::path::Path) -> Engine {
    let req = LoadRequest {
        protocol: PROTOCOL_VERSION,
        model_path: dir.display().to_string(),
        device: "cpu".into(),
        dtype: Dtype::F32,
        options: [("threads".to_string(), 2.into())].into_iter().collect(),
    };
    Engine::load(&req).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn decode_steps_through_the_cache_equal_a_prefill_of_the_longer_prompt() {
    let dir = tiny();
    let mut e = engine(dir.path());
    let prompt: Vec<u32> = vec![128000, 791, 4062, 14198, 39935];
    let extra = [35308u32, 927];

    let mut step = e.prefill(&[prompt.clone()], prompt.len() + 8, true).unwrap();
    for &t in &extra {
        step = e.decode_step(&[t], true).unwrap();
    }
    let cached = step.logits.unwrap().remove(0);

    let mut longer = prompt.clone();
    longer.extend(extra);
    let full = e.prefill(&[longer], 16, true).unwrap().logits.unwrap().remove(0);
    let scale = full.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = max_abs_diff(&cached, &full);
    assert!(diff <= 1e-5 * scale.max(1.0), "cached vs recomputed logits differ by {diff} (scale {scale})");
    assert_eq!(step.next_tokens[0], shared_protocol::argmax(&full));
}

#[test]
fn rows_of_a_batch_are_independent() {
    let dir = tiny();
    let mut e = engine(dir.path());
    let a: Vec<u32> = vec![128000, 9906, 1917, 11, 358];
    let b: Vec<u32> = vec![128000, 40, 1093, 311, 4048];
    let run = |e: &mut Engine, prompts: &[Vec<u32>]| {
        let mut step = e.prefill(prompts, 5 + 6, true).unwrap();
        let first = step.logits.take().unwrap();
        let mut rows: Vec<Vec<u32>> = step.next_tokens.iter().map(|&t| vec![t]).collect();
        for _ in 0..5 {
            step = e.decode_step(&step.next_tokens, false).unwrap();
            for (r, &t) in rows.iter_mut().zip(&step.next_tokens) {
                r.push(t);
            }
        }
        (first, rows)
    };
    let (la, ta) = run(&mut e, &[a.clone()]);
    let (lb, tb) = run(&mut e, &[b.clone()]);
    let (lab, tab) = run(&mut e, &[a, b]);
    assert_eq!(tab, vec![ta[0].clone(), tb[0].clone()]);
    assert!(max_abs_diff(&lab[0], &la[0]) <= 1e-4);
    assert!(max_abs_diff(&lab[1], &lb[0]) <= 1e-4);
}

#[test]
fn misuse_is_answered_with_errors() {
    let dir = tiny();
    let mut e = engine(dir.path());
    // No prefill yet.
    assert_eq!(e.decode_step(&[1], false).unwrap_err().kind, ErrorKind::BadRequest);
    // Ragged batches need a padding mask this engine does not have.
    let err = e.prefill(&[vec![1, 2, 3], vec![1, 2]], 8, false).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unsupported);
    // Token ids outside the vocabulary.
    let err = e.prefill(&[vec![1, 200_000]], 8, false).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadRequest);
    assert!(err.message.contains("200000"), "{}", err.message);
    // Past the positions reserved for the request.
    e.prefill(&[vec![1, 2, 3]], 4, false).unwrap();
    e.decode_step(&[5], false).unwrap();
    assert_eq!(e.decode_step(&[6], false).unwrap_err().kind, ErrorKind::BadRequest);
    // Wrong number of rows in a decode step.
    e.prefill(&[vec![1, 2], vec![1, 2]], 8, false).unwrap();
    assert!(e.cache_bytes() > 0);
    assert_eq!(e.decode_step(&[5], false).unwrap_err().kind, ErrorKind::BadRequest);
}

#[test]
fn ready_reports_the_settings_in_force() {
    let dir = tiny();
    let e = engine(dir.path());
    let info = e.info();
    assert_eq!(info.name, "burn_cpu");
    assert_eq!(info.device, "cpu");
    assert_eq!(info.dtype, Dtype::F32);
    for key in ["backend", "fusion", "autotune", "dtype", "kv_cache", "burn_version", "threads", "warmup"] {
        assert!(info.settings.contains_key(key), "settings lack {key}: {:?}", info.settings);
    }
    assert_eq!(info.settings["fusion"], false);
    assert_eq!(info.settings["threads"], 2);
    assert!(e.memory_bytes().unwrap() > 0);
}
