//! Which run directory a notebook reads.
//!
//! | environment | what the notebook analyses |
//! |---|---|
//! | nothing set | the committed run the notebook names (its `DEFAULT_RUN` constant) |
//! | `BENCH_RUN=<dir>` | that run directory (relative to the repository root, or absolute) |
//! | `BENCH_MEASURE=1` | a fresh run of the notebook's config, under `target/notebook-runs/` |
//!
//! A measurement spawns the release runner (`target/release/benchmark-runner`, built by
//! `scripts/setup.sh`; `BENCH_RUNNER` names another binary) exactly as the command line does; the
//! notebook then reads what it wrote. No timing is ever taken inside a notebook.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

/// The repository root: the nearest directory at or above the current one (a notebook's kernel
/// runs in `notebooks/`) that holds `configs/` and `crates/analysis/`.
pub fn repo_root() -> anyhow::Result<PathBuf> {
    let start = std::env::current_dir().context("reading the current directory")?;
    start
        .ancestors()
        .find(|d| d.join("configs").is_dir() && d.join("crates/analysis/Cargo.toml").is_file())
        .map(Path::to_path_buf)
        .with_context(|| format!("no repository root (a folder with configs/ and crates/analysis/) at or above {}", start.display()))
}

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `BENCH_RUN`, resolved against the repository root, when set.
fn named_run(root: &Path) -> anyhow::Result<Option<PathBuf>> {
    let Some(value) = std::env::var_os("BENCH_RUN").filter(|v| !v.is_empty()) else { return Ok(None) };
    let dir = root.join(PathBuf::from(value));
    if !dir.join("raw_data").is_dir() {
        bail!("BENCH_RUN={}: not a run directory (no raw_data/ inside)", dir.display());
    }
    println!("Data: run {} (named by BENCH_RUN).", shown(root, &dir));
    Ok(Some(dir))
}

fn shown(root: &Path, dir: &Path) -> String {
    dir.strip_prefix(root).unwrap_or(dir).display().to_string()
}

/// Whether an NVIDIA GPU answers `nvidia-smi -L`.
pub fn gpu_present() -> bool {
    Command::new("nvidia-smi")
        .arg("-L")
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("GPU "))
}

/// The run a notebook analyses: `BENCH_MEASURE=1` measures `gpu_config` (when a GPU is present) or
/// `cpu_config`; else `BENCH_RUN`; else the committed `default_run`. Says which, in the cell.
pub fn run_dir(default_run: &str, gpu_config: &str, cpu_config: &str) -> anyhow::Result<PathBuf> {
    let root = repo_root()?;
    if flag("BENCH_MEASURE") {
        let gpu = gpu_present();
        let config = if gpu { gpu_config } else { cpu_config };
        println!("Data: a fresh measurement (BENCH_MEASURE=1) of {config}, {}.", if gpu { "an NVIDIA GPU is present" } else { "no NVIDIA GPU here" });
        return measure(config);
    }
    if let Some(dir) = named_run(&root)? {
        return Ok(dir);
    }
    let dir = root.join(default_run);
    if !dir.join("raw_data").is_dir() {
        bail!("{}: the committed run this notebook reads is missing (no raw_data/ inside)", dir.display());
    }
    println!("Data: the committed run {default_run} (BENCH_RUN=<run dir> analyses another, BENCH_MEASURE=1 measures a fresh one).");
    Ok(dir)
}

/// A fresh run of `config`, unless `BENCH_RUN` names one to analyse instead.
pub fn fresh_run(config: &str) -> anyhow::Result<PathBuf> {
    let root = repo_root()?;
    if let Some(dir) = named_run(&root)? {
        return Ok(dir);
    }
    println!("Data: a fresh measurement of {config} (BENCH_RUN=<run dir> analyses an earlier one instead).");
    measure(config)
}

