//! `environment.json`: what ran where, so a reviewer can tell runs apart and a report can cite them.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string())
}

fn memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info.lines().find(|l| l.starts_with("MemTotal"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// GPUs as `nvidia-smi` reports them; empty where there is none.
fn gpus() -> Vec<Value> {
    let Some(csv) = command_output(
        "nvidia-smi",
        &["--query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit", "--format=csv,noheader,nounits"],
    ) else {
        return vec![];
    };
    csv.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            json!({ "name": f.first(), "driver": f.get(1), "memory_mib": f.get(2), "max_sm_clock_mhz": f.get(3),
                    "max_mem_clock_mhz": f.get(4), "power_limit_w": f.get(5) })
        })
        .collect()
}

pub fn sha256_file(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(format!("{:x}", Sha256::digest(bytes)))
}

/// The checkpoint's identity: its config's hash, its size, whether it is synthetic, how it was
/// found, and its config.json itself (the analysis computes bytes and FLOPs per token from the shape).
pub fn checkpoint(model: &Path, source: Option<&crate::model_source::ModelSource>) -> Value {
    let read_json =
        |name: &str| -> Option<Value> { std::fs::read_to_string(model.join(name)).ok().and_then(|t| serde_json::from_str(&t).ok()) };
    let synthetic = read_json("synthetic.json");
    let weights = checkpoint::weight_files(model).ok();
    json!({
        "config": read_json("config.json"),
        "path": model.display().to_string(),
        "config_sha256": sha256_file(&model.join("config.json")),
        "safetensors_bytes": weights.as_ref().map(|files| files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum::<u64>()),
        "safetensors_files": weights.as_ref().map(|files| files.iter().filter_map(|f| f.file_name()).map(|n| n.to_string_lossy().to_string()).collect::<Vec<_>>()),
        "index_sha256": sha256_file(&model.join("model.safetensors.index.json")),
        "real": synthetic.is_none(),
        "synthetic": synthetic,
        "source": source.map(|s| s.record()),
    })
}

pub fn collect(root: &Path, model: &Path, model_source: Option<&crate::model_source::ModelSource>) -> Value {
    let source = crate::provenance::source(root);
    json!({
        "runner": format!("benchmark-runner {}", env!("CARGO_PKG_VERSION")),
        "git_commit": source.commit,
        "git_dirty": source.dirty,
        "git_commit_from": source.by,
        "host": command_output("hostname", &[]),
        "os": command_output("uname", &["-srm"]),
        "cpu": { "model": cpu_model(), "logical_cores": std::thread::available_parallelism().map(|n| n.get()).ok() },
        "memory_bytes": memory_bytes(),
        "gpus": gpus(),
        "checkpoint": checkpoint(model, model_source),
        "started_unix_ms": run_format::records::unix_ms(),
    })
}

/// Runs the copy-bandwidth probe (PyTorch) on GPU `gpu`; the JSON it printed, or why it could not.
pub fn copy_bandwidth(root: &Path, gpu: u32) -> Value {
    let script = root.join("crates/benchmark-runner/probes/copy_bandwidth.py");
    let python = crate::registry::python(root);
    match Command::new(&python).arg(&script).arg(format!("cuda:{gpu}")).output() {
        Ok(out) if out.status.success() => {
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| json!({ "error": format!("unreadable probe output: {e}") }))
        }
        Ok(out) => json!({ "error": String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("probe failed").to_string() }),
        Err(e) => json!({ "error": format!("{}: {e}", python.display()) }),
    }
}
