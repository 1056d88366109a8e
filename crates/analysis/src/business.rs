//! What a deployment decision needs: cost per million tokens, energy per token, how close each
//! engine gets to the memory-bandwidth limit (roofline), GPU utilisation under load, deployment
//! tiers chosen by stated rules, and the original design's success criteria.

use serde::Serialize;

use crate::cells::CellKey;
use crate::compare::Comparison;
use crate::config::{Settings, BASELINE, COMPILED_REFERENCE};
use crate::requests::METRICS;
use crate::run::Run;
use crate::stats::median;
use crate::summary::EngineSummary;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Business {
    /// At the headline (one request at a time) decode rate: `gpu_price_per_hour` over tokens per hour.
    pub cost_per_mtok_single_stream_usd: Option<f64>,
    /// The highest median output rate of the throughput sweep, and its batch size and cost.
    pub best_output_tok_per_s: Option<f64>,
    pub best_batch_size: Option<usize>,
    pub cost_per_mtok_best_batch_usd: Option<f64>,
    /// NVML energy over every measured cell, per generated token.
    pub energy_per_token_mj: Option<f64>,
    /// Bytes one decoded token moves at the headline cells (weights + KV cache read), the rate that
    /// implies, and its share of the measured copy bandwidth.
    pub bytes_per_token: Option<f64>,
    pub achieved_gb_per_s: Option<f64>,
    pub fraction_of_copy_bandwidth: Option<f64>,
    /// Highest mean GPU utilisation (NVML, %) over the concurrent scenario's load levels.
    pub gpu_util_under_load_pct: Option<f64>,
}

fn dtype_bytes(dtype: &str) -> u64 {
    match dtype {
        "f32" => 4,
        "f16" | "bf16" => 2,
        _ => 4,
    }
}

/// One roofline point: a decode phase at one batch size.
#[derive(Debug, Clone, Serialize)]
pub struct RooflinePoint {
    pub run: String,
    pub engine: String,
    pub workload: String,
    pub batch_size: u64,
    pub prompt_tokens: u64,
    /// FLOPs per byte moved by one decode step.
    pub intensity_flop_per_byte: f64,
    pub achieved_tflops: f64,
    pub achieved_gb_per_s: f64,
    pub fraction_of_copy_bandwidth: Option<f64>,
}

/// Bytes and FLOPs of one decode step of `batch` rows at mean context `context`.
fn decode_step(run: &Run, dtype: &str, batch: u64, context: f64) -> Option<(f64, f64)> {
    let shape = run.model_shape()?;
    let b = dtype_bytes(dtype);
    let bytes = (shape.parameters() * b) as f64 + batch as f64 * shape.kv_bytes_per_token(b) as f64 * context;
    let attention = 4.0 * (shape.num_hidden_layers * shape.num_attention_heads * shape.head_dim()) as f64 * context;
    let flops = batch as f64 * (shape.matmul_flops_per_token() as f64 + attention);
    Some((bytes, flops))
}

/// Roofline points of every decode cell (latency and throughput scenarios) with a decode rate.
pub fn roofline(run: &Run, cells: &[(CellKey, Vec<Vec<f64>>)]) -> Vec<RooflinePoint> {
    let decode = METRICS.iter().position(|(m, _)| *m == "decode_tok_s").expect("metric");
    let bw = run.copy_bandwidth_gb_s();
    cells
        .iter()
        .filter(|(k, v)| k.run == run.id && (k.scenario == "latency" || k.scenario == "throughput") && !v[decode].is_empty())
        .filter_map(|(k, v)| {
            let r =
                run.requests.iter().find(|r| r.engine == k.engine && r.workload == k.workload && r.batch_size as u64 == k.batch_size)?;
            let context = k.prompt_tokens as f64 + r.max_new_tokens as f64 / 2.0;
            let (bytes, flops) = decode_step(run, &r.dtype, k.batch_size, context)?;
            let steps_per_s = median(&v[decode]) / k.batch_size as f64;
            let gb_s = bytes * steps_per_s / 1e9;
            Some(RooflinePoint {
                run: k.run.clone(),
                engine: k.engine.clone(),
                workload: k.workload.clone(),
                batch_size: k.batch_size,
                prompt_tokens: k.prompt_tokens,
                intensity_flop_per_byte: flops / bytes,
                achieved_tflops: flops * steps_per_s / 1e12,
                achieved_gb_per_s: gb_s,
                fraction_of_copy_bandwidth: bw.map(|bw| gb_s / bw),
            })
        })
        .collect()
}

