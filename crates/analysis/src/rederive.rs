//! Re-deriving a results folder: every run directory's summary.json, tables and plots from its raw
//! data, and every pooled folder (over runs, reproducibility) from the runs it names. A reviewer
//! runs it (`benchmark-runner rederive`) and `git diff` shows whether any committed figure moved;
//! `tests/committed_summaries.rs` checks the same without writing.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// One derived thing in a results folder and what it is derived from.
#[derive(Debug, Clone, PartialEq)]
pub enum Derived {
    /// A run directory (it has `raw_data/`): summary.json, tables/, plots/.
    Run(PathBuf),
    /// `over_runs.json` + `over_runs.txt` of the runs it lists (by directory name, beside it).
    OverRuns { dir: PathBuf, runs: Vec<PathBuf> },
    /// `reproducibility.{json,csv,parquet}` of the runs it lists (by path from the project root).
    Reproducibility { dir: PathBuf, runs: Vec<PathBuf> },
}

impl Derived {
    /// The folder the derived files are written in.
    pub fn dir(&self) -> &Path {
        match self {
            Derived::Run(dir) | Derived::OverRuns { dir, .. } | Derived::Reproducibility { dir, .. } => dir,
        }
    }
}

fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
}

/// The runs a pooled file names: `runs` as a list of ids (objects with `id`) or of paths.
fn named_runs(file: &Path, resolve: impl Fn(&str) -> PathBuf) -> anyhow::Result<Vec<PathBuf>> {
    let v = read_json(file)?;
    let runs = v.get("runs").and_then(|r| r.as_array()).with_context(|| format!("{}: no `runs` list", file.display()))?;
    runs.iter()
        .enumerate()
        .map(|(i, r)| {
            let name = r.get("id").unwrap_or(r).as_str();
            name.map(&resolve).with_context(|| format!("{}: runs[{i}] is neither a run id nor a path", file.display()))
        })
        .collect()
}

/// Everything derived in `results` (the project's `results/`), runs before the folders that pool
/// them, each in name order.
pub fn derived_in(results: &Path) -> anyhow::Result<Vec<Derived>> {
    let root = results.parent().unwrap_or(Path::new("."));
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(results)
        .with_context(|| format!("reading {}", results.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut runs = Vec::new();
    let mut pooled = Vec::new();
    for dir in dirs {
        if dir.join("raw_data").is_dir() && dir.join("summary.json").is_file() {
            runs.push(Derived::Run(dir));
        } else if dir.join("over_runs.json").is_file() {
            let listed = named_runs(&dir.join("over_runs.json"), |id| results.join(id))?;
            pooled.push(Derived::OverRuns { dir, runs: listed });
        } else if dir.join("reproducibility.json").is_file() {
            let listed = named_runs(&dir.join("reproducibility.json"), |p| root.join(p))?;
            pooled.push(Derived::Reproducibility { dir, runs: listed });
        }
    }
    runs.extend(pooled);
    Ok(runs)
}

/// A summary as JSON without `outputs`, the list of files the writer wrote beside it (which depends
/// on what is written, not on the raw data).
pub fn summary_figures(summary: &crate::Summary) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(summary)?;
    v.as_object_mut().map(|o| o.remove("outputs"));
    Ok(v)
}

/// summary.json of a run as the analysis writes it from the raw data now, with the committed list
/// of written files (`outputs`), so it compares byte for byte with the committed file.
pub fn summary_text(run_dir: &Path) -> anyhow::Result<String> {
    let committed = read_json(&run_dir.join("summary.json"))?;
    let mut summary = crate::summarize(run_dir)?;
    summary.outputs = committed.get("outputs").and_then(|o| o.as_array()).into_iter().flatten().filter_map(|o| o.as_str().map(String::from)).collect();
    Ok(crate::summary::text(&summary)?)
}

/// The over-runs figures of `runs`, pooled as the committed folder was (mixed commits are refused,
/// so a committed folder of mixed runs would have said so in its warnings).
pub fn over_runs_of(runs: &[PathBuf]) -> anyhow::Result<crate::over_runs::OverRuns> {
    let loaded: Vec<crate::Run> = runs.iter().map(|r| crate::Run::load(r)).collect::<anyhow::Result<_>>()?;
    crate::over_runs::over_runs(&loaded.iter().collect::<Vec<_>>(), false)
}

/// The reproducibility figures of `runs`, with the run names as the committed file has them.
pub fn reproducibility_of(runs: &[PathBuf], names: &[String]) -> anyhow::Result<serde_json::Value> {
    let reports: Vec<crate::Report> = runs.iter().map(|r| crate::analyze(r)).collect::<anyhow::Result<_>>()?;
    let r = crate::reproducibility(&reports.iter().collect::<Vec<_>>());
    Ok(crate::reproducibility_json(&r, names))
}

/// Writes every derived file of `results` again from raw data; the paths written, per item.
pub fn rederive(results: &Path) -> anyhow::Result<Vec<(Derived, usize)>> {
    let mut done = Vec::new();
    for d in derived_in(results)? {
        let files = match &d {
            Derived::Run(dir) => {
                let mut report = crate::analyze(dir)?;
                crate::write(&mut report)?;
                report.summary.outputs.len() + 1
            }
            Derived::OverRuns { dir, runs } => {
                crate::over_runs::write(dir, &over_runs_of(runs)?)?;
                2
            }
            Derived::Reproducibility { dir, runs } => {
                let names = committed_run_names(&dir.join("reproducibility.json"))?;
                let reports: Vec<crate::Report> = runs.iter().map(|r| crate::analyze(r)).collect::<anyhow::Result<_>>()?;
                let r = crate::reproducibility(&reports.iter().collect::<Vec<_>>());
                crate::write_reproducibility(dir, &r, &names)?;
                3
            }
        };
        done.push((d, files));
    }
    Ok(done)
}

/// The `runs` entries of a reproducibility file, as written.
pub fn committed_run_names(file: &Path) -> anyhow::Result<Vec<String>> {
    let v = read_json(file)?;
    Ok(v.get("runs").and_then(|r| r.as_array()).into_iter().flatten().filter_map(|r| r.as_str().map(String::from)).collect())
}
