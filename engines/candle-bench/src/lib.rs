//! candle-bench: Llama-3 on Hugging Face candle (`candle_transformers::models::llama`), behind the
//! shared protocol. One crate, two builds: the default build runs on the CPU in float32; with the
//! `cuda` feature the same code also runs on `cuda:N` (bf16, f16 or f32).
//!
//! The serve loop (parsing, queueing, the greedy loop, timings) is shared; this crate only computes:
//! [`Engine::prefill`] runs the whole batch of prompts as one `[B, P]` tensor with a fresh KV cache,
//! [`Engine::decode_step`] runs `[B, 1]` at the current position, and the greedy token is picked on
//! the device so that only token ids travel to the host.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::llama::{Cache, Config, Llama, LlamaConfig};
use shared_protocol::{Dtype, EngineError, EngineInfo, ErrorKind, LoadRequest, Model, Step};

/// The candle version this binary was built with (read from Cargo.lock by build.rs).
pub const CANDLE_VERSION: &str = env!("CANDLE_VERSION");

/// Why the engine runs without flash attention; reported in `ready.engine.settings`.
pub const FLASH_ATTN_WHY: &str = "candle's `flash-attn` feature (candle-flash-attn) clones CUTLASS from git \
during the build and cannot build offline, so attention is candle-transformers' eager path \
(q·kᵀ, mask, softmax, ·v, computed in f32)";

/// Whether this binary was built with candle's CUDA backend.
pub const CUDA_BUILD: bool = cfg!(feature = "cuda");

pub struct Engine {
    model: Llama,
    device: Device,
    device_name: String,
    dtype: Dtype,
    /// A cache with the rope tables (built once at load) and no keys/values: every request starts
    /// from a clone of it, which is a fresh cache (the tables are shared, not copied).
    template: Cache,
    /// The running request's cache; replaced by every prefill, which drops the previous KV.
    cache: Option<Cache>,
    batch: usize,
    /// Positions already in the cache (the next token goes at `pos`).
    pos: usize,
    max_positions: usize,
    vocab: usize,
    /// `Some` on CUDA: the tensors [`lowest_index_argmax`] needs (candle's CUDA argmax does not
    /// guarantee the lowest index among equal maxima; its CPU argmax does).
    tie_break: Option<TieBreak>,
    threads: Option<Threads>,
}

struct TieBreak {
    index: Tensor,
    none: Tensor,
}

struct Threads {
    count: usize,
    source: &'static str,
}

enum Target {
    Cpu,
    Cuda(usize),
}

fn parse_device(device: &str) -> Result<Target, EngineError> {
    if device == "cpu" {
        return Ok(Target::Cpu);
    }
    let ordinal = match device.strip_prefix("cuda") {
        Some("") => Some(0),
        Some(rest) => rest.strip_prefix(':').and_then(|n| n.parse::<usize>().ok()),
        None => None,
    };
    match ordinal {
        Some(n) => Ok(Target::Cuda(n)),
        None => Err(EngineError::bad_request(format!("device must be `cpu` or `cuda:N`, not `{device}`"))),
    }
}

/// A candle error without the backtrace candle attaches when RUST_BACKTRACE is set (the protocol
/// message stays one readable line; the full error goes to stderr, the engine's log).
fn without_backtrace(e: &candle_core::Error) -> String {
    use candle_core::Error as E;
    match e {
        E::WithBacktrace { inner, .. } => without_backtrace(inner),
        E::Context { inner, context } => format!("{context}: {}", without_backtrace(inner)),
        E::WithPath { inner, path } => format!("{}: {}", path.display(), without_backtrace(inner)),
        other => other.to_string(),
    }
}

