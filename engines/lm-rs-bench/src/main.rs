//! lm-rs-bench: the CPU Rust engine. The protocol loop is shared; this crate only computes.

mod kernels;
mod model;
mod weights;

use shared_protocol::{serve, Dtype, EngineError, EngineInfo, LoadRequest, Model, Step};

struct Engine {
    model: model::Llama,
    threads: usize,
}

impl Model for Engine {
    fn load(req: &LoadRequest) -> Result<Self, EngineError> {
        if req.device != "cpu" {
            return Err(EngineError::unsupported(format!("lm_rs runs on the CPU only, not on {}", req.device)));
        }
        if req.dtype != Dtype::F32 {
            return Err(EngineError::unsupported(format!(
                "lm_rs computes in f32 (weights stay in their checkpoint dtype in memory), not {}",
                req.dtype
            )));
        }
        let threads = match req.options.get("threads") {
            None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            Some(v) => v
                .as_u64()
                .filter(|&n| n >= 1)
                .ok_or_else(|| EngineError::bad_request(format!("options.threads must be a positive integer, not {v}")))?
                as usize,
        };
        // The global pool can be built once per process; a second load keeps the first pool.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
        let threads = rayon::current_num_threads();
        let model = model::Llama::load(std::path::Path::new(&req.model_path))?;
        Ok(Engine { model, threads })
    }

    fn info(&self) -> EngineInfo {
        let mut settings = serde_json::Map::new();
        settings.insert("threads".into(), self.threads.into());
        settings.insert("simd".into(), kernels::simd_level().into());
        settings.insert("weights".into(), format!("mmap, {} in memory, f32 compute", self.model.weight_dtype()).into());
        settings.insert("kv_cache".into(), "f32, preallocated per request".into());
        EngineInfo {
            name: "lm_rs".into(),
            version: format!("lm-rs-bench {}", env!("CARGO_PKG_VERSION")),
            backend: "cpu-simd".into(),
            device: "cpu".into(),
            dtype: Dtype::F32,
            settings,
        }
    }

    fn memory_bytes(&self) -> Option<u64> {
        resident_bytes()
    }

    fn prefill(&mut self, prompts: &[Vec<u32>], capacity: usize, want_logits: bool) -> Result<Step, EngineError> {
        self.model.prefill(prompts, capacity, want_logits)
    }

    fn decode_step(&mut self, tokens: &[u32], want_logits: bool) -> Result<Step, EngineError> {
        self.model.decode(tokens, want_logits)
    }
}

/// Resident set size from /proc (Linux); mmap'd weights count once touched.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() -> std::process::ExitCode {
    serve::<Engine>()
}
