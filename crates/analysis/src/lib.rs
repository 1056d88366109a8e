//! Analysis of run directories. It never runs an engine: everything here is computed from the
//! raw data a run wrote, so any number can be recomputed anywhere from committed data.
//!
//! ```text
//! raw_data/*.jsonl ─► Run ─► requests DataFrame ─► cells (per-cell statistics)
//!                                              ├─► comparisons (tests, Holm, speedups)
//!                                              └─► summary (business figures, tiers, criteria)
//!                                                    └─► summary.json, tables/, plots/
//! ```

pub mod bandwidth;
pub mod cell_figures;
pub mod cells;
pub mod compare;
pub mod cost;
pub mod criteria;
pub mod gpu_state;
pub mod harness_tax;
pub mod model_size;
pub mod host_state;
pub mod over_runs;
pub mod plots;
pub mod probe_parts;
pub mod rank_correlation;
pub mod rederive;
pub mod reproducibility;
pub mod requests;
pub mod roofline;
pub mod run;
pub mod run_diff;
pub mod shared_variation;
pub mod stats;
pub mod summary;
pub mod tiers;

use std::path::{Path, PathBuf};

use polars::prelude::*;
use run_format::engines::{BASELINE, COMPILED_REFERENCE};

pub use run::Run;
pub use summary::Summary;

/// Everything the analysis derives from one run.
pub struct Report {
    pub run: Run,
    /// One row per request (warm-up rows included and flagged).
    pub requests: DataFrame,
    /// The measured values of each cell, per metric of [`requests::METRICS`].
    pub cells: Vec<(cells::CellKey, Vec<Vec<f64>>)>,
    pub cell_metrics: Vec<cells::CellMetric>,
    pub comparisons: Vec<compare::Comparison>,
    pub roofline: Vec<roofline::RooflinePoint>,
    pub summary: Summary,
}

fn polars_err(what: &str) -> impl Fn(PolarsError) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("{what}: {e}")
}

/// Reads a run directory and computes everything (writes nothing).
pub fn analyze(run_dir: &Path) -> anyhow::Result<Report> {
    let run = Run::load(run_dir)?;
    analyze_loaded(run)
}

/// Reads a run and builds its summary (no files written).
pub fn summarize(run_dir: &Path) -> anyhow::Result<Summary> {
    Ok(analyze(run_dir)?.summary)
}

pub fn analyze_loaded(run: Run) -> anyhow::Result<Report> {
    let settings = run.config.analysis.clone();
    let requests = requests::frame(&[&run]).map_err(polars_err("building the requests table"))?;
    let cells = cells::samples(&requests).map_err(polars_err("grouping requests into cells"))?;
    let cell_metrics = cells::describe_all(&cells, &settings);
    let comparisons = compare::compare(&cells, &[BASELINE, COMPILED_REFERENCE], &settings);
    let roofline = roofline::roofline(&run, &cells);
    let summary = summary::assemble(&run, &cell_metrics, &comparisons, &cells);
    Ok(Report { run, requests, cells, cell_metrics, comparisons, roofline, summary })
}

fn to_frame<T: serde::Serialize>(rows: &[T]) -> anyhow::Result<DataFrame> {
    // Serialise through JSON Lines: one generic path from any row type to a typed table.
    let mut buf = Vec::new();
    for r in rows {
        serde_json::to_writer(&mut buf, r)?;
        buf.push(b'\n');
    }
    if rows.is_empty() {
        return Ok(DataFrame::empty());
    }
    let text = String::from_utf8(buf)?;
    // Columns of plain values only (lists such as `runs` become strings).
    let values: Vec<serde_json::Map<String, serde_json::Value>> =
        text.lines().map(|l| serde_json::from_str(l)).collect::<Result<_, _>>()?;
    let names: Vec<String> = values[0].keys().cloned().collect();
    let mut columns = Vec::new();
    for name in names {
        let col: Vec<&serde_json::Value> = values.iter().map(|m| m.get(&name).unwrap_or(&serde_json::Value::Null)).collect();
        let column = if col.iter().all(|v| v.is_null() || v.is_boolean()) && col.iter().any(|v| v.is_boolean()) {
            Column::new(name.as_str().into(), col.iter().map(|v| v.as_bool()).collect::<Vec<Option<bool>>>())
        } else if col.iter().all(|v| v.is_null() || v.is_number()) {
            Column::new(name.as_str().into(), col.iter().map(|v| v.as_f64()).collect::<Vec<Option<f64>>>())
        } else {
            let s: Vec<Option<String>> = col
                .iter()
                .map(|v| match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
                .collect();
            Column::new(name.as_str().into(), s)
        };
        columns.push(column);
    }
    Ok(DataFrame::new_infer_height(columns)?)
}

/// Writes `df` as `<dir>/<name>.csv` and `<dir>/<name>.parquet`.
pub fn write_table(dir: &Path, name: &str, df: &mut DataFrame) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let csv = dir.join(format!("{name}.csv"));
    let parquet = dir.join(format!("{name}.parquet"));
    let mut f = std::fs::File::create(&csv).map_err(|e| anyhow::anyhow!("{}: {e}", csv.display()))?;
    CsvWriter::new(&mut f).finish(df).map_err(polars_err(&csv.display().to_string()))?;
    let f = std::fs::File::create(&parquet).map_err(|e| anyhow::anyhow!("{}: {e}", parquet.display()))?;
    ParquetWriter::new(f).finish(df).map_err(polars_err(&parquet.display().to_string()))?;
    Ok(vec![csv, parquet])
}

