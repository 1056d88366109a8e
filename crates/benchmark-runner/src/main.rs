use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use benchmark_runner::{config::Config, project_root, provenance, registry::Registry, run, terminal_table};

/// Runs LLM inference engines side by side and writes a run directory of raw measurements.
///
/// Examples:
///   benchmark-runner --config configs/quick-test.yaml --output results/quick-test
///   benchmark-runner --config configs/h200-model-size.yaml --model Llama-3.1-8B-Instruct --output results/8b
///   benchmark-runner models synth --preset tiny --out models/tiny
///   benchmark-runner analyze results/quick-test
#[derive(Parser)]
#[command(version, verbatim_doc_comment, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Benchmark configuration (YAML).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Run directory to create; an existing run is never overwritten.
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Run only these engines of the config (comma-separated), e.g. to spread one config over
    /// several GPUs. The run directory's config.yaml is then the config as run.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    engines: Option<Vec<String>>,
    /// GPU index to run on, instead of the config's `system.gpu_device`.
    #[arg(long, value_name = "N")]
    gpu: Option<u32>,
    /// Checkpoint directory or model name to run, instead of the config's `benchmark.model_path`
    /// (one config over several model sizes: `--model Llama-3.1-8B-Instruct`).
    #[arg(long, value_name = "NAME_OR_DIR")]
    model: Option<String>,
    /// Continue an interrupted run at its first unfinished cell, with its own config.yaml (same
    /// commit required). Nothing it measured is rewritten.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "output", "engines", "gpu", "model"])]
    resume: Option<PathBuf>,
    /// Run from a checkout with uncommitted changes; the run directory then keeps `git.diff`.
    /// Without it a dirty tree is refused: a reference run must name the code it measured.
    #[arg(long)]
    allow_dirty: bool,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Checkpoints.
    Models {
        #[command(subcommand)]
        command: ModelsCmd,
    },
    /// Rebuild summary.json, tables/, plots/ and report.html of each run from its raw data and print its table.
    /// With several runs and --reproducibility, also the spread of every cell's median across them.
    Analyze {
        /// Run directories (results/<run>).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Folder for reproducibility.{json,csv,parquet} across the runs given.
        #[arg(long, value_name = "DIR")]
        reproducibility: Option<PathBuf>,
        /// Folder for over_runs.json: per engine and cell, the median over the runs given with a
        /// hierarchical bootstrap interval (runs, then requests) and the spread across runs.
        #[arg(long, value_name = "DIR")]
        over_runs: Option<PathBuf>,
        /// Pool runs of different commits, checkpoints or configs (refused otherwise).
        #[arg(long)]
        allow_mixed: bool,
    },
    /// Write report.html of each run from its raw data, touching no other file (the book does this
    /// for every committed run).
    Report {
        #[arg(required = true, value_name = "RUN_DIR")]
        runs: Vec<PathBuf>,
        /// Where the methodology link points (default: the book chapter in this repository).
        #[arg(long, value_name = "URL")]
        methodology: Option<String>,
    },
    /// Compare two runs cell by cell: the change of decode speed, TTFT and latency with an
    /// interval, Mann-Whitney with Holm's correction, and a verdict against a noise threshold.
    /// Writes compare.json and compare.html; exits 1 when a figure regressed significantly
    /// beyond the threshold (a CI guard, like criterion's saved baselines).
    Compare {
        #[arg(value_name = "BASE")]
        base: PathBuf,
        #[arg(value_name = "NEW")]
        new: PathBuf,
        /// The relative change that counts as more than noise, for every row (0.05 = 5 %).
        #[arg(long, value_name = "FRACTION")]
        threshold: Option<f64>,
        /// An over-runs folder or file (analyze --over-runs): each cell's threshold is then twice
        /// its between-run CV of decode speed.
        #[arg(long, value_name = "PATH", conflicts_with = "threshold")]
        noise: Option<PathBuf>,
        /// Folder for compare.json and compare.html (default: NEW/compare-BASE).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// The same engines at several model sizes (one model per run): batch-1 decode rate, time per
    /// token, share of copy bandwidth, host sensitivity and rank per size, and whether the ranking
    /// changes. Prints the table; with --out, writes model_size.{json,md} there (`rederive` then
    /// keeps them up to date).
    ModelSize {
        #[arg(required = true, value_name = "RUN_DIR")]
        runs: Vec<PathBuf>,
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Write every derived file of a results folder again from raw data: each run's summary.json,
    /// tables/ and plots/, and each folder pooling runs (over runs, reproducibility). `git diff`
    /// then shows whether any committed figure moved.
    Rederive {
        #[arg(default_value = "results")]
        results: PathBuf,
    },
    /// Print, as a Markdown table, each engine's batch-1 latency figures against its plain path (the
    /// upstream library called directly: RUN_DIR/plain_paths.jsonl, written by the engines'
    /// plain-path programs in the same GPU session); a folder without raw_data/ holds the plain
    /// path alone and gets its columns only.
    HarnessTax {
        #[arg(value_name = "RUN_DIR")]
        run: PathBuf,
    },
    /// Validate a configuration without running anything (--config FILE), or check a finished run
    /// the way a reviewer would (RUN_DIR): no failures, the gate passed, every scenario measured,
    /// timings consistent, host probes and blocks complete, summary.json what its raw data gives.
    Check {
        #[arg(long, value_name = "FILE", conflicts_with = "run", required_unless_present = "run")]
        config: Option<PathBuf>,
        #[arg(value_name = "RUN_DIR")]
        run: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ModelsCmd {
    /// Write a Llama-3 checkpoint with seeded random weights (no download needed).
    Synth {
        /// `llama-3.2-1b` (2.47 GB), `llama-3.2-3b` (6.4 GB, 2 shards), `llama-3.1-8b` (16.1 GB, 4
        /// shards): the real models' shapes; `tiny`: toy size, for CPU tests.
        #[arg(long)]
        preset: model_synth::Preset,
        /// Folder to write (created if needed).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Same seed, same bytes.
        #[arg(long, default_value_t = model_synth::DEFAULT_SEED)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = project_root(&std::env::current_dir()?);
    let registry = Registry::builtin();
    match cli.command {
        Some(Cmd::Models { command: ModelsCmd::Synth { preset, out, seed } }) => {
            let started = std::time::Instant::now();
            let files = model_synth::synthesize(preset, seed, &out)?;
            eprintln!("wrote {} files to {} in {:.1} s", files.len(), out.display(), started.elapsed().as_secs_f64());
            Ok(())
        }
        Some(Cmd::Analyze { runs, reproducibility, over_runs, allow_mixed }) => {
            let mut reports = Vec::new();
            for run in &runs {
                let started = std::time::Instant::now();
                let mut report = analysis::analyze(run)?;
                analysis::write(&mut report)?;
                let page = html_report::write(&report, None)?;
                print!("{}", terminal_table::table(&report.summary));
                eprintln!("{}: report in {}", run.display(), page.display());
                eprintln!("{}: analysed {} requests in {:.2} s", run.display(), report.run.requests.len(), started.elapsed().as_secs_f64());
                reports.push(report);
            }
            if let Some(out) = reproducibility {
                let r = analysis::reproducibility(&reports.iter().collect::<Vec<_>>());
                let ids: Vec<String> = reports.iter().map(|r| r.run.dir.display().to_string()).collect();
                analysis::write_reproducibility(&out, &r, &ids)?;
                for e in &r.per_engine {
                    eprintln!(
                        "{}: {}/{} decode cells within {:.0} % across runs (worst {:.1} %)",
                        e.engine,
                        e.cells_within_limit,
                        e.cells,
                        e.limit * 100.0,
                        e.worst_relative_range * 100.0
                    );
                }
            }
            if let Some(out) = over_runs {
                let runs: Vec<&analysis::Run> = reports.iter().map(|r| &r.run).collect();
                let o = analysis::over_runs::over_runs(&runs, allow_mixed)?;
                analysis::over_runs::write(&out, &o)?;
                print!("{}", analysis::over_runs::table(&o));
            }
            Ok(())
        }
        Some(Cmd::Rederive { results }) => {
            let started = std::time::Instant::now();
            let done = analysis::rederive::rederive(&results)?;
            for (d, files) in &done {
                eprintln!("{}: {files} files", d.dir().display());
            }
            eprintln!("re-derived {} folders of {} in {:.1} s", done.len(), results.display(), started.elapsed().as_secs_f64());
            Ok(())
        }
        Some(Cmd::Report { runs, methodology }) => {
            for run in &runs {
                let started = std::time::Instant::now();
                let report = analysis::analyze(run)?;
                let path = html_report::write(&report, methodology.as_deref())?;
                let kb = std::fs::metadata(&path).map(|m| m.len() / 1024).unwrap_or(0);
                eprintln!("{}: {kb} KB in {:.2} s", path.display(), started.elapsed().as_secs_f64());
            }
            Ok(())
        }
        Some(Cmd::Compare { base, new, threshold, noise, out }) => {
            if let Some(t) = threshold {
                anyhow::ensure!(t.is_finite() && t >= 0.0, "--threshold {t}: give a fraction such as 0.05");
            }
            let noise = match noise {
                None => None,
                Some(p) => {
                    let file = if p.is_dir() { p.join("over_runs.json") } else { p };
                    let text = std::fs::read_to_string(&file).with_context(|| format!("--noise: reading {}", file.display()))?;
                    let json: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("--noise: {}", file.display()))?;
                    let cvs = analysis::run_diff::between_run_cv(&json);
                    anyhow::ensure!(
                        !cvs.is_empty(),
                        "--noise: {} lists no cell with a between-run CV (cells[].decode_tok_per_s.cv)",
                        file.display()
                    );
                    Some((file.display().to_string(), cvs))
                }
            };
            let (b, n) = (analysis::analyze(&base)?, analysis::analyze(&new)?);
            let d = analysis::run_diff::diff(&b, &n, threshold, noise)?;
            let out = out.unwrap_or_else(|| new.join(format!("compare-{}", b.run.id)));
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            std::fs::write(out.join("compare.json"), serde_json::to_string_pretty(&d)? + "\n")
                .with_context(|| format!("writing {}", out.join("compare.json").display()))?;
            std::fs::write(out.join("compare.html"), html_report::compare_page::page(&d).render())
                .with_context(|| format!("writing {}", out.join("compare.html").display()))?;
            print!("{}", analysis::run_diff::table(&d));
            eprintln!("compare.json and compare.html in {}", out.display());
            anyhow::ensure!(d.regressed == 0, "{} figure(s) regressed beyond the noise threshold", d.regressed);
            Ok(())
        }
        Some(Cmd::ModelSize { runs, out }) => {
            let m = analysis::model_size::of_dirs(&runs)?;
            print!("{}", analysis::model_size::table(&m));
            if let Some(out) = out {
                analysis::model_size::write(&out, &m)?;
                eprintln!("model_size.json and model_size.md in {}", out.display());
            }
            Ok(())
        }
        Some(Cmd::HarnessTax { run }) => {
            print!("{}", analysis::harness_tax::of_dir(&run)?);
            Ok(())
        }
        Some(Cmd::Check { config: Some(config), .. }) => {
            Config::load(&config, &root, &registry)?;
            eprintln!("{}: ok", config.display());
            Ok(())
        }
        Some(Cmd::Check { run: Some(run), .. }) => match benchmark_runner::run_check::check(&run)? {
            Ok(line) => {
                println!("{}: {line}", run.display());
                Ok(())
            }
            Err(problems) => {
                for p in &problems {
                    println!("{}: {p}", run.display());
                }
                anyhow::bail!("{}: {} problems", run.display(), problems.len())
            }
        },
        Some(Cmd::Check { .. }) => anyhow::bail!("give --config FILE or RUN_DIR"),
        None => {
            benchmark_runner::stop::install_signal_handlers().context("installing the Ctrl-C / SIGTERM handlers")?;
            let (ended, output) = if let Some(output) = cli.resume {
                let config = output.join("config.yaml");
                let cfg = Config::load(&config, &root, &registry)?;
                provenance::check_resume(&root, &output, cli.allow_dirty)?;
                (run::resume(&cfg, &registry, &run::RunPaths { root, output: output.clone() })?, output)
            } else {
                let (Some(config), Some(output)) = (cli.config, cli.output) else {
                    anyhow::bail!("give --config FILE and --output DIR, or --resume RUN_DIR (or a subcommand; see --help)");
                };
                let mut cfg = Config::load_with_model(&config, &root, &registry, cli.model.as_deref())?;
                let mut text = std::fs::read_to_string(&config).with_context(|| format!("reading {}", config.display()))?;
                if cli.engines.is_some() || cli.gpu.is_some() || cli.model.is_some() {
                    text = cfg.restrict(&config, cli.engines.as_deref(), cli.gpu)?;
                }
                let diff = provenance::check_clean(&root, cli.allow_dirty)?;
                if let Some(diff) = diff.filter(|_| !output.join("raw_data").exists()) {
                    std::fs::create_dir_all(&output).with_context(|| format!("creating {}", output.display()))?;
                    std::fs::write(output.join("git.diff"), diff).context("writing git.diff")?;
                }
                let paths = run::RunPaths { root, output: output.clone() };
                (run::execute(&cfg, &text, &registry, &paths)?, output)
            };
            let mut report = analysis::analyze(&output)?;
            analysis::write(&mut report)?;
            let page = html_report::write(&report, None)?;
            print!("{}", terminal_table::table(&report.summary));
            match ended {
                run::Ended::Finished => eprintln!("run directory: {} (open {})", output.display(), page.display()),
                run::Ended::Interrupted => {
                    eprintln!("interrupted: what was measured is kept and summarised; continue with --resume {}", output.display());
                    return Err(anyhow::anyhow!("the run was interrupted"));
                }
            }
            Ok(())
        }
    }
}
