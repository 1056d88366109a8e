//! `summary.json` and the ranked table, rebuilt from raw_data at any time (`benchmark-runner
//! analyze`). Medians with distribution-free intervals only; the analysis crate owns the rest.

use std::path::Path;

use serde::Serialize;

use crate::gate::REFERENCE_ENGINE;
use crate::records::{read_stream, CorrectnessRecord, EngineRecord, FailureRecord, RequestRecord};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Estimate {
    pub median: f64,
    /// Order-statistic interval for the median at 95 %; null when n is too small (< 6) for one.
    pub ci95: Option<[f64; 2]>,
    pub n: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub median: f64,
    /// Filled by the analysis crate (bootstrap); null here.
    pub ci95: Option<[f64; 2]>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CorrectnessSummary {
    /// Null when the gate could not run (no reference, or the engine failed before it).
    pub passed: Option<bool>,
    pub max_rel_logit_err: Option<f64>,
    pub greedy_match_steps: Option<usize>,
    pub steps: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EngineSummary {
    pub name: String,
    /// `ok`, `partial` (some cells failed) or `failed` (nothing measured).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub failed_cells: usize,
    pub version: Option<String>,
    pub device: Option<String>,
    pub dtype: Option<String>,
    pub load_ms: Option<f64>,
    pub correctness: CorrectnessSummary,
    pub decode_tok_per_s: Option<Estimate>,
    pub ttft_ms: Option<Estimate>,
    pub latency_ms: Option<Estimate>,
    /// Runner-side minus engine-side time per request (pipes, JSON, queueing).
    pub harness_overhead_ms: Option<Estimate>,
    pub speedup_vs_baseline: Option<Ratio>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub schema: u32,
    pub run: serde_json::Value,
    pub baseline: String,
    pub engines: Vec<EngineSummary>,
}

/// Decode throughput of one request: tokens after the first over the time they took, all rows.
pub fn decode_tok_per_s(r: &RequestRecord) -> Option<f64> {
    let decode_ns: u64 = r.token_ns.iter().sum();
    (decode_ns > 0).then(|| (r.batch_size * r.token_ns.len()) as f64 / (decode_ns as f64 * 1e-9))
}

/// Median and, for n ≥ 6, the tightest pair of order statistics (j, n−1−j) that cover the median
/// with at least 95 % probability under Binomial(n, ½) (normal approximation above n = 1000).
pub fn estimate(mut xs: Vec<f64>) -> Option<Estimate> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    let median = if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 };
    let ci95 = if n < 6 {
        None
    } else if n > 1000 {
        let half = (1.96 * (n as f64).sqrt() / 2.0).ceil() as usize;
        Some([xs[(n / 2).saturating_sub(half)], xs[(n / 2 + half).min(n - 1)]])
    } else {
        // P(B < j+1) for B ~ Bin(n, ½), accumulated until the two tails exceed 2.5 % each.
        let mut pmf = 0.5f64.powi(n as i32);
        let mut cdf = pmf;
        let mut j = 0;
        while cdf + pmf * (n - j) as f64 / (j + 1) as f64 <= 0.025 {
            pmf *= (n - j) as f64 / (j + 1) as f64;
            cdf += pmf;
            j += 1;
        }
        // Coverage of [x_(j), x_(n-1-j)] (0-based) is 1 − 2·P(B ≤ j) ≥ 95 % when P(B ≤ j) ≤ 2.5 %.
        (cdf <= 0.025).then(|| [xs[j], xs[n - 1 - j]])
    };
    Some(Estimate { median, ci95, n })
}

