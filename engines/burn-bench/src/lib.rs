//! burn-bench: Llama-3 written on burn's module API (burn ships no Llama), behind the shared
//! protocol. One crate, two builds: the default build has burn's ndarray backend (CPU, f32); the
//! `cuda` feature adds burn's CUDA backend (CubeCL kernels compiled at run time, with operation
//! fusion and autotuning; bf16 or f32). The ndarray backend stays compiled in, so a CUDA build also
//! serves `device: "cpu"`.
//!
//! The serve loop (parsing, queueing, the greedy loop, timings) is shared; this crate computes:
//! [`Engine::prefill`] runs the batch as one `[B, P]` tensor into a fresh KV cache and
//! [`Engine::decode_step`] runs `[B, 1]`; the greedy token is taken on the device (burn's `argmax`,
//! lowest index on ties), so only token ids travel to the host, and reading them is the sync point.

pub mod config;
pub mod model;
pub mod weights;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

use burn::backend::NdArray;
use burn::prelude::Backend;
use burn::tensor::{DType, Int, Tensor, TensorData};
use serde_json::{Map, Value};
use shared_protocol::{Dtype, EngineError, EngineInfo, ErrorKind, LoadRequest, Model, Step};

use config::LlamaConfig;
use model::{KvCache, Llama, Loader, Rope, StepOutput, WeightLayout};
use weights::Checkpoint;

/// The burn version this binary was built with (read from Cargo.lock by build.rs).
pub const BURN_VERSION: &str = env!("BURN_VERSION");

/// Whether this binary has burn's CUDA backend.
pub const CUDA_BUILD: bool = cfg!(feature = "cuda");

type CpuBackend = NdArray<f32>;
#[cfg(feature = "cuda")]
type CudaBackend = burn::backend::Cuda<f32, i32>;

/// One backend's model and the state of the running request.
pub struct Runner<B: Backend> {
    cfg: LlamaConfig,
    model: Llama<B>,
    rope: Rope<B>,
    cache: Option<KvCache<B>>,
    device: B::Device,
    dtype: DType,
}

enum Backends {
    Cpu(Runner<CpuBackend>),
    #[cfg(feature = "cuda")]
    Cuda(Runner<CudaBackend>),
}

pub struct Engine {
    backend: Backends,
    device_name: String,
    dtype: Dtype,
    settings: Map<String, Value>,
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
    ordinal
        .map(Target::Cuda)
        .ok_or_else(|| EngineError::bad_request(format!("device must be `cpu` or `cuda:N`, not `{device}`")))
}

fn burn_dtype(dtype: Dtype) -> DType {
    match dtype {
        Dtype::F32 => DType::F32,
        Dtype::Bf16 => DType::BF16,
        Dtype::F16 => DType::F16,
    }
}

/// Turns a panic from inside burn (its backends panic rather than return errors, for example when
/// the device runs out of memory) into a protocol error, so the engine answers instead of dying.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, EngineError>) -> Result<T, EngineError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into());
            let lower = msg.to_ascii_lowercase();
            let kind = if lower.contains("out of memory") || lower.contains("out_of_memory") || lower.contains("oom") {
                ErrorKind::OutOfMemory
            } else {
                ErrorKind::Internal
            };
            Err(EngineError::new(kind, format!("{what}: burn panicked: {msg}")))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

fn opt_usize(options: &Map<String, Value>, key: &str) -> Result<Option<usize>, EngineError> {
    match options.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|&n| n >= 1)
            .map(|n| Some(n as usize))
            .ok_or_else(|| EngineError::bad_request(format!("options.{key} must be a positive integer, not {v}"))),
    }
}

