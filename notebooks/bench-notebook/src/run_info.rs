//! What a run's `environment.json` says about where it was measured, and the model shape of runs
//! made before the runner recorded it.

use serde_json::Value;

use crate::show::Table;

/// Runs made before the runner wrote the checkpoint's `config.json` into `environment.json` name
/// only the checkpoint's path on the machine that measured them; the analysis then has no model
/// shape (no bytes per token, no roofline). When the checkpoint was a synthetic one, its preset is
/// recorded, and the preset fixes the shape: this puts the preset's `config.json` where newer runs
/// have it. Returns the preset's name when it did.
pub fn fill_synthetic_shape(environment: &mut Value) -> Option<String> {
    let checkpoint = environment.get_mut("checkpoint")?;
    if checkpoint.get("config").is_some_and(|c| !c.is_null()) {
        return None;
    }
    let name = checkpoint.pointer("/synthetic/preset")?.as_str()?.to_string();
    let preset: model_synth::Preset = name.parse().ok()?;
    checkpoint.as_object_mut()?.insert("config".into(), preset.shape().config_json());
    Some(name)
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The machine, checkpoint and software of a run, as a two-column table.
pub fn environment_table(environment: &Value) -> Table {
    let at = |p: &str| text(environment.pointer(p));
    let mut t = Table::new(["", "recorded in environment.json"]);
    if let Some(gpus) = environment.get("gpus").and_then(Value::as_array).filter(|g| !g.is_empty()) {
        for (i, g) in gpus.iter().enumerate() {
            let f = |k: &str| text(g.get(k)).unwrap_or_else(|| "?".into());
            t.row([format!("GPU {i}"), format!("{} (driver {}, {} MiB, power limit {} W)", f("name"), f("driver"), f("memory_mib"), f("power_limit_w"))]);
        }
    } else {
        t.row(["GPU", "none"]);
    }
    if let Some(model) = at("/cpu/model") {
        t.row(["CPU".to_string(), format!("{model}, {} logical cores", at("/cpu/logical_cores").unwrap_or_else(|| "?".into()))]);
    }
    if let Some(os) = at("/os") {
        t.row(["OS".to_string(), os]);
    }
    let checkpoint = match (at("/checkpoint/synthetic/preset"), at("/checkpoint/path")) {
        (Some(preset), _) => format!("synthetic, preset {preset} (seeded random weights of the real shapes; seed {})", at("/checkpoint/synthetic/seed").unwrap_or_else(|| "?".into())),
        (None, Some(path)) => path,
        (None, None) => "not recorded".into(),
    };
    let bytes = environment.pointer("/checkpoint/safetensors_bytes").and_then(Value::as_f64).map(|b| format!(", {:.2} GB of weights", b / 1e9)).unwrap_or_default();
    t.row(["checkpoint".to_string(), format!("{checkpoint}{bytes}")]);
    if let Some(r) = at("/runner") {
        t.row(["runner".to_string(), r]);
    }
    let commit = at("/git_commit").unwrap_or_else(|| "not recorded".into());
    let dirty = if environment.get("git_dirty").and_then(Value::as_bool) == Some(true) { " (uncommitted changes)" } else { "" };
    t.row(["source".to_string(), format!("git {commit}{dirty}")]);
    if let Some(when) = started(environment) {
        t.row(["started".to_string(), when]);
    }
    t
}

/// `2026-11-29 18:10:53 UTC` from `started_unix_ms`.
fn started(environment: &Value) -> Option<String> {
    let ms = environment.get("started_unix_ms").and_then(Value::as_u64)?;
    let stamp = crate::source::utc_stamp(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms));
    Some(format!("{}-{}-{} {}:{}:{} UTC", &stamp[0..4], &stamp[4..6], &stamp[6..8], &stamp[9..11], &stamp[11..13], &stamp[13..15]))
}

