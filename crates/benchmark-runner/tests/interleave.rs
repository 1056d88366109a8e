//! Interleaved, paired measurement against fake engines: every block holds each engine once, the
//! requests carry host probes, and the summary pairs them by block.

mod common;

use std::collections::BTreeMap;

use benchmark_runner::records::{read_stream, CellRecord, HostSample, RequestRecord};
use benchmark_runner::registry::Registry;
use benchmark_runner::summary;

#[test]
fn engines_of_a_workload_take_turns_block_by_block() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::stub_model(dir.path(), &model_synth::Preset::Tiny.shape().config_json().to_string());
    let text = format!(
        "benchmark: {{name: i, model_path: {}, warmup_iterations: 1, request_timeout_s: 10}}\nengines: [slow, quick]\ncorrectness: {{enabled: false}}\nworkloads:\n  - {{name: lat, sequence_lengths: [8, 16], iterations: 6, max_new_tokens: 4}}\n",
        model.display()
    );
    let registry = Registry::with(vec![common::fake("slow", &[("token_ms", 4.into())]), common::fake("quick", &[("token_ms", 1.into())])]);
    let out = common::run_config(dir.path(), &text, &registry);
    let raw = out.join("raw_data");
    let requests: Vec<RequestRecord> = read_stream(&raw, "requests").unwrap();
    let measured: Vec<&RequestRecord> = requests.iter().filter(|r| !r.warmup).collect();
    assert_eq!(measured.len(), 2 * 2 * 6);
    // Per cell and block: one request of each engine, on the same prompt.
    let mut blocks: BTreeMap<(usize, usize), Vec<&str>> = BTreeMap::new();
    for r in &measured {
        blocks.entry((r.prompt_tokens, r.block.expect("interleaved requests name their block"))).or_default().push(&r.engine);
    }
    assert_eq!(blocks.len(), 12);
    assert!(blocks.values().all(|e| e.len() == 2 && e.contains(&"slow") && e.contains(&"quick")), "{blocks:?}");
    // Not one engine's requests after the other's: the engines alternate within each cell.
    let order: Vec<&str> = measured.iter().filter(|r| r.prompt_tokens == 8).map(|r| r.engine.as_str()).collect();
    assert!(order[..6].contains(&"slow") && order[..6].contains(&"quick"), "{order:?}");
    assert!(measured.iter().all(|r| r.host_probe_before_ns.is_some() && r.host_probe_after_ns.is_some() && r.attempt == Some(1)));
    let cells: Vec<CellRecord> = read_stream(&raw, "cells").unwrap();
    assert_eq!(cells.len(), 4);
    assert!(cells.iter().all(|c| c.status == "ok" && c.completed_requests == 7));
    let host: Vec<HostSample> = read_stream(&raw, "host").unwrap();
    assert!(!host.is_empty() && host.iter().all(|s| s.probe_ns > 0 && s.parts.is_some_and(|p| p.total_ns() == s.probe_ns)));

    let s = summary::build(&out).unwrap();
    assert!(s.host_states.is_some());
    let parts = s.probe_parts.as_ref().expect("the continuous samples keep the probe's parts");
    assert_eq!(parts.parts.iter().map(|p| p.part).collect::<Vec<_>>(), ["chain", "ilp", "interp", "memory", "syscall", "total"]);
    assert!(parts.parts.iter().all(|p| p.readings == host.len() && p.p50_us > 0.0));
    assert_eq!(s.cells.len(), 4);
    assert!(s.cells.iter().all(|c| c.interleaved && c.decode_tok_per_s.all.as_ref().unwrap().n == 6));
    // No speedup against an engine that is not a reference; the cells are still per prompt length.
    assert!(s.cells.iter().all(|c| c.speedups.is_empty()));
    let table = summary::table(&s);
    assert!(table.contains("Per cell, decode tok/s"), "{table}");
}
