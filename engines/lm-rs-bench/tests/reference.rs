//! lm_rs against the transformers float32 fixture, through its real protocol on stdin/stdout.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command as Process, Stdio};

use shared_protocol::{Command, Dtype, Event, GenerateRequest, LoadRequest, LogitsRequest, PROTOCOL_VERSION};

/// Starts the engine, sends `cmds` (then shutdown) and returns every event it wrote.
fn exchange(cmds: Vec<Command>) -> Vec<Event> {
    let mut child = Process::new(env!("CARGO_BIN_EXE_lm-rs-bench"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for c in cmds.iter().chain([&Command::Shutdown]) {
        writeln!(stdin, "{}", c.to_line()).unwrap();
    }
    drop(stdin);
    let events = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| Event::from_line(&l.unwrap()).expect("only protocol lines on stdout"))
        .collect();
    assert!(child.wait().unwrap().success());
    events
}

fn load(dir: &std::path::Path, dtype: Dtype) -> Command {
    Command::Load(LoadRequest {
        protocol: PROTOCOL_VERSION,
        model_path: dir.display().to_string(),
        device: "cpu".into(),
        dtype,
        options: [("threads".to_string(), 2.into())].into_iter().collect(),
    })
}

fn tiny() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    model_synth::synthesize(model_synth::Preset::Tiny, model_synth::DEFAULT_SEED, dir.path()).unwrap();
    dir
}

/// The tiny checkpoint in shards of at most 1 MB, with `model.safetensors.index.json`.
fn tiny_sharded() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    model_synth::synthesize_tiny_sharded(model_synth::DEFAULT_SEED, dir.path()).unwrap();
    assert!(dir.path().join("model.safetensors.index.json").is_file() && !dir.path().join("model.safetensors").exists());
    dir
}

#[test]
fn logits_and_greedy_tokens_match_transformers_float32() {
    matches_the_reference(&tiny());
}

#[test]
fn a_sharded_checkpoint_gives_the_same_model() {
    matches_the_reference(&tiny_sharded());
}

#[test]
fn a_transformers_5_config_gives_the_same_model() {
    let dir = tiny();
    model_synth::rewrite_config_as_transformers_5(dir.path()).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap()).unwrap();
    assert!(cfg.get("rope_theta").is_none() && cfg.get("rope_scaling").is_none() && cfg["rope_parameters"]["rope_theta"] == 500000.0);
    matches_the_reference(&dir);
}

fn matches_the_reference(dir: &tempfile::TempDir) {
    let reference = model_synth::fixture::tiny_reference();
    let mut cmds = vec![load(dir.path(), Dtype::F32)];
    for (i, p) in reference.prompts.iter().enumerate() {
        cmds.push(Command::Logits(LogitsRequest { id: format!("p{i}"), prompt: p.clone(), steps: reference.steps }));
    }
    let events = exchange(cmds);
    assert!(matches!(&events[0], Event::Ready(r) if r.engine.name == "lm_rs"), "{:?}", events[0]);
    for (i, e) in events[1..].iter().enumerate() {
        let Event::Logits(got) = e else { panic!("prompt {i}: {e:?}") };
        let err = model_synth::fixture::max_rel_error(&got.logits, &reference.logits[i]);
        assert!(err <= 1e-4, "prompt {i}: max relative logit error {err:e}");
        assert_eq!(got.tokens, reference.tokens[i], "prompt {i}: greedy tokens");
    }
}

#[test]
fn a_batch_decodes_every_row_like_a_single_request() {
    let reference = model_synth::fixture::tiny_reference();
    let dir = tiny();
    let prompt = reference.prompts[1].clone();
    let generate = |id: &str, batch_size| {
        Command::Generate(GenerateRequest { id: id.into(), prompt: prompt.clone(), max_new_tokens: 12, batch_size, stream: false })
    };
    let events = exchange(vec![load(dir.path(), Dtype::F32), generate("one", 1), generate("three", 3)]);
    let (Event::Done(one), Event::Done(three)) = (&events[1], &events[2]) else { panic!("{events:?}") };
    assert_eq!(one.tokens[0], reference.tokens[1][..12]);
    assert_eq!(three.tokens, vec![one.tokens[0].clone(); 3]);
    assert_eq!(three.token_ns.len(), 11);
}

#[test]
fn unsupported_requests_are_refused_with_a_reason() {
    let dir = tiny();
    let events = exchange(vec![load(dir.path(), Dtype::Bf16), load(&dir.path().join("nowhere"), Dtype::F32)]);
    let Event::Error(e) = &events[0] else { panic!("{events:?}") };
    assert!(e.message.contains("f32"), "{}", e.message);
    let Event::Error(e) = &events[1] else { panic!("{events:?}") };
    assert!(e.message.contains("nowhere"), "{}", e.message);
}
