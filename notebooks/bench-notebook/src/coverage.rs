//! How much of what a run's config planned its raw data records: a runner stopped part-way (at a
//! time limit, say) leaves cells with neither a measurement nor a failure record, and nothing else
//! in the run says so. Read from `config.yaml` (the config as run) and `raw_data/`.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

/// One (engine, workload) of a run: the cells its config planned and those the raw data records
/// (measured, failed or skipped).
#[derive(Debug, Clone, PartialEq)]
pub struct Coverage {
    pub engine: String,
    pub workload: String,
    pub scenario: String,
    pub planned: usize,
    pub recorded: usize,
}

impl Coverage {
    /// Cells with no record at all: the runner never reached them.
    pub fn missing(&self) -> usize {
        self.planned.saturating_sub(self.recorded)
    }
}

fn list_len(w: &Yaml, key: &str) -> usize {
    w.get(key).and_then(Yaml::as_sequence).map_or(0, Vec::len)
}

fn strings(v: Option<&Yaml>) -> Vec<String> {
    v.and_then(Yaml::as_sequence).map_or_else(Vec::new, |s| s.iter().filter_map(|x| x.as_str().map(String::from)).collect())
}

fn lines(path: &Path) -> anyhow::Result<Vec<Json>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| path.display().to_string()),
    };
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).with_context(|| path.display().to_string())).collect()
}

/// Every (engine, workload) the run's config planned, in the config's order of workloads and
/// engines, with how many of its cells the raw data records.
pub fn coverage(run_dir: &Path) -> anyhow::Result<Vec<Coverage>> {
    let path = run_dir.join("config.yaml");
    let config: Yaml = serde_yaml::from_str(&std::fs::read_to_string(&path).with_context(|| path.display().to_string())?).with_context(|| path.display().to_string())?;
    let run_engines = strings(config.get("engines"));
    let cells = lines(&run_dir.join("raw_data/cells.jsonl"))?;
    let failures = lines(&run_dir.join("raw_data/failures.jsonl"))?;
    let text = |v: &Json, k: &str| v.get(k).and_then(Json::as_str).unwrap_or("").to_string();
    let mut out = Vec::new();
    for w in config.get("workloads").and_then(Yaml::as_sequence).into_iter().flatten() {
        let workload = w.get("name").and_then(Yaml::as_str).unwrap_or("").to_string();
        let scenario = w.get("scenario").and_then(Yaml::as_str).unwrap_or("").to_string();
        let prompts = list_len(w, "sequence_lengths");
        let planned = match scenario.as_str() {
            "concurrent" => prompts * (list_len(w, "concurrency") + list_len(w, "arrival_rates")),
            _ => prompts * list_len(w, "batch_sizes").max(1),
        };
        let mut engines = strings(w.get("engines"));
        if engines.is_empty() {
            engines = run_engines.clone();
        }
        for engine in engines.into_iter().filter(|e| run_engines.contains(e)) {
            // A cell: (batch, prompt, load level), from a cell record or a failure of the whole cell.
            let mut keys: BTreeSet<String> = BTreeSet::new();
            for c in cells.iter().filter(|c| text(c, "engine") == engine && text(c, "workload") == workload) {
                keys.insert(format!("{}/{}/{}", c["batch_size"], c["prompt_tokens"], c.get("load").unwrap_or(&Json::Null)));
            }
            for f in failures.iter().filter(|f| text(f, "engine") == engine && text(f, "stage") == workload) {
                if f.get("batch_size").is_some_and(|b| !b.is_null()) && f.get("request").is_none_or(Json::is_null) && scenario != "concurrent" {
                    keys.insert(format!("{}/{}/null", f["batch_size"], f["prompt_tokens"]));
                }
            }
            out.push(Coverage { engine, workload: workload.clone(), scenario: scenario.clone(), planned, recorded: keys.len().min(planned) });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(run: &str) -> Vec<(String, String, usize)> {
        let root = crate::source::repo_root().unwrap();
        coverage(&root.join(run)).unwrap().into_iter().filter(|c| c.missing() > 0).map(|c| (c.engine.clone(), c.workload.clone(), c.missing())).collect()
    }

    #[test]
    fn committed_reference_runs_show_where_a_runner_stopped() {
        let root = crate::source::repo_root().unwrap();
        let all = coverage(&root.join("results/h200-2-gpu1")).unwrap();
        // 4 engines × 4 workloads (lm_rs's latency-cpu belongs to the other GPU).
        assert_eq!(all.len(), 16);
        assert!(all.iter().all(|c| c.missing() == 0), "{all:?}");
        let chat = all.iter().find(|c| c.engine == "burn_cuda" && c.workload == "chat-load").unwrap();
        assert_eq!((chat.scenario.as_str(), chat.planned, chat.recorded), ("concurrent", 3, 3));
        // Run 3, second GPU: stopped at the call's time limit in burn_cuda's open loop at 8 rps.
        assert_eq!(missing("results/h200-3-gpu1"), [("burn_cuda".to_string(), "chat-load".to_string(), 1), ("burn_cuda".into(), "memory".into(), 2)]);
        // Run 1: lm_rs never started (a failure record covers its cell); burn_cuda's 4096-token memory cell never came.
        assert_eq!(missing("results/h200-1-gpu0"), []);
        assert_eq!(missing("results/h200-1-gpu1"), [("burn_cuda".to_string(), "memory".to_string(), 1)]);
    }
}
