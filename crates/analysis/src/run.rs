//! One run directory, read whole: its config, environment and every raw-data stream.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use run_format::config::RunConfig;
use run_format::model::ModelShape;
use run_format::records::{AttemptRecord, CellRecord, CorrectnessRecord, EngineRecord, FailureRecord, HostSample, RequestRecord, Sample};
use run_format::{read_requests, read_stream, Request, Requests};

#[derive(Debug, Clone)]
pub struct Run {
    pub dir: PathBuf,
    /// The directory's name: what tables and charts call the run.
    pub id: String,
    pub config: RunConfig,
    pub environment: Value,
    pub requests: Requests,
    pub cells: Vec<CellRecord>,
    pub failures: Vec<FailureRecord>,
    pub correctness: Vec<CorrectnessRecord>,
    pub engines: Vec<EngineRecord>,
    pub monitor: Vec<Sample>,
    /// The host probe's continuous samples (`raw_data/host.jsonl`), when the run recorded them.
    pub host: Vec<HostSample>,
    /// Launches of the run (`raw_data/attempts.jsonl`): one, plus one per `--resume`.
    pub attempts: Vec<AttemptRecord>,
    /// The copy-bandwidth probe (`raw_data/bandwidth_probe.json`), when the run had a GPU.
    pub bandwidth_probe: Option<Value>,
}

/// A cell that a launch began and did not finish (interrupted, or the machine went away) is
/// measured again from its start by the next launch; its requests from the unfinished launch stay
/// in the raw data but count nowhere. A request of a launch (`attempt`) counts when that launch
/// wrote the cell's record. Requests without an attempt (runs before launches were numbered) all
/// count, as they always did.
fn without_abandoned_cells(requests: Requests, cells: &[CellRecord]) -> Requests {
    type Key = (String, String, usize, usize, String, u32);
    fn key(engine: &str, workload: &str, batch: usize, prompt: usize, load: Option<run_format::records::LoadLevel>, attempt: u32) -> Key {
        (engine.into(), workload.into(), batch, prompt, load.map(|l| l.label()).unwrap_or_default(), attempt)
    }
    let finished: std::collections::HashSet<Key> =
        cells.iter().filter_map(|c| Some(key(&c.engine, &c.workload, c.batch_size, c.prompt_tokens, c.load, c.attempt?))).collect();
    let counts = |r: &Request| match r.attempt {
        None => true,
        Some(a) => finished.contains(&key(r.engine, r.workload, r.batch_size, r.prompt_tokens, r.load, a)),
    };
    if requests.iter().all(|r| counts(&r)) {
        return requests;
    }
    requests.iter().filter(|r| counts(r)).map(|r| r.to_record()).collect::<Vec<RequestRecord>>().into()
}

impl Run {
    pub fn load(dir: &Path) -> anyhow::Result<Run> {
        anyhow::ensure!(dir.is_dir(), "{}: not a run directory (no such folder)", dir.display());
        let raw = dir.join("raw_data");
        anyhow::ensure!(raw.is_dir(), "{}: not a run directory (no raw_data/ inside)", dir.display());
        let environment = match std::fs::read_to_string(dir.join("environment.json")) {
            Ok(t) => serde_json::from_str(&t).with_context(|| format!("{}", dir.join("environment.json").display()))?,
            Err(_) => Value::Null,
        };
        let bandwidth_probe = match std::fs::read_to_string(raw.join("bandwidth_probe.json")) {
            Ok(t) => Some(serde_json::from_str(&t).with_context(|| format!("{}", raw.join("bandwidth_probe.json").display()))?),
            Err(_) => None,
        };
        let cells: Vec<CellRecord> = read_stream(&raw, "cells")?;
        Ok(Run {
            id: dir.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default(),
            dir: dir.to_path_buf(),
            config: RunConfig::read(&dir.join("config.yaml"))?,
            environment,
            requests: without_abandoned_cells(read_requests(&raw)?, &cells),
            cells,
            failures: read_stream(&raw, "failures")?,
            correctness: read_stream(&raw, "correctness")?,
            engines: read_stream(&raw, "engines")?,
            monitor: read_stream(&raw, "monitor")?,
            host: read_stream(&raw, "host")?,
            attempts: read_stream(&raw, "attempts")?,
            bandwidth_probe,
        })
    }

    /// Engines in the config's order, then any other engine the raw data names.
    pub fn engine_names(&self) -> Vec<String> {
        let mut names = self.config.engines.clone();
        let mut last: Option<&str> = None;
        let seen = self.requests.engines().into_iter().chain(self.failures.iter().map(|f| f.engine.as_str()));
        for n in seen {
            // Records of one engine come together: skip the search while the name repeats.
            if last == Some(n) {
                continue;
            }
            last = Some(n);
            if !names.iter().any(|x| x == n) && n != "reference" {
                names.push(n.to_string());
            }
        }
        names
    }

    /// The measured copy bandwidth in GB/s (read + write counted), the roofline's memory roof.
    /// None when the probe failed or its reading is refused ([`crate::bandwidth::bandwidth_check`]).
    pub fn copy_bandwidth_gb_s(&self) -> Option<f64> {
        let check = self.bandwidth_check()?;
        check.accepted.then_some(check.measured_gb_s)
    }

    /// The bandwidth probe's reading against the GPU's datasheet.
    pub fn bandwidth_check(&self) -> Option<crate::bandwidth::BandwidthCheck> {
        let g = self.bandwidth_probe.as_ref()?.get("gb_per_s")?.as_f64()?;
        Some(crate::bandwidth::bandwidth_check(g, self.gpu_name().as_deref()))
    }

    /// The checkpoint's shape: from environment.json (runs since the analysis crate), else from the
    /// model folder the config names, when it is still there.
    pub fn model_shape(&self) -> Option<ModelShape> {
        if let Some(cfg) = self.environment.pointer("/checkpoint/config").filter(|v| !v.is_null()) {
            return serde_json::from_value(cfg.clone()).ok();
        }
        let path = self.environment.pointer("/checkpoint/path").and_then(Value::as_str)?;
        ModelShape::read(Path::new(path)).ok()
    }

    pub fn gpu_name(&self) -> Option<String> {
        self.environment.pointer("/gpus/0/name").and_then(Value::as_str).map(String::from)
    }
}
