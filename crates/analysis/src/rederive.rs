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
    /// `reproducibility.{json,csv,parquet}` of the runs it lists (by path from the project root),
    /// `names` as the file writes them.
    Reproducibility { dir: PathBuf, runs: Vec<PathBuf>, names: Vec<String> },
    /// `model_size.json` + `model_size.md` of the runs it lists (by directory name, beside it).
    ModelSize { dir: PathBuf, runs: Vec<PathBuf> },
}

impl Derived {
    /// The folder the derived files are written in.
    pub fn dir(&self) -> &Path {
        match self {
            Derived::Run(dir) | Derived::OverRuns { dir, .. } | Derived::Reproducibility { dir, .. } | Derived::ModelSize { dir, .. } => dir,
        }
    }
}

fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
}

/// The runs a pooled file names, as written and as folders: `runs` as a list of ids (objects with
/// `id`) or of paths.
fn named_runs(file: &Path, resolve: impl Fn(&str) -> PathBuf) -> anyhow::Result<(Vec<String>, Vec<PathBuf>)> {
    let v = read_json(file)?;
    let runs = v.get("runs").and_then(|r| r.as_array()).with_context(|| format!("{}: no `runs` list", file.display()))?;
    let names: Vec<String> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let name = r.get("id").unwrap_or(r).as_str();
            name.map(String::from).with_context(|| format!("{}: runs[{i}] is neither a run id nor a path", file.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    let dirs = names.iter().map(|n| resolve(n)).collect();
    Ok((names, dirs))
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
            let (_, runs) = named_runs(&dir.join("over_runs.json"), |id| results.join(id))?;
            pooled.push(Derived::OverRuns { dir, runs });
        } else if dir.join("model_size.json").is_file() {
            let (_, runs) = named_runs(&dir.join("model_size.json"), |id| results.join(id))?;
            pooled.push(Derived::ModelSize { dir, runs });
        } else if dir.join("reproducibility.json").is_file() {
            let (names, runs) = named_runs(&dir.join("reproducibility.json"), |p| root.join(p))?;
            pooled.push(Derived::Reproducibility { dir, runs, names });
        }
    }
    runs.extend(pooled);
    Ok(runs)
}

/// summary.json's text for `summary` with the list of written files (`outputs`) taken from
/// `written`, a summary.json as written: it names what was written beside it, which depends on the
/// writer, not on the raw data. Compares byte for byte with `written`.
pub fn as_written(summary: &crate::Summary, written: &str) -> anyhow::Result<String> {
    let outputs = serde_json::from_str::<serde_json::Value>(written)?.get("outputs").cloned().unwrap_or_default();
    let mut summary = summary.clone();
    summary.outputs = serde_json::from_value::<Option<Vec<String>>>(outputs)?.unwrap_or_default();
    Ok(crate::summary::text(&summary)?)
}

/// summary.json of a run as the analysis writes it from the raw data now, as [`as_written`] with
/// the committed file.
pub fn summary_text(run_dir: &Path) -> anyhow::Result<String> {
    let path = run_dir.join("summary.json");
    let written = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    as_written(&crate::summarize(run_dir)?, &written).with_context(|| format!("{}", path.display()))
}

/// The over-runs figures of `runs`, pooled as the committed folder was (mixed commits are refused,
/// so a committed folder of mixed runs would have said so in its warnings).
pub fn over_runs_of(runs: &[PathBuf]) -> anyhow::Result<crate::over_runs::OverRuns> {
    let loaded: Vec<crate::Run> = runs.iter().map(|r| crate::Run::load(r)).collect::<anyhow::Result<_>>()?;
    crate::over_runs::over_runs(&loaded.iter().collect::<Vec<_>>(), false)
}

/// The reproducibility figures of `runs`.
pub fn reproducibility_of(runs: &[PathBuf]) -> anyhow::Result<crate::Reproducibility> {
    let reports: Vec<crate::Report> = runs.iter().map(|r| crate::analyze(r)).collect::<anyhow::Result<_>>()?;
    Ok(crate::reproducibility(&reports.iter().collect::<Vec<_>>()))
}

/// Writes every derived file of `results` again from raw data; per item, how many files.
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
            Derived::Reproducibility { dir, runs, names } => {
                crate::write_reproducibility(dir, &reproducibility_of(runs)?, names)?;
                3
            }
            Derived::ModelSize { dir, runs } => {
                crate::model_size::write(dir, &crate::model_size::of_dirs(runs)?)?;
                2
            }
        };
        done.push((d, files));
    }
    Ok(done)
}
