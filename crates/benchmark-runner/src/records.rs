//! The raw-data side of the run directory: JSON Lines files, one record per measurement, appended
//! and flushed as it is measured, never rewritten. Everything else in a run is derived from these.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const SCHEMA: u32 = 1;

/// One `generate` request as both sides timed it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestRecord {
    pub schema: u32,
    pub engine: String,
    pub workload: String,
    pub scenario: String,
    pub device: String,
    pub dtype: String,
    pub batch_size: usize,
    pub prompt_tokens: usize,
    pub max_new_tokens: usize,
    /// Warm-up requests are kept, flagged, and left out of every statistic.
    pub warmup: bool,
    pub iteration: usize,
    pub generated_tokens: usize,
    pub queue_ns: u64,
    pub ttft_ns: u64,
    pub token_ns: Vec<u64>,
    pub total_ns: u64,
    pub runner_ttft_ns: Option<u64>,
    pub runner_total_ns: u64,
    /// Concurrent scenario: `closed` (users) or `open` (Poisson arrivals), and the level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadLevel>,
    /// Concurrent scenario: when the request was sent, from the start of its load level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_offset_ns: Option<u64>,
    pub unix_ms: u128,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum LoadLevel {
    Closed { users: usize },
    Open { rate_per_s: f64 },
}

impl LoadLevel {
    pub fn label(&self) -> String {
        match self {
            LoadLevel::Closed { users } => format!("closed-{users}u"),
            LoadLevel::Open { rate_per_s } => format!("open-{rate_per_s}rps"),
        }
    }
}

/// One cell (a batch size × prompt length, or a load level) as a whole: how long it took, what it
/// held in memory, what the GPU drew. Written when the cell ends, whatever its outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellRecord {
    pub schema: u32,
    pub engine: String,
    pub workload: String,
    pub scenario: String,
    pub device: String,
    pub batch_size: usize,
    pub prompt_tokens: usize,
    pub max_new_tokens: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadLevel>,
    /// `ok`, `failed` or `skipped`.
    pub status: String,
    pub completed_requests: usize,
    /// Tokens generated in the cell, warm-up included (the energy figures cover the same span).
    pub generated_tokens: usize,
    pub wall_ns: u64,
    /// Engine process memory after the cell (CPU engines; from /proc).
    pub rss_bytes: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    /// What the NVML sampler saw during the cell; null without a GPU.
    pub gpu: Option<crate::monitor::CellStats>,
    pub thermal_pause_ms: u64,
    pub started_unix_ms: u128,
}

/// A cell (or a whole engine) that produced no measurement, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailureRecord {
    pub schema: u32,
    pub engine: String,
    /// `load`, `correctness`, or the workload name.
    pub stage: String,
    /// The request, when one request of a cell failed and the cell went on (concurrent scenario).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    pub batch_size: Option<usize>,
    pub prompt_tokens: Option<usize>,
    pub kind: String,
    pub message: String,
    pub unix_ms: u128,
}

/// One correctness probe of one engine against the reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CorrectnessRecord {
    pub schema: u32,
    pub engine: String,
    pub reference: String,
    pub prompt_tokens: usize,
    pub max_abs_logit_err: f64,
    pub max_rel_logit_err: f64,
    pub tolerance: f64,
    /// Leading greedy tokens equal to the reference's.
    pub greedy_match_steps: usize,
    pub steps: usize,
    /// How many leading tokens must match: all for f32 engines, the first few for half precision.
    pub required_greedy_steps: usize,
    pub passed: bool,
}

/// An engine process that became ready: what it is and what loading cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineRecord {
    pub schema: u32,
    pub engine: String,
    pub workload: String,
    pub ready: shared_protocol::Ready,
    pub unix_ms: u128,
}

pub fn unix_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

/// Appends records to `raw_data/<stream>.jsonl`, flushing each one.
pub struct RawData {
    dir: PathBuf,
    files: HashMap<&'static str, File>,
}

impl RawData {
    pub fn create(dir: &Path) -> std::io::Result<RawData> {
        std::fs::create_dir_all(dir)?;
        Ok(RawData { dir: dir.to_path_buf(), files: HashMap::new() })
    }

    pub fn append<T: Serialize>(&mut self, stream: &'static str, record: &T) -> std::io::Result<()> {
        if !self.files.contains_key(stream) {
            let f = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("{stream}.jsonl")))?;
            self.files.insert(stream, f);
        }
        let f = self.files.get_mut(stream).expect("inserted above");
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.flush()
    }
}

/// Reads every record of a stream; a missing file is an empty stream.
pub fn read_stream<T: for<'de> Deserialize<'de>>(raw_dir: &Path, stream: &str) -> anyhow::Result<Vec<T>> {
    let path = raw_dir.join(format!("{stream}.jsonl"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1)))
        .collect()
}