fn runner_binary(root: &Path) -> anyhow::Result<PathBuf> {
    let runner = match std::env::var_os("BENCH_RUNNER") {
        Some(p) => root.join(PathBuf::from(p)),
        None => root.join("target/release/benchmark-runner"),
    };
    if !runner.is_file() {
        bail!("{}: the runner is not built; scripts/setup.sh builds it and every CPU engine", runner.display());
    }
    Ok(runner)
}

/// The preset of the synthetic checkpoint a config's `benchmark.model_path` names, when it names one.
pub fn synthetic_preset(config_text: &str) -> Option<(String, &'static str)> {
    let line = config_text.lines().find(|l| l.trim_start().starts_with("model_path:"))?;
    let path = line.trim_start().trim_start_matches("model_path:").split('#').next()?.trim().trim_matches('"').trim_matches('\'');
    let preset = if path.ends_with("llama-3.2-1b-synthetic") {
        "llama-3.2-1b"
    } else if path.ends_with("tiny") {
        "tiny"
    } else {
        return None;
    };
    Some((path.to_string(), preset))
}

/// Runs `<runner> --config <config> --output target/notebook-runs/<config name>-<UTC time>` from the
/// repository root (writing the synthetic checkpoint first when the config names one that is
/// missing) and returns the run directory. The runner's own report (its ranked table) is printed.
pub fn measure(config: &str) -> anyhow::Result<PathBuf> {
    let root = repo_root()?;
    let runner = runner_binary(&root)?;
    let config_path = root.join(config);
    let text = std::fs::read_to_string(&config_path).with_context(|| format!("reading {}", config_path.display()))?;
    if let Some((model, preset)) = synthetic_preset(&text) {
        let model = root.join(model.trim_start_matches("./"));
        if !model.join("model.safetensors").is_file() {
            println!("Writing the synthetic checkpoint {} ({preset}) first.", shown(&root, &model));
            run(Command::new(&runner).current_dir(&root).args(["models", "synth", "--preset", preset, "--out"]).arg(&model))?;
        }
    }
    let name = Path::new(config).file_stem().map_or("run".into(), |s| s.to_string_lossy().to_string());
    let out = root.join("target/notebook-runs").join(format!("{name}-{}", utc_stamp(SystemTime::now())));
    let stdout = run(Command::new(&runner).current_dir(&root).arg("--config").arg(config).arg("--output").arg(&out))?;
    print!("{stdout}");
    println!("Run directory: {}", shown(&root, &out));
    Ok(out)
}

/// Runs a command with no input, its output captured (so nothing reaches the cell's stderr unless
/// it fails); returns its stdout, or an error with the tail of its stderr.
fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let shown_cmd = format!("{cmd:?}");
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("starting {shown_cmd}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{shown_cmd} failed ({}):\n{}", out.status, tail.join("\n"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `YYYYMMDDTHHMMSSZ`, as the scripts name runs.
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps_like_date_u() {
        // date -u -d @0 / @951782400 (leap day 2000) / @1795975899
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(utc_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400)), "20000229T000000Z");
        assert_eq!(utc_stamp(UNIX_EPOCH + Duration::from_secs(1_795_975_899)), "20261129T181139Z");
    }

    #[test]
    fn finds_the_synthetic_checkpoint_a_config_names() {
        let cfg = "benchmark:\n  name: \"x\"\n  model_path: \"./models/llama-3.2-1b-synthetic\"  # written by the runner\n";
        assert_eq!(synthetic_preset(cfg), Some(("./models/llama-3.2-1b-synthetic".into(), "llama-3.2-1b")));
        assert_eq!(synthetic_preset("benchmark:\n  model_path: ./models/tiny\n"), Some(("./models/tiny".into(), "tiny")));
        assert_eq!(synthetic_preset("benchmark:\n  model_path: models/Llama-3.2-1B-Instruct\n"), None);
    }

    #[test]
    fn every_committed_config_parses_for_its_checkpoint() {
        let root = repo_root().unwrap();
        for entry in std::fs::read_dir(root.join("configs")).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            assert!(synthetic_preset(&text).is_some());
        }
    }
}
