//! The analysis of a committed H200 run (results/h200-check-1): the figures stated in the README
//! and in the first closing notes come out again, and every derived file is written.

use std::path::{Path, PathBuf};

fn committed(run: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results").join(run)
}

/// A scratch copy of a committed run, so writing derived files never touches the repository.
/// `test` keeps the copies of tests running at the same time apart.
fn scratch_copy(run: &str, test: &str) -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("analysis-test-{}-{test}", std::process::id()));
    let dir = base.join(run);
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(dir.join("raw_data")).unwrap();
    for f in ["config.yaml", "environment.json"] {
        std::fs::copy(committed(run).join(f), dir.join(f)).unwrap();
    }
    for entry in std::fs::read_dir(committed(run).join("raw_data")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.join("raw_data").join(p.file_name().unwrap())).unwrap();
    }
    (base, dir)
}

/// Runs since the analysis crate record the checkpoint's config.json in environment.json; older
/// ones only its path on the GPU machine. Give the scratch copy the Llama-3.2-1B shape.
fn with_model_shape(dir: &Path) {
    let path = dir.join("environment.json");
    let mut env: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    env["checkpoint"]["config"] = serde_json::json!({"vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
        "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "tie_word_embeddings": true});
    std::fs::write(&path, serde_json::to_string(&env).unwrap()).unwrap();
}

#[test]
fn h200_check_figures_come_out_again() {
    let (base, dir) = scratch_copy("h200-check-1", "figures");
    with_model_shape(&dir);
    let report = analysis::analyze(&dir).unwrap();
    let s = &report.summary;
    let engine = |n: &str| s.engines.iter().find(|e| e.name == n).unwrap();
    // Medians as first reported (summary.json of the run, written by the runner at the time).
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.abs();
    assert!(close(engine("pytorch_baseline").decode_tok_per_s.as_ref().unwrap().median, 60.12626550627341));
    assert!(close(engine("pytorch_compiled").decode_tok_per_s.as_ref().unwrap().median, 290.85777101347503));
    assert!(close(engine("candle_cuda").decode_tok_per_s.as_ref().unwrap().median, 149.22066096687803));
    let tp: Vec<(usize, f64)> =
        engine("candle_cuda").scenarios.throughput.iter().map(|p| (p.batch_size, p.output_tok_per_s.as_ref().unwrap().median)).collect();
    assert_eq!(tp.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 8, 64]);
    assert!(close(tp[2].1, 4093.309078482383));
    // candle over the eager baseline: 149.22 / 60.13 = 2.48x, its interval around it.
    let sp = engine("candle_cuda").speedup_vs_baseline.as_ref().unwrap();
    assert!((sp.median - 149.22066096687803 / 60.12626550627341).abs() < 1e-9);
    let ci = sp.ci95.unwrap();
    assert!(ci[0] < sp.median && sp.median < ci[1], "{ci:?}");
    // Half the compiled reference's speed: below 1.
    assert!(engine("candle_cuda").speedup_vs_compiled.as_ref().unwrap().median < 0.6);
    // 10 vs 10 requests, fully separated: significant after Holm.
    let c = report
        .comparisons
        .iter()
        .find(|c| c.engine == "candle_cuda" && c.reference == "pytorch_baseline" && c.metric == "decode_tok_s" && c.workload == "latency")
        .unwrap();
    assert_eq!((c.n, c.n_reference), (10, 10));
    assert_eq!(c.significant, Some(true));
    assert_eq!(c.cliffs_delta, 1.0);
    // The measured copy bandwidth and the bytes per token give the fraction stated in the notes:
    // 2.478 GB per token at 149.2 tok/s over 4254 GB/s ≈ 8.7 %.
    let b = &engine("candle_cuda").business;
    let bytes = b.bytes_per_token.unwrap();
    assert!((bytes / 1e9 - 2.478).abs() < 0.002, "{bytes}");
    let f = b.fraction_of_copy_bandwidth.unwrap();
    assert!((f - 0.087).abs() < 0.001, "{f}");
    // $3.50 an hour is not in this run's config: no cost figures.
    assert_eq!(b.cost_per_mtok_single_stream_usd, None);
    assert!(report.roofline.iter().any(|p| p.engine == "candle_cuda" && p.batch_size == 64));
    // The tiers pick from engines that passed the gate; the compiled reference is the fastest here.
    let single = s.tiers.iter().find(|t| t.tier == "single-stream").unwrap();
    assert_eq!(single.engine.as_deref(), Some("pytorch_compiled"));
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn derived_files_are_written_and_raw_data_untouched() {
    let (base, dir) = scratch_copy("h200-check-1", "derived");
    let raw_before = std::fs::read(dir.join("raw_data/requests.jsonl")).unwrap();
    let mut report = analysis::analyze(&dir).unwrap();
    analysis::write(&mut report).unwrap();
    for f in [
        "summary.json",
        "tables/cells.csv",
        "tables/cells.parquet",
        "tables/comparisons.csv",
        "tables/requests.parquet",
        "plots/decode_throughput.svg",
        "plots/gpu_timeline.svg",
        "plots/load_percentiles.svg",
        "plots/throughput_vs_latency.svg",
        "plots/latency_distribution.svg",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert_eq!(std::fs::read(dir.join("raw_data/requests.jsonl")).unwrap(), raw_before);
    // The requests table reads back whole, its name columns as categories of the same names.
    use polars::prelude::*;
    let table = ParquetReader::new(std::fs::File::open(dir.join("tables/requests.parquet")).unwrap()).finish().unwrap();
    assert_eq!(table.height(), report.run.requests.len());
    let engines = table.column("engine").unwrap();
    assert!(matches!(engines.dtype(), DataType::Categorical(..)), "{:?}", engines.dtype());
    let engines = engines.cast(&DataType::String).unwrap();
    let names: Vec<&str> = engines.str().unwrap().iter().map(Option::unwrap).collect();
    assert!(names.iter().zip(&report.run.requests).all(|(n, r)| *n == r.engine));
    let svg = std::fs::read_to_string(dir.join("plots/decode_throughput.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("Decode throughput") && svg.contains("candle_cuda"), "{}", &svg[..200.min(svg.len())]);
    let cells = std::fs::read_to_string(dir.join("tables/cells.csv")).unwrap();
    let header = cells.lines().next().unwrap();
    assert!(header.starts_with("run,engine,workload,scenario,batch_size,prompt_tokens,load,metric,unit,n,outliers"), "{header}");
    // Rebuilding gives the same summary (seeded bootstrap, stable cell order).
    let first = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    let mut again = analysis::analyze(&dir).unwrap();
    analysis::write(&mut again).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("summary.json")).unwrap(), first);
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn bad_input_names_file_and_line() {
    let (base, dir) = scratch_copy("h200-check-1", "bad-input");
    let path = dir.join("raw_data/requests.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"schema\": 1, \"engine\": 5}\n");
    std::fs::write(&path, &text).unwrap();
    let line = text.lines().count();
    let err = analysis::analyze(&dir).err().unwrap().to_string();
    assert!(err.contains(&format!("requests.jsonl:{line}:")), "{err}");
    let err = analysis::analyze(&base.join("nope")).err().unwrap().to_string();
    assert!(err.contains("not a run directory"), "{err}");
    std::fs::write(dir.join("config.yaml"), "analysis: {confidence_level: 95}\n").unwrap();
    std::fs::write(&path, "").unwrap();
    let err = analysis::analyze(&dir).err().unwrap().to_string();
    assert!(err.contains("config.yaml: analysis.confidence_level"), "{err}");
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn the_gpu_timeline_of_the_longest_committed_run_stays_small() {
    let run = analysis::Run::load(&committed("h200-1-gpu1")).unwrap();
    assert!(run.monitor.len() > 4 * analysis::plots::TIMELINE_SAMPLES, "{} samples", run.monitor.len());
    let svg = analysis::plots::gpu_timeline(&run).unwrap();
    assert!(svg.len() <= 100_000, "{} bytes", svg.len());
    assert!(svg.matches("<circle").count() <= 2 * analysis::plots::TIMELINE_SAMPLES + 20);
}
