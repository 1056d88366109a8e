//! What the notebooks under `notebooks/` share, so that their cells stay a few lines long:
//!
//! - [`source`]: which run a notebook analyses: a committed run by default, another one named by
//!   `BENCH_RUN`, or a fresh measurement (`BENCH_MEASURE=1`) made by the release runner binary; a
//!   run spread over several GPUs (`<run>-gpu0`, `<run>-gpu1`, …) is named by its stem and read
//!   as one directory per GPU ([`run_dirs`]);
//! - [`coverage`]: the cells a run's config planned against those its raw data records (a runner
//!   stopped part-way leaves some with no record at all);
//! - [`run_info`]: the machine a run was measured on, and the model shape of older runs;
//! - [`show`]: HTML tables and SVG charts in a cell, through evcxr's `EVCXR_BEGIN_CONTENT` protocol
//!   (several in one cell joined by [`Outputs`]), and the formatting of figures with their intervals.
//!
//! Every figure comes from the `analysis` crate; nothing here computes a statistic, and nothing
//! here measures: a measurement is the runner's, in its own processes, exactly as on the command line.

pub mod coverage;
pub mod run_info;
pub mod show;
pub mod source;

pub use coverage::{coverage, Coverage};
pub use run_info::{environment_table, fill_synthetic_shape, halves_table};
pub use show::{gate, gb, html, interval, num, pvalue, ratio, svg, with_interval, Outputs, Table};
pub use source::{expand_run, fresh_run, measure, repo_root, run_dir, run_dirs, run_gpu};
