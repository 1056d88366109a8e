//! mistral_rs (CPU build) against the transformers float32 fixture, through its real protocol on
//! stdin/stdout. Requests are answered concurrently, so events are looked up by id, not by position.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command as Process, Stdio};

use shared_protocol::{Command, Done, Dtype, ErrorKind, Event, GenerateRequest, LoadRequest, LogitsRequest, PROTOCOL_VERSION};

/// Starts the engine, writes `lines` (then a shutdown) and returns every event it wrote.
fn exchange_lines(lines: Vec<String>) -> Vec<Event> {
    let mut child = Process::new(env!("CARGO_BIN_EXE_mistral-rs-bench"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for l in lines.iter().map(String::as_str).chain([Command::Shutdown.to_line().as_str()]) {
        writeln!(stdin, "{l}").unwrap();
    }
    drop(stdin);
    let events = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| {
            let l = l.unwrap();
            Event::from_line(&l).unwrap_or_else(|e| panic!("not a protocol line on stdout ({e}): {l}"))
        })
        .collect();
    assert!(child.wait().unwrap().success());
    events
}

fn exchange(cmds: Vec<Command>) -> Vec<Event> {
    exchange_lines(cmds.iter().map(Command::to_line).collect())
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

/// A temporary directory removed on drop (no `tempfile` dependency: see Cargo.toml).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tiny() -> TempDir {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = TempDir(std::env::temp_dir().join(format!("mistral-rs-bench-test-{}-{n}", std::process::id())));
    model_synth::synthesize(model_synth::Preset::Tiny, model_synth::DEFAULT_SEED, dir.path()).unwrap();
    dir
}

fn generate(id: &str, prompt: &[u32], n: usize, batch_size: usize, stream: bool) -> Command {
    Command::Generate(GenerateRequest { id: id.into(), prompt: prompt.to_vec(), max_new_tokens: n, batch_size, stream })
}

fn done<'a>(events: &'a [Event], id: &str) -> &'a Done {
    events
        .iter()
        .find_map(|e| match e {
            Event::Done(d) if d.id == id => Some(d),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no done event for {id}: {events:?}"))
}

fn assert_ready(e: &Event) {
    let Event::Ready(r) = e else { panic!("first event is not ready: {e:?}") };
    assert_eq!(r.engine.name, "mistral_rs_cpu");
    assert_eq!(r.engine.device, "cpu");
    assert_eq!(r.engine.settings["prefix_cache"], "off (MistralRsBuilder::with_no_prefix_cache)");
    assert!(r.memory_bytes.is_some_and(|m| m > 0));
}

fn assert_timings(d: &Done, n: usize) {
    assert_eq!(d.token_ns.len(), n - 1, "{d:?}");
    assert_eq!(d.total_ns, d.ttft_ns + d.token_ns.iter().sum::<u64>(), "{d:?}");
    assert!(d.ttft_ns > 0, "{d:?}");
}

#[test]
fn logits_and_greedy_tokens_match_transformers_float32() {
    matches_the_reference(&tiny());
}

/// The tiny checkpoint in shards of at most 1 MB, with `model.safetensors.index.json`.
#[test]
fn a_sharded_checkpoint_gives_the_same_model() {
    let dir = tiny();
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    model_synth::synthesize_tiny_sharded(model_synth::DEFAULT_SEED, dir.path()).unwrap();
    assert!(dir.path().join("model.safetensors.index.json").is_file() && !dir.path().join("model.safetensors").exists());
    matches_the_reference(&dir);
}

#[test]
fn a_transformers_5_config_gives_the_same_model() {
    let dir = tiny();
    model_synth::rewrite_config_as_transformers_5(dir.path()).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap()).unwrap();
    assert!(cfg.get("rope_theta").is_none() && cfg["rope_parameters"]["rope_theta"] == 500000.0);
    matches_the_reference(&dir);
}

fn matches_the_reference(dir: &TempDir) {
    let reference = model_synth::fixture::tiny_reference();
    let mut cmds = vec![load(dir.path())];
    for (i, p) in reference.prompts.iter().enumerate() {
        cmds.push(Command::Logits(LogitsRequest { id: format!("p{i}"), prompt: p.clone(), steps: reference.steps }));
    }
    let events = exchange(cmds);
    assert_ready(&events[0]);
    assert_eq!(events.len(), 1 + reference.prompts.len(), "{events:?}");
    for (i, want) in reference.logits.iter().enumerate() {
        let got = events[1..]
            .iter()
            .find_map(|e| match e {
                Event::Logits(l) if l.id == format!("p{i}") => Some(l),
                _ => None,
            })
            .unwrap_or_else(|| panic!("prompt {i}: no logits event in {events:?}"));
        let err = model_synth::fixture::max_rel_error(&got.logits, want);
        eprintln!("prompt {i}: {} positions, max relative logit error {err:.3e}", reference.prompts[i].len());
        assert!(err <= 1e-4, "prompt {i}: max relative logit error {err:e}");
        assert_eq!(got.tokens, reference.tokens[i], "prompt {i}: greedy tokens");
        assert_eq!(shared_protocol::argmax(&got.logits), got.tokens[0], "prompt {i}: first token is the argmax");
    }
}