/// Writes the derived files of a run into its directory: `summary.json`, `tables/*.{csv,parquet}`
/// and (unless `analysis.generate_plots` is false) `plots/*.svg`. Raw data is never touched.
pub fn write(report: &mut Report) -> anyhow::Result<()> {
    let dir = report.run.dir.clone();
    let tables = dir.join("tables");
    let mut outputs = Vec::new();
    // The per-request table is the raw data again, so only as Parquet (compact, typed).
    std::fs::create_dir_all(&tables)?;
    let requests_path = tables.join("requests.parquet");
    let f = std::fs::File::create(&requests_path).map_err(|e| anyhow::anyhow!("{}: {e}", requests_path.display()))?;
    ParquetWriter::new(f).finish(&mut report.requests).map_err(polars_err("tables/requests.parquet"))?;
    outputs.push(requests_path);
    outputs.extend(write_table(&tables, "cells", &mut cells::frame(&report.cell_metrics)?)?);
    outputs.extend(write_table(&tables, "comparisons", &mut to_frame(&report.comparisons)?)?);
    outputs.extend(write_table(&tables, "roofline", &mut to_frame(&report.roofline)?)?);
    outputs.extend(write_table(&tables, "tiers", &mut to_frame(&report.summary.tiers)?)?);
    outputs.extend(write_table(&tables, "criteria", &mut to_frame(&report.summary.criteria)?)?);
    if report.run.config.analysis.generate_plots {
        let plots = dir.join("plots");
        std::fs::create_dir_all(&plots)?;
        for (name, svg) in plots::all(&report.run, &report.summary, &report.roofline)? {
            let path = plots.join(name);
            std::fs::write(&path, svg).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            outputs.push(path);
        }
    }
    report.summary.outputs = outputs.iter().filter_map(|p| p.strip_prefix(&dir).ok()).map(|p| p.display().to_string()).collect();
    report.summary.outputs.sort();
    summary::write(&dir, &report.summary)
}

/// Several runs of the same config: each analysed on its own, then the spread of every cell's
/// median across them, written to `<out>/reproducibility.{json,csv,parquet}`.
pub struct Reproducibility {
    pub spreads: Vec<reproducibility::Spread>,
    pub per_engine: Vec<reproducibility::EngineReproducibility>,
}

pub fn reproducibility(reports: &[&Report]) -> Reproducibility {
    let settings = reports.first().map(|r| r.run.config.analysis.clone()).unwrap_or_default();
    let all: Vec<cells::CellMetric> = reports.iter().flat_map(|r| r.cell_metrics.iter().cloned()).collect();
    let spreads = reproducibility::spreads(&all, &settings);
    let per_engine = reproducibility::per_engine(&spreads, &settings);
    Reproducibility { spreads, per_engine }
}

/// `reproducibility.json`'s content.
pub fn reproducibility_json(r: &Reproducibility, runs: &[String]) -> serde_json::Value {
    serde_json::json!({ "runs": runs, "per_engine": r.per_engine, "cells": r.spreads })
}

pub fn write_reproducibility(out: &Path, r: &Reproducibility, runs: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let json = reproducibility_json(r, runs);
    let path = out.join("reproducibility.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n").map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    write_table(out, "reproducibility", &mut to_frame(&r.spreads)?)?;
    Ok(())
}
