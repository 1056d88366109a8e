//! The one place engines are registered: a name, where it runs, and how to start it.
//! Adding an engine = a folder under engines/, the protocol, and one entry in [`Registry::builtin`].

use std::path::{Path, PathBuf};

use shared_protocol::Dtype;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceClass {
    Cpu,
    Cuda,
    /// Runs wherever `benchmark.device` says (the PyTorch engines).
    Either,
}

#[derive(Debug, Clone)]
pub enum Launch {
    /// A binary of a Cargo project under engines/. The CPU build is `engines/<dir>/target/release/<bin>`,
    /// the CUDA build (feature `cuda`) `engines/<dir>/target-cuda/release/<bin>`; when `$BENCH_BIN_DIR`
    /// is set (the folder of packed binaries on a GPU machine) they are `<bin>` and `<bin>-cuda` there.
    Rust { dir: &'static str, bin: &'static str, cuda: bool },
    /// A Python script run by the project's interpreter (see [`python`]).
    Python { script: &'static str },
    /// Any program (tests register fake engines this way).
    Program { program: PathBuf, args: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct EngineSpec {
    pub name: String,
    pub device: DeviceClass,
    pub launch: Launch,
    /// Options merged under the config's `engine_options` (the config wins).
    pub default_options: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct Registry {
    engines: Vec<EngineSpec>,
}

/// How a registered engine is started on this machine.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl Registry {
    pub fn builtin() -> Registry {
        let python = |name: &str, script, compile: bool| EngineSpec {
            name: name.into(),
            device: DeviceClass::Either,
            launch: Launch::Python { script },
            default_options: [("name".to_string(), serde_json::Value::from(name)), ("compile".to_string(), compile.into())]
                .into_iter()
                .collect(),
        };
        let rust = |name: &str, device, dir, bin| EngineSpec {
            name: name.into(),
            device,
            launch: Launch::Rust { dir, bin, cuda: device == DeviceClass::Cuda },
            default_options: Default::default(),
        };
        Registry {
            engines: vec![
                python("pytorch_baseline", "engines/pytorch-baseline/engine.py", false),
                python("pytorch_compiled", "engines/pytorch-baseline/engine.py", true),
                rust("lm_rs", DeviceClass::Cpu, "engines/lm-rs-bench", "lm-rs-bench"),
                rust("candle_cpu", DeviceClass::Cpu, "engines/candle-bench", "candle-bench"),
                rust("candle_cuda", DeviceClass::Cuda, "engines/candle-bench", "candle-bench"),
                rust("burn_cpu", DeviceClass::Cpu, "engines/burn-bench", "burn-bench"),
                rust("burn_cuda", DeviceClass::Cuda, "engines/burn-bench", "burn-bench"),
                rust("mistral_rs_cpu", DeviceClass::Cpu, "engines/mistral-rs-bench", "mistral-rs-bench"),
                rust("mistral_rs_cuda", DeviceClass::Cuda, "engines/mistral-rs-bench", "mistral-rs-bench"),
            ],
        }
    }

    /// A registry of exactly these engines (tests use it for fake engines).
    pub fn with(engines: Vec<EngineSpec>) -> Registry {
        Registry { engines }
    }

    pub fn get(&self, name: &str) -> Option<&EngineSpec> {
        self.engines.iter().find(|e| e.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.engines.iter().map(|e| e.name.as_str()).collect()
    }
}

/// The Python interpreter for Python engines: `$BENCH_PYTHON`, else the project's `.venv`, else `python3`.
pub fn python(root: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("BENCH_PYTHON") {
        return p.into();
    }
    let venv = root.join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// A bare program name looked up in PATH (the process library is handed a full path, so a
/// missing interpreter is reported as such rather than as a failed start).
fn on_path(program: &Path) -> Result<PathBuf, String> {
    if program.components().count() > 1 {
        return Ok(program.to_path_buf());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{} not found on PATH", program.display()))
}

impl EngineSpec {
    /// The device string sent in `load`: `cpu` or `cuda:N`.
    pub fn device(&self, benchmark_device: &str, gpu: u32) -> String {
        match (self.device, benchmark_device) {
            (DeviceClass::Cpu, _) | (DeviceClass::Either, "cpu") => "cpu".into(),
            _ => format!("cuda:{gpu}"),
        }
    }

    /// f32 on the CPU; the configured GPU dtype on a GPU.
    pub fn dtype(&self, device: &str, gpu_dtype: Dtype) -> Dtype {
        if device == "cpu" {
            Dtype::F32
        } else {
            gpu_dtype
        }
    }

    /// Finds the program; the error says how to build it.
    pub fn resolve(&self, root: &Path) -> Result<Resolved, String> {
        match &self.launch {
            Launch::Rust { dir, bin, cuda } => {
                let (target, packed, build) = if *cuda {
                    ("target-cuda", format!("{bin}-cuda"), "scripts/pack-gpu.sh")
                } else {
                    ("target", bin.to_string(), "scripts/setup.sh")
                };
                let program = match std::env::var_os("BENCH_BIN_DIR") {
                    Some(d) => PathBuf::from(d).join(packed),
                    None => root.join(dir).join(target).join("release").join(bin),
                };
                if program.is_file() {
                    Ok(Resolved { program, args: vec![] })
                } else {
                    Err(format!("{} is not built ({} missing; {build} builds it)", self.name, program.display()))
                }
            }
            Launch::Python { script } => {
                let script = root.join(script);
                if !script.is_file() {
                    return Err(format!("{}: {} missing", self.name, script.display()));
                }
                Ok(Resolved { program: on_path(&python(root))?, args: vec![script.display().to_string()] })
            }
            Launch::Program { program, args } => Ok(Resolved { program: on_path(program)?, args: args.clone() }),
        }
    }
}
