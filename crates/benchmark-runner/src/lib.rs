//! The benchmark runner: reads a config, drives engines in their own processes over the protocol,
//! and writes the run directory (ARCHITECTURE.md, "The run directory").

pub mod concurrent_load;
pub mod config;
pub mod environment;
pub mod gate;
pub mod host;
pub mod interleaved;
pub mod model_source;
pub mod monitor;
pub mod process;
pub mod prompts;
pub mod provenance;
pub mod registry;
pub mod run;
pub mod run_check;
pub mod sampler;
pub mod stop;
pub mod terminal_table;

use std::path::{Path, PathBuf};

/// The project root: the nearest ancestor of `start` holding `engines/` and `Cargo.toml`
/// (`$BENCH_ROOT` wins), so the runner works from any folder of the checkout.
pub fn project_root(start: &Path) -> PathBuf {
    if let Some(r) = std::env::var_os("BENCH_ROOT") {
        return r.into();
    }
    start.ancestors().find(|d| d.join("engines").is_dir() && d.join("Cargo.toml").is_file()).unwrap_or(start).to_path_buf()
}
