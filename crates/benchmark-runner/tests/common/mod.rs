//! What the runner's integration tests share: fake engines and a run driven through the library.

use std::path::{Path, PathBuf};

use benchmark_runner::config::Config;
use benchmark_runner::registry::{DeviceClass, EngineSpec, Launch, Registry};
use benchmark_runner::run;

/// `tests/fake_engine.py` registered as `name`, with load options (`mode`, `oom_batch`, ...).
pub fn fake(name: &str, options: &[(&str, serde_json::Value)]) -> EngineSpec {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_engine.py");
    let mut default_options: serde_json::Map<String, serde_json::Value> = options.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    default_options.insert("name".into(), name.into());
    EngineSpec {
        name: name.into(),
        device: DeviceClass::Cpu,
        launch: Launch::Program { program: "python3".into(), args: vec![script.display().to_string()] },
        default_options,
    }
}

/// A checkpoint folder holding only `config.json` (the runner reads nothing else itself).
pub fn stub_model(dir: &Path, config_json: &str) -> PathBuf {
    let m = dir.join("model");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("config.json"), config_json).unwrap();
    std::fs::write(m.join("model.safetensors"), "").unwrap();
    m
}

/// Writes `config_text` next to the model, validates it against `registry` and runs it into `<dir>/run`.
pub fn run_config(dir: &Path, config_text: &str, registry: &Registry) -> PathBuf {
    let file = dir.join("config.yaml");
    std::fs::write(&file, config_text).unwrap();
    let cfg = Config::load(&file, dir, registry).unwrap();
    let out = dir.join("run");
    run::execute(&cfg, config_text, registry, &run::RunPaths { root: dir.into(), output: out.clone() }).unwrap();
    out
}