pub fn build(run_dir: &Path) -> anyhow::Result<Summary> {
    let raw = run_dir.join("raw_data");
    let requests: Vec<RequestRecord> = read_stream(&raw, "requests")?;
    let failures: Vec<FailureRecord> = read_stream(&raw, "failures")?;
    let gates: Vec<CorrectnessRecord> = read_stream(&raw, "correctness")?;
    let readies: Vec<EngineRecord> = read_stream(&raw, "engines")?;
    let config: serde_json::Value = std::fs::read_to_string(run_dir.join("config.yaml"))
        .ok()
        .and_then(|t| serde_yaml::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    let environment: serde_json::Value = std::fs::read_to_string(run_dir.join("environment.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);

    let mut names: Vec<String> = config["engines"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    for n in requests.iter().map(|r| &r.engine).chain(failures.iter().map(|f| &f.engine)) {
        if !names.contains(n) && n != "reference" {
            names.push(n.clone());
        }
    }
    let mut by_engine: std::collections::HashMap<&str, Vec<&RequestRecord>> = Default::default();
    for r in requests.iter().filter(|r| !r.warmup) {
        by_engine.entry(r.engine.as_str()).or_default().push(r);
    }
    let measured = |name: &str| by_engine.get(name).cloned().unwrap_or_default().into_iter();
    let median_tok_s = |name: &str| estimate(measured(name).filter_map(|r| decode_tok_per_s(r)).collect()).map(|e| e.median);
    let baseline_tok_s = median_tok_s(REFERENCE_ENGINE);

    let mut engines = Vec::new();
    for name in &names {
        let fails: Vec<&FailureRecord> = failures.iter().filter(|f| &f.engine == name).collect();
        let ready = readies.iter().find(|r| &r.engine == name);
        let own_gates: Vec<&CorrectnessRecord> = gates.iter().filter(|g| &g.engine == name).collect();
        let n_measured = measured(name).count();
        let status = match (n_measured, fails.is_empty()) {
            (0, _) => "failed",
            (_, true) => "ok",
            (_, false) => "partial",
        };
        let tok_s = estimate(measured(name).filter_map(|r| decode_tok_per_s(r)).collect());
        let ns_to_ms = |ns: u64| ns as f64 / 1e6;
        engines.push(EngineSummary {
            name: name.clone(),
            status: status.into(),
            failure: fails.first().map(|f| format!("{} ({}): {}", f.stage, f.kind, f.message)),
            failed_cells: fails.iter().filter(|f| f.batch_size.is_some()).count(),
            version: ready.map(|r| r.ready.engine.version.clone()),
            device: ready.map(|r| r.ready.engine.device.clone()),
            dtype: ready.map(|r| r.ready.engine.dtype.to_string()),
            load_ms: ready.map(|r| ns_to_ms(r.ready.load_ns)),
            correctness: CorrectnessSummary {
                passed: (!own_gates.is_empty()).then(|| own_gates.iter().all(|g| g.passed)),
                max_rel_logit_err: own_gates.iter().map(|g| g.max_rel_logit_err).reduce(f64::max),
                greedy_match_steps: own_gates.iter().map(|g| g.greedy_match_steps).min(),
                steps: own_gates.first().map(|g| g.steps),
            },
            speedup_vs_baseline: match (&tok_s, baseline_tok_s) {
                (Some(t), Some(b)) if b > 0.0 => Some(Ratio { median: t.median / b, ci95: None }),
                _ => None,
            },
            decode_tok_per_s: tok_s,
            ttft_ms: estimate(measured(name).map(|r| ns_to_ms(r.ttft_ns)).collect()),
            latency_ms: estimate(measured(name).map(|r| ns_to_ms(r.total_ns)).collect()),
            harness_overhead_ms: estimate(
                measured(name)
                    .map(|r| (r.runner_total_ns as f64 - (r.total_ns + r.queue_ns) as f64) / 1e6)
                    .collect(),
            ),
        });
    }
    Ok(Summary {
        schema: 1,
        run: serde_json::json!({
            "id": run_dir.file_name().map(|s| s.to_string_lossy().to_string()),
            "config": config["benchmark"]["name"],
            "environment": environment,
        }),
        baseline: REFERENCE_ENGINE.into(),
        engines,
    })
}

pub fn write(run_dir: &Path, summary: &Summary) -> anyhow::Result<()> {
    let path = run_dir.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(summary)? + "\n")
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

/// The original design's ranked table: fastest decode first, the baseline marked, failures last.
pub fn table(s: &Summary) -> String {
    let mut ranked: Vec<&EngineSummary> = s.engines.iter().filter(|e| e.decode_tok_per_s.is_some()).collect();
    ranked.sort_by(|a, b| {
        let t = |e: &EngineSummary| e.decode_tok_per_s.as_ref().map_or(0.0, |t| t.median);
        t(b).total_cmp(&t(a))
    });
    let mut out = String::from("🚀 Inference Benchmark Results\n===================================\n");
    let medals = ["🥇", "🥈", "🥉"];
    for (i, e) in ranked.iter().enumerate() {
        let mark = if e.name == s.baseline { "🏁" } else { medals.get(i).copied().unwrap_or("  ") };
        let vs = if e.name == s.baseline {
            "1.0x baseline".to_string()
        } else {
            e.speedup_vs_baseline.as_ref().map_or("no baseline".into(), |r| format!("{:.1}x vs PyTorch", r.median))
        };
        let flag = match e.correctness.passed {
            Some(true) => "",
            Some(false) => "  ⚠ differs from reference",
            None => "  (correctness not checked)",
        };
        let partial = if e.status == "partial" { format!("  ({} cells failed)", e.failed_cells) } else { String::new() };
        out += &format!(
            "{mark} {:<16}: {:>8.1}ms | {:>8.1} tok/s ({vs}){flag}{partial}\n",
            e.name,
            e.latency_ms.as_ref().map_or(f64::NAN, |l| l.median),
            e.decode_tok_per_s.as_ref().map_or(f64::NAN, |t| t.median),
        );
    }
    for e in s.engines.iter().filter(|e| e.decode_tok_per_s.is_none()) {
        out += &format!("❌ {:<16}: failed: {}\n", e.name, e.failure.as_deref().unwrap_or("no measurement"));
    }
    out += "ms = median request latency (prompt + all new tokens); tok/s = median decode throughput.\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_interval_matches_the_binomial_table() {
        // n = 10: the 95 % distribution-free interval is [x(2), x(9)] in 1-based order statistics
        // (coverage 97.9 %); n = 6 gives [x(1), x(6)] (96.9 %); n = 5 has none.
        let e = estimate((1..=10).map(f64::from).collect()).unwrap();
        assert_eq!((e.median, e.ci95, e.n), (5.5, Some([2.0, 9.0]), 10));
        let e = estimate((1..=6).map(f64::from).collect()).unwrap();
        assert_eq!(e.ci95, Some([1.0, 6.0]));
        assert_eq!(estimate(vec![3.0, 1.0, 2.0, 5.0, 4.0]).unwrap().ci95, None);
        assert_eq!(estimate(vec![]), None);
    }

    #[test]
    fn decode_rate_counts_every_row_after_the_first_token() {
        let r = RequestRecord {
            schema: 1,
            engine: "e".into(),
            workload: "w".into(),
            scenario: "latency".into(),
            device: "cpu".into(),
            dtype: "f32".into(),
            batch_size: 2,
            prompt_tokens: 4,
            max_new_tokens: 3,
            warmup: false,
            iteration: 0,
            generated_tokens: 6,
            queue_ns: 0,
            ttft_ns: 5_000_000,
            token_ns: vec![10_000_000, 30_000_000],
            total_ns: 45_000_000,
            runner_ttft_ns: None,
            runner_total_ns: 46_000_000,
            unix_ms: 0,
        };
        // 2 rows × 2 decode steps in 40 ms = 100 tok/s.
        assert!((decode_tok_per_s(&r).unwrap() - 100.0).abs() < 1e-9);
    }
}
