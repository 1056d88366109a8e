//! `summary.json`: what a run shows, per engine, rebuilt from raw data at any time. Fields are
//! documented in `crates/analysis/README.md`; ARCHITECTURE.md's contract is a subset.

use std::path::Path;

use serde::Serialize;

use crate::business::{self, Business, CriterionResult, Tier};
use crate::cells::{describe, CellKey, CellMetric, Describe};
use crate::compare::Comparison;
use crate::config::{Settings, Slo, BASELINE, COMPILED_REFERENCE};
use crate::records::{CellRecord, FailureRecord, LoadLevel, Request};
use crate::requests::{client_ttft_ms, decode_tok_s, tpot_ms};
use crate::run::Run;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Estimate {
    pub median: f64,
    /// Bootstrap interval of the median at `confidence_level` (the summary's top level; 0.95 unless
    /// the config says otherwise); null below 5 values (three requests give no interval worth
    /// printing: n says how many there are).
    pub ci95: Option<[f64; 2]>,
    pub n: usize,
}

impl Estimate {
    fn from(d: Option<Describe>) -> Option<Estimate> {
        d.map(|d| Estimate { median: d.median, ci95: d.median_ci.filter(|_| d.n >= crate::cell_figures::MIN_N_FOR_INTERVAL), n: d.n })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub median: f64,
    /// Seeded bootstrap interval of the ratio of medians.
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
    /// Headline figures: every measured request of the latency scenario (one request at a time),
    /// or of the whole run when it has no latency workload.
    pub decode_tok_per_s: Option<Estimate>,
    pub ttft_ms: Option<Estimate>,
    pub latency_ms: Option<Estimate>,
    /// p99 of the client-side time to first token over the same requests.
    pub ttft_p99_ms: Option<f64>,
    /// Runner-side minus engine-side time per request (pipes, JSON, queueing).
    pub harness_overhead_ms: Option<Estimate>,
    /// Ratio of median decode throughputs against the eager baseline, with a bootstrap interval.
    pub speedup_vs_baseline: Option<Ratio>,
    /// The same against `pytorch_compiled`.
    pub speedup_vs_compiled: Option<Ratio>,
    /// Figures of the throughput, concurrent and memory scenarios, and energy.
    pub scenarios: ScenarioFigures,
    pub business: Business,
}

impl EngineSummary {
    /// The engine reported a CUDA device.
    pub fn on_gpu(&self) -> bool {
        self.device.as_deref().is_some_and(|d| d.starts_with("cuda"))
    }
    /// The engine reported the CPU as its device.
    pub fn on_cpu(&self) -> bool {
        self.device.as_deref() == Some("cpu")
    }
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
    pub decode_tok_per_s: Option<Estimate>,
    pub requests_per_s: Option<Estimate>,
    pub latency_ms: Option<Estimate>,
    /// Energy of the cell's measured requests over the tokens they generated.
    pub energy_per_token_mj: Option<f64>,
    pub mean_gpu_util_pct: Option<f64>,
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
    pub mean_gpu_util_pct: Option<f64>,
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

/// Significance of the engine-vs-reference comparisons of a run, counted.
#[derive(Debug, Clone, Serialize)]
pub struct ComparisonCount {
    pub comparisons: usize,
    pub significant: usize,
    pub tests: Vec<String>,
    pub correction: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub schema: u32,
    pub run: serde_json::Value,
    pub baseline: String,
    pub compiled_reference: String,
    pub confidence_level: f64,
    pub outliers: OutlierNote,
    pub engines: Vec<EngineSummary>,
    pub comparisons: ComparisonCount,
    /// Deployment tiers, each chosen by the stated rule from this run's data.
    pub tiers: Vec<Tier>,
    /// The original design's success criteria, evaluated on this run.
    pub criteria: Vec<CriterionResult>,
    /// How each request's host state was told (from this run's own probe readings); null for runs
    /// without host probes.
    pub host_states: Option<crate::host_state::HostStates>,
    /// Headline figures per latency / throughput cell (never pooled across prompt lengths),
    /// overall and per host state, with paired speedups where the cell was interleaved.
    pub cells: Vec<crate::cell_figures::CellFigures>,
    /// Each part of the host probe: its distribution, and how each cell's decode rate moved with
    /// it; absent for runs whose samples do not keep the parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_parts: Option<crate::probe_parts::ProbePartsReport>,
    /// The GPU's clocks and throttle reasons per cell; `flags` says where it was slowed.
    pub gpu_state: Vec<crate::gpu_state::GpuCellState>,
    /// The copy-bandwidth probe against the GPU's datasheet (a refused reading is not used).
    pub bandwidth_probe: Option<crate::bandwidth::BandwidthCheck>,
    /// Derived files written beside this one.
    pub outputs: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutlierNote {
    /// Tukey fences at 1.5 IQR, per cell and metric.
    pub rule: &'static str,
    pub removed: bool,
    /// Outlying values over every cell and metric of the run (see tables/cells.csv per cell).
    pub flagged: usize,
}

/// Nearest-rank percentiles.
pub fn percentiles(mut xs: Vec<f64>) -> Option<Percentiles> {
    if xs.is_empty() {
        return None;
    }
    // Three selections, not a sort: each places its rank's value where a sort would, and leaves
    // larger values above it, so the next (higher) rank is found among those.
    let rank = |q: f64| ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1;
    let (r50, r90, r99) = (rank(0.50), rank(0.90), rank(0.99));
    let p50 = *xs.select_nth_unstable_by(r50, f64::total_cmp).1;
    let p90 = *xs[r50..].select_nth_unstable_by(r90 - r50, f64::total_cmp).1;
    let p99 = *xs[r90..].select_nth_unstable_by(r99 - r90, f64::total_cmp).1;
    Some(Percentiles { p50, p90, p99 })
}

fn load_point<'a>(
    workload: &str,
    level: LoadLevel,
    prompt: usize,
    reqs: impl Iterator<Item = Request<'a>>,
    failed: usize,
    slo: Option<Slo>,
    cell: Option<&CellRecord>,
) -> LoadPoint {
    // One pass over the level's requests (tens of thousands in a long run).
    let (mut start, mut end, mut tokens, mut good, mut completed) = (None::<u64>, None::<u64>, 0, 0, 0);
    let (mut ttft, mut tpot, mut e2e) = (Vec::new(), Vec::new(), Vec::new());
    for r in reqs {
        if let Some(o) = r.sent_offset_ns {
            start = Some(start.map_or(o, |s| s.min(o)));
            end = Some(end.map_or(o + r.runner_total_ns, |e| e.max(o + r.runner_total_ns)));
        }
        tokens += r.generated_tokens;
        completed += 1;
        let (client_ttft, per_token) = (client_ttft_ms(&r), tpot_ms(&r));
        if slo.is_some_and(|s| client_ttft <= s.ttft_ms && per_token.is_none_or(|t| t <= s.tpot_ms)) {
            good += 1;
        }
        ttft.push(client_ttft);
        tpot.extend(per_token);
        e2e.push(r.runner_total_ns as f64 / 1e6);
    }
    let span_s = match (start, end) {
        (Some(a), Some(b)) if b > a => Some((b - a) as f64 / 1e9),
        _ => None,
    };
    let good = slo.map(|_| good);
    let total = completed + failed;
    let fraction = good.filter(|_| total > 0).map(|g| g as f64 / total as f64);
    LoadPoint {
        workload: workload.into(),
        level,
        prompt_tokens: prompt,
        completed,
        failed,
        achieved_tok_per_s: span_s.map(|s| tokens as f64 / s),
        achieved_requests_per_s: span_s.map(|s| completed as f64 / s),
        ttft_ms: percentiles(ttft),
        tpot_ms: percentiles(tpot),
        e2e_ms: percentiles(e2e),
        goodput_fraction: fraction,
        goodput_requests_per_s: good.zip(span_s).map(|(g, s)| g as f64 / s),
        meets_slo: fraction.zip(slo).map(|(f, s)| f >= s.min_fraction),
        mean_gpu_util_pct: cell.and_then(|c| c.gpu.as_ref()?.mean_gpu_util_pct),
    }
}

fn scenario_figures(run: &Run, name: &str, measured: &[usize], settings: &Settings) -> ScenarioFigures {
    let mut f = ScenarioFigures::default();
    // The engine's cells in the order their first request appears, grouped in one pass.
    type Key<'a> = (&'a str, &'a str, usize, usize, Option<LoadLevel>);
    let mut keys: Vec<(Key, Vec<usize>)> = Vec::new();
    let mut last: Option<usize> = None;
    for (row, r) in measured.iter().zip(run.requests.rows(measured)) {
        let k: Key = (r.scenario, r.workload, r.batch_size, r.prompt_tokens, r.load);
        // Requests of a cell are written together, so the previous cell is almost always the one.
        let i = match last.filter(|&i| keys[i].0 == k).or_else(|| keys.iter().position(|(x, _)| *x == k)) {
            Some(i) => i,
            None => {
                keys.push((k, Vec::new()));
                keys.len() - 1
            }
        };
        keys[i].1.push(*row);
        last = Some(i);
    }
    let own: Vec<&CellRecord> = run.cells.iter().filter(|c| c.engine == name).collect();
    let cell_of = |workload: &str, batch: usize, prompt: usize, level: Option<LoadLevel>| {
        own.iter().copied().find(|c| c.workload == workload && c.batch_size == batch && c.prompt_tokens == prompt && c.load == level)
    };
    let est = |xs: Vec<f64>| Estimate::from(describe(&xs, settings, settings.bootstrap_seed));
    for ((scenario, workload, batch, prompt, level), rows) in keys {
        let cell = cell_of(workload, batch, prompt, level);
        match (scenario, level) {
            ("throughput", _) => f.throughput.push({
                let reqs: Vec<Request> = run.requests.rows(&rows).collect();
                ThroughputPoint {
                    workload: workload.to_string(),
                    batch_size: batch,
                    prompt_tokens: prompt,
                    output_tok_per_s: est(reqs.iter().map(|r| r.generated_tokens as f64 / (r.total_ns as f64 * 1e-9)).collect()),
                    decode_tok_per_s: est(reqs.iter().filter_map(decode_tok_s).collect()),
                    requests_per_s: est(reqs.iter().map(|r| r.batch_size as f64 / (r.total_ns as f64 * 1e-9)).collect()),
                    latency_ms: est(reqs.iter().map(|r| r.total_ns as f64 / 1e6).collect()),
                    energy_per_token_mj: cell.and_then(|c| Some(c.gpu.as_ref()?.energy_mj? as f64 / c.generated_tokens.max(1) as f64)),
                    mean_gpu_util_pct: cell.and_then(|c| c.gpu.as_ref()?.mean_gpu_util_pct),
                }
            }),
            ("concurrent", Some(level)) => {
                let failed = run
                    .failures
                    .iter()
                    .filter(|x| x.engine == name && x.stage == workload && x.request.is_some() && x.prompt_tokens == Some(prompt))
                    .filter(|x| x.request.as_deref().is_some_and(|id| id.contains(&level.label())))
                    .count();
                f.load.push(load_point(workload, level, prompt, run.requests.rows(&rows), failed, run.config.slo(workload), cell));
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

/// The requests behind an engine's headline figures: its latency scenario, or everything it
/// measured when the run has no latency scenario.
pub fn headline_requests<'a>(run: &'a Run, engine: &str) -> Vec<Request<'a>> {
    let run_has_latency = has_latency(run);
    run.requests.iter().filter(|r| r.engine == engine && !r.warmup && is_headline(r, run_has_latency)).collect()
}

/// Whether a measured request counts for the headline figures (the one rule for both above).
fn is_headline(r: &Request, run_has_latency: bool) -> bool {
    !run_has_latency || r.scenario == "latency"
}

fn has_latency(run: &Run) -> bool {
    run.requests.iter().any(|r| r.scenario == "latency" && !r.warmup)
}

/// The headline requests among an engine's measured rows (see [`headline_requests`]).
fn headline<'a>(run: &'a Run, measured: &'a [usize], run_has_latency: bool) -> Vec<Request<'a>> {
    run.requests.rows(measured).filter(|r| is_headline(r, run_has_latency)).collect()
}

/// The rows of every measured (not warm-up) request of the run, per engine, in one pass.
fn measured_by_engine(run: &Run) -> std::collections::HashMap<&str, Vec<usize>> {
    let mut by: std::collections::HashMap<&str, Vec<usize>> = std::collections::HashMap::new();
    // Requests of one engine come together: a run of rows is filed when the engine changes.
    let mut current: Option<(&str, Vec<usize>)> = None;
    for (i, r) in run.requests.iter().enumerate().filter(|(_, r)| !r.warmup) {
        match &mut current {
            Some((engine, rows)) if *engine == r.engine => rows.push(i),
            _ => {
                if let Some((engine, rows)) = current.replace((r.engine, vec![i])) {
                    by.entry(engine).or_default().extend(rows);
                }
            }
        }
    }
    if let Some((engine, rows)) = current {
        by.entry(engine).or_default().extend(rows);
    }
    by
}

/// The engine's headline decode rate over the reference's, on the cells both measured (same
/// workload, batch size and prompt length): none when they share no cell, as when a CPU engine
/// runs its own shorter workload.
fn speedup(head: &[Request], reference: &[Request], settings: &Settings) -> Option<Ratio> {
    fn cell<'a>(r: &Request<'a>) -> (&'a str, usize, usize) {
        (r.workload, r.batch_size, r.prompt_tokens)
    }
    let (mine, theirs): (std::collections::HashSet<_>, std::collections::HashSet<_>) =
        (head.iter().map(|r| cell(r)).collect(), reference.iter().map(|r| cell(r)).collect());
    let tok = |rs: &[Request], other: &std::collections::HashSet<_>| -> Vec<f64> {
        rs.iter().filter(|r| other.contains(&cell(r))).filter_map(decode_tok_s).collect()
    };
    let (a, b) = (tok(head, &theirs), tok(reference, &mine));
    if a.is_empty() || b.is_empty() {
        return None;
    }
    match crate::compare::ratio_interval(&a, &b, settings, settings.bootstrap_seed).0 {
        Some((m, ci)) => Some(Ratio { median: m, ci95: Some([ci.0, ci.1]) }),
        None => Some(Ratio { median: crate::stats::median(&a) / crate::stats::median(&b), ci95: None }),
    }
}

/// Builds the summary of one run from its raw data and the per-cell tables.
pub fn assemble(run: &Run, cell_metrics: &[CellMetric], comparisons: &[Comparison], cells: &[(CellKey, Vec<Vec<f64>>)]) -> Summary {
    let settings = &run.config.analysis;
    let by_engine = measured_by_engine(run);
    let run_has_latency = has_latency(run);
    let none = Vec::new();
    let head_of = |engine: &str| headline(run, by_engine.get(engine).unwrap_or(&none), run_has_latency);
    let (head_baseline, head_compiled) = (head_of(BASELINE), head_of(COMPILED_REFERENCE));
    // Engines are independent: summarised in parallel, kept in the run's order.
    use rayon::prelude::*;
    let engines: Vec<EngineSummary> = run
        .engine_names()
        .into_par_iter()
        .map(|name| {
            let fails: Vec<&FailureRecord> = run.failures.iter().filter(|f| f.engine == name && f.kind != "skipped").collect();
            let ready = run.engines.iter().find(|r| r.engine == name);
            let gates: Vec<_> = run.correctness.iter().filter(|g| g.engine == name).collect();
            let everything: &[usize] = by_engine.get(name.as_str()).unwrap_or(&none);
            let status = match (everything.len(), fails.is_empty()) {
                (0, _) => "failed",
                (_, true) => "ok",
                (_, false) => "partial",
            };
            let head = head_of(&name);
            let est = |xs: Vec<f64>| Estimate::from(describe(&xs, settings, settings.bootstrap_seed));
            let ms = |ns: u64| ns as f64 / 1e6;
            let scenarios = scenario_figures(run, &name, everything, settings);
            let mut e = EngineSummary {
                name: name.clone(),
                status: status.into(),
                failure: fails.first().map(|f| format!("{} ({}): {}", f.stage, f.kind, f.message)),
                failed_cells: fails.iter().filter(|f| f.batch_size.is_some()).count(),
                version: ready.map(|r| r.ready.engine.version.clone()),
                device: ready.map(|r| r.ready.engine.device.clone()),
                dtype: ready.map(|r| r.ready.engine.dtype.to_string()),
                load_ms: ready.map(|r| ms(r.ready.load_ns)),
                correctness: CorrectnessSummary {
                    passed: (!gates.is_empty()).then(|| gates.iter().all(|g| g.passed)),
                    max_rel_logit_err: gates.iter().map(|g| g.max_rel_logit_err).reduce(f64::max),
                    greedy_match_steps: gates.iter().map(|g| g.greedy_match_steps).min(),
                    steps: gates.first().map(|g| g.steps),
                },
                decode_tok_per_s: est(head.iter().filter_map(decode_tok_s).collect()),
                ttft_ms: est(head.iter().map(|r| ms(r.ttft_ns)).collect()),
                latency_ms: est(head.iter().map(|r| ms(r.total_ns)).collect()),
                ttft_p99_ms: percentiles(head.iter().map(|r| client_ttft_ms(r)).collect()).map(|p| p.p99),
                harness_overhead_ms: est(head
                    .iter()
                    .map(|r| (r.runner_total_ns as f64 - (r.total_ns + r.queue_ns) as f64) / 1e6)
                    .collect()),
                speedup_vs_baseline: speedup(&head, &head_baseline, settings),
                speedup_vs_compiled: speedup(&head, &head_compiled, settings),
                scenarios,
                business: Business::default(),
            };
            e.business = business::figures(run, &e, cells);
            e
        })
        .collect();
    let tiers = business::tiers(run, &engines);
    let criteria = business::criteria(&engines, comparisons, settings);
    let host_states = crate::host_state::host_states(run);
    Summary {
        schema: 1,
        run: serde_json::json!({
            "id": run.id,
            "config": run.config.benchmark.name,
            "environment": run.environment,
        }),
        baseline: BASELINE.into(),
        compiled_reference: COMPILED_REFERENCE.into(),
        confidence_level: settings.confidence_level,
        outliers: OutlierNote {
            rule: "Tukey fences: beyond 1.5 IQR from the quartiles, per cell and metric",
            removed: settings.remove_outliers,
            flagged: cell_metrics.iter().map(|c| c.stats.outliers).sum(),
        },
        engines,
        comparisons: ComparisonCount {
            comparisons: comparisons.len(),
            significant: comparisons.iter().filter(|c| c.significant == Some(true)).count(),
            tests: settings.statistical_tests.clone(),
            correction: "Holm, per test over every comparison of the run",
        },
        tiers,
        criteria,
        cells: crate::cell_figures::cell_figures(run, host_states.as_ref(), &[COMPILED_REFERENCE, BASELINE], settings),
        host_states,
        probe_parts: crate::probe_parts::probe_parts(run),
        gpu_state: crate::gpu_state::gpu_states(run),
        bandwidth_probe: run.bandwidth_check(),
        outputs: Vec::new(),
    }
}

pub fn write(run_dir: &Path, summary: &Summary) -> anyhow::Result<()> {
    let path = run_dir.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(summary)? + "\n").map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

/// Reads a run and builds its summary (no files written).
pub fn build(run_dir: &Path) -> anyhow::Result<Summary> {
    Ok(crate::analyze(run_dir)?.summary)
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
            e.speedup_vs_baseline.as_ref().map_or("no cell shared with the baseline".into(), |r| format!("{:.1}x vs PyTorch", r.median))
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
    out += &cells_table(s);
    out
}

/// Per cell: decode tok/s overall and per host state (n in brackets), host sensitivity, and the
/// paired speedup over the compiled reference in the fast state.
pub fn cells_table(s: &Summary) -> String {
    use crate::cell_figures::Median;
    if s.cells.is_empty() {
        return String::new();
    }
    let fig = |m: &Option<Median>| match m {
        Some(m) => match m.ci95 {
            Some([a, b]) => format!("{:.1} ({:.1}–{:.1}) n={}", m.median, a, b, m.n),
            None => format!("{:.1} n={}", m.median, m.n),
        },
        None => "–".into(),
    };
    let mut out = String::new();
    match &s.host_states {
        Some(h) if h.two_states => {
            out += &format!(
                "\nHost: two states in this run (probe fast ≈ {:.0} µs, slow ≈ {:.0} µs, threshold {:.0} µs; {:.0} % of readings slow). Requests fast/slow/mixed: {}/{}/{}\n",
                h.fast_median_us,
                h.slow_median_us.unwrap_or(f64::NAN),
                h.threshold_us.unwrap_or(f64::NAN),
                100.0 * h.slow_share,
                h.requests_fast,
                h.requests_slow,
                h.requests_mixed
            )
        }
        Some(h) => out += &format!("\nHost: one state in this run (probe median {:.0} µs, p5–p95 {:.0}–{:.0} µs)\n", h.probe_p50_us, h.probe_p05_us, h.probe_p95_us),
        None => out += "\nHost: not probed in this run (no host state per request)\n",
    }
    out += "Per cell, decode tok/s: median (95 % CI) n — overall | fast host state | slow host state; sensitivity = slow ÷ fast\n";
    for c in &s.cells {
        let d = &c.decode_tok_per_s;
        let sens = c.host_sensitivity.map_or(String::new(), |x| format!("  sensitivity {x:.2}"));
        let vs = c
            .speedups
            .iter()
            .find(|p| p.reference == s.compiled_reference)
            .and_then(|p| p.fast.as_ref().or(p.all.as_ref()))
            .map_or(String::new(), |m| {
                format!("  ×compiled {:.2}{}", m.median, m.ci95.map_or(String::new(), |[a, b]| format!(" ({a:.2}–{b:.2})")))
            });
        out += &format!(
            "  {:<16} {:<10} b{:<3} p{:<5} {} | {} | {}{sens}{vs}{}\n",
            c.engine,
            c.workload,
            c.batch_size,
            c.prompt_tokens,
            fig(&d.all),
            fig(&d.fast),
            fig(&d.slow),
            if c.interleaved { "" } else { "  (sequential)" }
        );
    }
    if let Some(p) = &s.probe_parts {
        out += &crate::probe_parts::table(p);
    }
    for g in s.gpu_state.iter().filter(|g| !g.flags.is_empty()) {
        out += &format!("⚠ GPU slowed in {} {} {}: {}\n", g.engine, g.workload, g.cell, g.flags.join("; "));
    }
    if let Some(b) = s.bandwidth_probe.as_ref().filter(|b| !b.accepted) {
        out += &format!("⚠ copy-bandwidth probe {}\n", b.note);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = percentiles((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!((p.p50, p.p90, p.p99), (50.0, 90.0, 99.0));
        let p = percentiles(vec![7.0]).unwrap();
        assert_eq!((p.p50, p.p99), (7.0, 7.0));
        // The selections agree with sorting, shuffled input and ties included.
        let mut rng = crate::stats::SplitMix64(7);
        for n in 1..300 {
            let xs: Vec<f64> = (0..n).map(|_| (rng.next_u64() % 50) as f64).collect();
            let mut s = xs.clone();
            s.sort_by(f64::total_cmp);
            let at = |q: f64| s[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
            let p = percentiles(xs).unwrap();
            assert_eq!((p.p50, p.p90, p.p99), (at(0.5), at(0.9), at(0.99)), "n = {n}");
        }
    }
}

#[cfg(test)]
mod speedup_tests {
    use super::*;
    use crate::records::RequestRecord;
    use crate::requests::tests::request;

    #[test]
    fn speedups_only_compare_cells_both_engines_measured() {
        let cell = |engine: &str, workload: &str, prompt: usize, token_ms: u64| {
            let mut r = request(engine, 1, 5, &[token_ms; 4]);
            r.workload = workload.into();
            r.prompt_tokens = prompt;
            r
        };
        let base: Vec<RequestRecord> =
            (0..5).map(|_| cell("b", "latency", 128, 20)).chain((0..5).map(|_| cell("b", "latency", 1024, 40))).collect();
        let fast: Vec<RequestRecord> = (0..5).map(|_| cell("f", "latency", 128, 10)).collect();
        let cpu: Vec<RequestRecord> = (0..5).map(|_| cell("c", "latency-cpu", 32, 5)).collect();
        fn refs(v: &[RequestRecord]) -> Vec<Request<'_>> {
            v.iter().map(Request::from).collect()
        }
        let s = Settings::default();
        // Against the baseline's 128-token cell only (its 1024-token cell, twice as slow, is left out).
        assert_eq!(speedup(&refs(&fast), &refs(&base), &s).unwrap().median, 2.0);
        // No cell in common: no speedup rather than one across workloads.
        assert!(speedup(&refs(&cpu), &refs(&base), &s).is_none());
    }
}
