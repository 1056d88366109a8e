//! Two runs compared, cell by cell: for every engine and cell both measured, the change of each
//! figure (NEW over BASE, a ratio of medians with its bootstrap interval), a Mann-Whitney test
//! with Holm's correction across every row, and a verdict against a noise threshold. Like
//! criterion's saved baselines: a significant change beyond the noise is a regression or an
//! improvement; anything else is unchanged.

use serde::Serialize;

use crate::cells::CellKey;
use crate::compare::ratio_interval;
use crate::requests::METRICS;
use crate::stats::{holm, mann_whitney_u_sorted, quantile, sorted};
use crate::Report;

/// The figures compared, and whether larger is better.
pub const FIGURES: [(&str, bool); 4] = [("decode_tok_s", true), ("ttft_ms", false), ("latency_ms", false), ("e2e_ms", false)];

/// The noise threshold when nothing better is known: a change must exceed 5 % to count.
pub const DEFAULT_THRESHOLD: f64 = 0.05;
/// Between-run noise (from an over-runs folder) counts this many coefficients of variation.
pub const CV_MULTIPLE: f64 = 2.0;
pub const ALPHA: f64 = 0.05;

/// Where each row's noise threshold came from.
#[derive(Debug, Clone, Serialize)]
pub enum Threshold {
    /// `--threshold`: one value for every row.
    Given(f64),
    /// NEW's config, `analysis.compare_noise_threshold`: one value for every row.
    Config(f64),
    /// Twice each cell's between-run CV of decode speed, from the over-runs file named; cells it
    /// does not list get the default.
    BetweenRuns {
        file: String,
        default: f64,
    },
    Default(f64),
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffRow {
    pub engine: String,
    pub workload: String,
    pub scenario: String,
    pub batch_size: u64,
    pub prompt_tokens: u64,
    pub load: String,
    pub metric: &'static str,
    pub unit: &'static str,
    pub higher_is_better: bool,
    pub n_base: usize,
    pub n_new: usize,
    pub median_base: f64,
    pub median_new: f64,
    /// NEW's median over BASE's, with its bootstrap interval at the runs' confidence level.
    pub ratio: f64,
    pub ratio_ci: Option<[f64; 2]>,
    pub p_value: Option<f64>,
    pub p_holm: Option<f64>,
    /// The relative change that counts as more than noise for this row.
    pub threshold: f64,
    /// `improved`, `regressed` or `unchanged`.
    pub verdict: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunDiff {
    pub base: String,
    pub new: String,
    pub threshold: Threshold,
    pub alpha: f64,
    pub correction: &'static str,
    /// Differences in how the runs were made (GPU, driver, CPU, checkpoint, dtype, device, commit)
    /// and engines that failed the gate in NEW.
    pub warnings: Vec<String>,
    pub rows: Vec<DiffRow>,
    pub regressed: usize,
    pub improved: usize,
    /// Cells only one run has (engine · workload · batch · prompt · load).
    pub only_base: Vec<String>,
    pub only_new: Vec<String>,
}

fn cell_name(k: &CellKey) -> String {
    let load = if k.load.is_empty() { String::new() } else { format!(" · {}", k.load) };
    format!("{} · {} · batch {} · prompt {}{load}", k.engine, k.workload, k.batch_size, k.prompt_tokens)
}

fn same_cell(a: &CellKey, b: &CellKey) -> bool {
    (&a.engine, &a.workload, &a.scenario, a.batch_size, a.prompt_tokens, &a.load)
        == (&b.engine, &b.workload, &b.scenario, b.batch_size, b.prompt_tokens, &b.load)
}

/// Differences between the runs' conditions a reader must know before reading a change.
fn warnings(base: &Report, new: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let mut differs = |what: &str, a: Option<String>, b: Option<String>| {
        if a != b {
            out.push(format!("{what} differs: {} in BASE, {} in NEW", a.unwrap_or("none".into()), b.unwrap_or("none".into())));
        }
    };
    let env = |r: &Report, p: &str| {
        r.run.environment.pointer(p).filter(|v| !v.is_null()).map(|v| v.as_str().map(String::from).unwrap_or(v.to_string()))
    };
    differs("GPU", base.run.gpu_name(), new.run.gpu_name());
    differs("GPU driver", env(base, "/gpus/0/driver"), env(new, "/gpus/0/driver"));
    differs("CPU", env(base, "/cpu/model"), env(new, "/cpu/model"));
    differs("checkpoint config (sha256)", env(base, "/checkpoint/config_sha256"), env(new, "/checkpoint/config_sha256"));
    differs("checkpoint weights (bytes)", env(base, "/checkpoint/safetensors_bytes"), env(new, "/checkpoint/safetensors_bytes"));
    differs("commit", env(base, "/git_commit"), env(new, "/git_commit"));
    for e in base.summary.engines.iter() {
        if let Some(n) = new.summary.engines.iter().find(|n| n.name == e.name) {
            if e.dtype != n.dtype {
                out.push(format!(
                    "{}: dtype {} in BASE, {} in NEW",
                    e.name,
                    e.dtype.as_deref().unwrap_or("?"),
                    n.dtype.as_deref().unwrap_or("?")
                ));
            }
            if e.device != n.device {
                out.push(format!(
                    "{}: device {} in BASE, {} in NEW",
                    e.name,
                    e.device.as_deref().unwrap_or("?"),
                    n.device.as_deref().unwrap_or("?")
                ));
            }
            if n.correctness.passed == Some(false) {
                out.push(format!("{}: failed the correctness gate in NEW", e.name));
            }
        }
    }
    out
}

/// Per cell (engine, workload, batch, prompt), the between-run CV of decode speed in an
/// over-runs file (`benchmark-runner analyze --over-runs`).
pub fn between_run_cv(over_runs_json: &serde_json::Value) -> Vec<((String, String, u64, u64), f64)> {
    over_runs_json["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let key = (
                c["engine"].as_str()?.to_string(),
                c["workload"].as_str()?.to_string(),
                c["batch_size"].as_u64()?,
                c["prompt_tokens"].as_u64()?,
            );
            Some((key, c["decode_tok_per_s"]["cv"].as_f64()?))
        })
        .collect()
}

