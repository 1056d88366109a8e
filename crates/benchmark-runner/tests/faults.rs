//! A misbehaving engine is a recorded result, never the end of the run: crashes, hangs, garbage on
//! stdout and failed loads each become failure records with a reason, and every other engine is
//! still measured. Bad configs are refused before any work.

mod common;

use std::path::{Path, PathBuf};

use benchmark_runner::config::Config;
use run_format::read_stream;
use run_format::records::{CorrectnessRecord, FailureRecord, RequestRecord};
use benchmark_runner::registry::Registry;
use benchmark_runner::{run, terminal_table};

fn fake(name: &str, mode: &str) -> benchmark_runner::registry::EngineSpec {
    common::fake(name, &[("mode", mode.into())])
}

fn registry() -> Registry {
    Registry::with(vec![
        fake("pytorch_baseline", "ok"),
        fake("crashy", "crash"),
        fake("hangy", "hang"),
        fake("noisy", "garbage"),
        fake("broken", "fail_load"),
        fake("wrong", "wrong"),
        fake("steady", "ok"),
    ])
}

fn stub_model(dir: &Path) -> PathBuf {
    common::stub_model(dir, r#"{"vocab_size": 1000}"#)
}

fn config(model: &Path, engines: &str) -> String {
    format!(
        "benchmark: {{name: faults, model_path: {}, warmup_iterations: 1, request_timeout_s: 1.5, load_timeout_s: 10}}
engines: {engines}
workloads:
  - {{name: chat, batch_sizes: [1, 2], sequence_lengths: [4], iterations: 2, max_new_tokens: 3}}
correctness: {{prompt_lengths: [5], steps: 4}}
",
        model.display()
    )
}

fn run_with(engines: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = stub_model(dir.path());
    let out = common::run_config(dir.path(), &config(&model, engines), &registry());
    (dir, out)
}

#[test]
fn every_fault_is_recorded_and_the_run_goes_on() {
    let (_dir, out) = run_with("[pytorch_baseline, crashy, hangy, noisy, broken, wrong, steady]");
    let raw = out.join("raw_data");
    let failures: Vec<FailureRecord> = read_stream(&raw, "failures").unwrap();
    let requests: Vec<RequestRecord> = read_stream(&raw, "requests").unwrap();
    let kinds = |engine: &str| -> Vec<String> {
        failures.iter().filter(|f| f.engine == engine).map(|f| format!("{}@{:?}", f.kind, f.batch_size)).collect()
    };
    // Third generate = first measured request of the first cell (1 warm-up + 2 measured per cell);
    // the next cell gets a fresh process, which crashes again on its third request.
    assert_eq!(kinds("crashy"), vec!["crashed@Some(1)", "crashed@Some(2)"]);
    assert_eq!(kinds("hangy"), vec!["timeout@Some(1)", "timeout@Some(2)"]);
    assert_eq!(kinds("noisy"), vec!["protocol_violation@Some(1)", "protocol_violation@Some(2)"]);
    assert_eq!(kinds("broken"), vec!["not_started@Some(1)", "not_started@Some(2)"]);
    assert!(failures.iter().any(|f| f.engine == "crashy" && f.message.contains("exit status: 3")), "{failures:?}");
    assert!(failures.iter().any(|f| f.engine == "broken" && f.message.contains("weights are corrupt")), "{failures:?}");
    assert!(failures.iter().any(|f| f.engine == "noisy" && f.message.contains("loading shards")), "{failures:?}");
    assert!(kinds("steady").is_empty() && kinds("pytorch_baseline").is_empty());

    // What the crashing engine measured before it crashed is kept.
    let measured = |e: &str| requests.iter().filter(|r| r.engine == e && !r.warmup).count();
    assert_eq!(measured("steady"), 4, "2 cells × 2 iterations after everything before it failed");
    assert_eq!(requests.iter().filter(|r| r.engine == "crashy").count(), 4, "2 requests per cell before each crash");
    assert_eq!(requests.iter().filter(|r| r.warmup).count() % 2, 0);

    let gate: Vec<CorrectnessRecord> = read_stream(&raw, "correctness").unwrap();
    assert!(gate.iter().filter(|g| g.engine == "steady").all(|g| g.passed));
    let wrong: Vec<_> = gate.iter().filter(|g| g.engine == "wrong").collect();
    assert_eq!(wrong.len(), 1);
    assert!(!wrong[0].passed && wrong[0].greedy_match_steps == 0 && (wrong[0].max_rel_logit_err - 0.2).abs() < 1e-9);

    let s = analysis::summarize(&out).unwrap();
    let status = |n: &str| s.engines.iter().find(|e| e.name == n).unwrap().status.clone();
    assert_eq!(status("steady"), "ok");
    assert_eq!(status("crashy"), "partial");
    assert_eq!(status("broken"), "failed");
    let table = terminal_table::table(&s);
    assert!(table.contains("❌ broken") && table.contains("weights are corrupt"), "{table}");
    assert!(table.contains("wrong") && table.contains("⚠ differs from reference"), "{table}");
    assert!(table.contains("🏁 pytorch_baseline"), "{table}");
}

#[test]
fn an_existing_run_is_never_overwritten() {
    let (dir, out) = run_with("[steady]");
    let before = std::fs::read(out.join("raw_data/requests.jsonl")).unwrap();
    let text = config(&dir.path().join("model"), "[steady]");
    let reg = registry();
    let cfg = Config::parse(&text, Path::new("x.yaml")).unwrap();
    let err = run::execute(&cfg, &text, &reg, &run::RunPaths { root: dir.path().into(), output: out.clone() }).unwrap_err();
    assert!(err.to_string().contains("already holds a run"), "{err}");
    assert_eq!(std::fs::read(out.join("raw_data/requests.jsonl")).unwrap(), before);
}

#[test]
fn the_cli_refuses_a_bad_config_in_one_line_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let model = stub_model(dir.path());
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, config(&model, "[lm_rs, tensorrt_llm]")).unwrap();
    let out = dir.path().join("never");
    let result = std::process::Command::new(env!("CARGO_BIN_EXE_benchmark-runner"))
        .args(["--config", file.to_str().unwrap(), "--output", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8(result.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bad.yaml: engines[1]: unknown engine `tensorrt_llm`"), "{stderr}");
    assert!(!out.exists(), "nothing was started");
}
