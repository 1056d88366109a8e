//! The CPU build against the tiny synthetic checkpoint: the protocol end to end, batches, and the KV
//! cache (prefill + decode steps must give what a prefill of the longer prompt gives).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use candle_bench::Engine;
use shared_protocol::{argmax, serve_io, Dtype, ErrorKind, Event, LoadRequest, Model};

const PROMPT: [u32; 6] = [128000, 791, 4062, 14198, 39935, 35308];
const OTHER: [u32; 6] = [128000, 40, 1093, 311, 1373, 6437];

fn tiny() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Same preset and seed, same bytes: rewriting it on every run is safe.
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tiny");
        model_synth::synthesize(model_synth::Preset::Tiny, model_synth::DEFAULT_SEED, &dir).unwrap();
        dir
    })
}

fn load_request(device: &str, dtype: Dtype) -> LoadRequest {
    LoadRequest {
        protocol: shared_protocol::PROTOCOL_VERSION,
        model_path: tiny().display().to_string(),
        device: device.into(),
        dtype,
        options: Default::default(),
    }
}

fn engine() -> Engine {
    Engine::load(&load_request("cpu", Dtype::F32)).unwrap()
}

fn load_line() -> String {
    format!(r#"{{"cmd":"load","protocol":1,"model_path":"{}","device":"cpu","dtype":"f32"}}"#, tiny().display())
}

fn serve(lines: &[String]) -> Vec<Event> {
    let input = std::io::Cursor::new(lines.join("\n").into_bytes());
    let mut out = Vec::new();
    serve_io::<Engine>(input, &mut out).unwrap();
    String::from_utf8(out).unwrap().lines().map(|l| Event::from_line(l).unwrap()).collect()
}

/// max |a - b| / max |b|
fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    let scale = b.iter().map(|y| y.abs()).fold(0f32, f32::max);
    diff / scale
}

fn generate_line(id: &str, n: usize, batch: usize) -> String {
    format!(
        r#"{{"cmd":"generate","id":"{id}","prompt":{PROMPT:?},"max_new_tokens":{n},"batch_size":{batch},"stream":true}}"#
    )
}