/// Maps a candle error to the protocol's kinds: CUDA out-of-memory becomes `out_of_memory`.
fn candle_error(context: &str) -> impl Fn(candle_core::Error) -> EngineError + '_ {
    move |e| {
        eprintln!("candle-bench: {context}: {e}");
        let message = format!("{context}: {}", without_backtrace(&e));
        let lower = message.to_ascii_lowercase();
        if lower.contains("out_of_memory") || lower.contains("out of memory") {
            EngineError::new(ErrorKind::OutOfMemory, message)
        } else {
            EngineError::internal(message)
        }
    }
}

fn compute_dtype(target: &Target, dtype: Dtype) -> Result<DType, EngineError> {
    match (target, dtype) {
        (_, Dtype::F32) => Ok(DType::F32),
        (Target::Cpu, other) => Err(EngineError::unsupported(format!(
            "candle_cpu computes in f32 (candle's CPU matmul in {other} is slow and not what this engine measures), not {other}"
        ))),
        (Target::Cuda(_), Dtype::Bf16) => Ok(DType::BF16),
        (Target::Cuda(_), Dtype::F16) => Ok(DType::F16),
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<Device, EngineError> {
    Device::new_cuda(ordinal).map_err(|e| {
        eprintln!("candle-bench: cannot open cuda:{ordinal}: {e}");
        EngineError::unsupported(format!("cannot open cuda:{ordinal}: {}", without_backtrace(&e)))
    })
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize) -> Result<Device, EngineError> {
    Err(EngineError::unsupported(format!(
        "cuda:{ordinal} asked for, but this candle-bench binary was built without candle's CUDA backend; \
         build it with `cargo build --release --features cuda` (see engines/candle-bench/README.md)"
    )))
}

/// `options.threads`: candle's CPU kernels run on rayon's global pool (gemm gets
/// `candle_core::utils::get_num_threads()`, which reads `RAYON_NUM_THREADS`). Neither can change
/// once a pool exists, so the setting is applied once per process, before any candle work.
fn apply_threads(options: &serde_json::Map<String, serde_json::Value>) -> Result<Threads, EngineError> {
    let Some(v) = options.get("threads") else {
        return Ok(Threads { count: candle_core::utils::get_num_threads(), source: "candle default" });
    };
    let n = v
        .as_u64()
        .filter(|&n| n >= 1)
        .ok_or_else(|| EngineError::bad_request(format!("options.threads must be a positive integer, not {v}")))?
        as usize;
    // Edition 2021: set_var is safe. Nothing else in this process reads the environment concurrently
    // (the serve loop's reader thread only reads stdin).
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    let pool = rayon::current_num_threads();
    let candle = candle_core::utils::get_num_threads();
    if pool != n || candle != n {
        return Err(EngineError::unsupported(format!(
            "options.threads = {n}, but this process already runs {pool} rayon threads (candle uses {candle}); \
             candle's thread count can be set once per process"
        )));
    }
    Ok(Threads { count: n, source: "options.threads (via RAYON_NUM_THREADS)" })
}

fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, EngineError> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    let text = std::fs::read_to_string(&index).map_err(|e| {
        EngineError::bad_request(format!("no model.safetensors in {} (and no index: {e})", dir.display()))
    })?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| EngineError::bad_request(format!("{}: {e}", index.display())))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| EngineError::bad_request(format!("{}: no weight_map", index.display())))?;
    let mut files: Vec<PathBuf> = map.values().filter_map(|v| v.as_str()).map(|f| dir.join(f)).collect();
    files.sort();
    files.dedup();
    Ok(files)
}

fn read_config(dir: &Path) -> Result<Config, EngineError> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| EngineError::bad_request(format!("cannot read {}: {e}", path.display())))?;
    let raw: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| EngineError::bad_request(format!("{}: {e}", path.display())))?;
    // The project's reader refuses what no engine here can run (and names the key); candle's own
    // reads only the transformers 4 form, so it is handed that form of the same config.
    let normal = checkpoint::LlamaConfig::from_json(&raw).map_err(|e| EngineError::bad_request(format!("{}: {e}", path.display())))?;
    normal.require_derived_head_dim("candle-transformers' llama").map_err(|e| EngineError::unsupported(format!("{}: {e}", path.display())))?;
    let raw = checkpoint::in_transformers_4_form(&raw);
    let llama: LlamaConfig = serde_json::from_value(raw)
        .map_err(|e| EngineError::bad_request(format!("{}: not a Llama config candle reads: {e}", path.display())))?;
    Ok(llama.into_config(false))
}

