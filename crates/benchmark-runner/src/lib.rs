//! The benchmark runner: reads a config, drives engines in their own processes over the protocol,
//! and writes the run directory (ARCHITECTURE.md, "The run directory").

pub mod config;
pub mod environment;
pub mod gate;
pub mod host;
pub mod interleaved;
pub mod load;
pub mod monitor;
pub mod process;
pub mod prompts;
pub mod provenance;
pub mod registry;
pub mod rng;
pub mod run;
pub mod sampler;
pub mod stop;

// The run directory's record types and the model shape live in the analysis crate, which reads
// what the runner writes; re-exported under their old paths.
pub use analysis::model as checkpoint;
pub use analysis::records;
pub use analysis::summary;

use std::path::{Path, PathBuf};

/// The project root: the nearest ancestor of `start` holding `engines/` and `Cargo.toml`
/// (`$BENCH_ROOT` wins), so the runner works from any folder of the checkout.
pub fn project_root(start: &Path) -> PathBuf {
    if let Some(r) = std::env::var_os("BENCH_ROOT") {
        return r.into();
    }
    start.ancestors().find(|d| d.join("engines").is_dir() && d.join("Cargo.toml").is_file()).unwrap_or(start).to_path_buf()
}
