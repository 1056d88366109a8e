//! Where a run's figures come from: the machine, the code, the checkpoint, the engines, the
//! config as run, and links to every file of the run directory.

use std::path::Path;

use serde_json::Value;

use analysis::Run;

use crate::page::{esc, table};

fn at<'a>(env: &'a Value, pointer: &str) -> Option<String> {
    match env.pointer(pointer)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        v => Some(v.to_string()),
    }
}

/// The facts of environment.json a reader checks first.
pub fn environment(run: &Run) -> String {
    let env = &run.environment;
    let started = at(env, "/started_unix_ms").and_then(|s| s.parse::<u64>().ok()).map(|ms| format!("{ms} (Unix ms)"));
    let synthetic = env
        .pointer("/checkpoint/synthetic")
        .filter(|v| !v.is_null())
        .map(|s| format!("synthetic ({} preset, seed {})", at(s, "/preset").unwrap_or_default(), at(s, "/seed").unwrap_or_default()));
    let facts: Vec<(&str, Option<String>)> = vec![
        (
            "GPU",
            at(env, "/gpus/0/name").map(|n| {
                format!(
                    "{n}, {} MiB, driver {}",
                    at(env, "/gpus/0/memory_mib").unwrap_or("?".into()),
                    at(env, "/gpus/0/driver").unwrap_or("?".into())
                )
            }),
        ),
        (
            "CPU",
            at(env, "/cpu/model").map(|m| {
                format!(
                    "{m}, {} logical cores, engines on CPUs {}",
                    at(env, "/cpu/logical_cores").unwrap_or("?".into()),
                    at(env, "/cpu/engine_cpus").unwrap_or("?".into())
                )
            }),
        ),
        ("host", at(env, "/host")),
        ("OS", at(env, "/os")),
        (
            "commit",
            at(env, "/git_commit")
                .map(|c| format!("{c}{}", if at(env, "/git_dirty").as_deref() == Some("true") { " (uncommitted changes)" } else { "" })),
        ),
        ("runner", at(env, "/runner")),
        ("started", started),
        (
            "checkpoint",
            at(env, "/checkpoint/path")
                .map(|p| format!("{p}{}", synthetic.map(|s| format!(", {s}")).unwrap_or_else(|| ", real weights".into()))),
        ),
        ("config.json sha256", at(env, "/checkpoint/config_sha256")),
        ("weights", at(env, "/checkpoint/safetensors_bytes").map(|b| format!("{b} bytes of safetensors"))),
    ];
    let dl: String = facts.into_iter().filter_map(|(k, v)| Some(format!("<dt>{}</dt><dd>{}</dd>", esc(k), esc(&v?)))).collect();
    if dl.is_empty() {
        return "<p class=\"note missing\">The run has no environment.json.</p>".into();
    }
    format!("<dl class=\"facts\">{dl}</dl>")
}

/// What each engine said about itself at load.
pub fn engines(summary: &analysis::Summary) -> String {
    let rows: Vec<Vec<String>> = summary
        .engines
        .iter()
        .map(|e| {
            vec![
                esc(&e.name),
                esc(e.version.as_deref().unwrap_or("–")),
                esc(e.device.as_deref().unwrap_or("–")),
                esc(e.dtype.as_deref().unwrap_or("–")),
                e.load_ms.map(|m| format!("{:.0}", m)).unwrap_or("–".into()),
            ]
        })
        .collect();
    table("engines", &["engine", "version", "device", "dtype", "load ms"], &rows)
}

/// config.yaml as run, verbatim.
pub fn config(run: &Run) -> String {
    match std::fs::read_to_string(run.dir.join("config.yaml")) {
        Ok(t) => format!("<pre>{}</pre>", esc(&t)),
        Err(e) => format!("<p class=\"note missing\">config.yaml: {}</p>", esc(&e.to_string())),
    }
}

/// Links, relative to the report, to every file of the run directory but the report itself.
pub fn files(dir: &Path, methodology: Option<&str>) -> String {
    let mut found = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.display().to_string());
            }
        }
    }
    walk(dir, dir, &mut found);
    found.retain(|f| f != crate::REPORT_FILE);
    found.sort();
    let items: String = found.iter().map(|f| format!("<li><a href=\"{}\">{}</a></li>", esc(f), esc(f))).collect();
    let how = methodology.map(|m| format!("; how each is measured and computed: <a href=\"{}\">methodology</a>", esc(m))).unwrap_or_default();
    format!("<p class=\"note\">Every figure here is recomputed from raw_data/ by <code>benchmark-runner analyze</code>{how}.</p><ul>{items}</ul>")
}
