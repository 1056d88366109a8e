//! `report.html` for a run and `compare.html` for two: each one self-contained page (style,
//! ECharts and data inline, nothing fetched), so it opens from `file://` on a machine with no
//! network. Every value shown comes from the analysis (`analysis::Report`), never recomputed here.
//!
//! ```text
//! analysis::Report ─► charts (ECharts options) ─┐
//!                  ─► tables, flags, provenance ─┴─► page ─► report.html
//! analysis::run_diff::RunDiff ─────────────────────► page ─► compare.html
//! ```

pub mod charts;
pub mod compare_page;
pub mod page;
pub mod provenance;
pub mod tables;

use std::path::{Path, PathBuf};

pub use page::{options_in, Page};

pub const REPORT_FILE: &str = "report.html";

/// The book's methodology chapter, relative to `dir`, when `dir` is inside this repository (a
/// run directory elsewhere gets no link rather than a wrong one).
pub fn methodology_link(dir: &Path) -> Option<String> {
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut up = PathBuf::new();
    for a in abs.ancestors() {
        if a.join("book/methodology.md").is_file() {
            return Some(up.join("book/methodology.md").display().to_string());
        }
        up.push("..");
    }
    None
}

/// The run's dashboard.
pub fn run_page(report: &analysis::Report, methodology: Option<&str>) -> Page {
    let (run, summary) = (&report.run, &report.summary);
    let commit = run.environment.get("git_commit").and_then(|v| v.as_str()).map(|c| &c[..c.len().min(10)]).unwrap_or("unknown commit");
    let gpu = run.gpu_name().unwrap_or_else(|| "no GPU".into());
    let mut page = Page::new(
        &format!("Run {}", run.id),
        &format!(
            "{} engines · {} measured requests · {gpu} · commit {commit}",
            summary.engines.len(),
            run.requests.iter().filter(|r| !r.warmup).count()
        ),
    );
    let flags = tables::flags(run, summary);
    page.section(
        "ranking",
        "Engines, fastest first",
        &format!(
            "<p class=\"note\">Headline figures: the latency scenario's requests, one at a time (the whole run when it has none). \
             Medians with {:.0} % bootstrap intervals; speedups are ratios of medians. {} flag(s) below.</p>{}",
            summary.confidence_level * 100.0,
            flags.len(),
            tables::ranked(summary)
        ),
    );
    page.section("flags", "Flags", &tables::flags_html(&flags));
    page.chart(
        "decode-speed",
        "Decode speed",
        "Hover a box for the median and its interval; click an engine in the legend to hide or show it.",
        charts::decode_speed(summary),
    );
    page.section("cells", "Every cell, per host state", &tables::cells(summary));
    page.chart(
        "latency-distribution",
        "Latency distribution",
        "The share of requests at or below each latency.",
        charts::latency_distribution(run, summary),
    );
    page.chart(
        "throughput",
        "Throughput against batch size",
        "Median output tokens per second of the throughput scenario's cells.",
        charts::throughput_vs_batch(summary),
    );
    page.chart(
        "load",
        "Latency under load",
        "End-to-end latency percentiles of the concurrent scenario's open-loop levels.",
        charts::load_latency(summary),
    );
    page.chart("gpu", "GPU over time", "Drag the slider or scroll inside the chart to zoom.", charts::gpu_timeline(run));
    let host_note = match &summary.host_states {
        Some(h) if h.two_states => format!(
            "The probe read two host states: fast ≤ {:.0} µs (median {:.0} µs), slow median {:.0} µs; {:.0} % of readings slow.",
            h.threshold_us.unwrap_or(f64::NAN),
            h.fast_median_us,
            h.slow_median_us.unwrap_or(f64::NAN),
            h.slow_share * 100.0
        ),
        Some(h) => format!("The probe read one host state (median {:.0} µs).", h.probe_p50_us),
        None => "The run has no host probe readings.".into(),
    };
    page.chart("host", "Host probe over time", &host_note, charts::host_timeline(run));
    page.chart(
        "roofline",
        "Roofline",
        "Each point is a decode phase at one batch size.",
        charts::roofline(&report.roofline, run.copy_bandwidth_gb_s(), run.config.analysis.peak_tflops),
    );
    page.chart(
        "bandwidth",
        "Fraction of bandwidth",
        "Bytes one decoded token moves × decode rate, over the measured copy bandwidth.",
        charts::bandwidth_fraction(summary),
    );
    page.chart(
        "energy",
        "Energy per token",
        "NVML energy over every measured cell, per generated token.",
        charts::energy_per_token(summary),
    );
    page.section("environment", "Environment and provenance", &format!("{}{}", provenance::environment(run), provenance::engines(summary)));
    page.section("config", "Config as run", &provenance::config(run));
    page.section("files", "Raw data and derived files", &provenance::files(&run.dir, methodology));
    page
}

/// Writes `<run>/report.html`, its methodology link `methodology` or the book's chapter in this
/// repository.
pub fn write(report: &analysis::Report, methodology: Option<&str>) -> anyhow::Result<PathBuf> {
    let path = report.run.dir.join(REPORT_FILE);
    let link = methodology.map(String::from).or_else(|| methodology_link(&report.run.dir));
    let html = run_page(report, link.as_deref()).render();
    std::fs::write(&path, html).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(path)
}