/// The greedy token of each row of `logits` (`[B, V]`, f32) with ties going to the lowest index,
/// computed on the logits' device: max, equality mask, then the minimum index among the maxima.
/// `index` is `[1, V]` holding 0..V as f32 (exact up to 2^24), `none` is `[1, V]` filled with V.
/// A row whose maximum is NaN yields V (caught by the caller).
pub fn lowest_index_argmax(logits: &Tensor, index: &Tensor, none: &Tensor) -> candle_core::Result<Tensor> {
    let (b, v) = logits.dims2()?;
    let max = logits.max_keepdim(D::Minus1)?;
    let hit = logits.broadcast_eq(&max)?;
    let candidates = hit.where_cond(&index.broadcast_as((b, v))?, &none.broadcast_as((b, v))?)?;
    candidates.min(D::Minus1)?.to_dtype(DType::U32)
}

/// The `[1, V]` tensors [`lowest_index_argmax`] takes.
pub fn tie_break_tensors(vocab: usize, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let index = Tensor::arange(0u32, vocab as u32, device)?.to_dtype(DType::F32)?.reshape((1, vocab))?;
    let none = Tensor::full(vocab as f32, (1, vocab), device)?;
    Ok((index, none))
}

impl Engine {
    fn check_tokens(&self, tokens: &[u32]) -> Result<(), EngineError> {
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= self.vocab) {
            return Err(EngineError::bad_request(format!("token {t} is outside the vocabulary ({})", self.vocab)));
        }
        Ok(())
    }

    /// Greedy tokens (and the logits, if asked) of the `[B, V]` f32 logits; the copy to the host is
    /// the synchronisation point.
    fn finish(&self, logits: &Tensor, want_logits: bool) -> Result<Step, EngineError> {
        let err = candle_error("greedy step");
        let next = match &self.tie_break {
            None => logits.argmax(D::Minus1).map_err(&err)?,
            Some(t) => lowest_index_argmax(logits, &t.index, &t.none).map_err(&err)?,
        };
        let next_tokens = next.to_vec1::<u32>().map_err(&err)?;
        let logits = if want_logits { Some(logits.to_vec2::<f32>().map_err(&err)?) } else { None };
        self.device.synchronize().map_err(&err)?;
        if next_tokens.iter().any(|&t| t as usize >= self.vocab) {
            return Err(EngineError::internal("the logits hold NaN: no greedy token"));
        }
        Ok(Step { next_tokens, logits })
    }

    /// Runs `[B, S]` tokens at `index_pos` with the current cache; returns the last position's logits.
    fn forward(&mut self, flat: Vec<u32>, b: usize, s: usize, index_pos: usize) -> Result<Tensor, EngineError> {
        let cache = self.cache.as_mut().ok_or_else(|| EngineError::bad_request("decode before prefill"))?;
        let input = Tensor::from_vec(flat, (b, s), &self.device).map_err(candle_error("input tokens"))?;
        let logits = self.model.forward(&input, index_pos, cache).map_err(candle_error("forward"))?;
        debug_assert_eq!(logits.dims(), &[b, self.vocab]);
        Ok(logits)
    }

    /// A short prefill and one decode step, so that kernel loading (and on CUDA, the driver's PTX
    /// compilation of candle's kernels) is paid during load, never inside a measured request.
    fn warm_up(&mut self) -> Result<(), EngineError> {
        let step = self.prefill(&[vec![0, 1, 2]], 4, false)?;
        self.decode_step(&step.next_tokens, false)?;
        self.cache = None;
        Ok(())
    }
}

