//! candle_cpu against the transformers float32 fixture (crates/model-synth/fixtures), through the
//! real binary on stdin/stdout.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};

use shared_protocol::{Command, Dtype, Event, GenerateRequest, LoadRequest, LogitsRequest, PROTOCOL_VERSION};

/// Starts the engine, sends `cmds` (then shutdown) and returns every event it wrote.
fn exchange(cmds: Vec<Command>) -> Vec<Event> {
    let mut child = Process::new(env!("CARGO_BIN_EXE_candle-bench"))
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

fn tiny(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    model_synth::synthesize(model_synth::Preset::Tiny, model_synth::DEFAULT_SEED, &dir).unwrap();
    dir
}

fn load(dir: &std::path::Path) -> Command {
    Command::Load(LoadRequest {
        protocol: PROTOCOL_VERSION,
        model_path: dir.display().to_string(),
        device: "cpu".into(),
        dtype: Dtype::F32,
        options: [("threads".to_string(), 2.into())].into_iter().collect(),
    })
}

#[test]
fn logits_and_greedy_tokens_match_transformers_float32() {
    matches_the_reference(&tiny("tiny-reference-logits"));
}

/// The tiny checkpoint in shards of at most 1 MB, with `model.safetensors.index.json`.
#[test]
fn a_sharded_checkpoint_gives_the_same_model() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tiny-sharded");
    let _ = std::fs::remove_dir_all(&dir);
    model_synth::synthesize_tiny_sharded(model_synth::DEFAULT_SEED, &dir).unwrap();
    assert!(dir.join("model.safetensors.index.json").is_file() && !dir.join("model.safetensors").exists());
    matches_the_reference(&dir);
}

#[test]
fn a_transformers_5_config_gives_the_same_model() {
    let dir = tiny("tiny-transformers-5");
    model_synth::rewrite_config_as_transformers_5(&dir).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert!(cfg.get("rope_theta").is_none() && cfg["rope_parameters"]["rope_theta"] == 500000.0);
    matches_the_reference(&dir);
}

fn matches_the_reference(dir: &std::path::Path) {
    let reference = model_synth::fixture::tiny_reference();
    let mut cmds = vec![load(dir)];
    for (i, p) in reference.prompts.iter().enumerate() {
        cmds.push(Command::Logits(LogitsRequest { id: format!("p{i}"), prompt: p.clone(), steps: reference.steps }));
    }
    let events = exchange(cmds);
    assert!(matches!(&events[0], Event::Ready(r) if r.engine.name == "candle_cpu"), "{:?}", events[0]);
    assert_eq!(events.len(), 1 + reference.prompts.len(), "{events:?}");
    for (i, e) in events[1..].iter().enumerate() {
        let Event::Logits(got) = e else { panic!("prompt {i}: {e:?}") };
        let err = model_synth::fixture::max_rel_error(&got.logits, &reference.logits[i]);
        eprintln!("prompt {i}: max relative logit error {err:e}");
        assert!(err <= 1e-4, "prompt {i}: max relative logit error {err:e}");
        assert_eq!(got.tokens, reference.tokens[i], "prompt {i}: greedy tokens");
    }
}

#[test]
fn a_batch_decodes_every_row_like_the_reference() {
    let reference = model_synth::fixture::tiny_reference();
    let dir = tiny("tiny-reference-batch");
    let prompt = reference.prompts[1].clone();
    let n = reference.steps;
    let generate = |id: &str, batch_size| {
        Command::Generate(GenerateRequest { id: id.into(), prompt: prompt.clone(), max_new_tokens: n, batch_size, stream: false })
    };
    let events = exchange(vec![load(&dir), generate("one", 1), generate("two", 2), generate("four", 4)]);
    let (Event::Done(one), Event::Done(two), Event::Done(four)) = (&events[1], &events[2], &events[3]) else {
        panic!("{events:?}")
    };
    assert_eq!(one.tokens[0], reference.tokens[1]);
    assert_eq!(two.tokens, vec![reference.tokens[1].clone(); 2]);
    assert_eq!(four.tokens, vec![reference.tokens[1].clone(); 4]);
    assert_eq!(four.token_ns.len(), n - 1);
}
