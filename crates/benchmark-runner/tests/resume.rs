//! A run stopped by SIGTERM in the middle of a cell, then resumed: the same cells as a run that
//! was never stopped, each counted once, and nothing the first launch measured rewritten.
//! (Its own test binary: it drives the real command line, with a project root of fake engines.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use run_format::read_stream;
use run_format::records::{AttemptRecord, CellRecord};

/// A project root whose PyTorch engines are the fake engine (the registry runs
/// `engines/pytorch-baseline/engine.py` for both).
fn fake_root(dir: &Path) {
    std::fs::create_dir_all(dir.join("engines/pytorch-baseline")).unwrap();
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_engine.py"), dir.join("engines/pytorch-baseline/engine.py"))
        .unwrap();
    std::fs::write(dir.join("Cargo.toml"), "").unwrap();
    std::fs::create_dir_all(dir.join("model")).unwrap();
    std::fs::write(dir.join("model/config.json"), model_synth::Preset::Tiny.shape().config_json().to_string()).unwrap();
    std::fs::write(dir.join("model/model.safetensors"), "").unwrap();
    let config = "benchmark: {name: r, model_path: ./model, device: cpu, warmup_iterations: 1, request_timeout_s: 20}
engines: [pytorch_baseline, pytorch_compiled]
engine_options:
  pytorch_baseline: {token_ms: 6}
  pytorch_compiled: {token_ms: 3}
correctness: {enabled: false}
analysis: {generate_plots: false}
workloads:
  - {name: lat, sequence_lengths: [8, 16], iterations: 10, max_new_tokens: 6}
  - {name: tp, scenario: throughput, batch_sizes: [1, 2], sequence_lengths: [8], iterations: 3, max_new_tokens: 4}
";
    std::fs::write(dir.join("c.yaml"), config).unwrap();
}

fn runner(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_benchmark-runner"));
    c.current_dir(root).env("BENCH_ROOT", root).env("BENCH_PYTHON", "python3").stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

/// Cells and the requests that count (as the analysis reads them), keyed by cell.
fn counted(run: &Path) -> (BTreeSet<(String, String, usize, usize)>, BTreeMap<(String, String, usize, usize), Vec<usize>>) {
    let cells: Vec<CellRecord> = read_stream(&run.join("raw_data"), "cells").unwrap();
    let keys: Vec<_> = cells.iter().map(|c| (c.engine.clone(), c.workload.clone(), c.batch_size, c.prompt_tokens)).collect();
    let set: BTreeSet<_> = keys.iter().cloned().collect();
    assert_eq!(set.len(), keys.len(), "a cell recorded twice: {keys:?}");
    let loaded = analysis::Run::load(run).unwrap();
    let mut by: BTreeMap<_, Vec<usize>> = BTreeMap::new();
    for r in loaded.requests.iter().filter(|r| !r.warmup) {
        by.entry((r.engine.to_string(), r.workload.to_string(), r.batch_size, r.prompt_tokens)).or_default().push(r.iteration);
    }
    for v in by.values_mut() {
        v.sort();
    }
    (set, by)
}

#[test]
fn a_run_stopped_mid_cell_and_resumed_has_every_cell_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fake_root(root);

    let whole = root.join("whole");
    let out = runner(root).args(["--config", "c.yaml", "--output"]).arg(&whole).arg("--allow-dirty").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The same config, stopped once some measured requests of the first cell are in.
    let cut = root.join("cut");
    let child = runner(root).args(["--config", "c.yaml", "--output"]).arg(&cut).arg("--allow-dirty").spawn().unwrap();
    let started = Instant::now();
    let requests = cut.join("raw_data/requests.jsonl");
    while std::fs::read_to_string(&requests).map_or(0, |t| t.matches("\"warmup\":false").count()) < 7 {
        assert!(started.elapsed() < Duration::from_secs(60), "the run never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let stopped = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&stopped.stderr);
    assert!(!stopped.status.success() && log.contains("continue with --resume"), "{log}");
    let before = std::fs::read(&requests).unwrap();
    assert!(cut.join("summary.json").is_file(), "what was measured is summarised");
    let (partial, _) = counted(&cut);
    assert!(partial.len() < counted(&whole).0.len());

    let out = runner(root).arg("--resume").arg(&cut).arg("--allow-dirty").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after = std::fs::read(&requests).unwrap();
    assert_eq!(&after[..before.len()], &before[..], "the first launch's records are kept as they were");

    let (whole_cells, whole_counted) = counted(&whole);
    let (cut_cells, cut_counted) = counted(&cut);
    assert_eq!(cut_cells, whole_cells);
    assert_eq!(cut_counted, whole_counted, "each cell's measured requests counted once, every iteration present");
    let attempts: Vec<AttemptRecord> = read_stream(&cut.join("raw_data"), "attempts").unwrap();
    let ends: Vec<(u32, Option<&str>)> = attempts.iter().map(|a| (a.attempt, a.ended.as_deref())).collect();
    assert_eq!(ends, vec![(1, None), (1, Some("interrupted")), (2, None), (2, Some("finished"))]);

    // A finished run resumed again measures nothing new.
    let out = runner(root).arg("--resume").arg(&cut).arg("--allow-dirty").output().unwrap();
    assert!(out.status.success());
    assert_eq!(counted(&cut).1, whole_counted);
}
