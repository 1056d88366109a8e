//! `summary.json`: what a run shows, per engine, rebuilt from raw data at any time.

pub mod assemble;
pub mod schema;

use std::path::Path;

pub use assemble::{assemble, headline_requests};
pub use schema::*;

/// summary.json's text.
pub fn text(summary: &Summary) -> serde_json::Result<String> {
    Ok(serde_json::to_string_pretty(summary)? + "\n")
}

pub fn write(run_dir: &Path, summary: &Summary) -> anyhow::Result<()> {
    let path = run_dir.join("summary.json");
    std::fs::write(&path, text(summary)?).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}
