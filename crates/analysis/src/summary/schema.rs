//! The types of `summary.json`, apart from what fills them (`assemble`, `cost`, `tiers`,
//! `criteria`). Fields are documented in `crates/analysis/README.md`; ARCHITECTURE.md's contract is
//! a subset.

use serde::Serialize;

pub use crate::stats::Percentiles;
use run_format::records::LoadLevel;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Estimate {
    pub median: f64,
    /// Bootstrap interval of the median at `confidence_level` (the summary's top level; 0.95 unless
    /// the config says otherwise); null below 5 values (three requests give no interval worth
    /// printing: n says how many there are).
    pub ci95: Option<[f64; 2]>,
    pub n: usize,
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
