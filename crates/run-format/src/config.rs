//! The parts of a run's `config.yaml` the analysis reads: the `analysis:` section (whose types the
//! runner's config uses too, so there is one definition) and each workload's SLO. The runner
//! validates the whole file before a run; here a config is read leniently, because old run
//! directories must stay analysable.

use std::path::Path;

use serde::{Deserialize, Serialize};

pub const KNOWN_TESTS: [&str; 2] = ["mann_whitney_u", "welch_t_test"];

/// `analysis:` in a benchmark config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default = "default_confidence")]
    pub confidence_level: f64,
    /// Drop Tukey outliers (beyond 1.5 IQR) before computing statistics; they are counted either way.
    #[serde(default)]
    pub remove_outliers: bool,
    #[serde(default = "default_true")]
    pub generate_plots: bool,
    #[serde(default = "default_tests")]
    pub statistical_tests: Vec<String>,
    /// Resamples of the seeded bootstrap (median intervals, speedup intervals).
    #[serde(default = "default_resamples")]
    pub bootstrap_resamples: usize,
    #[serde(default = "default_bootstrap_seed")]
    pub bootstrap_seed: u64,
    /// What one hour of the measured machine costs (USD); cost per million tokens needs it.
    #[serde(default)]
    pub gpu_price_per_hour: Option<f64>,
    /// The GPU's dense bf16 peak in TFLOP/s (a datasheet figure, stated as such): the compute roof
    /// of the roofline. The memory roof is always the measured copy bandwidth.
    #[serde(default)]
    pub peak_tflops: Option<f64>,
    /// The relative change `benchmark-runner compare` counts as more than noise when NEW is this
    /// run (0.05 = 5 %); `--threshold` and `--noise` take precedence.
    #[serde(default)]
    pub compare_noise_threshold: Option<f64>,
    /// The original design's success criteria, evaluated in `summary.json` → `criteria`.
    #[serde(default)]
    pub criteria: Criteria,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criteria {
    /// Decode speedup over the eager baseline a Rust engine must reach.
    #[serde(default = "default_speedup")]
    pub min_speedup: f64,
    /// Mean GPU utilisation (NVML, %) under sustained load.
    #[serde(default = "default_util")]
    pub min_gpu_util_pct: f64,
    /// Significance level after Holm's correction.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Largest acceptable relative spread of an engine's median across repeated runs.
    #[serde(default = "default_variance")]
    pub max_run_to_run_spread: f64,
}

fn default_confidence() -> f64 {
    0.95
}
fn default_true() -> bool {
    true
}
fn default_tests() -> Vec<String> {
    KNOWN_TESTS.iter().map(|s| s.to_string()).collect()
}
fn default_resamples() -> usize {
    2000
}
fn default_bootstrap_seed() -> u64 {
    20241
}
fn default_speedup() -> f64 {
    3.0
}
fn default_util() -> f64 {
    70.0
}
fn default_alpha() -> f64 {
    0.05
}
fn default_variance() -> f64 {
    0.10
}

impl Default for Settings {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults parse")
    }
}
impl Default for Criteria {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults parse")
    }
}

/// Service-level limits a request must meet to count towards goodput.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Time to first token as the client sees it (queueing included).
    pub ttft_ms: f64,
    /// Mean time per output token after the first.
    pub tpot_ms: f64,
    /// Share of requests that must meet both for a load level to count as sustained.
    #[serde(default = "default_slo_fraction")]
    pub min_fraction: f64,
}

fn default_slo_fraction() -> f64 {
    0.9
}

/// What the analysis reads of a run's config.yaml.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunConfig {
    #[serde(default)]
    pub benchmark: BenchmarkView,
    #[serde(default)]
    pub engines: Vec<String>,
    #[serde(default)]
    pub workloads: Vec<WorkloadView>,
    #[serde(default)]
    pub analysis: Settings,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct BenchmarkView {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub model_path: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkloadView {
    pub name: String,
    #[serde(default)]
    pub slo: Option<Slo>,
}

impl RunConfig {
    /// Reads `config.yaml`; an `analysis:` section that does not parse is an error naming the file
    /// and YAML path, a missing file the defaults.
    pub fn read(path: &Path) -> anyhow::Result<RunConfig> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RunConfig::default()),
            Err(e) => anyhow::bail!("{}: {e}", path.display()),
        };
        let de = serde_yaml::Deserializer::from_str(&text);
        let cfg: RunConfig =
            serde_path_to_error::deserialize(de).map_err(|e| anyhow::anyhow!("{}: {}: {}", path.display(), e.path(), e.inner()))?;
        let a = &cfg.analysis;
        if !(a.confidence_level > 0.0 && a.confidence_level < 1.0) {
            anyhow::bail!("{}: analysis.confidence_level: must lie strictly between 0 and 1, not {}", path.display(), a.confidence_level);
        }
        Ok(cfg)
    }

    pub fn slo(&self, workload: &str) -> Option<Slo> {
        self.workloads.iter().find(|w| w.name == workload).and_then(|w| w.slo)
    }
}
