//! `summary.json` and the ranked table, rebuilt from raw_data at any time (`benchmark-runner
//! analyze`). Medians with distribution-free intervals only; the analysis crate owns the rest.

use std::path::Path;

use serde::Serialize;

use crate::config::{Config, Slo};
use crate::gate::REFERENCE_ENGINE;
use crate::records::{read_stream, CellRecord, CorrectnessRecord, EngineRecord, FailureRecord, LoadLevel, RequestRecord};

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
    /// Figures of the throughput, concurrent and memory scenarios, and energy.
    pub scenarios: ScenarioFigures,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ScenarioFigures {
    pub throughput: Vec<ThroughputPoint>,
    pub load: Vec<LoadPoint>,
    /// Highest open-loop arrival rate whose requests met the workload's SLO.
    pub max_sustained_rate_per_s: Option<f64>,
    pub memory: Vec<MemoryPoint>,
    /// GPU energy over all cells divided by the tokens they generated (NVML counter).
    pub energy_per_token_mj: Option<f64>,
    pub mean_power_w: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThroughputPoint {
    pub workload: String,
    pub batch_size: usize,
    pub prompt_tokens: usize,
    /// All generated tokens of a request (every row) over its end-to-end time.
    pub output_tok_per_s: Option<Estimate>,
    pub requests_per_s: Option<Estimate>,
    pub latency_ms: Option<Estimate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadPoint {
    pub workload: String,
    pub level: LoadLevel,
    pub prompt_tokens: usize,
    pub completed: usize,
    pub failed: usize,
    /// Generated tokens over the span from the first send to the last answer.
    pub achieved_tok_per_s: Option<f64>,
    pub achieved_requests_per_s: Option<f64>,
    /// Client-side time to first token (queueing included).
    pub ttft_ms: Option<Percentiles>,
    /// Mean time per output token after the first, per request.
    pub tpot_ms: Option<Percentiles>,
    pub e2e_ms: Option<Percentiles>,
    /// Share of requests meeting the SLO, and whether that share reaches `slo.min_fraction`.
    pub goodput_fraction: Option<f64>,
    pub goodput_requests_per_s: Option<f64>,
    pub meets_slo: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryPoint {
    pub workload: String,
    pub batch_size: usize,
    pub prompt_tokens: usize,
    pub max_new_tokens: usize,
    pub peak_rss_bytes: Option<u64>,
    pub gpu_proc_peak_bytes: Option<u64>,
    pub gpu_device_peak_bytes: Option<u64>,
}

/// Nearest-rank percentiles.
pub fn percentiles(mut xs: Vec<f64>) -> Option<Percentiles> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| xs[((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1];
    Some(Percentiles { p50: at(0.50), p90: at(0.90), p99: at(0.99) })
}

fn tpot_ms(r: &RequestRecord) -> Option<f64> {
    (!r.token_ns.is_empty()).then(|| r.token_ns.iter().sum::<u64>() as f64 / r.token_ns.len() as f64 / 1e6)
}

fn client_ttft_ms(r: &RequestRecord) -> f64 {
    r.runner_ttft_ns.unwrap_or(r.ttft_ns + r.queue_ns) as f64 / 1e6
}

fn load_point(workload: &str, level: LoadLevel, prompt: usize, reqs: &[&RequestRecord], failed: usize, slo: Option<Slo>) -> LoadPoint {
    let start = reqs.iter().filter_map(|r| r.sent_offset_ns).min();
    let end = reqs.iter().filter_map(|r| r.sent_offset_ns.map(|o| o + r.runner_total_ns)).max();
    let span_s = match (start, end) {
        (Some(a), Some(b)) if b > a => Some((b - a) as f64 / 1e9),
        _ => None,
    };
    let tokens: usize = reqs.iter().map(|r| r.generated_tokens).sum();
    let good = slo.map(|s| {
        reqs.iter().filter(|r| client_ttft_ms(r) <= s.ttft_ms && tpot_ms(r).is_none_or(|t| t <= s.tpot_ms)).count()
    });
    let total = reqs.len() + failed;
    let fraction = good.filter(|_| total > 0).map(|g| g as f64 / total as f64);
    LoadPoint {
        workload: workload.into(),
        level,
        prompt_tokens: prompt,
        completed: reqs.len(),
        failed,
        achieved_tok_per_s: span_s.map(|s| tokens as f64 / s),
        achieved_requests_per_s: span_s.map(|s| reqs.len() as f64 / s),
        ttft_ms: percentiles(reqs.iter().map(|r| client_ttft_ms(r)).collect()),
        tpot_ms: percentiles(reqs.iter().filter_map(|r| tpot_ms(r)).collect()),
        e2e_ms: percentiles(reqs.iter().map(|r| r.runner_total_ns as f64 / 1e6).collect()),
        goodput_fraction: fraction,
        goodput_requests_per_s: good.zip(span_s).map(|(g, s)| g as f64 / s),
        meets_slo: fraction.zip(slo).map(|(f, s)| f >= s.min_fraction),
    }
}

fn scenario_figures(name: &str, measured: &[&RequestRecord], cells: &[CellRecord], failures: &[FailureRecord], cfg: Option<&Config>) -> ScenarioFigures {
    let mut f = ScenarioFigures::default();
    let mut keys: Vec<(String, String, usize, usize, Option<LoadLevel>)> = Vec::new();
    for r in measured {
        let k = (r.scenario.clone(), r.workload.clone(), r.batch_size, r.prompt_tokens, r.load);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for (scenario, workload, batch, prompt, level) in keys {
        let reqs: Vec<&RequestRecord> = measured
            .iter()
            .copied()
            .filter(|r| r.workload == workload && r.batch_size == batch && r.prompt_tokens == prompt && r.load == level)
            .collect();
        match (scenario.as_str(), level) {
            ("throughput", _) => f.throughput.push(ThroughputPoint {
                workload,
                batch_size: batch,
                prompt_tokens: prompt,
                output_tok_per_s: estimate(reqs.iter().map(|r| r.generated_tokens as f64 / (r.total_ns as f64 * 1e-9)).collect()),
                requests_per_s: estimate(reqs.iter().map(|r| r.batch_size as f64 / (r.total_ns as f64 * 1e-9)).collect()),
                latency_ms: estimate(reqs.iter().map(|r| r.total_ns as f64 / 1e6).collect()),
            }),
            ("concurrent", Some(level)) => {
                let slo = cfg.and_then(|c| c.workloads.iter().find(|w| w.name == workload)).and_then(|w| w.slo);
                let failed = failures
                    .iter()
                    .filter(|x| x.engine == name && x.stage == workload && x.request.is_some() && x.prompt_tokens == Some(prompt))
                    .filter(|x| x.request.as_deref().is_some_and(|id| id.contains(&level.label())))
                    .count();
                f.load.push(load_point(&workload, level, prompt, &reqs, failed, slo));
            }
            _ => {}
        }
    }
    f.max_sustained_rate_per_s = f
        .load
        .iter()
        .filter(|p| p.meets_slo == Some(true))
        .filter_map(|p| match p.level {
            LoadLevel::Open { rate_per_s } => Some(rate_per_s),
            LoadLevel::Closed { .. } => None,
        })
        .reduce(f64::max);
    let own: Vec<&CellRecord> = cells.iter().filter(|c| c.engine == name).collect();
    f.memory = own
        .iter()
        .filter(|c| c.scenario == "memory" && c.status == "ok")
        .map(|c| MemoryPoint {
            workload: c.workload.clone(),
            batch_size: c.batch_size,
            prompt_tokens: c.prompt_tokens,
            max_new_tokens: c.max_new_tokens,
            peak_rss_bytes: c.peak_rss_bytes,
            gpu_proc_peak_bytes: c.gpu.as_ref().and_then(|g| g.gpu_proc_peak_bytes),
            gpu_device_peak_bytes: c.gpu.as_ref().and_then(|g| g.gpu_device_peak_bytes),
        })
        .collect();
    let with_energy: Vec<(&CellRecord, u64)> = own.iter().filter_map(|c| c.gpu.as_ref()?.energy_mj.map(|e| (*c, e))).collect();
    let tokens: usize = with_energy.iter().map(|(c, _)| c.generated_tokens).sum();
    if tokens > 0 {
        f.energy_per_token_mj = Some(with_energy.iter().map(|(_, e)| *e as f64).sum::<f64>() / tokens as f64);
    }
    let powered: Vec<(f64, f64)> = own.iter().filter_map(|c| Some((c.gpu.as_ref()?.mean_power_w?, c.wall_ns as f64))).collect();
    let wall: f64 = powered.iter().map(|p| p.1).sum();
    if wall > 0.0 {
        f.mean_power_w = Some(powered.iter().map(|(p, w)| p * w).sum::<f64>() / wall);
    }
    f
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
    let cells: Vec<CellRecord> = read_stream(&raw, "cells")?;
    let config_text = std::fs::read_to_string(run_dir.join("config.yaml")).unwrap_or_default();
    let config: serde_json::Value = serde_yaml::from_str(&config_text).unwrap_or(serde_json::Value::Null);
    let typed_config = Config::parse(&config_text, &run_dir.join("config.yaml")).ok();
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
    // The headline figures come from the latency scenario (one request at a time), or from every
    // request when a run has no latency workload.
    let has_latency = requests.iter().any(|r| r.scenario == "latency");
    let mut by_engine: std::collections::HashMap<&str, Vec<&RequestRecord>> = Default::default();
    let mut all_measured: std::collections::HashMap<&str, Vec<&RequestRecord>> = Default::default();
    for r in requests.iter().filter(|r| !r.warmup) {
        all_measured.entry(r.engine.as_str()).or_default().push(r);
        if !has_latency || r.scenario == "latency" {
            by_engine.entry(r.engine.as_str()).or_default().push(r);
        }
    }
    let measured = |name: &str| by_engine.get(name).cloned().unwrap_or_default().into_iter();
    let median_tok_s = |name: &str| estimate(measured(name).filter_map(|r| decode_tok_per_s(r)).collect()).map(|e| e.median);
    let baseline_tok_s = median_tok_s(REFERENCE_ENGINE);

    let mut engines = Vec::new();
    for name in &names {
        let fails: Vec<&FailureRecord> = failures.iter().filter(|f| &f.engine == name && f.kind != "skipped").collect();
        let ready = readies.iter().find(|r| &r.engine == name);
        let own_gates: Vec<&CorrectnessRecord> = gates.iter().filter(|g| &g.engine == name).collect();
        let everything = all_measured.get(name.as_str()).cloned().unwrap_or_default();
        let n_measured = everything.len();
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
            scenarios: scenario_figures(name, &everything, &cells, &failures, typed_config.as_ref()),
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
    fn nearest_rank_percentiles() {
        let p = percentiles((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!((p.p50, p.p90, p.p99), (50.0, 90.0, 99.0));
        let p = percentiles(vec![7.0]).unwrap();
        assert_eq!((p.p50, p.p99), (7.0, 7.0));
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
            load: None,
            sent_offset_ns: None,
            unix_ms: 0,
        };
        // 2 rows × 2 decode steps in 40 ms = 100 tok/s.
        assert!((decode_tok_per_s(&r).unwrap() - 100.0).abs() < 1e-9);
    }
}
