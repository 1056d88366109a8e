//! Messages on the wire. Durations are integer nanoseconds (`*_ns`), sizes bytes (`*_bytes`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Bumped on any incompatible change; `load` and `ready` both carry it and must agree.
pub const PROTOCOL_VERSION: u32 = 1;

/// Runner → engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    Load(LoadRequest),
    Generate(GenerateRequest),
    Logits(LogitsRequest),
    Shutdown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadRequest {
    pub protocol: u32,
    /// A Hugging Face-layout checkpoint directory (config.json, model.safetensors, ...).
    pub model_path: String,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Compute dtype. Weights are converted from whatever the checkpoint holds.
    pub dtype: Dtype,
    /// Engine-specific settings (for example `threads`); unknown keys are ignored by engines.
    #[serde(default)]
    pub options: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    Bf16,
    F16,
}

impl Dtype {
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::Bf16 => "bf16",
            Dtype::F16 => "f16",
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Greedy generation of exactly `max_new_tokens` tokens (end-of-sequence tokens are ignored) for
/// `batch_size` copies of `prompt`, decoded together as one static batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub id: String,
    pub prompt: Vec<u32>,
    pub max_new_tokens: usize,
    #[serde(default = "one")]
    pub batch_size: usize,
    /// Emit a `token` event after every step.
    #[serde(default)]
    pub stream: bool,
}

fn one() -> usize {
    1
}

/// The correctness probe: logits of the last prompt position, then `steps` greedy tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogitsRequest {
    pub id: String,
    pub prompt: Vec<u32>,
    pub steps: usize,
}

/// Engine → runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Ready(Ready),
    Token(TokenEvent),
    Done(Done),
    Logits(LogitsResult),
    Error(ErrorEvent),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    pub protocol: u32,
    pub engine: EngineInfo,
    /// From receiving `load` to being able to serve (weights read, kernels compiled, caches built).
    pub load_ns: u64,
    /// Memory the engine holds after loading (resident set on CPU, device memory on GPU), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// Registry name, for example `lm_rs` or `candle_cuda`.
    pub name: String,
    /// Version of the engine program and of the library it wraps, for example `lm-rs-bench 0.1.0`.
    pub version: String,
    /// What computes: `cpu-simd`, `cuda`, `torch-eager`, ...
    pub backend: String,
    pub device: String,
    pub dtype: Dtype,
    /// The settings in force (threads, attention kind, cache kind, ...), reported into the run.
    #[serde(default)]
    pub settings: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenEvent {
    pub id: String,
    /// 0 for the token produced by the prefill.
    pub step: usize,
    /// One token per sequence of the batch.
    pub tokens: Vec<u32>,
    /// Since the engine started working on the request.
    pub t_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub id: String,
    /// `batch_size` rows of `max_new_tokens` generated tokens.
    pub tokens: Vec<Vec<u32>>,
    pub prompt_tokens: usize,
    pub batch_size: usize,
    /// Waiting in the engine's queue before work started (requests are served in arrival order).
    pub queue_ns: u64,
    /// Work start to the first generated token (prefill included), device-synchronised.
    pub ttft_ns: u64,
    /// Interval before each later token: `token_ns[i]` separates token `i` from token `i + 1`.
    pub token_ns: Vec<u64>,
    /// Work start to the last token.
    pub total_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogitsResult {
    pub id: String,
    /// Logits of the last prompt position, float32, full vocabulary.
    pub logits: Vec<f32>,
    /// `steps` greedy tokens, the first chosen from `logits`.
    pub tokens: Vec<u32>,
    /// Per greedy step, the largest logit minus the second largest. The reference engine reports
    /// it, so that the gate can tell a near-tie (where half precision may pick either token) from
    /// a wrong model; other engines leave it empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top2_gaps: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// The request that failed, or none for load and protocol errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    OutOfMemory,
    Unsupported,
    BadRequest,
    Internal,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::OutOfMemory => "out of memory",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::BadRequest => "bad request",
            ErrorKind::Internal => "internal error",
        })
    }
}

impl Command {
    /// One protocol line, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("commands always serialise")
    }
}

impl Event {
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("events always serialise")
    }

    pub fn from_line(line: &str) -> Result<Event, serde_json::Error> {
        serde_json::from_str(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_use_the_documented_wire_names() {
        let line = Command::Generate(GenerateRequest {
            id: "r1".into(),
            prompt: vec![128000, 5, 6],
            max_new_tokens: 4,
            batch_size: 2,
            stream: true,
        })
        .to_line();
        assert_eq!(line, r#"{"cmd":"generate","id":"r1","prompt":[128000,5,6],"max_new_tokens":4,"batch_size":2,"stream":true}"#);
        assert_eq!(Command::Shutdown.to_line(), r#"{"cmd":"shutdown"}"#);
    }

    #[test]
    fn optional_fields_take_their_documented_defaults() {
        let cmd: Command = serde_json::from_str(r#"{"cmd":"generate","id":"a","prompt":[1],"max_new_tokens":2}"#).unwrap();
        match cmd {
            Command::Generate(g) => {
                assert_eq!(g.batch_size, 1);
                assert!(!g.stream);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cmd: Command = serde_json::from_str(r#"{"cmd":"load","protocol":1,"model_path":"m","device":"cpu","dtype":"bf16"}"#).unwrap();
        assert!(matches!(cmd, Command::Load(LoadRequest { dtype: Dtype::Bf16, .. })));
    }

    #[test]
    fn events_round_trip_and_errors_name_their_kind() {
        let e = Event::Error(ErrorEvent { id: Some("r9".into()), kind: ErrorKind::OutOfMemory, message: "x".into() });
        let line = e.to_line();
        assert_eq!(line, r#"{"event":"error","id":"r9","kind":"out_of_memory","message":"x"}"#);
        assert_eq!(Event::from_line(&line).unwrap(), e);
        assert!(Event::from_line(r#"{"event":"bogus"}"#).is_err());
    }
}
