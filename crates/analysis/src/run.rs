//! One run directory, read whole: its config, environment and every raw-data stream.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use crate::config::RunConfig;
use crate::model::ModelShape;
use crate::records::{read_requests, read_stream, CellRecord, CorrectnessRecord, EngineRecord, FailureRecord, Requests, Sample};

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
    /// The copy-bandwidth probe (`raw_data/bandwidth_probe.json`), when the run had a GPU.
    pub bandwidth_probe: Option<Value>,
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
        Ok(Run {
            id: dir.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default(),
            dir: dir.to_path_buf(),
            config: RunConfig::read(&dir.join("config.yaml"))?,
            environment,
            requests: read_requests(&raw)?,
            cells: read_stream(&raw, "cells")?,
            failures: read_stream(&raw, "failures")?,
            correctness: read_stream(&raw, "correctness")?,
            engines: read_stream(&raw, "engines")?,
            monitor: read_stream(&raw, "monitor")?,
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
    pub fn copy_bandwidth_gb_s(&self) -> Option<f64> {
        self.bandwidth_probe.as_ref()?.get("gb_per_s")?.as_f64()
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
