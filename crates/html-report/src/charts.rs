//! The report's interactive charts, each built from the analysis's figures (never re-derived
//! here): the data in a chart is the data in summary.json, or the raw samples it summarises.
//! A chart a run has no data for is an `Err` naming what is missing; the page says so.

use charming::component::{Axis, DataZoom, Grid, Legend, Title};
use charming::element::{AxisType, Color, ItemStyle, LineStyle, NameLocation, Step, Tooltip, Trigger};
use charming::series::{Bar, Boxplot, Line, Scatter};
use charming::Chart;

use analysis::plots::engine_colour;
use analysis::roofline::RooflinePoint;
use analysis::summary::{headline_requests, Summary};
use analysis::Run;
use run_format::records::LoadLevel;

/// At most this many points per engine in a distribution, and per series in a timeline: enough
/// to read, small enough that a long run's report stays a few megabytes.
pub const DISTRIBUTION_POINTS: usize = 200;
pub const TIMELINE_POINTS: usize = 1500;

pub type Built = Result<Chart, String>;

pub fn colour(engine: &str) -> String {
    let c = engine_colour(engine);
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

fn styled(engine: &str) -> ItemStyle {
    ItemStyle::new().color(Color::from(colour(engine).as_str()))
}

fn base(title: &str) -> Chart {
    Chart::new()
        .title(Title::new().text(title).left("center").text_style(charming::element::TextStyle::new().font_size(14)))
        .legend(Legend::new().top(28).type_(charming::component::LegendType::Scroll))
        .animation(false)
}

fn value_axis(name: &str) -> Axis {
    Axis::new().type_(AxisType::Value).name(name).name_location(NameLocation::Middle).name_gap(40).scale(true)
}

fn log_axis(name: &str) -> Axis {
    Axis::new().type_(AxisType::Log).name(name).name_location(NameLocation::Middle).name_gap(30)
}

/// The points of a sorted sample's empirical distribution: at most `max` (value, fraction ≤ it),
/// always including the smallest and largest value.
pub fn ecdf(sorted: &[f64], max: usize) -> Vec<[f64; 2]> {
    let n = sorted.len();
    if n == 0 {
        return vec![];
    }
    let step = n.div_ceil(max.max(2) - 1).max(1);
    let mut idx: Vec<usize> = (0..n).step_by(step).collect();
    if *idx.last().unwrap() != n - 1 {
        idx.push(n - 1);
    }
    idx.into_iter().map(|i| [sorted[i], (i + 1) as f64 / n as f64]).collect()
}

/// Request latency of the headline requests, as one distribution per engine.
pub fn latency_distribution(run: &Run, summary: &Summary) -> Built {
    let mut chart = base("Request latency, headline requests (empirical distribution)")
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .x_axis(log_axis("request latency, prompt + all new tokens (ms, log scale)"))
        .y_axis(value_axis("fraction of requests ≤ x").min(0).max(1));
    let mut any = false;
    for e in &summary.engines {
        let mut xs: Vec<f64> = headline_requests(run, &e.name).iter().map(|r| r.total_ns as f64 / 1e6).collect();
        if xs.is_empty() {
            continue;
        }
        xs.sort_by(f64::total_cmp);
        let pts: Vec<Vec<f64>> = ecdf(&xs, DISTRIBUTION_POINTS).into_iter().map(|p| p.to_vec()).collect();
        chart = chart.series(Line::new().name(e.name.as_str()).step(Step::End).show_symbol(false).item_style(styled(&e.name)).data(pts));
        any = true;
    }
    if any {
        Ok(chart)
    } else {
        Err("no measured latency requests".into())
    }
}

/// The label of a latency / throughput cell on a category axis.
pub fn cell_label(workload: &str, batch: usize, prompt: usize) -> String {
    format!("{workload} · batch {batch} · prompt {prompt}")
}

/// Median decode rate with its interval, per engine and headline cell (never pooled across
/// prompt lengths). A box spans the interval, its bar is the median; no box: fewer than 5 values.
pub fn decode_speed(summary: &Summary) -> Built {
    let cells: Vec<&analysis::cell_figures::CellFigures> = summary.cells.iter().filter(|c| c.scenario == "latency").collect();
    let cells = if cells.is_empty() { summary.cells.iter().collect() } else { cells };
    let mut labels: Vec<String> = Vec::new();
    for c in &cells {
        let l = cell_label(&c.workload, c.batch_size, c.prompt_tokens);
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    if labels.is_empty() {
        return Err("no latency or throughput cell was measured".into());
    }
    let mut chart = base("Decode speed per cell: median and its interval")
        .tooltip(Tooltip::new().trigger(Trigger::Item))
        .x_axis(Axis::new().type_(AxisType::Category).data(labels.clone()))
        .y_axis(value_axis("decode tok/s (one request at a time)"));
    for e in &summary.engines {
        let data: Vec<Vec<f64>> = labels
            .iter()
            .map(|l| {
                cells
                    .iter()
                    .find(|c| c.engine == e.name && &cell_label(&c.workload, c.batch_size, c.prompt_tokens) == l)
                    .and_then(|c| c.decode_tok_per_s.all.as_ref())
                    .map(|m| {
                        let [lo, hi] = m.ci95.unwrap_or([m.median, m.median]);
                        vec![lo, lo, m.median, hi, hi]
                    })
                    .unwrap_or_default()
            })
            .collect();
        if data.iter().all(|d| d.is_empty()) {
            continue;
        }
        chart = chart.series(
            Boxplot::new()
                .name(e.name.as_str())
                .item_style(ItemStyle::new().color(Color::from("#ffffff")).border_color(colour(&e.name).as_str()).border_width(2))
                .tooltip(Tooltip::new().formatter("@interval"))
                .data(data),
        );
    }
    Ok(chart)
}

/// Output tokens per second against batch size, one line per engine and prompt length.
pub fn throughput_vs_batch(summary: &Summary) -> Built {
    let mut chart = base("Throughput against batch size (median output tok/s)")
        .tooltip(Tooltip::new().trigger(Trigger::Item))
        .x_axis(log_axis("batch size (log scale)").log_base(2))
        .y_axis(value_axis("output tok/s"));
    let mut any = false;
    for e in &summary.engines {
        let mut prompts: Vec<usize> = e.scenarios.throughput.iter().map(|p| p.prompt_tokens).collect();
        prompts.sort();
        prompts.dedup();
        for prompt in prompts {
            let mut pts: Vec<Vec<f64>> = e
                .scenarios
                .throughput
                .iter()
                .filter(|p| p.prompt_tokens == prompt)
                .filter_map(|p| Some(vec![p.batch_size as f64, p.output_tok_per_s.as_ref()?.median]))
                .collect();
            pts.sort_by(|a, b| a[0].total_cmp(&b[0]));
            if pts.is_empty() {
                continue;
            }
            let name = format!("{} · prompt {prompt}", e.name);
            chart = chart.series(Line::new().name(name.as_str()).item_style(styled(&e.name)).data(pts));
            any = true;
        }
    }
    if any {
        Ok(chart)
    } else {
        Err("the run has no throughput scenario".into())
    }
}

/// The offered load of a level, as a number for the x axis: requests per second (open loop) or
/// users (closed loop).
fn load_x(level: &LoadLevel) -> f64 {
    match level {
        LoadLevel::Open { rate_per_s } => *rate_per_s,
        LoadLevel::Closed { users } => *users as f64,
    }
}

/// End-to-end latency p50 and p99 against offered load, per engine (open-loop levels).
pub fn load_latency(summary: &Summary) -> Built {
    let mut chart = base("Latency against offered load (open loop): p50 solid, p99 dashed")
        .tooltip(Tooltip::new().trigger(Trigger::Item))
        .x_axis(value_axis("offered load (requests/s)"))
        .y_axis(log_axis("end-to-end latency (ms, log scale)"));
    let mut any = false;
    for e in &summary.engines {
        let open: Vec<&analysis::summary::LoadPoint> =
            e.scenarios.load.iter().filter(|p| matches!(p.level, LoadLevel::Open { .. })).collect();
        for (label, pick, dashed) in [("p50", 0, false), ("p99", 2, true)] {
            let mut pts: Vec<Vec<f64>> = open
                .iter()
                .filter_map(|p| {
                    let q = p.e2e_ms.as_ref()?;
                    Some(vec![load_x(&p.level), [q.p50, q.p90, q.p99][pick]])
                })
                .collect();
            pts.sort_by(|a, b| a[0].total_cmp(&b[0]));
            if pts.is_empty() {
                continue;
            }
            let style = LineStyle::new().type_(if dashed {
                charming::element::LineStyleType::Dashed
            } else {
                charming::element::LineStyleType::Solid
            });
            let name = format!("{} {label}", e.name);
            chart = chart.series(Line::new().name(name.as_str()).item_style(styled(&e.name)).line_style(style).data(pts));
            any = true;
        }
    }
    if any {
        Ok(chart)
    } else {
        Err("the run has no open-loop load levels".into())
    }
}

/// Every `every`-th item, so at most `max` are kept.
fn thin<T>(items: &[T], max: usize) -> impl Iterator<Item = &T> {
    items.iter().step_by(items.len().div_ceil(max.max(1)).max(1))
}

/// Grids stacked in one chart that share a time axis and its zoom.
fn stacked(title: &str, panels: &[&str]) -> Chart {
    let mut chart = base(title).tooltip(Tooltip::new().trigger(Trigger::Axis));
    let h = 70.0 / panels.len() as f64;
    let axes: Vec<f64> = (0..panels.len()).map(|i| i as f64).collect();
    for (i, name) in panels.iter().enumerate() {
        let top = 12.0 + i as f64 * (h + 4.0);
        chart = chart
            .grid(Grid::new().left(70).right(30).top(format!("{top}%")).height(format!("{}%", h - 4.0)))
            .x_axis(
                Axis::new()
                    .type_(AxisType::Value)
                    .grid_index(i as f64)
                    .scale(true)
                    .name(if i + 1 == panels.len() { "seconds since the run's first sample" } else { "" })
                    .name_location(NameLocation::Middle)
                    .name_gap(25),
            )
            .y_axis(value_axis(name).grid_index(i as f64).name_gap(50));
    }
    chart
        .data_zoom(DataZoom::new().type_(charming::component::DataZoomType::Inside).x_axis_index(axes.clone()))
        .data_zoom(DataZoom::new().type_(charming::component::DataZoomType::Slider).x_axis_index(axes).bottom(4))
}

/// GPU power, utilisation and SM clock over the run, coloured by the engine that held the GPU.
pub fn gpu_timeline(run: &Run) -> Built {
    if run.monitor.is_empty() {
        return Err("no NVML samples (the run had no GPU, or NVML was unavailable)".into());
    }
    let t0 = run.monitor[0].unix_ms;
    let mut chart = stacked("GPU over the run (NVML samples)", &["power (W)", "utilisation (%)", "SM clock (MHz)"]);
    let mut tags: Vec<&str> = run.monitor.iter().map(|s| s.tag.engine.as_deref().unwrap_or("idle")).collect();
    tags.sort();
    tags.dedup();
    for tag in tags {
        let samples: Vec<&run_format::records::Sample> =
            run.monitor.iter().filter(|s| s.tag.engine.as_deref().unwrap_or("idle") == tag).collect();
        let colour = if tag == "idle" { "#bdbdbd".to_string() } else { colour(tag) };
        for panel in 0..3 {
            let pts: Vec<Vec<f64>> = thin(&samples, TIMELINE_POINTS)
                .filter_map(|s| {
                    let t = s.unix_ms.saturating_sub(t0) as f64 / 1000.0;
                    let v = match panel {
                        0 => s.power_mw.map(|p| p as f64 / 1000.0),
                        1 => s.gpu_util_pct.map(f64::from),
                        _ => s.sm_clock_mhz.map(f64::from),
                    }?;
                    Some(vec![t, v])
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            chart = chart.series(
                Scatter::new()
                    .name(tag)
                    .x_axis_index(panel as f64)
                    .y_axis_index(panel as f64)
                    .symbol_size(3)
                    .item_style(ItemStyle::new().color(Color::from(colour.as_str())))
                    .data(pts),
            );
        }
    }
    Ok(chart)
}

/// The host probe over the run (larger is a slower host), above each measured request's decode
/// rate: where the host slows, launch-bound engines do.
pub fn host_timeline(run: &Run) -> Built {
    if run.host.is_empty() {
        return Err("no host probe samples (the run did not record them)".into());
    }
    let t0 = run.host.iter().map(|s| s.unix_ms).chain(run.requests.iter().map(|r| r.unix_ms)).min().unwrap_or(0);
    let mut chart = stacked("Host probe and decode rate over the run", &["host probe (µs)", "decode tok/s"]);
    let mut tags: Vec<&str> = run.host.iter().map(|s| s.tag.engine.as_deref().unwrap_or("idle")).collect();
    tags.sort();
    tags.dedup();
    for tag in tags {
        let samples: Vec<&run_format::records::HostSample> =
            run.host.iter().filter(|s| s.tag.engine.as_deref().unwrap_or("idle") == tag).collect();
        let pts: Vec<Vec<f64>> = thin(&samples, TIMELINE_POINTS)
            .map(|s| vec![s.unix_ms.saturating_sub(t0) as f64 / 1000.0, s.probe_ns as f64 / 1000.0])
            .collect();
        let colour = if tag == "idle" { "#bdbdbd".to_string() } else { colour(tag) };
        chart = chart
            .series(Scatter::new().name(tag).symbol_size(3).item_style(ItemStyle::new().color(Color::from(colour.as_str()))).data(pts));
    }
    for engine in run.engine_names() {
        let reqs: Vec<_> = run.requests.iter().filter(|r| r.engine == engine && !r.warmup && r.load.is_none()).collect();
        let pts: Vec<Vec<f64>> = thin(&reqs, TIMELINE_POINTS)
            .filter_map(|r| {
                let rate = analysis::requests::decode_tok_s(r)?;
                Some(vec![r.unix_ms.saturating_sub(t0) as f64 / 1000.0, rate])
            })
            .collect();
        if !pts.is_empty() {
            chart = chart.series(
                Scatter::new().name(engine.as_str()).x_axis_index(1).y_axis_index(1).symbol_size(4).item_style(styled(&engine)).data(pts),
            );
        }
    }
    Ok(chart)
}

/// The decode phase on the roofline: achieved TFLOP/s against arithmetic intensity, under the
/// measured copy bandwidth's roof (and the datasheet's compute peak, when the config gives it).
pub fn roofline(points: &[RooflinePoint], copy_gb_s: Option<f64>, peak_tflops: Option<f64>) -> Built {
    if points.is_empty() {
        return Err("no decode phase with a known model shape to place on the roofline".into());
    }
    let lo = points.iter().map(|p| p.intensity_flop_per_byte).fold(f64::INFINITY, f64::min) / 2.0;
    let hi = points.iter().map(|p| p.intensity_flop_per_byte).fold(0.0, f64::max) * 4.0;
    let mut chart = base("Roofline of the decode phase")
        .tooltip(Tooltip::new().trigger(Trigger::Item))
        .x_axis(log_axis("arithmetic intensity (FLOP per byte moved, log scale)"))
        .y_axis(log_axis("achieved TFLOP/s (log scale)").name_gap(45));
    if let Some(bw) = copy_gb_s {
        let roof: Vec<Vec<f64>> = (0..=40)
            .map(|k| lo * (hi / lo).powf(k as f64 / 40.0))
            .map(|i| vec![i, (bw * i / 1000.0).min(peak_tflops.unwrap_or(f64::INFINITY))])
            .collect();
        let name = format!("roof at the measured copy bandwidth, {bw:.0} GB/s");
        chart = chart.series(
            Line::new().name(name.as_str()).show_symbol(false).item_style(ItemStyle::new().color(Color::from("#000000"))).data(roof),
        );
    }
    let mut names: Vec<&str> = points.iter().map(|p| p.engine.as_str()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let pts: Vec<Vec<f64>> = points
            .iter()
            .filter(|p| p.engine == name)
            .map(|p| vec![p.intensity_flop_per_byte, p.achieved_tflops, p.batch_size as f64])
            .collect();
        chart = chart.series(Scatter::new().name(name).symbol_size(9).item_style(styled(name)).data(pts));
    }
    Ok(chart)
}

/// One bar per engine of a per-engine figure of summary.json.
fn per_engine_bars(summary: &Summary, title: &str, axis: &str, value: impl Fn(&analysis::summary::EngineSummary) -> Option<f64>) -> Built {
    let rows: Vec<(&str, f64)> = summary.engines.iter().filter_map(|e| Some((e.name.as_str(), value(e)?))).collect();
    if rows.is_empty() {
        return Err("no engine of this run has the figure".into());
    }
    let mut chart = base(title)
        .tooltip(Tooltip::new().trigger(Trigger::Item))
        .x_axis(Axis::new().type_(AxisType::Category).data(vec![""]))
        .y_axis(value_axis(axis));
    for (name, v) in rows {
        chart = chart.series(Bar::new().name(name).item_style(styled(name)).data(vec![v]));
    }
    Ok(chart)
}

/// Achieved memory traffic at the headline cells over the measured copy bandwidth.
pub fn bandwidth_fraction(summary: &Summary) -> Built {
    per_engine_bars(summary, "Share of the measured copy bandwidth at the headline cells", "% of copy bandwidth", |e| {
        e.business.fraction_of_copy_bandwidth.map(|f| f * 100.0)
    })
}

/// GPU energy per generated token over every measured cell (NVML's energy counter).
pub fn energy_per_token(summary: &Summary) -> Built {
    per_engine_bars(summary, "GPU energy per generated token", "mJ per token", |e| e.business.energy_per_token_mj)
}