#[test]
fn a_batch_decodes_every_row_like_a_single_request_and_streams_each_step() {
    let reference = model_synth::fixture::tiny_reference();
    let dir = tiny();
    let prompt = reference.prompts[1].clone();
    let n = 12;
    let events = exchange(vec![load(dir.path()), generate("one", &prompt, n, 1, false), generate("three", &prompt, n, 3, true)]);
    assert_ready(&events[0]);
    let (one, three) = (done(&events, "one"), done(&events, "three"));
    assert_eq!(one.tokens, vec![reference.tokens[1][..n].to_vec()]);
    assert_eq!(three.tokens, vec![one.tokens[0].clone(); 3]);
    assert_eq!((three.batch_size, three.prompt_tokens), (3, prompt.len()));
    assert_timings(one, n);
    assert_timings(three, n);
    // Streaming: one token event per step, in order, every row's token, before the done event.
    let steps: Vec<(usize, Vec<u32>, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Token(t) if t.id == "three" => Some((t.step, t.tokens.clone(), t.t_ns)),
            Event::Token(t) => panic!("token event for a request that did not ask to stream: {t:?}"),
            _ => None,
        })
        .collect();
    assert_eq!(steps.iter().map(|s| s.0).collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
    for (k, tokens, _) in &steps {
        assert_eq!(tokens, &vec![one.tokens[0][*k]; 3]);
    }
    assert_eq!(steps[0].2, three.ttft_ns);
    assert_eq!(steps[n - 1].2, three.total_ns);
    let last_token = events.iter().rposition(|e| matches!(e, Event::Token(_))).unwrap();
    let three_done = events.iter().position(|e| matches!(e, Event::Done(d) if d.id == "three")).unwrap();
    assert!(last_token < three_done);
}

#[test]
fn requests_sent_back_to_back_are_all_answered_with_their_own_tokens() {
    let reference = model_synth::fixture::tiny_reference();
    let dir = tiny();
    let n = reference.steps;
    let mut cmds = vec![load(dir.path())];
    for (i, p) in reference.prompts.iter().enumerate() {
        cmds.push(generate(&format!("g{i}"), p, n, 1 + i % 2, false));
    }
    let events = exchange(cmds);
    assert_ready(&events[0]);
    assert_eq!(events.len(), 1 + reference.prompts.len(), "{events:?}");
    for (i, want) in reference.tokens.iter().enumerate() {
        let d = done(&events, &format!("g{i}"));
        assert_eq!(d.tokens, vec![want.clone(); 1 + i % 2], "request g{i}");
        assert_timings(d, n);
    }
}

#[test]
fn bad_requests_get_error_events_and_the_engine_keeps_serving() {
    let reference = model_synth::fixture::tiny_reference();
    let dir = tiny();
    let prompt = reference.prompts[0].clone();
    let lines = vec![
        generate("early", &prompt, 2, 1, false).to_line(),
        Command::Load(LoadRequest {
            protocol: PROTOCOL_VERSION,
            model_path: dir.path().join("nowhere").display().to_string(),
            device: "cpu".into(),
            dtype: Dtype::F32,
            options: Default::default(),
        })
        .to_line(),
        load(dir.path()).to_line(),
        "this is not json".to_string(),
        generate("empty", &[], 3, 1, false).to_line(),
        generate("zero", &prompt, 0, 1, false).to_line(),
        generate("vocab", &[128_000, 999_999], 3, 1, false).to_line(),
        Command::Logits(LogitsRequest { id: "nosteps".into(), prompt: prompt.clone(), steps: 0 }).to_line(),
        generate("fine", &prompt, 4, 1, false).to_line(),
    ];
    let events = exchange_lines(lines);
    let error = |id: Option<&str>| {
        events
            .iter()
            .find_map(|e| match e {
                Event::Error(err) if err.id.as_deref() == id => Some(err.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no error event for {id:?}: {events:?}"))
    };
    assert_eq!(error(Some("early")).kind, ErrorKind::BadRequest);
    let no_id: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Error(err) if err.id.is_none() => Some(err.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(no_id.len(), 2, "{events:?}");
    assert!(no_id[0].message.contains("nowhere"), "{}", no_id[0].message);
    assert!(no_id[1].message.contains("line 4"), "{}", no_id[1].message);
    assert!(events.iter().any(|e| matches!(e, Event::Ready(_))));
    for id in ["empty", "zero", "vocab", "nosteps"] {
        assert_eq!(error(Some(id)).kind, ErrorKind::BadRequest, "{id}");
    }
    assert_eq!(done(&events, "fine").tokens, vec![reference.tokens[0][..4].to_vec()]);
}
