//! The benchmark configuration: the original design's YAML schema, plus a few keys it left implicit
//! (how many tokens to generate, warm-up, timeouts, per-engine options). Every error names the file
//! and the YAML path (`workloads[1].batch_sizes[2]`), and all of them surface before any work starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shared_protocol::Dtype;

pub use run_format::config::{Settings as Analysis, Slo, KNOWN_TESTS};

use crate::registry::Registry;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{file}: {path}: {message}")]
    Invalid { file: PathBuf, path: String, message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub benchmark: Benchmark,
    pub engines: Vec<String>,
    /// Settings passed to an engine in its `load` command (for example `{threads: 2}`).
    #[serde(default)]
    pub engine_options: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    pub workloads: Vec<Workload>,
    #[serde(default)]
    pub correctness: Correctness,
    #[serde(default)]
    pub analysis: Analysis,
    #[serde(default)]
    pub system: System,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benchmark {
    pub name: String,
    /// A Hugging Face-layout checkpoint directory (relative to the project root), or a model name
    /// such as `Llama-3.2-1B-Instruct`: `models/<name>` if it holds a checkpoint, else the
    /// synthetic checkpoint of that model's shapes (see [`crate::model_source`]). After
    /// [`Config::load`] this is the directory used.
    pub model_path: PathBuf,
    /// How `model_path` was resolved (set by [`Config::load`]).
    #[serde(skip)]
    pub source: Option<crate::model_source::ModelSource>,
    /// Where engines that can run on either side (PyTorch) run: `cpu` or `cuda`. Left out, it is
    /// `cuda` when any engine of the run is a CUDA engine (so the baseline is measured on the same
    /// side as the engines it is compared with), `cpu` when any is a CPU engine; a run of only
    /// such engines must say.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device: String,
    /// Compute dtype on GPU engines; CPU engines compute in f32.
    #[serde(default = "default_gpu_dtype")]
    pub gpu_dtype: Dtype,
    #[serde(default = "default_warmup")]
    pub warmup_iterations: usize,
    #[serde(default = "default_request_timeout")]
    pub request_timeout_s: f64,
    #[serde(default = "default_load_timeout")]
    pub load_timeout_s: f64,
    /// Seeds the prompt token ids.
    #[serde(default)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// One request at a time: time to first token, every inter-token interval, total.
    Latency,
    /// Static batches over `batch_sizes`; past an out-of-memory batch size, larger ones are skipped.
    Throughput,
    /// Many requests in flight: closed loop (`concurrency` users) and open loop (Poisson `arrival_rates`).
    Concurrent,
    /// Load time, peak memory per cell, and KV-cache growth over `sequence_lengths`.
    Memory,
}

impl Scenario {
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Latency => "latency",
            Scenario::Throughput => "throughput",
            Scenario::Concurrent => "concurrent",
            Scenario::Memory => "memory",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    #[serde(default = "default_scenario")]
    pub scenario: Scenario,
    #[serde(default = "default_batch_sizes")]
    pub batch_sizes: Vec<usize>,
    /// Prompt lengths in tokens (the beginning-of-text token included).
    pub sequence_lengths: Vec<usize>,
    /// Measured requests per cell, after the warm-up ones (concurrent: requests per load level).
    pub iterations: usize,
    #[serde(default = "default_new_tokens")]
    pub max_new_tokens: usize,
    /// Concurrent scenario, closed loop: numbers of users, each sending its next request when its last completes.
    #[serde(default)]
    pub concurrency: Vec<usize>,
    /// Concurrent scenario, open loop: Poisson arrival rates in requests per second (seeded).
    #[serde(default)]
    pub arrival_rates: Vec<f64>,
    /// Concurrent scenario: limits for goodput.
    #[serde(default)]
    pub slo: Option<Slo>,
    /// Run this workload only for these engines (default: every engine of the run). Lets a slow
    /// engine (the CPU one in a GPU run) sit out sweeps that would take it hours.
    #[serde(default)]
    pub engines: Option<Vec<String>>,
    /// Latency and throughput workloads of several engines: load them all at once and measure
    /// their requests in interleaved blocks (each engine once per block, in a seeded random
    /// order), so that every engine samples the same host states. Default: on wherever it
    /// applies; `false` measures one engine after another.
    #[serde(default)]
    pub interleave: Option<bool>,
    /// Keep measuring (whole blocks) until each engine's measured requests of a cell took at least
    /// this long, even past `iterations`.
    #[serde(default)]
    pub min_measured_s: Option<f64>,
}

impl Workload {
    pub fn applies_to(&self, engine: &str) -> bool {
        self.engines.as_ref().is_none_or(|e| e.iter().any(|n| n == engine))
    }

    /// Whether this workload's engines are measured interleaved (see [`Workload::interleave`]).
    pub fn interleaved(&self, run_engines: &[String]) -> bool {
        let scenario_fits = matches!(self.scenario, Scenario::Latency | Scenario::Throughput);
        let engines = run_engines.iter().filter(|e| self.applies_to(e)).count();
        scenario_fits && engines > 1 && self.interleave.unwrap_or(true)
    }
}

/// The gate run before timing: logits and greedy tokens against transformers in float32.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Correctness {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Lengths of the probe prompts.
    #[serde(default = "default_probe_lengths")]
    pub prompt_lengths: Vec<usize>,
    /// Greedy tokens compared per prompt.
    #[serde(default = "default_probe_steps")]
    pub steps: usize,
    /// Largest |logit − reference| over the largest |reference logit| allowed for f32 engines.
    #[serde(default = "default_tol_f32")]
    pub tolerance_f32: f64,
    /// The same for bf16/f16 engines, against the reference at the same dtype (8 bits of
    /// mantissa: two correct bf16 implementations differ by about a percent of the largest logit).
    #[serde(default = "default_tol_half")]
    pub tolerance_half: f64,
    /// Leading greedy tokens a bf16/f16 engine must share with the reference when the reference
    /// reports no top-2 gaps; with gaps, every token, up to a near-tie of the reference's (`gate.rs`).
    #[serde(default = "default_greedy_half")]
    pub greedy_steps_half: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct System {
    #[serde(default)]
    pub gpu_device: u32,
    /// °C; monitoring (a later issue) pauses between iterations above it.
    #[serde(default = "default_thermal")]
    pub thermal_limit: f64,
    #[serde(default = "default_memory_limit")]
    pub memory_limit_gb: f64,
    /// The CPUs every engine process and the host probe are pinned to (`2-15`); default: every CPU
    /// the runner may use. One runner per host for reference runs, or disjoint sets per runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
}

fn default_gpu_dtype() -> Dtype {
    Dtype::Bf16
}
fn default_warmup() -> usize {
    2
}
fn default_request_timeout() -> f64 {
    300.0
}
fn default_load_timeout() -> f64 {
    600.0
}
fn default_scenario() -> Scenario {
    Scenario::Latency
}
fn default_batch_sizes() -> Vec<usize> {
    vec![1]
}
fn default_new_tokens() -> usize {
    32
}
fn default_true() -> bool {
    true
}
fn default_probe_lengths() -> Vec<usize> {
    vec![7, 32]
}
fn default_probe_steps() -> usize {
    32
}
fn default_tol_f32() -> f64 {
    1e-4
}
fn default_tol_half() -> f64 {
    5e-2
}
fn default_greedy_half() -> usize {
    8
}
fn default_thermal() -> f64 {
    85.0
}
fn default_memory_limit() -> f64 {
    f64::INFINITY
}

impl Default for Correctness {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults parse")
    }
}
impl Default for System {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults parse")
    }
}

