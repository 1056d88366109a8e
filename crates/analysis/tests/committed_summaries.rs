//! Every committed figure is what the analysis makes of the committed raw data now, byte for byte:
//! each run's summary.json (its list of written files taken as committed), each over-runs folder
//! and the reproducibility folder. A change that moves a committed figure fails here until the run is re-derived
//! (`benchmark-runner rederive`) and the difference explained.

use std::path::{Path, PathBuf};

use analysis::rederive::{self, Derived};

fn results() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results")
}

/// The first place two JSON values differ, as a path, with both values.
fn first_difference(path: &str, a: &serde_json::Value, b: &serde_json::Value) -> Option<String> {
    use serde_json::Value::*;
    match (a, b) {
        (Object(x), Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (va, vb) = (x.get(k).unwrap_or(&Null), y.get(k).unwrap_or(&Null));
                if let Some(d) = first_difference(&format!("{path}/{k}"), va, vb) {
                    return Some(d);
                }
            }
            None
        }
        (Array(x), Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (va, vb))| first_difference(&format!("{path}/{i}"), va, vb))
        }
        _ if a == b => None,
        _ => Some(format!("{path}: now {a}, committed {b}")),
    }
}

#[test]
fn every_committed_figure_is_rederived_unchanged() {
    let derived = rederive::derived_in(&results()).unwrap();
    let runs = derived.iter().filter(|d| matches!(d, Derived::Run(_))).count();
    // The reference runs, the five paired runs on two GPUs, the checks: all of them are found.
    assert!(runs >= 20, "only {runs} run directories found in results/");
    assert!(derived.iter().any(|d| matches!(d, Derived::OverRuns { .. })));
    assert!(derived.iter().any(|d| matches!(d, Derived::Reproducibility { .. })));
    let mut moved = Vec::new();
    for d in &derived {
        // Each file as the writer would write it now, against the committed bytes.
        let (file, now) = match d {
            Derived::Run(dir) => (dir.join("summary.json"), rederive::summary_text(dir).unwrap()),
            Derived::OverRuns { dir, runs } => {
                let o = rederive::over_runs_of(runs).unwrap();
                let table = dir.join("over_runs.txt");
                if analysis::over_runs::table(&o) != std::fs::read_to_string(&table).unwrap() {
                    moved.push(format!("{}: differs", table.display()));
                }
                (dir.join("over_runs.json"), serde_json::to_string_pretty(&o).unwrap() + "\n")
            }
            Derived::Reproducibility { dir, runs, names } => {
                let json = analysis::reproducibility_json(&rederive::reproducibility_of(runs).unwrap(), names);
                (dir.join("reproducibility.json"), serde_json::to_string_pretty(&json).unwrap() + "\n")
            }
            Derived::ModelSize { dir, runs } => {
                let m = analysis::model_size::of_dirs(runs).unwrap();
                let table = dir.join("model_size.md");
                if analysis::model_size::table(&m) != std::fs::read_to_string(&table).unwrap() {
                    moved.push(format!("{}: differs", table.display()));
                }
                (dir.join("model_size.json"), serde_json::to_string_pretty(&m).unwrap() + "\n")
            }
        };
        let committed = std::fs::read_to_string(&file).unwrap();
        if now != committed {
            let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
            let d = first_difference("", &parse(&now), &parse(&committed)).unwrap_or_else(|| "layout".into());
            moved.push(format!("{}: {d}", file.display()));
        }
    }
    assert!(moved.is_empty(), "committed figures that the raw data no longer gives:\n{}", moved.join("\n"));
}

#[test]
fn a_pooled_folder_naming_a_missing_run_is_an_error_that_names_it() {
    let base = std::env::temp_dir().join(format!("rederive-missing-{}", std::process::id()));
    let pooled = base.join("results/pooled");
    std::fs::create_dir_all(&pooled).unwrap();
    std::fs::write(pooled.join("over_runs.json"), r#"{"runs": [{"id": "gone"}]}"#).unwrap();
    let derived = rederive::derived_in(&base.join("results")).unwrap();
    let Derived::OverRuns { runs, .. } = &derived[0] else { panic!("{derived:?}") };
    let err = rederive::over_runs_of(runs).unwrap_err().to_string();
    assert!(err.contains("gone") && err.contains("not a run directory"), "{err}");
    std::fs::write(pooled.join("over_runs.json"), r#"{"runs": [3]}"#).unwrap();
    let err = rederive::derived_in(&base.join("results")).unwrap_err().to_string();
    assert!(err.contains("over_runs.json: runs[0]"), "{err}");
    std::fs::remove_dir_all(&base).unwrap();
}
