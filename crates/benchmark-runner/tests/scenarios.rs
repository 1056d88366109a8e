//! The scenario mechanics, against a fake engine that answers in arrival order: the throughput
//! sweep stops at the first out-of-memory batch, load levels put the right requests in flight and
//! record when each was sent, and the memory limit skips cells before running them.

mod common;

use std::path::PathBuf;

use run_format::read_stream;
use run_format::records::{CellRecord, FailureRecord, LoadLevel, RequestRecord};
use benchmark_runner::registry::Registry;

fn run_yaml(workloads: &str, extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    // The shape of Llama-3.2-1B, so memory predictions are realistic; the fake engine ignores it.
    let model = common::stub_model(dir.path(), &model_synth::Preset::Llama32_1b.shape().config_json().to_string());
    let text = format!(
        "benchmark: {{name: s, model_path: {}, warmup_iterations: 1, request_timeout_s: 10}}\nengines: [fake]\ncorrectness: {{enabled: false}}\nworkloads:\n{workloads}{extra}",
        model.display()
    );
    let registry = Registry::with(vec![common::fake("fake", &[("oom_batch", 4.into())])]);
    let out = common::run_config(dir.path(), &text, &registry);
    (dir, out)
}

#[test]
fn the_throughput_sweep_records_out_of_memory_and_skips_larger_batches() {
    let (_d, out) = run_yaml(
        "  - {name: tp, scenario: throughput, batch_sizes: [1, 2, 4, 8], sequence_lengths: [16], iterations: 2, max_new_tokens: 4}\n",
        "",
    );
    let raw = out.join("raw_data");
    let failures: Vec<FailureRecord> = read_stream(&raw, "failures").unwrap();
    let kinds: Vec<(Option<usize>, &str)> = failures.iter().map(|f| (f.batch_size, f.kind.as_str())).collect();
    assert_eq!(kinds, vec![(Some(4), "out_of_memory"), (Some(8), "skipped")]);
    assert!(failures[1].message.contains("batch 4 already ran out of memory"), "{}", failures[1].message);
    let cells: Vec<CellRecord> = read_stream(&raw, "cells").unwrap();
    let status: Vec<(usize, &str)> = cells.iter().map(|c| (c.batch_size, c.status.as_str())).collect();
    assert_eq!(status, vec![(1, "ok"), (2, "ok"), (4, "failed")]);
    let s = analysis::summarize(&out).unwrap();
    let tp = &s.engines[0].scenarios.throughput;
    assert_eq!(tp.iter().map(|p| p.batch_size).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(s.engines[0].status, "partial");
}

#[test]
fn load_levels_send_every_request_and_record_when() {
    let (_d, out) = run_yaml(
        "  - {name: load, scenario: concurrent, sequence_lengths: [8], iterations: 6, max_new_tokens: 5, concurrency: [3], arrival_rates: [200], slo: {ttft_ms: 10000, tpot_ms: 1000}}\n",
        "",
    );
    let requests: Vec<RequestRecord> = read_stream(&out.join("raw_data"), "requests").unwrap();
    let measured = |level: LoadLevel| -> Vec<&RequestRecord> { requests.iter().filter(|r| !r.warmup && r.load == Some(level)).collect() };
    let closed = measured(LoadLevel::Closed { users: 3 });
    let open = measured(LoadLevel::Open { rate_per_s: 200.0 });
    assert_eq!((closed.len(), open.len()), (6, 6));
    assert!(closed.iter().chain(&open).all(|r| r.sent_offset_ns.is_some() && r.generated_tokens == 5));
    // Three users against an engine that serves one request at a time: the first three are sent
    // together, so the later ones wait in the engine's queue.
    let mut offsets: Vec<u64> = closed.iter().map(|r| r.sent_offset_ns.unwrap()).collect();
    offsets.sort();
    assert!(offsets[2] < offsets[3], "{offsets:?}");
    // The third of the first three waits for two whole requests before its first token.
    assert!(closed.iter().any(|r| r.runner_ttft_ns.unwrap() > r.ttft_ns + r.total_ns), "some request queued behind others");
    let s = analysis::summarize(&out).unwrap();
    let points = &s.engines[0].scenarios.load;
    assert_eq!(points.len(), 2);
    assert!(points.iter().all(|p| p.completed == 6 && p.goodput_fraction == Some(1.0) && p.meets_slo == Some(true)));
    assert_eq!(s.engines[0].scenarios.max_sustained_rate_per_s, Some(200.0));
}

#[test]
fn cells_over_the_memory_limit_are_skipped_before_they_run() {
    // Llama-3.2-1B in f32 on the CPU: 4.9 GB of weights alone, over a 3 GB limit.
    let (_d, out) = run_yaml(
        "  - {name: mem, scenario: memory, sequence_lengths: [64], iterations: 1, max_new_tokens: 2}\n",
        "system: {memory_limit_gb: 3}\n",
    );
    let failures: Vec<FailureRecord> = read_stream(&out.join("raw_data"), "failures").unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].kind, "skipped");
    assert!(failures[0].message.contains("4.9 GB, over system.memory_limit_gb = 3"), "{}", failures[0].message);
    let requests: Vec<RequestRecord> = read_stream(&out.join("raw_data"), "requests").unwrap();
    assert!(requests.is_empty());
}