impl Model for Engine {
    fn load(req: &LoadRequest) -> Result<Self, EngineError> {
        let target = parse_device(&req.device)?;
        let dtype = compute_dtype(&target, req.dtype)?;
        let threads = match target {
            Target::Cpu => Some(apply_threads(&req.options)?),
            Target::Cuda(_) => None,
        };
        let (device, device_name) = match target {
            Target::Cpu => (Device::Cpu, "cpu".to_string()),
            Target::Cuda(n) => (open_cuda(n)?, format!("cuda:{n}")),
        };
        let dir = Path::new(&req.model_path);
        let config = read_config(dir)?;
        let files = weight_files(dir)?;
        // Safety: the checkpoint files are not modified while the engine runs.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, &device) }
            .map_err(candle_error("mapping the safetensors"))?;
        let model = Llama::load(vb, &config).map_err(candle_error("loading the weights"))?;
        let template = Cache::new(true, dtype, &config, &device).map_err(candle_error("building the KV cache"))?;
        let tie_break = if device.is_cpu() {
            None
        } else {
            let (index, none) =
                tie_break_tensors(config.vocab_size, &device).map_err(candle_error("argmax tables"))?;
            Some(TieBreak { index, none })
        };
        let mut engine = Engine {
            model,
            device,
            device_name,
            dtype: req.dtype,
            template,
            cache: None,
            batch: 0,
            pos: 0,
            max_positions: config.max_position_embeddings,
            vocab: config.vocab_size,
            tie_break,
            threads,
        };
        engine.warm_up()?;
        Ok(engine)
    }

    fn info(&self) -> EngineInfo {
        let cuda = !self.device.is_cpu();
        let mut s = serde_json::Map::new();
        s.insert("device".into(), self.device_name.clone().into());
        s.insert("dtype".into(), self.dtype.as_str().into());
        s.insert("candle_version".into(), CANDLE_VERSION.into());
        s.insert("model".into(), "candle_transformers::models::llama::Llama".into());
        s.insert(
            "kv_cache".into(),
            "on: candle_transformers llama Cache (use_kv_cache = true), a fresh one per request, grown by concatenation each step"
                .into(),
        );
        s.insert("flash_attn".into(), false.into());
        s.insert("flash_attn_why".into(), FLASH_ATTN_WHY.into());
        s.insert("weights".into(), format!("mmap'd safetensors, converted to {} at load", self.dtype).into());
        s.insert(
            "greedy".into(),
            if cuda {
                "on device: max, equality mask, lowest index (ties to the lowest index)"
            } else {
                "on device: candle argmax (ties to the lowest index)"
            }
            .into(),
        );
        s.insert("warm_up_at_load".into(), "one 3-token prefill and one decode step".into());
        s.insert("cuda_build".into(), CUDA_BUILD.into());
        if let Some(t) = &self.threads {
            s.insert("threads".into(), t.count.into());
            s.insert("threads_source".into(), t.source.into());
        }
        EngineInfo {
            name: if cuda { "candle_cuda" } else { "candle_cpu" }.into(),
            version: format!("candle-bench {} (candle {CANDLE_VERSION})", env!("CARGO_PKG_VERSION")),
            backend: if cuda { "cuda (cuBLAS + candle-kernels)" } else { "cpu (gemm crate, rayon)" }.into(),
            device: self.device_name.clone(),
            dtype: self.dtype,
            settings: s,
        }
    }

    fn memory_bytes(&self) -> Option<u64> {
        // candle keeps no allocator statistics for CUDA; on the CPU the resident set is the answer.
        if self.device.is_cpu() {
            resident_bytes()
        } else {
            None
        }
    }

