//! The same engines at several model sizes: runs that differ in the checkpoint only (one model per
//! run), put side by side per engine and batch-1 cell: decode rate, time per token, the share of
//! the measured copy bandwidth that rate implies, host sensitivity, and each engine's rank among
//! those measured at that size, so a reader sees where the ranking changes with size.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cell_figures::Median;
use crate::Report;

#[derive(Debug, Clone, Serialize)]
pub struct SizeRow {
    pub model: String,
    pub parameters: Option<u64>,
    /// A real checkpoint, or seeded random weights of the real shapes.
    pub real: bool,
    pub run: String,
    pub engine: String,
    pub prompt_tokens: usize,
    pub decode_tok_per_s: Option<Median>,
    pub ms_per_token: Option<f64>,
    pub fraction_of_copy_bandwidth: Option<f64>,
    pub host_sensitivity: Option<f64>,
    /// 1 = fastest decode among the engines measured at this model and prompt length.
    pub rank: Option<usize>,
    /// Whether the cell was measured interleaved with the others of its run.
    pub interleaved: bool,
    /// The engine's correctness gate in that run (None: it could not run).
    pub gate_passed: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelSize {
    /// The run directories' names (beside the folder this is written in).
    pub runs: Vec<String>,
    pub rows: Vec<SizeRow>,
    /// Per prompt length: the engine order at each size, and whether it is the same at every size.
    pub rankings: Vec<Ranking>,
    /// How the runs differ besides the model (GPU, commit, dtype): comparisons across sizes carry these.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ranking {
    pub prompt_tokens: usize,
    /// (model, engines fastest first), models in order of size.
    pub order: Vec<(String, Vec<String>)>,
    /// Over the engines measured at every size: whether their order is the same at each.
    pub unchanged: bool,
}

/// The model a run measured: the synthetic preset, or the checkpoint folder's name.
fn model_of(report: &Report) -> (String, bool) {
    let env = &report.run.environment;
    if let Some(preset) = env.pointer("/checkpoint/synthetic/preset").and_then(|v| v.as_str()) {
        return (format!("{preset} (synthetic)"), false);
    }
    let path = env.pointer("/checkpoint/path").and_then(|v| v.as_str()).unwrap_or("?");
    (path.trim_end_matches('/').rsplit('/').next().unwrap_or(path).to_string(), true)
}

fn at(report: &Report, pointer: &str) -> String {
    report.run.environment.pointer(pointer).map(|v| v.to_string()).unwrap_or_else(|| "?".into())
}

/// Rows for every batch-1 latency cell of every run; runs are ordered by parameter count.
pub fn model_size(reports: &[&Report]) -> ModelSize {
    let mut reports: Vec<&Report> = reports.to_vec();
    reports.sort_by_key(|r| r.run.model_shape().map(|s| s.parameters()).unwrap_or(0));
    let mut rows = Vec::new();
    for report in &reports {
        let (model, real) = model_of(report);
        let parameters = report.run.model_shape().map(|s| s.parameters());
        for cell in report.summary.cells.iter().filter(|c| c.scenario == "latency" && c.batch_size == 1) {
            let decode = cell.decode_tok_per_s.all.clone();
            let fraction = report
                .roofline
                .iter()
                .find(|p| p.engine == cell.engine && p.batch_size == 1 && p.prompt_tokens as usize == cell.prompt_tokens && p.workload == cell.workload)
                .and_then(|p| p.fraction_of_copy_bandwidth);
            rows.push(SizeRow {
                model: model.clone(),
                parameters,
                real,
                run: report.run.id.clone(),
                engine: cell.engine.clone(),
                prompt_tokens: cell.prompt_tokens,
                ms_per_token: decode.as_ref().map(|d| 1000.0 / d.median),
                decode_tok_per_s: decode,
                fraction_of_copy_bandwidth: fraction,
                host_sensitivity: cell.host_sensitivity,
                rank: None,
                interleaved: cell.interleaved,
                gate_passed: report.summary.engines.iter().find(|e| e.name == cell.engine).and_then(|e| e.correctness.passed),
            });
        }
    }
    // Ranks within each (model, prompt length), over every run of that model (a warning says
    // when they come from several runs, i.e. were not measured side by side).
    let mut groups: BTreeMap<(String, usize), Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        groups.entry((r.model.clone(), r.prompt_tokens)).or_default().push(i);
    }
    for idx in groups.values() {
        let mut by_speed: Vec<usize> = idx.iter().copied().filter(|&i| rows[i].decode_tok_per_s.is_some()).collect();
        by_speed.sort_by(|&a, &b| {
            let (x, y) = (rows[a].decode_tok_per_s.as_ref().unwrap().median, rows[b].decode_tok_per_s.as_ref().unwrap().median);
            y.total_cmp(&x)
        });
        for (rank, i) in by_speed.into_iter().enumerate() {
            rows[i].rank = Some(rank + 1);
        }
    }
    let mut prompts: Vec<usize> = rows.iter().map(|r| r.prompt_tokens).collect();
    prompts.sort_unstable();
    prompts.dedup();
    let models: Vec<String> = {
        let mut m: Vec<String> = Vec::new();
        for r in &rows {
            if !m.contains(&r.model) {
                m.push(r.model.clone());
            }
        }
        m
    };
    let rankings = prompts
        .iter()
        .map(|&p| {
            let order: Vec<(String, Vec<String>)> = models
                .iter()
                .map(|m| {
                    let mut here: Vec<&SizeRow> = rows.iter().filter(|r| &r.model == m && r.prompt_tokens == p && r.rank.is_some()).collect();
                    here.sort_by_key(|r| r.rank);
                    let mut engines: Vec<String> = Vec::new();
                    for r in here {
                        if !engines.contains(&r.engine) {
                            engines.push(r.engine.clone());
                        }
                    }
                    (m.clone(), engines)
                })
                .collect();
            let everywhere: Vec<&String> =
                order.first().map(|(_, e)| e.iter().filter(|x| order.iter().all(|(_, o)| o.contains(x))).collect()).unwrap_or_default();
            let restricted: Vec<Vec<&String>> = order.iter().map(|(_, o)| o.iter().filter(|x| everywhere.contains(x)).collect()).collect();
            let unchanged = restricted.windows(2).all(|w| w[0] == w[1]);
            Ranking { prompt_tokens: p, order, unchanged }
        })
        .collect();
    let mut warnings = Vec::new();
    for m in &models {
        let mut runs: Vec<&str> = rows.iter().filter(|r| &r.model == m).map(|r| r.run.as_str()).collect();
        runs.dedup();
        let mut engines: Vec<&str> = rows.iter().filter(|r| &r.model == m).map(|r| r.engine.as_str()).collect();
        engines.sort_unstable();
        let n = engines.len();
        engines.dedup();
        if engines.len() * rows.iter().filter(|r| &r.model == m).map(|r| r.prompt_tokens).collect::<std::collections::BTreeSet<_>>().len() < n {
            warnings.push(format!("at {m} some engine was measured by more than one run: the ranking keeps its faster run"));
        }
        if runs.len() > 1 {
            warnings.push(format!("at {m} the engines come from separate runs ({}): their ranks compare runs made apart", runs.join(", ")));
        }
    }
    for (what, pointer) in [("GPU", "/gpus/0/name"), ("driver", "/gpus/0/driver"), ("commit", "/git_commit")] {
        let mut seen: Vec<String> = reports.iter().map(|r| at(r, pointer)).collect();
        seen.dedup();
        if seen.len() > 1 {
            warnings.push(format!("the runs differ in {what}: {}", seen.join(" / ")));
        }
    }
    ModelSize { runs: reports.iter().map(|r| r.run.id.clone()).collect(), rows, rankings, warnings }
}