#[test]
fn generates_exactly_n_tokens_per_row_for_batch_1_and_2() {
    let n = 7;
    let events = serve(&[load_line(), generate_line("b1", n, 1), generate_line("b2", n, 2)]);
    let Event::Ready(ready) = &events[0] else { panic!("{events:?}") };
    assert_eq!(ready.engine.name, "candle_cpu");
    assert_eq!(ready.engine.device, "cpu");
    assert_eq!(ready.engine.dtype, Dtype::F32);
    let s = &ready.engine.settings;
    assert_eq!(s["flash_attn"], false);
    assert!(s["kv_cache"].as_str().unwrap().starts_with("on"));
    assert!(s["candle_version"].as_str().unwrap().starts_with("0.11."));
    assert!(s["threads"].as_u64().unwrap() >= 1);
    assert!(ready.memory_bytes.unwrap() > 0);

    let done: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Done(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(done.len(), 2, "{events:?}");
    let (b1, b2) = (done[0], done[1]);
    assert_eq!((b1.batch_size, b2.batch_size), (1, 2));
    assert_eq!(b1.tokens.len(), 1);
    assert_eq!(b2.tokens.len(), 2);
    for row in b1.tokens.iter().chain(&b2.tokens) {
        assert_eq!(row.len(), n);
    }
    assert_eq!(b2.tokens[0], b2.tokens[1], "identical rows must decode identically");
    assert_eq!(b2.tokens[0], b1.tokens[0], "a row of a batch of 2 must decode as the same prompt alone");
    for d in [b1, b2] {
        assert_eq!(d.token_ns.len(), n - 1);
        assert_eq!(d.total_ns, d.ttft_ns + d.token_ns.iter().sum::<u64>());
    }
    let streamed = events.iter().filter(|e| matches!(e, Event::Token(t) if t.id == "b2")).count();
    assert_eq!(streamed, n);
}

#[test]
fn logits_command_returns_full_vocabulary_and_greedy_tokens() {
    let line = format!(r#"{{"cmd":"logits","id":"l","prompt":{PROMPT:?},"steps":5}}"#);
    let events = serve(&[load_line(), line]);
    let Event::Logits(l) = &events[1] else { panic!("{events:?}") };
    assert_eq!(l.logits.len(), 128_256);
    assert!(l.logits.iter().all(|x| x.is_finite()));
    assert_eq!(l.tokens.len(), 5);
    assert_eq!(l.tokens[0], argmax(&l.logits));
}

#[test]
fn kv_cache_prefill_then_decode_matches_a_longer_prefill() {
    let mut e = engine();
    for split in [1, 3, 5] {
        // Cached: prefill the first `split` tokens, then feed the rest one decode step at a time.
        let mut step = e.prefill(&[PROMPT[..split].to_vec()], PROMPT.len(), true).unwrap();
        for &t in &PROMPT[split..] {
            step = e.decode_step(&[t], true).unwrap();
        }
        let cached = step.logits.unwrap().pop().unwrap();
        // Uncached: one prefill of the whole prompt.
        let full = e.prefill(&[PROMPT.to_vec()], PROMPT.len(), true).unwrap();
        let full_logits = &full.logits.as_ref().unwrap()[0];
        let err = relative_error(&cached, full_logits);
        assert!(err < 1e-4, "split {split}: relative error {err}");
        assert_eq!(step.next_tokens, full.next_tokens);
    }
}

#[test]
fn greedy_decoding_with_the_cache_matches_recomputing_without_it() {
    let mut e = engine();
    let n = 6;
    let mut step = e.prefill(&[PROMPT.to_vec()], PROMPT.len() + n, false).unwrap();
    let mut generated = vec![step.next_tokens[0]];
    while generated.len() < n {
        step = e.decode_step(&[*generated.last().unwrap()], false).unwrap();
        generated.push(step.next_tokens[0]);
    }
    let mut context = PROMPT.to_vec();
    for &t in &generated {
        let fresh = e.prefill(&[context.clone()], context.len(), false).unwrap();
        assert_eq!(fresh.next_tokens, vec![t], "after {} tokens", context.len());
        context.push(t);
    }
}

#[test]
fn rows_of_a_batch_are_independent() {
    let mut e = engine();
    let alone: Vec<Vec<f32>> = [PROMPT, OTHER]
        .iter()
        .map(|p| {
            e.prefill(&[p.to_vec()], p.len() + 2, false).unwrap();
            e.decode_step(&[42], true).unwrap().logits.unwrap().pop().unwrap()
        })
        .collect();
    e.prefill(&[PROMPT.to_vec(), OTHER.to_vec()], PROMPT.len() + 2, false).unwrap();
    let batched = e.decode_step(&[42, 42], true).unwrap().logits.unwrap();
    assert_eq!(batched.len(), 2);
    for (row, (b, a)) in batched.iter().zip(&alone).enumerate() {
        let err = relative_error(b, a);
        assert!(err < 1e-4, "row {row}: relative error {err}");
    }
}

#[test]
fn what_candle_cpu_cannot_do_is_unsupported() {
    for dtype in [Dtype::Bf16, Dtype::F16] {
        let err = Engine::load(&load_request("cpu", dtype)).err().unwrap();
        assert_eq!(err.kind, ErrorKind::Unsupported, "{err}");
    }
    #[cfg(not(feature = "cuda"))]
    {
        let err = Engine::load(&load_request("cuda:0", Dtype::Bf16)).err().unwrap();
        assert_eq!(err.kind, ErrorKind::Unsupported);
        assert!(err.message.contains("--features cuda"), "{err}");
    }
    let err = Engine::load(&load_request("tpu:0", Dtype::F32)).err().unwrap();
    assert_eq!(err.kind, ErrorKind::BadRequest);

    let mut e = engine();
    let err = e.prefill(&[PROMPT.to_vec(), PROMPT[..3].to_vec()], 8, false).err().unwrap();
    assert_eq!(err.kind, ErrorKind::Unsupported, "ragged batches have no padding mask in candle's llama");
    let err = e.prefill(&[vec![128_256]], 2, false).err().unwrap();
    assert_eq!(err.kind, ErrorKind::BadRequest);
    e.prefill(&[PROMPT.to_vec()], 8, false).unwrap();
    let err = e.decode_step(&[1, 2], false).err().unwrap();
    assert_eq!(err.kind, ErrorKind::BadRequest);
}

/// The binary itself over stdin/stdout, with `options.threads` applied (a fresh process, so the
/// thread pool is still unset).
#[test]
fn the_binary_serves_the_protocol_and_applies_threads() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_candle-bench"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let load = format!(
        r#"{{"cmd":"load","protocol":1,"model_path":"{}","device":"cpu","dtype":"f32","options":{{"threads":1}}}}"#,
        tiny().display()
    );
    let input = format!("{load}\n{}\n{{\"cmd\":\"shutdown\"}}\n", generate_line("g", 3, 1));
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let events: Vec<Event> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| Event::from_line(l).unwrap()).collect();
    let Event::Ready(ready) = &events[0] else { panic!("{events:?}") };
    assert_eq!(ready.engine.settings["threads"], 1);
    assert!(ready.engine.settings["threads_source"].as_str().unwrap().contains("options.threads"));
    assert!(matches!(events.last(), Some(Event::Done(d)) if d.tokens[0].len() == 3), "{events:?}");
}