    fn prefill(&mut self, prompts: &[Vec<u32>], capacity: usize, want_logits: bool) -> Result<Step, EngineError> {
        let b = prompts.len();
        let p = prompts.first().map(Vec::len).unwrap_or(0);
        if b == 0 || p == 0 {
            return Err(EngineError::bad_request("empty batch or prompt"));
        }
        if prompts.iter().any(|q| q.len() != p) {
            return Err(EngineError::unsupported(
                "candle's llama has no padding mask: every row of a batch must have the same length",
            ));
        }
        if capacity.max(p) > self.max_positions {
            return Err(EngineError::bad_request(format!(
                "{} positions asked for, the model has {}",
                capacity.max(p),
                self.max_positions
            )));
        }
        for q in prompts {
            self.check_tokens(q)?;
        }
        // Drop the previous request's KV before allocating the next one. The capacity is not
        // preallocated: candle's Cache grows by concatenation.
        self.cache = None;
        self.cache = Some(self.template.clone());
        self.batch = b;
        self.pos = 0;
        let logits = self.forward(prompts.concat(), b, p, 0)?;
        self.pos = p;
        self.finish(&logits, want_logits)
    }

    fn decode_step(&mut self, tokens: &[u32], want_logits: bool) -> Result<Step, EngineError> {
        if tokens.len() != self.batch {
            return Err(EngineError::bad_request(format!(
                "decode step with {} tokens for a batch of {}",
                tokens.len(),
                self.batch
            )));
        }
        if self.pos + 1 > self.max_positions {
            return Err(EngineError::bad_request(format!("the model has {} positions", self.max_positions)));
        }
        self.check_tokens(tokens)?;
        let logits = self.forward(tokens.to_vec(), self.batch, 1, self.pos)?;
        self.pos += 1;
        self.finish(&logits, want_logits)
    }
}

/// Resident set size from /proc (Linux); mmap'd weights count once touched.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_index_argmax_breaks_ties_like_torch() {
        let dev = Device::Cpu;
        let (index, none) = tie_break_tensors(6, &dev).unwrap();
        let logits = Tensor::new(&[[1f32, 3., 0., 3., -1., 3.], [5., 4., 5., 5., 0., 0.]], &dev).unwrap();
        let got = lowest_index_argmax(&logits, &index, &none).unwrap().to_vec1::<u32>().unwrap();
        assert_eq!(got, vec![1, 0]);
        let logits = Tensor::new(&[[f32::NEG_INFINITY, -5., -7., -5., -9., -6.]], &dev).unwrap();
        let got = lowest_index_argmax(&logits, &index, &none).unwrap().to_vec1::<u32>().unwrap();
        assert_eq!(got, vec![1]);
    }

    #[test]
    fn candle_cpu_argmax_takes_the_first_of_equal_maxima() {
        let logits = Tensor::new(&[[1f32, 3., 0., 3.], [2., 2., 2., 2.]], &Device::Cpu).unwrap();
        assert_eq!(logits.argmax(D::Minus1).unwrap().to_vec1::<u32>().unwrap(), vec![1, 0]);
    }

    #[test]
    fn protocol_messages_carry_no_backtrace() {
        let e = candle_core::Error::Msg("boom".into());
        let wrapped = candle_core::Error::WithBacktrace {
            inner: Box::new(e.context("while testing")),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        assert_eq!(without_backtrace(&wrapped), "while testing: boom");
        assert_eq!(candle_error("step")(wrapped).message, "step: while testing: boom");
    }

    #[test]
    fn devices_parse() {
        assert!(matches!(parse_device("cpu"), Ok(Target::Cpu)));
        assert!(matches!(parse_device("cuda:3"), Ok(Target::Cuda(3))));
        assert!(matches!(parse_device("cuda"), Ok(Target::Cuda(0))));
        assert!(parse_device("cuda:x").is_err());
        assert!(parse_device("metal").is_err());
    }

    #[test]
    fn build_records_the_candle_version() {
        assert!(CANDLE_VERSION.starts_with("0.11."), "{CANDLE_VERSION}");
    }
}
