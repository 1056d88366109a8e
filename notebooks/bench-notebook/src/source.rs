//! Which run directory a notebook reads.
//!
//! | environment | what the notebook analyses |
//! |---|---|
//! | nothing set | the committed run the notebook names (its `DEFAULT_RUN` constant) |
//! | `BENCH_RUN=<dir>` | that run (relative to the repository root, or absolute) |
//! | `BENCH_MEASURE=1` | a fresh run of the notebook's config, under `target/notebook-runs/` |
//!
//! A run may be spread over the GPUs of one machine, one runner per GPU, each writing its own
//! directory `<run>-gpu0`, `<run>-gpu1`, … (`scripts/gpu-run.sh`). [`run_dirs`] and [`expand_run`]
//! take either form: `results/h200-4` stands for every `results/h200-4-gpuN` there is (in GPU
//! order), and a run directory itself for just that one. Each half has its own baseline on its own
//! GPU, so a notebook analyses each directory on its own: comparisons hold within one half.
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

/// The run directories `name` stands for, relative to `root` (or absolute): `name` itself when it
/// is a run directory (it has `raw_data/`), else every `<name>-gpuN` beside it that is one, in
/// the order of N. An error names the path when there is neither.
pub fn expand_run(root: &Path, name: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = root.join(name);
    if dir.join("raw_data").is_dir() {
        return Ok(vec![dir]);
    }
    let stem = dir.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let parent = dir.parent().unwrap_or(root);
    let mut halves: Vec<(u64, PathBuf)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(parent) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().to_string();
            let Some(gpu) = file.strip_prefix(&stem).and_then(|rest| rest.strip_prefix("-gpu")) else { continue };
            let Ok(n) = gpu.parse::<u64>() else { continue };
            if !stem.is_empty() && entry.path().join("raw_data").is_dir() {
                halves.push((n, entry.path()));
            }
        }
    }
    halves.sort();
    if halves.is_empty() {
        let what = if dir.is_dir() { "not a run directory (no raw_data/ inside)" } else { "no such run directory" };
        bail!("{}: {what}, and no run spread over GPUs there either (no {stem}-gpu0, {stem}-gpu1, … with raw_data/ beside it)", dir.display());
    }
    Ok(halves.into_iter().map(|(_, p)| p).collect())
}

/// The GPU a run directory was measured on: `system.gpu_device` of its `config.yaml` (the config
/// as run), when it names one.
pub fn run_gpu(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("config.yaml")).ok()?;
    let mut in_system = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            in_system = line.trim_end() == "system:";
            continue;
        }
        if in_system {
            if let Some(v) = line.trim().strip_prefix("gpu_device:") {
                return v.split('#').next()?.trim().parse().ok();
            }
        }
    }
    None
}

/// `BENCH_RUN`, resolved against the repository root and expanded, when set.
fn named_runs(root: &Path) -> anyhow::Result<Option<Vec<PathBuf>>> {
    let Some(value) = std::env::var_os("BENCH_RUN").filter(|v| !v.is_empty()) else { return Ok(None) };
    let dirs = expand_run(root, Path::new(&value)).with_context(|| format!("BENCH_RUN={}", value.to_string_lossy()))?;
    println!("Data: {} (named by BENCH_RUN).", described(root, &dirs));
    Ok(Some(dirs))
}