/// One row per run directory of a run spread over GPUs (or per run): the GPU it used, when it
/// started, its engines, and the cells its config planned that its raw data does not record
/// ([`crate::coverage`]: the runner stopped before them).
pub fn halves_table(dirs: &[std::path::PathBuf]) -> anyhow::Result<Table> {
    let mut t = Table::new(["run directory (half)", "GPU", "started", "engines", "planned cells not reached"]);
    for dir in dirs {
        let environment: Value = match std::fs::read_to_string(dir.join("environment.json")) {
            Ok(text) => serde_json::from_str(&text)?,
            Err(_) => Value::Null,
        };
        let gpu = crate::source::run_gpu(dir);
        let name = gpu.and_then(|i| environment.pointer(&format!("/gpus/{i}/name")).and_then(Value::as_str).map(String::from));
        let cov = crate::coverage::coverage(dir)?;
        let mut engines: Vec<&str> = Vec::new();
        for c in &cov {
            if !engines.contains(&c.engine.as_str()) {
                engines.push(&c.engine);
            }
        }
        let missing: Vec<String> = cov.iter().filter(|c| c.missing() > 0).map(|c| format!("{} {}: {} of {}", c.engine, c.workload, c.missing(), c.planned)).collect();
        t.row([
            dir.file_name().map_or(String::new(), |f| f.to_string_lossy().to_string()),
            match (gpu, name) {
                (Some(i), Some(n)) => format!("{i} ({n})"),
                (Some(i), None) => i.to_string(),
                _ => "–".into(),
            },
            started(&environment).unwrap_or_else(|| "–".into()),
            engines.join(", "),
            if missing.is_empty() { "none".into() } else { missing.join("; ") },
        ]);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synthetic_preset_gives_its_shape() {
        let mut env = serde_json::json!({"checkpoint": {"path": "/gone/llama-3.2-1b-synthetic", "synthetic": {"preset": "llama-3.2-1b", "seed": 20241}}});
        assert_eq!(fill_synthetic_shape(&mut env).as_deref(), Some("llama-3.2-1b"));
        assert_eq!(env.pointer("/checkpoint/config/num_key_value_heads"), Some(&serde_json::json!(8)));
        assert_eq!(env.pointer("/checkpoint/config/hidden_size"), Some(&serde_json::json!(2048)));
        // Already there, or not synthetic: left alone.
        assert_eq!(fill_synthetic_shape(&mut env), None);
        let mut real = serde_json::json!({"checkpoint": {"path": "models/Llama-3.2-1B-Instruct"}});
        assert_eq!(fill_synthetic_shape(&mut real), None);
    }

    #[test]
    fn committed_run_environment_is_described() {
        let root = crate::source::repo_root().unwrap();
        let env: Value = serde_json::from_str(&std::fs::read_to_string(root.join("results/h200-check-1/environment.json")).unwrap()).unwrap();
        let html = environment_table(&env).to_html();
        assert!(html.contains("NVIDIA H200 (driver 580.159.04, 143771 MiB, power limit 700.00 W)"), "{html}");
        assert!(html.contains("synthetic, preset llama-3.2-1b"));
        assert!(html.contains("2026-11-29 18:10:53 UTC</td>"), "{html}");
    }

    #[test]
    fn halves_of_a_committed_run_are_described() {
        let root = crate::source::repo_root().unwrap();
        let dirs = crate::source::expand_run(&root, std::path::Path::new("results/h200-3")).unwrap();
        let html = halves_table(&dirs).unwrap().to_html();
        assert!(html.contains("<td>h200-3-gpu1</td><td style=\"text-align:right\">1 (NVIDIA H200)</td>"), "{html}");
        assert!(html.contains("<td>pytorch_baseline, pytorch_compiled, lm_rs</td>"), "{html}");
        assert!(html.contains("burn_cuda chat-load: 1 of 3; burn_cuda memory: 2 of 2"), "{html}");
    }
}
