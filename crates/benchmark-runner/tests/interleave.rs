//! Interleaved, paired measurement against fake engines: every block holds each engine once, the
//! requests carry host probes, and the summary pairs them by block.

mod common;

use std::collections::BTreeMap;

use run_format::read_stream;
use run_format::records::{CellRecord, HostSample, RequestRecord};
use benchmark_runner::registry::Registry;
use benchmark_runner::terminal_table;

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

    let s = analysis::summarize(&out).unwrap();
    assert!(s.host_states.is_some());
    let parts = s.probe_parts.as_ref().expect("the continuous samples keep the probe's parts");
    assert_eq!(parts.parts.iter().map(|p| p.part).collect::<Vec<_>>(), ["chain", "ilp", "interp", "memory", "syscall", "total"]);
    assert!(parts.parts.iter().all(|p| p.readings == host.len() && p.p50_us > 0.0));
    assert_eq!(s.cells.len(), 4);
    assert!(s.cells.iter().all(|c| c.interleaved && c.decode_tok_per_s.all.as_ref().unwrap().n == 6));
    // No speedup against an engine that is not a reference; the cells are still per prompt length.
    assert!(s.cells.iter().all(|c| c.speedups.is_empty()));
    let table = terminal_table::table(&s);
    assert!(table.contains("Per cell, decode tok/s"), "{table}");
}

#[test]
fn the_run_check_names_what_a_reviewer_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::stub_model(dir.path(), &model_synth::Preset::Tiny.shape().config_json().to_string());
    let text = format!(
        "benchmark: {{name: c, model_path: {}, warmup_iterations: 1, request_timeout_s: 10}}\nengines: [one, two]\ncorrectness: {{enabled: false}}\nworkloads:\n  - {{name: lat, sequence_lengths: [8], iterations: 4, max_new_tokens: 3}}\n",
        model.display()
    );
    let registry = Registry::with(vec![common::fake("one", &[]), common::fake("two", &[])]);
    let out = common::run_config(dir.path(), &text, &registry);
    analysis::write(&mut analysis::analyze(&out).unwrap()).unwrap();
    // The gate was off: that, and only that, is reported for each engine.
    let problems = benchmark_runner::run_check::check(&out).unwrap().unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems.iter().all(|p| p.contains("correctness gate")), "{problems:?}");

    // A request whose times do not add up, and a block holding one engine twice.
    let path = out.join("raw_data/requests.jsonl");
    let mut requests: Vec<serde_json::Value> =
        std::fs::read_to_string(&path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let measured: Vec<usize> = (0..requests.len()).filter(|&i| requests[i]["warmup"] == false).collect();
    requests[measured[0]]["total_ns"] = (requests[measured[0]]["total_ns"].as_u64().unwrap() + 1).into();
    let twin = requests[measured[1]].clone();
    requests.push(twin);
    std::fs::write(&path, requests.iter().map(|r| r.to_string() + "\n").collect::<String>()).unwrap();
    let problems = benchmark_runner::run_check::check(&out).unwrap().unwrap_err();
    assert!(problems.iter().any(|p| p.contains("timings do not add up")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("an engine measured twice")), "{problems:?}");

    // A summary.json edited by hand is not what its raw data gives.
    let path = out.join("summary.json");
    let mut summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    summary["engines"][0]["decode_tok_per_s"]["median"] = 1.0.into();
    std::fs::write(&path, summary.to_string()).unwrap();
    let problems = benchmark_runner::run_check::check(&out).unwrap().unwrap_err();
    assert!(problems.iter().any(|p| p.contains("summary.json differs")), "{problems:?}");
}