fn opt_usize_list(options: &Map<String, Value>, key: &str) -> Result<Option<Vec<usize>>, EngineError> {
    let Some(v) = options.get(key) else { return Ok(None) };
    let bad = || EngineError::bad_request(format!("options.{key} must be a list of positive integers, not {v}"));
    if let Some(n) = v.as_u64() {
        return if n >= 1 { Ok(Some(vec![n as usize])) } else { Err(bad()) };
    }
    let list = v.as_array().ok_or_else(bad)?;
    list.iter()
        .map(|x| x.as_u64().filter(|&n| n >= 1).map(|n| n as usize).ok_or_else(bad))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Warm-up run at the end of `load`, so that kernel compilation and autotuning happen inside
/// `load_ns`: for each batch size and prompt length, one prefill and `new_tokens - 1` decode steps
/// (plus one prefill that also reads the logits back, the `logits` request's path).
#[derive(Debug, Clone)]
struct Warmup {
    prompt_lens: Vec<usize>,
    batch_sizes: Vec<usize>,
    new_tokens: usize,
}

impl Warmup {
    fn from_options(options: &Map<String, Value>, on_gpu: bool) -> Result<Self, EngineError> {
        // On the GPU the defaults are the measured shapes of configs/h200-latency.yaml (prompt 128,
        // 128 new tokens, batch 1) and the short correctness prompt; on the CPU there is nothing to
        // tune, so the warm-up only touches every weight once.
        let (lens, batches, new) = if on_gpu { (vec![8, 128], vec![1], 128) } else { (vec![4], vec![1], 2) };
        Ok(Warmup {
            prompt_lens: opt_usize_list(options, "warmup_prompt_lens")?.unwrap_or(lens),
            batch_sizes: opt_usize_list(options, "warmup_batch_sizes")?.unwrap_or(batches),
            new_tokens: opt_usize(options, "warmup_new_tokens")?.unwrap_or(new),
        })
    }

    fn describe(&self) -> Value {
        serde_json::json!({
            "prompt_lens": self.prompt_lens,
            "batch_sizes": self.batch_sizes,
            "new_tokens": self.new_tokens,
        })
    }
}

/// `options.threads` for the ndarray backend: rayon's global pool (burn-ndarray's parallel loops)
/// and `MATMUL_NUM_THREADS` (matrixmultiply's own threads). Both are fixed once per process.
fn apply_cpu_threads(options: &Map<String, Value>) -> Result<usize, EngineError> {
    let wanted = opt_usize(options, "threads")?;
    if let Some(n) = wanted {
        // Edition 2021: set_var is safe; nothing else reads the environment concurrently here.
        std::env::set_var("MATMUL_NUM_THREADS", n.to_string());
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
        let pool = rayon::current_num_threads();
        if pool != n {
            return Err(EngineError::unsupported(format!(
                "options.threads = {n}, but this process already runs {pool} rayon threads (set once per process)"
            )));
        }
    }
    Ok(rayon::current_num_threads())
}

// ---------------------------------------------------------------------------------------------
// The generic runner
// ---------------------------------------------------------------------------------------------

impl<B: Backend> Runner<B> {
    fn load(
        dir: &Path,
        device: B::Device,
        dtype: DType,
        layout: WeightLayout,
        rope_positions: Option<usize>,
    ) -> Result<(Self, Checkpoint), EngineError> {
        let cfg = LlamaConfig::read(dir).map_err(EngineError::bad_request)?;
        let ckpt = Checkpoint::open(dir)?;
        let model = Loader::<B> { ckpt: &ckpt, device: &device, dtype, layout }.llama(&cfg)?;
        let max = cfg.max_position_embeddings.unwrap_or(usize::MAX);
        let positions = rope_positions.unwrap_or(8192).min(max);
        let rope = Rope::new(&cfg, positions, &device, dtype);
        Ok((Runner { cfg, model, rope, cache: None, device, dtype }, ckpt))
    }

    fn check_tokens<'a>(&self, tokens: impl IntoIterator<Item = &'a u32>) -> Result<(), EngineError> {
        for &t in tokens {
            if t as usize >= self.cfg.vocab_size {
                return Err(EngineError::bad_request(format!(
                    "token {t} is outside the vocabulary ({})",
                    self.cfg.vocab_size
                )));
            }
        }
        Ok(())
    }

    fn token_tensor(&self, rows: usize, cols: usize, ids: Vec<i64>) -> Tensor<B, 2, Int> {
        Tensor::from_data(TensorData::new(ids, [rows, cols]), &self.device)
    }

    fn prefill(&mut self, prompts: &[Vec<u32>], capacity: usize, want_logits: bool) -> Result<Step, EngineError> {
        let batch = prompts.len();
        let len = prompts.first().map(Vec::len).unwrap_or(0);
        if batch == 0 || len == 0 {
            return Err(EngineError::bad_request("empty batch or prompt"));
        }
        if prompts.iter().any(|p| p.len() != len) {
            return Err(EngineError::unsupported("prompts of different lengths in one batch (no padding mask)"));
        }
        self.check_tokens(prompts.iter().flatten())?;
        let capacity = capacity.max(len);
        if capacity > self.rope.positions() {
            let max = self.cfg.max_position_embeddings.unwrap_or(usize::MAX);
            if capacity > max {
                return Err(EngineError::bad_request(format!(
                    "{capacity} positions asked for; the model has {max}"
                )));
            }
            // Outside the sizes prepared at load (options.rope_positions): grow the tables once.
            let positions = capacity.next_power_of_two().min(max);
            eprintln!("burn-bench: rope tables grown to {positions} positions inside a request");
            self.rope = Rope::new(&self.cfg, positions, &self.device, self.dtype);
        }
        // Drop the previous request's keys and values before allocating this one's.
        self.cache = None;
        let mut cache = KvCache::new(&self.cfg, batch, capacity, &self.device, self.dtype);
        let ids: Vec<i64> = prompts.iter().flatten().map(|&t| t as i64).collect();
        let tokens = self.token_tensor(batch, len, ids);
        let out = self.model.forward(tokens, &self.rope, &mut cache)?;
        self.cache = Some(cache);
        self.finish(out, want_logits)
    }

    fn decode(&mut self, tokens: &[u32], want_logits: bool) -> Result<Step, EngineError> {
        self.check_tokens(tokens)?;
        let cache = self.cache.as_mut().ok_or_else(|| EngineError::bad_request("decode step before a prefill"))?;
        if tokens.len() != cache.batch() {
            return Err(EngineError::bad_request(format!(
                "decode step with {} tokens for a batch of {}",
                tokens.len(),
                cache.batch()
            )));
        }
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        let t = Tensor::from_data(TensorData::new(ids, [tokens.len(), 1]), &self.device);
        let out = self.model.forward(t, &self.rope, cache)?;
        self.finish(out, want_logits)
    }

    /// Greedy ids on the device, then to the host (the sync point); the f32 logits too if asked.
    fn finish(&self, out: StepOutput<B>, want_logits: bool) -> Result<Step, EngineError> {
        let [batch, vocab] = out.logits.dims();
        let ids = out.logits.clone().argmax(1);
        let logits = if want_logits {
            let data = out.logits.cast(DType::F32).into_data();
            let flat = data
                .into_vec::<f32>()
                .map_err(|e| EngineError::internal(format!("reading logits: {e:?}")))?;
            Some(flat.chunks(vocab).map(<[f32]>::to_vec).collect())
        } else {
            None
        };
        let ids = ids
            .into_data()
            .convert::<i64>()
            .into_vec::<i64>()
            .map_err(|e| EngineError::internal(format!("reading token ids: {e:?}")))?;
        if ids.len() != batch {
            return Err(EngineError::internal(format!("{} ids for a batch of {batch}", ids.len())));
        }
        let next_tokens = ids
            .into_iter()
            .map(|i| {
                u32::try_from(i)
                    .ok()
                    .filter(|&t| (t as usize) < vocab)
                    .ok_or_else(|| EngineError::internal(format!("argmax gave {i} (logits NaN?)")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Step { next_tokens, logits })
    }

    fn warm_up(&mut self, w: &Warmup) -> Result<(), EngineError> {
        let vocab = self.cfg.vocab_size;
        let bos = 1u32.min(vocab as u32 - 1);
        let token = move |i: usize| ((i * 7919 + 13) % vocab) as u32;
        for &batch in &w.batch_sizes {
            for &len in &w.prompt_lens {
                let prompt: Vec<u32> = std::iter::once(bos).chain((1..len).map(token)).collect();
                let prompts = vec![prompt; batch];
                let mut step = self.prefill(&prompts, len + w.new_tokens, false)?;
                for _ in 1..w.new_tokens {
                    step = self.decode(&step.next_tokens, false)?;
                }
            }
        }
        // The `logits` request's path (logits cast to f32 and read back) at batch 1.
        let len = *w.prompt_lens.first().unwrap_or(&4);
        let prompt: Vec<u32> = std::iter::once(bos).chain((1..len).map(token)).collect();
        let step = self.prefill(&[prompt], len + 2, true)?;
        self.decode(&step.next_tokens, false)?;
        self.cache = None;
        Ok(())
    }

    fn cache_bytes(&self) -> usize {
        self.cache.as_ref().map(|c| KvCache::<B>::bytes(&self.cfg, c.batch(), c.capacity(), self.dtype)).unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// CUDA device detection and CubeCL settings
// ---------------------------------------------------------------------------------------------

/// Asks the driver, through cudarc, whether `cuda:index` exists, before burn's CUDA runtime starts:
/// that runtime panics in a worker thread when there is no driver or no device.
#[cfg(feature = "cuda")]
fn cuda_device(index: usize) -> Result<burn::backend::cuda::CudaDevice, EngineError> {
    // SAFETY: only tries to dlopen the driver library and drops the handle.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(EngineError::unsupported(
            "no CUDA device: the NVIDIA driver library (libcuda.so) cannot be loaded on this machine",
        ));
    }
    cudarc::driver::result::init()
        .map_err(|e| EngineError::unsupported(format!("no CUDA device: cuInit failed ({e:?})")))?;
    let count = cudarc::driver::result::device::get_count()
        .map_err(|e| EngineError::unsupported(format!("no CUDA device: cuDeviceGetCount failed ({e:?})")))?;
    if index >= count.max(0) as usize {
        return Err(EngineError::unsupported(format!(
            "no CUDA device cuda:{index}: the driver reports {count} device(s)"
        )));
    }
    Ok(burn::backend::cuda::CudaDevice { index })
}

/// CubeCL's runtime configuration, fixed once per process before the first kernel: what
/// `cubecl.toml` / `burn.toml` (searched from the working directory up) and the `CUBECL_*`
/// environment say, with `options.autotune_cache` (a directory) overriding where autotune results
/// are kept. Returns the settings to report.
#[cfg(feature = "cuda")]
fn configure_cubecl(options: &Map<String, Value>) -> Result<Map<String, Value>, EngineError> {
    use burn::cubecl::config::{cache::CacheConfig, CubeClRuntimeConfig, RuntimeConfig};
    use std::sync::OnceLock;
    static APPLIED: OnceLock<CubeClRuntimeConfig> = OnceLock::new();

    let wanted = match options.get("autotune_cache") {
        None => None,
        Some(Value::String(s)) => Some(std::path::PathBuf::from(s)),
        Some(v) => return Err(EngineError::bad_request(format!("options.autotune_cache must be a path, not {v}"))),
    };
    let config = APPLIED.get_or_init(|| {
        let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
        if let Some(dir) = &wanted {
            config.autotune.cache = CacheConfig::File(dir.clone());
        }
        CubeClRuntimeConfig::set(config.clone());
        config
    });
    let mut s = Map::new();
    s.insert("autotune".into(), "on (burn `autotune` feature: matmul, attention, reductions and fused kernels are benchmarked on first use of a shape; warm-up at load)".into());
    s.insert("autotune_level".into(), format!("{:?}", config.autotune.level).to_lowercase().into());
    let root = config.autotune.cache.root();
    s.insert(
        "autotune_cache".into(),
        format!("{} ({:?}; persistent, reused by later processes)", root.join("autotune").display(), config.autotune.cache)
            .into(),
    );
    s.insert(
        "kernel_cache".into(),
        match &config.compilation.cache {
            None => "off (CubeCL default: kernels are compiled by NVRTC in each process, during the warm-up)".into(),
            Some(c) => format!("{:?}", c).into(),
        },
    );
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// The protocol's Model
// ---------------------------------------------------------------------------------------------

fn parse_layout(options: &Map<String, Value>, default: WeightLayout) -> Result<WeightLayout, EngineError> {
    match options.get("weight_layout") {
        None => Ok(default),
        Some(Value::String(s)) if s == "row" => Ok(WeightLayout::Row),
        Some(Value::String(s)) if s == "col" => Ok(WeightLayout::Col),
        Some(v) => Err(EngineError::bad_request(format!("options.weight_layout must be \"row\" or \"col\", not {v}"))),
    }
}

impl Model for Engine {
    fn load(req: &LoadRequest) -> Result<Self, EngineError> {
        let target = parse_device(&req.device)?;
        let dir = Path::new(&req.model_path);
        let dtype = burn_dtype(req.dtype);
        let rope_positions = opt_usize(&req.options, "rope_positions")?;
        let mut settings = Map::new();
        settings.insert("burn_version".into(), BURN_VERSION.into());
        settings.insert(
            "kv_cache".into(),
            "on: per layer [batch, kv_heads, capacity, head_dim] in the compute dtype, allocated at prefill, \
             each step written in place (slice_assign)"
                .into(),
        );
        settings.insert(
            "attention".into(),
            "burn::tensor::module::attention (prefill: causal, kv heads repeated; decode: grouped query rows, no mask)"
                .into(),
        );
        let started = Instant::now();
        let (backend, device_name, warmup) = match target {
            Target::Cpu => {
                if req.dtype != Dtype::F32 {
                    return Err(EngineError::unsupported(format!(
                        "burn_cpu (ndarray backend) computes in f32, not {}",
                        req.dtype
                    )));
                }
                let threads = apply_cpu_threads(&req.options)?;
                let layout = parse_layout(&req.options, WeightLayout::Row)?;
                let warmup = Warmup::from_options(&req.options, false)?;
                let (mut runner, ckpt) =
                    guarded("load", || Runner::<CpuBackend>::load(dir, Default::default(), dtype, layout, rope_positions))?;
                settings.insert("backend".into(), "ndarray (burn-ndarray: matrixmultiply + SIMD, rayon threads)".into());
                settings.insert("fusion".into(), false.into());
                settings.insert("autotune".into(), "n/a (the ndarray backend has no tunable kernels)".into());
                settings.insert("threads".into(), threads.into());
                settings.insert("weight_layout".into(), layout.name().into());
                settings.insert("weights_file_dtype".into(), ckpt.file_dtype("model.embed_tokens.weight").into());
                settings.insert("rope_positions".into(), runner.rope.positions().into());
                guarded("warm-up", || runner.warm_up(&warmup))?;
                (Backends::Cpu(runner), "cpu".to_string(), warmup)
            }
            #[cfg(feature = "cuda")]
            Target::Cuda(index) => {
                let dtype = match req.dtype {
                    Dtype::Bf16 | Dtype::F32 => dtype,
                    other => {
                        return Err(EngineError::unsupported(format!("burn_cuda runs bf16 or f32, not {other}")));
                    }
                };
                let layout = parse_layout(&req.options, WeightLayout::Col)?;
                let warmup = Warmup::from_options(&req.options, true)?;
                let cubecl = configure_cubecl(&req.options)?;
                let device = cuda_device(index)?;
                let (mut runner, ckpt) =
                    guarded("load", || Runner::<CudaBackend>::load(dir, device, dtype, layout, rope_positions))?;
                settings.insert("backend".into(), "cuda (burn-cuda: CubeCL kernels compiled at run time by NVRTC)".into());
                settings.insert("fusion".into(), true.into());
                settings.extend(cubecl);
                settings.insert("weight_layout".into(), layout.name().into());
                settings.insert("weights_file_dtype".into(), ckpt.file_dtype("model.embed_tokens.weight").into());
                settings.insert("rope_positions".into(), runner.rope.positions().into());
                guarded("warm-up", || runner.warm_up(&warmup))?;
                (Backends::Cuda(runner), format!("cuda:{index}"), warmup)
            }
            #[cfg(not(feature = "cuda"))]
            Target::Cuda(index) => {
                return Err(EngineError::unsupported(format!(
                    "cuda:{index} asked for, but this burn-bench binary was built without burn's CUDA backend; \
                     build it with `cargo build --release --features cuda` (see engines/burn-bench/README.md)"
                )));
            }
        };
        settings.insert("dtype".into(), req.dtype.as_str().into());
        settings.insert("warmup".into(), warmup.describe());
        eprintln!(
            "burn-bench: loaded {} on {device_name} in {:.2} s (warm-up included)",
            dir.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(Engine { backend, device_name, dtype: req.dtype, settings })
    }

    fn info(&self) -> EngineInfo {
        let (name, backend) = match &self.backend {
            Backends::Cpu(_) => ("burn_cpu", "ndarray"),
            #[cfg(feature = "cuda")]
            Backends::Cuda(_) => ("burn_cuda", "cuda-cubecl-fusion"),
        };
        EngineInfo {
            name: name.into(),
            version: format!("burn-bench {} (burn {BURN_VERSION})", env!("CARGO_PKG_VERSION")),
            backend: backend.into(),
            device: self.device_name.clone(),
            dtype: self.dtype,
            settings: self.settings.clone(),
        }
    }

    fn memory_bytes(&self) -> Option<u64> {
        match &self.backend {
            // Resident set size: the weights as burn tensors (f32) plus the mapped file once touched.
            Backends::Cpu(_) => resident_bytes(),
            // burn keeps no device-memory total we can read cheaply; the runner's NVML telemetry
            // reports GPU memory.
            #[cfg(feature = "cuda")]
            Backends::Cuda(_) => None,
        }
    }

    fn prefill(&mut self, prompts: &[Vec<u32>], capacity: usize, want_logits: bool) -> Result<Step, EngineError> {
        match &mut self.backend {
            Backends::Cpu(r) => guarded("prefill", || r.prefill(prompts, capacity, want_logits)),
            #[cfg(feature = "cuda")]
            Backends::Cuda(r) => guarded("prefill", || r.prefill(prompts, capacity, want_logits)),
        }
    }

    fn decode_step(&mut self, tokens: &[u32], want_logits: bool) -> Result<Step, EngineError> {
        match &mut self.backend {
            Backends::Cpu(r) => guarded("decode", || r.decode(tokens, want_logits)),
            #[cfg(feature = "cuda")]
            Backends::Cuda(r) => guarded("decode", || r.decode(tokens, want_logits)),
        }
    }
}

impl Engine {
    /// Bytes of KV cache the running request holds (tests and logs).
    pub fn cache_bytes(&self) -> usize {
        match &self.backend {
            Backends::Cpu(r) => r.cache_bytes(),
            #[cfg(feature = "cuda")]
            Backends::Cuda(r) => r.cache_bytes(),
        }
    }
}

/// Resident set size from /proc (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