impl Config {
    /// Reads, parses and validates; `root` resolves `model_path` (see [`crate::model_source`]).
    pub fn load(file: &Path, root: &Path, registry: &Registry) -> Result<Config, ConfigError> {
        Self::load_with_model(file, root, registry, None)
    }

    /// [`Config::load`], with `model` (`--model`) in place of the config's `benchmark.model_path`.
    pub fn load_with_model(file: &Path, root: &Path, registry: &Registry, model: Option<&str>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read { file: file.into(), source })?;
        let mut cfg = Self::parse(&text, file)?;
        if let Some(model) = model {
            cfg.benchmark.model_path = model.into();
        }
        let requested = cfg.benchmark.model_path.to_string_lossy().to_string();
        let at = if model.is_some() { "--model" } else { "benchmark.model_path" };
        let source = crate::model_source::resolve(&requested, root)
            .map_err(|message| ConfigError::Invalid { file: file.into(), path: at.into(), message })?;
        cfg.benchmark.model_path = source.path.clone();
        cfg.benchmark.source = Some(source);
        cfg.validate(file, registry)?;
        cfg.settle_device(file, registry)?;
        Ok(cfg)
    }

    /// Fills in `benchmark.device` when the config leaves it out (refusing to guess when every
    /// engine runs on either side), and refuses a comparison of the PyTorch engines on the CPU with
    /// CUDA engines (it would compare a CPU baseline with GPUs).
    fn settle_device(&mut self, file: &Path, registry: &Registry) -> Result<(), ConfigError> {
        use crate::registry::DeviceClass;
        let class = |n: &String| registry.get(n).map(|s| s.device);
        let cuda: Vec<&String> = self.engines.iter().filter(|n| class(n) == Some(DeviceClass::Cuda)).collect();
        let either: Vec<&String> = self.engines.iter().filter(|n| class(n) == Some(DeviceClass::Either)).collect();
        if self.benchmark.device.is_empty() && !either.is_empty() && either.len() == self.engines.len() {
            // Nothing else in the run says which side they belong on.
            return Err(ConfigError::Invalid {
                file: file.into(),
                path: "benchmark.device".into(),
                message: format!(
                    "is left out, and every engine ({}) runs on either side; say `device: cuda` or `device: cpu`",
                    either.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
        if self.benchmark.device.is_empty() {
            self.benchmark.device = if cuda.is_empty() { "cpu" } else { "cuda" }.into();
        } else if self.benchmark.device == "cpu" && !cuda.is_empty() && !either.is_empty() {
            return Err(ConfigError::Invalid {
                file: file.into(),
                path: "benchmark.device".into(),
                message: format!(
                    "is `cpu`, so {} would run on the CPU against CUDA engines ({}); set `device: cuda` (or leave it out)",
                    either.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                    cuda.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
        Ok(())
    }

    /// The CPUs engines and the host probe are pinned to: `system.cpus`, or all the runner may use.
    pub fn engine_cpus(&self) -> Vec<usize> {
        match &self.system.cpus {
            Some(list) => crate::host::parse_cpu_list(list).expect("validated"),
            None => crate::host::allowed_cpus(),
        }
    }

    /// Keeps only `engines` (each must be in the config) and/or moves the run to GPU `gpu`, and
    /// returns the config as run, as YAML, for the run directory.
    pub fn restrict(&mut self, file: &Path, engines: Option<&[String]>, gpu: Option<u32>) -> Result<String, ConfigError> {
        if let Some(only) = engines {
            for name in only {
                if !self.engines.contains(name) {
                    return Err(ConfigError::Invalid {
                        file: file.into(),
                        path: "engines".into(),
                        message: format!("--engines: `{name}` is not in this config (it has: {})", self.engines.join(", ")),
                    });
                }
            }
            self.engines.retain(|e| only.contains(e));
        }
        if let Some(gpu) = gpu {
            self.system.gpu_device = gpu;
        }
        let mut as_run = self.clone();
        if let Some(source) = &self.benchmark.source {
            as_run.benchmark.model_path = source.requested.clone().into();
        }
        let yaml = serde_yaml::to_string(&as_run).expect("a parsed config serialises");
        Ok(format!("# {} as run (--engines / --gpu / --model applied)\n{yaml}", file.display()))
    }

    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            ConfigError::Invalid { file: file.into(), path: if path == "." { "(document)".into() } else { path }, message: inner }
        })
    }

    /// Checks what types cannot: ranges, names, files. Returns the first problem found.
    pub fn validate(&self, file: &Path, registry: &Registry) -> Result<(), ConfigError> {
        let bad = |path: String, message: String| Err(ConfigError::Invalid { file: file.into(), path, message });
        if self.engines.is_empty() {
            return bad("engines".into(), "no engines listed".into());
        }
        for (i, name) in self.engines.iter().enumerate() {
            if registry.get(name).is_none() {
                return bad(format!("engines[{i}]"), format!("unknown engine `{name}` (known: {})", registry.names().join(", ")));
            }
            if self.engines[..i].contains(name) {
                return bad(format!("engines[{i}]"), format!("`{name}` is listed twice"));
            }
        }
        for name in self.engine_options.keys() {
            if !self.engines.contains(name) {
                return bad(format!("engine_options.{name}"), format!("`{name}` is not in `engines`"));
            }
        }
        let b = &self.benchmark;
        if !b.device.is_empty() && b.device != "cpu" && b.device != "cuda" {
            return bad("benchmark.device".into(), format!("must be `cpu` or `cuda`, not `{}`", b.device));
        }
        if !(b.request_timeout_s > 0.0) {
            return bad("benchmark.request_timeout_s".into(), format!("must be positive, not {}", b.request_timeout_s));
        }
        if !(b.load_timeout_s > 0.0) {
            return bad("benchmark.load_timeout_s".into(), format!("must be positive, not {}", b.load_timeout_s));
        }
        let on_demand = b.source.as_ref().is_some_and(|s| s.written_on_demand());
        if !on_demand && !b.model_path.join("config.json").is_file() {
            return bad(
                "benchmark.model_path".into(),
                format!(
                    "{} is not a checkpoint (no config.json). Name a model instead (e.g. `Llama-3.2-1B-Instruct`: models/<name>, \
                     else a synthetic checkpoint of its shapes), or write one with `benchmark-runner models synth --preset <preset> --out {}`",
                    b.model_path.display(),
                    b.model_path.display()
                ),
            );
        }
        if !on_demand {
            if let Err(e) = checkpoint::weight_files(&b.model_path) {
                return bad("benchmark.model_path".into(), e);
            }
        }
        if self.workloads.is_empty() {
            return bad("workloads".into(), "no workloads listed".into());
        }
        for (i, w) in self.workloads.iter().enumerate() {
            let at = |field: &str| format!("workloads[{i}].{field}");
            if self.workloads[..i].iter().any(|o| o.name == w.name) {
                return bad(at("name"), format!("workload name `{}` is used twice", w.name));
            }
            if w.batch_sizes.is_empty() {
                return bad(at("batch_sizes"), "empty".into());
            }
            for (j, &bs) in w.batch_sizes.iter().enumerate() {
                if bs == 0 || bs > 4096 {
                    return bad(at(&format!("batch_sizes[{j}]")), format!("must be between 1 and 4096, not {bs}"));
                }
            }
            if w.sequence_lengths.is_empty() {
                return bad(at("sequence_lengths"), "empty".into());
            }
            for (j, &len) in w.sequence_lengths.iter().enumerate() {
                if len == 0 || len > 131_072 {
                    return bad(at(&format!("sequence_lengths[{j}]")), format!("must be between 1 and 131072 tokens, not {len}"));
                }
            }
            if w.iterations == 0 {
                return bad(at("iterations"), "must be at least 1".into());
            }
            if let Some(m) = w.min_measured_s {
                if !(m >= 0.0 && m.is_finite()) {
                    return bad(at("min_measured_s"), format!("must be a duration in seconds, not {m}"));
                }
            }
            if w.interleave == Some(true) && !matches!(w.scenario, Scenario::Latency | Scenario::Throughput) {
                return bad(
                    at("interleave"),
                    format!("only latency and throughput workloads interleave (this workload is {})", w.scenario.as_str()),
                );
            }
            if w.max_new_tokens == 0 {
                return bad(at("max_new_tokens"), "must be at least 1".into());
            }
            for (j, e) in w.engines.iter().flatten().enumerate() {
                if !self.engines.contains(e) {
                    return bad(at(&format!("engines[{j}]")), format!("`{e}` is not in the run's `engines`"));
                }
            }
            let concurrent = w.scenario == Scenario::Concurrent;
            for (field, given) in
                [("concurrency", !w.concurrency.is_empty()), ("arrival_rates", !w.arrival_rates.is_empty()), ("slo", w.slo.is_some())]
            {
                if given && !concurrent {
                    return bad(at(field), format!("only the concurrent scenario uses it (this workload is {})", w.scenario.as_str()));
                }
            }
            if concurrent {
                if w.concurrency.is_empty() && w.arrival_rates.is_empty() {
                    return bad(
                        at("concurrency"),
                        "a concurrent workload needs `concurrency` (closed loop) or `arrival_rates` (open loop)".into(),
                    );
                }
                for (j, &c) in w.concurrency.iter().enumerate() {
                    if c == 0 || c > 1024 {
                        return bad(at(&format!("concurrency[{j}]")), format!("must be between 1 and 1024 users, not {c}"));
                    }
                }
                for (j, &r) in w.arrival_rates.iter().enumerate() {
                    if !(r > 0.0 && r.is_finite()) {
                        return bad(at(&format!("arrival_rates[{j}]")), format!("must be a positive rate in requests/s, not {r}"));
                    }
                }
                if let Some(slo) = w.slo {
                    if !(slo.ttft_ms > 0.0 && slo.tpot_ms > 0.0) {
                        return bad(at("slo"), "ttft_ms and tpot_ms must be positive".into());
                    }
                    if !(slo.min_fraction > 0.0 && slo.min_fraction <= 1.0) {
                        return bad(at("slo.min_fraction"), format!("must lie in (0, 1], not {}", slo.min_fraction));
                    }
                }
            }
        }
        let c = &self.correctness;
        for (j, &len) in c.prompt_lengths.iter().enumerate() {
            if len == 0 {
                return bad(format!("correctness.prompt_lengths[{j}]"), "must be at least 1".into());
            }
        }
        if c.enabled && (c.steps == 0 || c.prompt_lengths.is_empty()) {
            return bad("correctness".into(), "an enabled gate needs steps ≥ 1 and at least one prompt length".into());
        }
        let a = &self.analysis;
        if !(a.confidence_level > 0.0 && a.confidence_level < 1.0) {
            return bad("analysis.confidence_level".into(), format!("must lie strictly between 0 and 1, not {}", a.confidence_level));
        }
        if let Some(t) = a.compare_noise_threshold.filter(|t| !(t.is_finite() && *t >= 0.0 && *t < 1.0)) {
            return bad("analysis.compare_noise_threshold".into(), format!("must be a fraction in [0, 1), such as 0.05, not {t}"));
        }
        for (j, t) in a.statistical_tests.iter().enumerate() {
            if !KNOWN_TESTS.contains(&t.as_str()) {
                return bad(format!("analysis.statistical_tests[{j}]"), format!("unknown test `{t}` (known: {})", KNOWN_TESTS.join(", ")));
            }
        }
        let s = &self.system;
        if let Some(list) = &s.cpus {
            let cpus = crate::host::parse_cpu_list(list).map_err(|m| ConfigError::Invalid {
                file: file.into(),
                path: "system.cpus".into(),
                message: m,
            })?;
            let allowed = crate::host::allowed_cpus();
            if let Some(c) = cpus.iter().find(|c| !allowed.contains(c)) {
                return bad(
                    "system.cpus".into(),
                    format!("CPU {c} is not available here (this process may use {})", crate::host::format_cpu_list(&allowed)),
                );
            }
        }
        if !(s.memory_limit_gb > 0.0) {
            return bad("system.memory_limit_gb".into(), format!("must be positive, not {}", s.memory_limit_gb));
        }
        if !(s.thermal_limit > 0.0 && s.thermal_limit < 120.0) {
            return bad("system.thermal_limit".into(), format!("must be a temperature in °C below 120, not {}", s.thermal_limit));
        }
        Ok(())
    }

    /// Options sent in an engine's `load` command.
    pub fn options_for(&self, engine: &str) -> serde_json::Map<String, serde_json::Value> {
        self.engine_options.get(engine).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restricted_config_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        model_synth_stub(dir.path());
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, GOOD.replace("MODEL", &dir.path().display().to_string())).unwrap();
        let mut cfg = Config::load(&file, dir.path(), &Registry::builtin()).unwrap();
        let first = cfg.engines[0].clone();
        let text = cfg.restrict(&file, Some(&[first.clone()]), Some(3)).unwrap();
        let again = Config::parse(&text, &file).unwrap();
        assert_eq!((again.engines, again.system.gpu_device), (vec![first], 3));
        assert_eq!(again.workloads.len(), cfg.workloads.len());
        let e = cfg.restrict(&file, Some(&["nope".to_string()]), None).unwrap_err().to_string();
        assert!(e.contains("engines: --engines: `nope` is not in this config"), "{e}");
    }

    #[test]
    fn a_model_name_resolves_to_the_synthetic_checkpoint_of_its_shapes_and_is_kept_as_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, GOOD.replace("MODEL", "Llama-3.1-8B-Instruct")).unwrap();
        let mut cfg = Config::load(&file, dir.path(), &Registry::builtin()).unwrap();
        assert_eq!(cfg.benchmark.model_path, dir.path().join("models/llama-3.1-8b-synthetic"));
        assert!(cfg.benchmark.source.as_ref().unwrap().written_on_demand());
        // The config as run names the model as the config did, not this machine's directory.
        let text = cfg.restrict(&file, None, None).unwrap();
        assert_eq!(Config::parse(&text, &file).unwrap().benchmark.model_path, PathBuf::from("Llama-3.1-8B-Instruct"));
        // --model replaces it; a name nobody knows is refused under that name.
        let cfg = Config::load_with_model(&file, dir.path(), &Registry::builtin(), Some("tiny")).unwrap();
        assert_eq!(cfg.benchmark.model_path, dir.path().join("models/tiny"));
        let e = Config::load_with_model(&file, dir.path(), &Registry::builtin(), Some("Qwen2-7B")).unwrap_err().to_string();
        assert!(e.contains("--model: `Qwen2-7B` is a model name"), "{e}");
    }

    #[test]
    fn every_committed_config_is_valid_on_a_machine_with_no_checkpoint_yet() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let empty = tempfile::tempdir().unwrap();
        let mut seen = 0;
        for entry in std::fs::read_dir(repo.join("configs")).unwrap() {
            let file = entry.unwrap().path();
            match Config::load(&file, empty.path(), &Registry::builtin()) {
                Ok(cfg) => assert!(cfg.benchmark.source.unwrap().written_on_demand(), "{}", file.display()),
                // The CPUs a GPU config pins are the GPU machine's; only the machine it runs on can check them.
                Err(ConfigError::Invalid { path, .. }) if path == "system.cpus" => {}
                Err(e) => panic!("{e}"),
            }
            seen += 1;
        }
        assert!(seen >= 5, "only {seen} configs");
    }

    fn problem(yaml: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        model_synth_stub(dir.path());
        let file = dir.path().join("bad.yaml");
        std::fs::write(&file, yaml.replace("MODEL", &dir.path().display().to_string())).unwrap();
        Config::load(&file, dir.path(), &Registry::builtin()).unwrap_err().to_string()
    }

    /// Just enough of a checkpoint for validation, which looks at files, not weights.
    fn model_synth_stub(dir: &Path) {
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(dir.join("model.safetensors"), "").unwrap();
    }

    const GOOD: &str = "
benchmark: {name: t, model_path: MODEL}
engines: [lm_rs]
workloads:
  - {name: a, batch_sizes: [1], sequence_lengths: [10], iterations: 2}
";

    #[test]
    fn a_minimal_config_takes_the_documented_defaults() {
        let dir = tempfile::tempdir().unwrap();
        model_synth_stub(dir.path());
        let file = dir.path().join("ok.yaml");
        std::fs::write(&file, GOOD.replace("MODEL", &dir.path().display().to_string())).unwrap();
        let cfg = Config::load(&file, dir.path(), &Registry::builtin()).unwrap();
        assert_eq!(cfg.benchmark.warmup_iterations, 2);
        assert_eq!(cfg.workloads[0].max_new_tokens, 32);
        assert_eq!(cfg.workloads[0].scenario, Scenario::Latency);
        assert_eq!(cfg.analysis.confidence_level, 0.95);
        assert_eq!(cfg.correctness.tolerance_f32, 1e-4);
    }

    #[test]
    fn errors_name_the_file_and_the_yaml_path() {
        let e = problem(&GOOD.replace("batch_sizes: [1]", "batch_sizes: [1, 0]"));
        assert!(e.ends_with("bad.yaml: workloads[0].batch_sizes[1]: must be between 1 and 4096, not 0"), "{e}");
        let e = problem(&GOOD.replace("[lm_rs]", "[lm_rs, tensorrt]"));
        assert!(e.contains("engines[1]: unknown engine `tensorrt` (known: "), "{e}");
        let e = problem(&GOOD.replace("iterations: 2", "iterations: two"));
        assert!(e.contains("workloads[0].iterations: invalid type"), "{e}");
        let e = problem(&GOOD.replace("iterations: 2", "iterations: 2, batch_size: 4"));
        assert!(e.contains("workloads[0]: unknown field `batch_size`"), "{e}");
        let e = problem(&GOOD.replace("iterations: 2", "iterations: 2, concurrency: [4]"));
        assert!(e.contains("workloads[0].concurrency: only the concurrent scenario uses it (this workload is latency)"), "{e}");
        let e = problem(&GOOD.replace("iterations: 2", "iterations: 2, scenario: concurrent"));
        assert!(e.contains("workloads[0].concurrency: a concurrent workload needs"), "{e}");
        let e = problem(&GOOD.replace("iterations: 2", "iterations: 2, scenario: concurrent, arrival_rates: [2, -1]"));
        assert!(e.contains("workloads[0].arrival_rates[1]: must be a positive rate"), "{e}");
        let e = problem(&GOOD.replace("iterations: 2", "iterations: 2, engines: [candle_cuda]"));
        assert!(e.contains("workloads[0].engines[0]: `candle_cuda` is not in the run's `engines`"), "{e}");
        let e = problem(&GOOD.replace("iterations: 2", "iterations: 2, scenario: soak"));
        assert!(e.contains("workloads[0].scenario: unknown variant `soak`"), "{e}");
        let e = problem(&format!("{GOOD}analysis: {{confidence_level: 95}}\n"));
        assert!(e.contains("analysis.confidence_level: must lie strictly between 0 and 1"), "{e}");
        let e = problem(&format!("{GOOD}analysis: {{compare_noise_threshold: 5}}\n"));
        assert!(e.contains("analysis.compare_noise_threshold: must be a fraction in [0, 1)"), "{e}");
        let e = problem(&format!("{GOOD}analysis: {{statistical_tests: [t_test]}}\n"));
        assert!(e.contains("analysis.statistical_tests[0]: unknown test `t_test`"), "{e}");
        let e = problem("benchmark: [\n");
        assert!(e.contains("bad.yaml: "), "{e}");
    }

    #[test]
    fn the_device_follows_the_engines_and_a_cpu_baseline_against_gpus_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        model_synth_stub(dir.path());
        let file = dir.path().join("seed.yaml");
        // The seed's basic config: no device, the baseline beside CUDA engines.
        let seed =
            GOOD.replace("[lm_rs]", "[pytorch_baseline, candle_cuda, burn_cuda]").replace("MODEL", &dir.path().display().to_string());
        std::fs::write(&file, &seed).unwrap();
        assert_eq!(Config::load(&file, dir.path(), &Registry::builtin()).unwrap().benchmark.device, "cuda");
        std::fs::write(&file, GOOD.replace("MODEL", &dir.path().display().to_string())).unwrap();
        assert_eq!(Config::load(&file, dir.path(), &Registry::builtin()).unwrap().benchmark.device, "cpu");
        let e = problem(
            &GOOD.replace("[lm_rs]", "[pytorch_baseline, candle_cuda]").replace("model_path: MODEL", "model_path: MODEL, device: cpu"),
        );
        assert!(
            e.contains("benchmark.device: is `cpu`, so pytorch_baseline would run on the CPU against CUDA engines (candle_cuda)"),
            "{e}"
        );
        // Only engines that run on either side: nothing to follow, so the config must say.
        let e = problem(&GOOD.replace("[lm_rs]", "[pytorch_baseline, pytorch_compiled]"));
        assert!(e.contains("benchmark.device: is left out, and every engine (pytorch_baseline, pytorch_compiled) runs on either side"), "{e}");
        std::fs::write(&file, GOOD.replace("[lm_rs]", "[pytorch_baseline]").replace("model_path: MODEL", "model_path: MODEL, device: cuda").replace("MODEL", &dir.path().display().to_string())).unwrap();
        assert_eq!(Config::load(&file, dir.path(), &Registry::builtin()).unwrap().benchmark.device, "cuda");
        let e = problem(&format!("{GOOD}system: {{cpus: \"99999\"}}\n"));
        assert!(e.contains("system.cpus: CPU 99999 is not available here"), "{e}");
        let e = problem(&GOOD.replace("iterations: 2", "iterations: 2, scenario: memory, interleave: true"));
        assert!(e.contains("workloads[0].interleave: only latency and throughput workloads interleave"), "{e}");
    }

    #[test]
    fn a_missing_checkpoint_says_how_to_make_one() {
        let e = problem(&GOOD.replace("model_path: MODEL", "model_path: MODEL/nowhere"));
        assert!(e.contains("benchmark.model_path: ") && e.contains("models synth --preset <preset> --out"), "{e}");
    }
}