pub fn figures(run: &Run, e: &EngineSummary, cells: &[(CellKey, Vec<Vec<f64>>)]) -> Business {
    let price = run.config.analysis.gpu_price_per_hour;
    let on_cpu = e.on_cpu();
    let per_mtok = |tok_s: f64| price.filter(|_| tok_s > 0.0).map(|p| p / (tok_s * 3600.0) * 1e6);
    let head_tok_s = e.decode_tok_per_s.as_ref().map(|t| t.median);
    let best = e
        .scenarios
        .throughput
        .iter()
        .filter_map(|p| Some((p.output_tok_per_s.as_ref()?.median, p.batch_size)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    // Bandwidth at the headline cells: their decode steps' bytes, weighted by how many requests each had.
    let head: Vec<(CellKey, f64)> = cells
        .iter()
        .filter(|(k, _)| k.run == run.id && k.engine == e.name)
        .filter(|(k, _)| k.scenario == "latency" || !run.requests.iter().any(|r| r.scenario == "latency"))
        .filter_map(|(k, v)| {
            let r = run.requests.iter().find(|r| r.engine == k.engine && r.workload == k.workload)?;
            let context = k.prompt_tokens as f64 + r.max_new_tokens as f64 / 2.0;
            let (bytes, _) = decode_step(run, &r.dtype, k.batch_size, context)?;
            Some((k.clone(), bytes / k.batch_size as f64 * v[0].len() as f64))
        })
        .collect();
    let weight: f64 = head.iter().map(|(k, _)| cells.iter().find(|(c, _)| c == k).map_or(0.0, |(_, v)| v[0].len() as f64)).sum();
    let bytes_per_token = (weight > 0.0).then(|| head.iter().map(|(_, b)| b).sum::<f64>() / weight);
    let achieved = bytes_per_token.zip(head_tok_s).map(|(b, t)| b * t / 1e9);
    Business {
        cost_per_mtok_single_stream_usd: head_tok_s.and_then(per_mtok),
        best_output_tok_per_s: best.map(|b| b.0),
        best_batch_size: best.map(|b| b.1),
        cost_per_mtok_best_batch_usd: best.and_then(|b| per_mtok(b.0)),
        // The NVML figures are the GPU's: they say nothing about an engine running on the CPU.
        energy_per_token_mj: e.scenarios.energy_per_token_mj.filter(|_| !on_cpu),
        bytes_per_token,
        achieved_gb_per_s: achieved,
        fraction_of_copy_bandwidth: achieved.zip(run.copy_bandwidth_gb_s()).filter(|_| !on_cpu).map(|(a, bw)| a / bw),
        gpu_util_under_load_pct: e.scenarios.load.iter().filter_map(|p| p.mean_gpu_util_pct).reduce(f64::max).filter(|_| !on_cpu),
    }
}

/// A deployment tier and the engine the rule picks from this run.
#[derive(Debug, Clone, Serialize)]
pub struct Tier {
    pub tier: &'static str,
    pub rule: &'static str,
    /// Null when no engine had the figure the rule needs.
    pub engine: Option<String>,
    pub value: Option<f64>,
    pub unit: &'static str,
}

/// Engines a tier may pick: measured, and not flagged by the correctness gate.
fn eligible(e: &EngineSummary) -> bool {
    e.status != "failed" && e.correctness.passed != Some(false)
}

fn pick(engines: &[EngineSummary], f: impl Fn(&EngineSummary) -> Option<f64>, lowest: bool) -> (Option<String>, Option<f64>) {
    let best = engines.iter().filter(|e| eligible(e)).filter_map(|e| f(e).map(|v| (e, v))).max_by(|a, b| {
        if lowest {
            b.1.total_cmp(&a.1)
        } else {
            a.1.total_cmp(&b.1)
        }
    });
    (best.map(|b| b.0.name.clone()), best.map(|b| b.1))
}

pub fn tiers(run: &Run, engines: &[EngineSummary]) -> Vec<Tier> {
    let price = run.config.analysis.gpu_price_per_hour;
    let mut out = Vec::new();
    let mut add = |tier, rule, unit, (engine, value): (Option<String>, Option<f64>)| out.push(Tier { tier, rule, engine, value, unit });
    add(
        "interactive",
        "lowest p99 client-side time to first token, one request at a time (latency scenario)",
        "ms",
        pick(engines, |e| e.ttft_p99_ms, true),
    );
    add(
        "single-stream",
        "highest median decode throughput, one request at a time",
        "tok/s",
        pick(engines, |e| e.decode_tok_per_s.as_ref().map(|t| t.median), false),
    );
    match price {
        Some(p) => add(
            "batch",
            "most output tokens per dollar at the best batch size of the throughput sweep",
            "tokens/USD",
            pick(engines, |e| e.business.best_output_tok_per_s.map(|t| t * 3600.0 / p), false),
        ),
        None => add(
            "batch",
            "highest output tokens per second at the best batch size (no price in the config)",
            "tok/s",
            pick(engines, |e| e.business.best_output_tok_per_s, false),
        ),
    }
    add(
        "serving",
        "highest Poisson arrival rate whose requests met the workload's SLO",
        "requests/s",
        pick(engines, |e| e.scenarios.max_sustained_rate_per_s, false),
    );
    add(
        "efficiency",
        "lowest GPU energy per generated token over every cell",
        "mJ/token",
        pick(engines, |e| e.scenarios.energy_per_token_mj.filter(|_| e.on_gpu()), true),
    );
    add(
        "cpu-only",
        "highest median decode throughput among CPU engines",
        "tok/s",
        pick(engines, |e| e.decode_tok_per_s.as_ref().filter(|_| e.on_cpu()).map(|t| t.median), false),
    );
    out
}

/// One success criterion for one engine.
#[derive(Debug, Clone, Serialize)]
pub struct CriterionResult {
    pub criterion: &'static str,
    pub engine: String,
    pub target: f64,
    pub value: Option<f64>,
    /// Null when this run has no data for it.
    pub met: Option<bool>,
    pub note: String,
}

/// The original design's criteria for every engine other than the PyTorch references.
pub fn criteria(engines: &[EngineSummary], comparisons: &[Comparison], settings: &Settings) -> Vec<CriterionResult> {
    let c = &settings.criteria;
    let mut out = Vec::new();
    for e in engines.iter().filter(|e| e.name != BASELINE && e.name != COMPILED_REFERENCE) {
        let s = e.speedup_vs_baseline.as_ref();
        out.push(CriterionResult {
            criterion: "speedup_vs_baseline",
            engine: e.name.clone(),
            target: c.min_speedup,
            value: s.map(|s| s.median),
            met: s.map(|s| s.ci95.map_or(s.median, |ci| ci[0]) > c.min_speedup),
            note: "median decode tok/s ratio; met only when the lower end of its interval clears the target".into(),
        });
        let own: Vec<&Comparison> =
            comparisons.iter().filter(|x| x.engine == e.name && x.reference == BASELINE && x.metric == "decode_tok_s").collect();
        // A cell too small for Mann-Whitney ever to reach α (3 requests against 3) cannot count
        // against the engine: the criterion asks for significance where the data could show it.
        let uses_mw = settings.statistical_tests.iter().any(|t| t == "mann_whitney_u");
        let (testable, too_small): (Vec<&Comparison>, Vec<&Comparison>) =
            own.iter().partition(|x| !uses_mw || crate::stats::mann_whitney_min_p(x.n, x.n_reference) < c.alpha);
        let sig = testable.iter().filter(|x| x.significant == Some(true)).count();
        out.push(CriterionResult {
            criterion: "significant_vs_baseline",
            engine: e.name.clone(),
            target: c.alpha,
            value: testable.iter().filter_map(|x| x.mann_whitney_p_holm.or(x.welch_p_holm)).reduce(f64::max),
            met: (!testable.is_empty()).then(|| sig == testable.len()),
            note: format!(
                "{sig} of {} decode-throughput comparisons with the baseline significant after Holm (largest adjusted p shown); \
                 {} more left out, too few requests for Mann-Whitney to reach {} at all",
                testable.len(),
                too_small.len(),
                c.alpha
            ),
        });
        let util = e.business.gpu_util_under_load_pct;
        out.push(CriterionResult {
            criterion: "gpu_util_under_load_pct",
            engine: e.name.clone(),
            target: c.min_gpu_util_pct,
            value: util,
            met: util.map(|u| u >= c.min_gpu_util_pct),
            note: "highest mean NVML utilisation over the concurrent scenario's load levels".into(),
        });
    }
    out
}
