use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use benchmark_runner::{config::Config, project_root, registry::Registry, run, summary};

/// Runs LLM inference engines side by side and writes a run directory of raw measurements.
///
/// Examples:
///   benchmark-runner --config configs/quick-test.yaml --output results/quick-test
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
    /// Rebuild summary.json from a run's raw data and print the table.
    Analyze {
        /// A run directory (results/<run>).
        run: PathBuf,
    },
    /// Validate a configuration without running anything.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum ModelsCmd {
    /// Write a Llama-3 checkpoint with seeded random weights (no download needed).
    Synth {
        /// `llama-3.2-1b` (the real shapes, 2.47 GB) or `tiny` (toy size, for CPU tests).
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
        Some(Cmd::Analyze { run }) => {
            let s = summary::build(&run)?;
            summary::write(&run, &s)?;
            print!("{}", summary::table(&s));
            Ok(())
        }
        Some(Cmd::Check { config }) => {
            Config::load(&config, &root, &registry)?;
            eprintln!("{}: ok", config.display());
            Ok(())
        }
        None => {
            let (Some(config), Some(output)) = (cli.config, cli.output) else {
                anyhow::bail!("give --config FILE and --output DIR (or a subcommand; see --help)");
            };
            let cfg = Config::load(&config, &root, &registry)?;
            let text = std::fs::read_to_string(&config).with_context(|| format!("reading {}", config.display()))?;
            run::execute(&cfg, &text, &registry, &run::RunPaths { root, output: output.clone() })?;
            let s = summary::build(&output)?;
            summary::write(&output, &s)?;
            print!("{}", summary::table(&s));
            eprintln!("run directory: {}", output.display());
            Ok(())
        }
    }
}