/// `run h` or `the run spread over 2 GPUs: a, b`.
fn described(root: &Path, dirs: &[PathBuf]) -> String {
    match dirs {
        [one] => format!("run {}", shown(root, one)),
        many => format!("run spread over {} GPUs, one directory each: {}", many.len(), many.iter().map(|d| shown(root, d)).collect::<Vec<_>>().join(", ")),
    }
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

/// The run directories a notebook analyses: `BENCH_MEASURE=1` measures `gpu_config` (when a GPU is
/// present) or `cpu_config`; else `BENCH_RUN`; else the committed `default_run`. Either of the last
/// two may name a run directory or the stem of a run spread over GPUs ([`expand_run`]). Says
/// which, in the cell.
pub fn run_dirs(default_run: &str, gpu_config: &str, cpu_config: &str) -> anyhow::Result<Vec<PathBuf>> {
    let root = repo_root()?;
    if flag("BENCH_MEASURE") {
        let gpu = gpu_present();
        let config = if gpu { gpu_config } else { cpu_config };
        println!("Data: a fresh measurement (BENCH_MEASURE=1) of {config}, {}.", if gpu { "an NVIDIA GPU is present" } else { "no NVIDIA GPU here" });
        return Ok(vec![measure(config)?]);
    }
    if let Some(dirs) = named_runs(&root)? {
        return Ok(dirs);
    }
    let dirs = expand_run(&root, Path::new(default_run)).context("the committed run this notebook reads is missing")?;
    println!("Data: the committed {} (BENCH_RUN=<run> analyses another, BENCH_MEASURE=1 measures a fresh one).", described(&root, &dirs));
    Ok(dirs)
}

/// Like [`run_dirs`], for a notebook that reads exactly one run directory.
pub fn run_dir(default_run: &str, gpu_config: &str, cpu_config: &str) -> anyhow::Result<PathBuf> {
    one(run_dirs(default_run, gpu_config, cpu_config)?)
}

fn one(mut dirs: Vec<PathBuf>) -> anyhow::Result<PathBuf> {
    if dirs.len() != 1 {
        bail!("this notebook reads one run directory, and {} were named: {}", dirs.len(), dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    Ok(dirs.remove(0))
}

/// A fresh run of `config`, unless `BENCH_RUN` names one to analyse instead.
pub fn fresh_run(config: &str) -> anyhow::Result<PathBuf> {
    let root = repo_root()?;
    if let Some(dirs) = named_runs(&root)? {
        return one(dirs);
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

/// Runs `<runner> --config <config> --output target/notebook-runs/<config name>-<UTC time>` from the
/// repository root (the runner writes a synthetic checkpoint first when the config names a model
/// with none under models/) and returns the run directory. The runner's own report (its ranked
/// table) is printed.
pub fn measure(config: &str) -> anyhow::Result<PathBuf> {
    let root = repo_root()?;
    let runner = runner_binary(&root)?;
    let name = Path::new(config).file_stem().map_or("run".into(), |s| s.to_string_lossy().to_string());
    let out = root.join("target/notebook-runs").join(format!("{name}-{}", utc_stamp(SystemTime::now())));
    let stdout = run(Command::new(&runner).current_dir(&root).arg("--config").arg(config).arg("--output").arg(&out).arg("--allow-dirty"))?;
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

    /// A scratch folder of empty run directories (a `raw_data/` each) under the system's temp dir.
    fn scratch(name: &str, runs: &[&str]) -> PathBuf {
        let root = std::env::temp_dir().join(format!("bench-notebook-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for r in runs {
            std::fs::create_dir_all(root.join(r).join("raw_data")).unwrap();
        }
        root
    }

    #[test]
    fn a_run_spread_over_gpus_expands_in_gpu_order() {
        let root = scratch("expand", &["results/r-1-gpu0", "results/r-1-gpu1", "results/r-1-gpu10", "results/r-1-gpu2", "results/r-10-gpu0", "results/plain"]);
        // Not a half: no raw_data/ inside, or not -gpuN.
        std::fs::create_dir_all(root.join("results/r-1-gpu3")).unwrap();
        std::fs::create_dir_all(root.join("results/r-1-gpux/raw_data")).unwrap();
        let names = |dirs: Vec<PathBuf>| dirs.iter().map(|d| d.strip_prefix(&root).unwrap().display().to_string()).collect::<Vec<_>>();
        assert_eq!(names(expand_run(&root, Path::new("results/r-1")).unwrap()), ["results/r-1-gpu0", "results/r-1-gpu1", "results/r-1-gpu2", "results/r-1-gpu10"]);
        // One half named itself, or a plain run: that directory alone.
        assert_eq!(names(expand_run(&root, Path::new("results/r-1-gpu1")).unwrap()), ["results/r-1-gpu1"]);
        assert_eq!(names(expand_run(&root, Path::new("results/plain")).unwrap()), ["results/plain"]);
        // An absolute path works as well.
        assert_eq!(expand_run(Path::new("/nowhere"), &root.join("results/r-10")).unwrap(), vec![root.join("results/r-10-gpu0")]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_missing_run_is_an_error_naming_its_path() {
        let root = scratch("missing", &["results/r-1-gpu0"]);
        std::fs::create_dir_all(root.join("results/empty")).unwrap();
        let err = expand_run(&root, Path::new("results/r-2")).unwrap_err().to_string();
        assert!(err.contains(&root.join("results/r-2").display().to_string()), "{err}");
        assert!(err.contains("no such run directory") && err.contains("r-2-gpu0"), "{err}");
        let err = expand_run(&root, Path::new("results/empty")).unwrap_err().to_string();
        assert!(err.contains("results/empty: not a run directory (no raw_data/ inside)"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn committed_reference_runs_expand_to_their_halves() {
        let root = repo_root().unwrap();
        let dirs = expand_run(&root, Path::new("results/h200-2")).unwrap();
        assert_eq!(dirs, vec![root.join("results/h200-2-gpu0"), root.join("results/h200-2-gpu1")]);
        assert_eq!(dirs.iter().map(|d| run_gpu(d)).collect::<Vec<_>>(), [Some(0), Some(1)]);
        assert_eq!(expand_run(&root, Path::new("results/h200-check-1")).unwrap(), vec![root.join("results/h200-check-1")]);
    }
}
