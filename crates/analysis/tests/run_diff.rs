//! Two runs compared: a run against itself changes nothing; a run made slower is flagged as a
//! regression only where the change is significant and beyond the noise; runs without a common
//! cell are refused.

use std::path::{Path, PathBuf};

use analysis::run_diff::{diff, verdict, DiffRow};

fn committed(run: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results").join(run)
}

#[test]
fn a_run_against_itself_is_unchanged_everywhere() {
    let r = analysis::analyze(&committed("h200-ref-6")).unwrap();
    let d = diff(&r, &r, None, None).unwrap();
    assert_eq!(d.rows.len(), 32, "8 cells × 4 figures");
    assert!(d.rows.iter().all(|row| row.ratio == 1.0 && row.verdict == "unchanged"));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    assert_eq!((d.improved, d.regressed), (0, 0));
}

#[test]
fn a_slower_engine_is_a_regression_and_a_faster_one_an_improvement() {
    let base = analysis::analyze(&committed("h200-ref-6")).unwrap();
    let mut new = analysis::analyze(&committed("h200-ref-6")).unwrap();
    let decode = analysis::requests::METRICS.iter().position(|m| m.0 == "decode_tok_s").unwrap();
    for (key, values) in new.cells.iter_mut() {
        let factor = match key.engine.as_str() {
            "candle_cuda" => 0.8,
            "mistral_rs_cuda" => 1.25,
            "pytorch_compiled" => 1.01,
            _ => 1.0,
        };
        values[decode].iter_mut().for_each(|v| *v *= factor);
    }
    let d = diff(&base, &new, Some(0.05), None).unwrap();
    let of = |engine: &str| -> Vec<&DiffRow> { d.rows.iter().filter(|r| r.engine == engine && r.metric == "decode_tok_s").collect() };
    assert!(of("candle_cuda").iter().all(|r| r.verdict == "regressed" && (r.ratio - 0.8).abs() < 1e-9), "candle");
    assert!(of("mistral_rs_cuda").iter().all(|r| r.verdict == "improved"), "mistral.rs");
    assert!(of("pytorch_compiled").iter().all(|r| r.verdict == "unchanged"), "1 % is within a 5 % threshold, however significant");
    assert_eq!(d.regressed, 2);
    assert!(analysis::run_diff::table(&d).contains("REGRESSED"));

    // NEW's config may set the threshold; a 20 % drop is then within a 30 % noise band.
    new.run.config.analysis.compare_noise_threshold = Some(0.3);
    let d = diff(&base, &new, None, None).unwrap();
    assert!(matches!(d.threshold, analysis::run_diff::Threshold::Config(t) if t == 0.3));
    assert_eq!(d.regressed, 0);
}

#[test]
fn verdict_needs_significance_and_a_change_beyond_the_noise() {
    let row = |ratio: f64, p: Option<f64>, higher: bool| DiffRow {
        engine: "e".into(),
        workload: "w".into(),
        scenario: "latency".into(),
        batch_size: 1,
        prompt_tokens: 128,
        load: String::new(),
        metric: if higher { "decode_tok_s" } else { "ttft_ms" },
        unit: "",
        higher_is_better: higher,
        n_base: 20,
        n_new: 20,
        median_base: 1.0,
        median_new: ratio,
        ratio,
        ratio_ci: None,
        p_value: p,
        p_holm: p,
        threshold: 0.05,
        verdict: "",
    };
    assert_eq!(verdict(&row(0.9, Some(0.001), true)), "regressed");
    assert_eq!(verdict(&row(0.9, Some(0.001), false)), "improved", "a shorter time is better");
    assert_eq!(verdict(&row(0.9, Some(0.2), true)), "unchanged", "not significant");
    assert_eq!(verdict(&row(0.97, Some(0.001), true)), "unchanged", "within the noise");
    assert_eq!(verdict(&row(0.5, None, true)), "unchanged", "no test, no verdict");
}

#[test]
fn runs_without_a_common_cell_are_refused_and_different_conditions_are_named() {
    let a = analysis::analyze(&committed("h200-ref-6")).unwrap();
    let b = analysis::analyze(&committed("h200-5-gpu1")).unwrap();
    let d = diff(&a, &b, None, None).unwrap();
    assert!(d.warnings.iter().any(|w| w.starts_with("commit differs")), "{:?}", d.warnings);
    let mut none = analysis::analyze(&committed("h200-5-gpu1")).unwrap();
    none.cells.iter_mut().for_each(|(k, _)| k.engine = format!("other_{}", k.engine));
    let err = diff(&a, &none, None, None).unwrap_err().to_string();
    assert!(err.contains("no cell in common"), "{err}");
}