/// The model-size figures of the runs in `runs` (directories).
pub fn of_dirs(runs: &[std::path::PathBuf]) -> anyhow::Result<ModelSize> {
    let reports: Vec<Report> = runs.iter().map(|r| crate::analyze(r)).collect::<anyhow::Result<_>>()?;
    Ok(model_size(&reports.iter().collect::<Vec<_>>()))
}

/// `model_size.json` and `model_size.md` (the table the book includes) in `out`.
pub fn write(out: &std::path::Path, m: &ModelSize) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    for (name, text) in [("model_size.json", serde_json::to_string_pretty(m)? + "\n"), ("model_size.md", table(m))] {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.digits$}"))
}

/// A Markdown table of the rows, then the rankings.
pub fn table(m: &ModelSize) -> String {
    let mut out = String::from(
        "| model | parameters | engine | gate | prompt | decode tok/s (median, CI) | n | ms/token | share of copy bandwidth | slow ÷ fast host | rank | run |\n\
         |---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in &m.rows {
        let d = r.decode_tok_per_s.as_ref();
        let ci = d.and_then(|d| d.ci95).map_or(String::new(), |[lo, hi]| format!(" ({lo:.1}–{hi:.1})"));
        out += &format!(
            "| {} | {} | {} | {} | {} | {}{} | {} | {} | {} | {} | {} | {}{} |\n",
            r.model,
            r.parameters.map_or("?".into(), |p| format!("{:.2} B", p as f64 / 1e9)),
            r.engine,
            match r.gate_passed {
                Some(true) => "passed",
                Some(false) => "⚠ failed",
                None => "unchecked",
            },
            r.prompt_tokens,
            opt(d.map(|d| d.median), 1),
            ci,
            d.map_or(0, |d| d.n),
            opt(r.ms_per_token, 2),
            r.fraction_of_copy_bandwidth.map_or("–".into(), |f| format!("{:.0} %", f * 100.0)),
            opt(r.host_sensitivity, 2),
            r.rank.map_or("–".into(), |k| k.to_string()),
            r.run,
            if r.interleaved { "" } else { " (not interleaved)" },
        );
    }
    for k in &m.rankings {
        out += &format!("\nPrompt {}: ", k.prompt_tokens);
        out += &k.order.iter().map(|(model, e)| format!("{model}: {}", e.join(" > "))).collect::<Vec<_>>().join("; ");
        out += match (k.order.len(), k.unchanged) {
            (0 | 1, _) => " (one size only).\n",
            (_, true) => " — the same order at every size.\n",
            (_, false) => " — the order changes with size.\n",
        };
    }
    for w in &m.warnings {
        out += &format!("\nNote: {w}.\n");
    }
    out
}