/// BASE against NEW. The noise threshold: `given`, else per cell twice its between-run CV from
/// `noise` (with the file it came from), else NEW's `analysis.compare_noise_threshold`, else 5 %.
/// Refused when the runs share no cell.
pub fn diff(
    base: &Report,
    new: &Report,
    given: Option<f64>,
    noise: Option<(String, Vec<((String, String, u64, u64), f64)>)>,
) -> anyhow::Result<RunDiff> {
    let settings = &new.run.config.analysis;
    let configured = settings.compare_noise_threshold;
    let threshold = match (&given, &noise, configured) {
        (Some(t), _, _) => Threshold::Given(*t),
        (None, Some((file, _)), _) => Threshold::BetweenRuns { file: file.clone(), default: configured.unwrap_or(DEFAULT_THRESHOLD) },
        (None, None, Some(t)) => Threshold::Config(t),
        (None, None, None) => Threshold::Default(DEFAULT_THRESHOLD),
    };
    let fallback = configured.unwrap_or(DEFAULT_THRESHOLD);
    let threshold_of = |k: &CellKey| -> f64 {
        if let Some(t) = given {
            return t;
        }
        noise
            .as_ref()
            .and_then(|(_, cvs)| {
                cvs.iter().find(|(c, _)| {
                    (c.0.as_str(), c.1.as_str(), c.2, c.3) == (k.engine.as_str(), k.workload.as_str(), k.batch_size, k.prompt_tokens)
                })
            })
            .map(|(_, cv)| CV_MULTIPLE * cv)
            .unwrap_or(fallback)
    };
    let mut rows = Vec::new();
    let mut p_values = Vec::new();
    for (i, (key, values)) in base.cells.iter().enumerate() {
        let Some((_, new_values)) = new.cells.iter().find(|(k, _)| same_cell(k, key)) else { continue };
        for (figure, higher_is_better) in FIGURES {
            let m = METRICS.iter().position(|(name, _)| *name == figure).expect("a metric of requests::METRICS");
            let (a, b) = (sorted(&values[m]), sorted(&new_values[m]));
            if a.is_empty() || b.is_empty() {
                continue;
            }
            let (interval, _) = ratio_interval(&b, &a, settings, settings.bootstrap_seed.wrapping_add(i as u64));
            let (median_base, median_new) = (quantile(&a, 0.5), quantile(&b, 0.5));
            let p = mann_whitney_u_sorted(&a, &b).map(|t| t.p_value);
            if let Some(p) = p {
                p_values.push((rows.len(), p));
            }
            rows.push(DiffRow {
                engine: key.engine.clone(),
                workload: key.workload.clone(),
                scenario: key.scenario.clone(),
                batch_size: key.batch_size,
                prompt_tokens: key.prompt_tokens,
                load: key.load.clone(),
                metric: figure,
                unit: METRICS[m].1,
                higher_is_better,
                n_base: a.len(),
                n_new: b.len(),
                median_base,
                median_new,
                ratio: median_new / median_base,
                ratio_ci: interval.map(|(_, (lo, hi))| [lo, hi]),
                p_value: p,
                p_holm: None,
                threshold: threshold_of(key),
                verdict: "unchanged",
            });
        }
    }
    anyhow::ensure!(
        !rows.is_empty(),
        "{} and {} have no cell in common (same engine, workload, batch size, prompt length and load level): nothing to compare",
        base.run.id,
        new.run.id
    );
    let adjusted = holm(&p_values.iter().map(|(_, p)| *p).collect::<Vec<_>>());
    for ((row, _), adj) in p_values.iter().zip(adjusted) {
        rows[*row].p_holm = Some(adj);
    }
    for r in &mut rows {
        r.verdict = verdict(r);
    }
    let only = |a: &Report, b: &Report| -> Vec<String> {
        a.cells.iter().filter(|(k, _)| !b.cells.iter().any(|(o, _)| same_cell(o, k))).map(|(k, _)| cell_name(k)).collect()
    };
    Ok(RunDiff {
        base: base.run.id.clone(),
        new: new.run.id.clone(),
        threshold,
        alpha: ALPHA,
        correction: "holm",
        warnings: warnings(base, new),
        regressed: rows.iter().filter(|r| r.verdict == "regressed").count(),
        improved: rows.iter().filter(|r| r.verdict == "improved").count(),
        only_base: only(base, new),
        only_new: only(new, base),
        rows,
    })
}

/// Significant after Holm's correction *and* beyond the threshold: better or worse by the
/// figure's direction. Anything else, including a row without a test, is unchanged.
pub fn verdict(r: &DiffRow) -> &'static str {
    let significant = r.p_holm.is_some_and(|p| p < ALPHA);
    let change = r.ratio - 1.0;
    if !significant || change.abs() <= r.threshold || !change.is_finite() {
        return "unchanged";
    }
    if (change > 0.0) == r.higher_is_better {
        "improved"
    } else {
        "regressed"
    }
}

/// The terminal table: one line per row, regressions marked.
pub fn table(d: &RunDiff) -> String {
    use std::fmt::Write;
    let mut out = format!("{} → {}\n", d.base, d.new);
    for w in &d.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(
        out,
        "{:<56} {:<13} {:>11} {:>11} {:>9} {:>19} {:>9} {:>7}  verdict",
        "cell", "figure", "base", "new", "change", "interval", "p (Holm)", "noise"
    );
    for r in &d.rows {
        let load = if r.load.is_empty() { String::new() } else { format!(" · {}", r.load) };
        let cell = format!("{} · {} · b{} · p{}{load}", r.engine, r.workload, r.batch_size, r.prompt_tokens);
        let ci = r.ratio_ci.map(|[a, b]| format!("[{:+.1}, {:+.1}] %", (a - 1.0) * 100.0, (b - 1.0) * 100.0)).unwrap_or_else(|| "–".into());
        let p = r.p_holm.map(|p| format!("{p:.3}")).unwrap_or_else(|| "–".into());
        let mark = match r.verdict {
            "regressed" => "REGRESSED",
            v => v,
        };
        let _ = writeln!(
            out,
            "{cell:<56} {:<13} {:>11.2} {:>11.2} {:>+8.1}% {ci:>19} {p:>9} {:>6.1}%  {mark}",
            format!("{} ({})", r.metric, r.unit),
            r.median_base,
            r.median_new,
            (r.ratio - 1.0) * 100.0,
            r.threshold * 100.0
        );
    }
    let _ = writeln!(
        out,
        "{} rows: {} improved, {} regressed, {} unchanged",
        d.rows.len(),
        d.improved,
        d.regressed,
        d.rows.len() - d.improved - d.regressed
    );
    if !d.only_base.is_empty() || !d.only_new.is_empty() {
        let _ = writeln!(out, "cells in one run only: {} in BASE, {} in NEW (not compared)", d.only_base.len(), d.only_new.len());
    }
    out
}
