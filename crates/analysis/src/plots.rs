//! The report's charts as SVG strings (plotters, no font library: text stays `<text>` for the
//! browser). Every chart has a title, axis units, and the same colour for an engine everywhere.

use plotters::prelude::*;

use crate::roofline::RooflinePoint;
use crate::run::Run;
use crate::summary::{headline_requests, Summary};
use run_format::records::LoadLevel;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const SIZE: (u32, u32) = (900, 520);
const FONT: &str = "sans-serif";

/// One colour per engine, the same in every chart (the two PyTorch references in greys).
pub fn engine_colour(name: &str) -> RGBColor {
    match name {
        "pytorch_baseline" => RGBColor(120, 120, 120),
        "pytorch_compiled" => RGBColor(40, 40, 40),
        "lm_rs" => RGBColor(230, 120, 20),
        "candle_cpu" => RGBColor(240, 120, 120),
        "candle_cuda" => RGBColor(200, 30, 45),
        "burn_cpu" => RGBColor(150, 130, 210),
        "burn_cuda" => RGBColor(95, 60, 175),
        "mistral_rs_cpu" => RGBColor(110, 190, 120),
        "mistral_rs_cuda" => RGBColor(20, 130, 60),
        other => {
            let h = other.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
            RGBColor((h % 200) as u8, (h / 200 % 200) as u8, (h / 40_000 % 200) as u8)
        }
    }
}

fn svg(draw: impl FnOnce(DrawingArea<SVGBackend, plotters::coord::Shift>) -> Result<()>) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        draw(root.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(out)
}

fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((a, b)) => Some((a.min(v), b.max(v))),
    })
}

/// Padded range for a log axis.
fn log_range((lo, hi): (f64, f64)) -> std::ops::Range<f64> {
    (lo.max(1e-9) / 1.3)..(hi.max(lo * 1.01).max(1e-9) * 1.3)
}

fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(chart: &mut ChartContext<'a, DB, CT>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK.mix(0.3)).label_font((FONT, 13)).draw()?;
    Ok(())
}

/// Empirical distribution of request latency, one line per engine (headline requests).
pub fn latency_distribution(run: &Run, summary: &Summary) -> anyhow::Result<String> {
    let series: Vec<(String, Vec<f64>)> = summary
        .engines
        .iter()
        .map(|e| {
            let mut xs: Vec<f64> = headline_requests(run, &e.name).iter().map(|r| r.total_ns as f64 / 1e6).collect();
            xs.sort_by(|a, b| a.total_cmp(b));
            (e.name.clone(), xs)
        })
        .filter(|(_, xs)| !xs.is_empty())
        .collect();
    svg(|root| {
        let Some(b) = bounds(series.iter().flat_map(|s| s.1.iter().copied())) else {
            return Ok(());
        };
        let mut chart = ChartBuilder::on(&root)
            .caption("Request latency distribution (latency scenario)", (FONT, 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(log_range(b).log_scale(), 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("request latency, prompt + all new tokens (ms, log scale)")
            .y_desc("fraction of requests ≤ x")
            .draw()?;
        for (name, xs) in &series {
            let c = engine_colour(name);
            let n = xs.len() as f64;
            let steps = xs.iter().enumerate().flat_map(|(i, &x)| [(x, i as f64 / n), (x, (i + 1) as f64 / n)]);
            chart
                .draw_series(LineSeries::new(steps, c.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        }
        legend(&mut chart)
    })
}

/// Median decode throughput with its interval, one bar per engine, fastest first.
pub fn decode_throughput(summary: &Summary) -> anyhow::Result<String> {
    let mut rows: Vec<(String, f64, Option<[f64; 2]>)> =
        summary.engines.iter().filter_map(|e| e.decode_tok_per_s.as_ref().map(|t| (e.name.clone(), t.median, t.ci95))).collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let level = summary.confidence_level;
    svg(|root| {
        if rows.is_empty() {
            return Ok(());
        }
        let top = rows.iter().map(|r| r.2.map_or(r.1, |c| c[1])).fold(0.0, f64::max) * 1.15;
        let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("Decode throughput, batch 1 (median, {:.0} % bootstrap interval)", level * 100.0), (FONT, 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..(rows.len() as f64 - 0.5), 0.0..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(rows.len() + 1)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("decode tokens per second")
            .draw()?;
        for (i, (name, median, ci)) in rows.iter().enumerate() {
            let c = engine_colour(name);
            let x = i as f64;
            chart.draw_series(std::iter::once(Rectangle::new([(x - 0.3, 0.0), (x + 0.3, *median)], c.mix(0.8).filled())))?;
            if let Some([lo, hi]) = ci {
                chart.draw_series(std::iter::once(ErrorBar::new_vertical(x, *lo, *median, *hi, BLACK.stroke_width(1), 12)))?;
            }
            chart.draw_series(std::iter::once(Text::new(format!("{median:.1}"), (x - 0.15, *median + top * 0.03), (FONT, 13))))?;
        }
        Ok(())
    })
}

/// Throughput against latency across the batch sweep: one line per engine, a point per batch size.
pub fn throughput_vs_latency(summary: &Summary) -> anyhow::Result<String> {
    let series: Vec<(String, Vec<(f64, f64, usize)>)> = summary
        .engines
        .iter()
        .map(|e| {
            let pts = e
                .scenarios
                .throughput
                .iter()
                .filter_map(|p| Some((p.latency_ms.as_ref()?.median, p.output_tok_per_s.as_ref()?.median, p.batch_size)))
                .collect();
            (e.name.clone(), pts)
        })
        .filter(|(_, p): &(String, Vec<_>)| !p.is_empty())
        .collect();
    svg(|root| {
        let (Some(bx), Some(by)) =
            (bounds(series.iter().flat_map(|s| s.1.iter().map(|p| p.0))), bounds(series.iter().flat_map(|s| s.1.iter().map(|p| p.1))))
        else {
            return Ok(());
        };
        let mut chart = ChartBuilder::on(&root)
            .caption("Throughput vs latency across batch sizes (throughput scenario)", (FONT, 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(log_range(bx).log_scale(), log_range(by).log_scale())?;
        chart.configure_mesh().x_desc("median request latency (ms, log)").y_desc("output tokens per second (log)").draw()?;
        for (name, pts) in &series {
            let c = engine_colour(name);
            chart
                .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), c.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            chart.draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 4, c.filled())))?;
            chart.draw_series(pts.iter().map(|p| Text::new(format!("b{}", p.2), (p.0, p.1), (FONT, 11))))?;
        }
        legend(&mut chart)
    })
}

/// Client-side time to first token against the offered Poisson rate: p50 solid, p99 dashed.
pub fn load_percentiles(summary: &Summary) -> anyhow::Result<String> {
    let series: Vec<(String, Vec<(f64, f64, f64)>)> = summary
        .engines
        .iter()
        .map(|e| {
            let mut pts: Vec<(f64, f64, f64)> = e
                .scenarios
                .load
                .iter()
                .filter_map(|p| match p.level {
                    LoadLevel::Open { rate_per_s } => Some((rate_per_s, p.ttft_ms.as_ref()?.p50, p.ttft_ms.as_ref()?.p99)),
                    LoadLevel::Closed { .. } => None,
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (e.name.clone(), pts)
        })
        .filter(|(_, p)| !p.is_empty())
        .collect();
    svg(|root| {
        let (Some(bx), Some(by)) = (
            bounds(series.iter().flat_map(|s| s.1.iter().map(|p| p.0))),
            bounds(series.iter().flat_map(|s| s.1.iter().flat_map(|p| [p.1, p.2]))),
        ) else {
            return Ok(());
        };
        let mut chart = ChartBuilder::on(&root)
            .caption("Time to first token vs offered load (Poisson arrivals)", (FONT, 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d((bx.0 * 0.8)..(bx.1 * 1.2), log_range(by).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("offered load (requests per second)")
            .y_desc("client time to first token (ms, log): p50 solid, p99 dashed")
            .draw()?;
        for (name, pts) in &series {
            let c = engine_colour(name);
            chart
                .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), c.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            chart.draw_series(DashedLineSeries::new(pts.iter().map(|p| (p.0, p.2)), 6, 4, c.stroke_width(2)))?;
            chart.draw_series(pts.iter().flat_map(|p| [Circle::new((p.0, p.1), 3, c.filled()), Circle::new((p.0, p.2), 3, c.filled())]))?;
        }
        legend(&mut chart)
    })
}

/// GPU power and utilisation over the run, each sample coloured by the engine that held the GPU.
/// How many NVML samples the GPU timeline draws at most.
pub const TIMELINE_SAMPLES: usize = 200;

pub fn gpu_timeline(run: &Run) -> anyhow::Result<String> {
    let t0 = run.monitor.first().map_or(0, |s| s.unix_ms);
    // At most 200 samples, evenly spaced: each is a circle in both panels, and a 10-minute run at
    // 25 Hz would otherwise make a multi-megabyte SVG (the chart stays under 100 KB).
    let every = run.monitor.len().div_ceil(TIMELINE_SAMPLES).max(1);
    let tagged: Vec<(&str, f64, Option<f64>, Option<f64>)> = run
        .monitor
        .iter()
        .step_by(every)
        .map(|s| {
            let t = (s.unix_ms.saturating_sub(t0)) as f64 / 1000.0;
            (s.tag.engine.as_deref().unwrap_or("idle"), t, s.power_mw.map(|p| p as f64 / 1000.0), s.gpu_util_pct.map(f64::from))
        })
        .collect();
    svg(|root| {
        let Some(bt) = bounds(tagged.iter().map(|s| s.1)) else {
            return Ok(());
        };
        let top_power = tagged.iter().filter_map(|s| s.2).fold(0.0, f64::max) * 1.1 + 1.0;
        let (upper, lower) = root.split_vertically(SIZE.1 / 2);
        let mut engines: Vec<&str> = tagged.iter().map(|s| s.0).collect();
        engines.sort();
        engines.dedup();
        for (area, title, y_desc, top, pick) in [
            (&upper, "GPU power and utilisation over the run (NVML, up to 200 samples evenly spaced)", "power (W)", top_power, 2usize),
            (&lower, "", "utilisation (%)", 105.0, 3usize),
        ] {
            let mut chart = ChartBuilder::on(area)
                .caption(title, (FONT, 18))
                .margin(8)
                .x_label_area_size(35)
                .y_label_area_size(60)
                .build_cartesian_2d(bt.0..bt.1.max(bt.0 + 1.0), 0.0..top)?;
            chart.configure_mesh().x_desc("seconds since the run's first sample").y_desc(y_desc).draw()?;
            for &e in &engines {
                let c = if e == "idle" { RGBColor(190, 190, 190) } else { engine_colour(e) };
                let pts = tagged.iter().filter(|s| s.0 == e).filter_map(|s| Some((s.1, if pick == 2 { s.2? } else { s.3? })));
                let series = chart.draw_series(pts.map(|p| Circle::new(p, 1, c.filled())))?;
                if pick == 2 {
                    series.label(e).legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
                }
            }
            if pick == 2 {
                legend(&mut chart)?;
            }
        }
        Ok(())
    })
}

/// Each measured request's decode rate over the run's time, one colour per engine, above the host
/// probe on the engines' CPUs (continuous samples): where the host slows, launch-bound engines do.
pub fn host_timeline(run: &Run, states: Option<&crate::host_state::HostStates>) -> anyhow::Result<String> {
    let t0 = run.requests.iter().map(|r| r.unix_ms).chain(run.host.iter().map(|s| s.unix_ms)).min().unwrap_or(0);
    let secs = |ms: u128| ms.saturating_sub(t0) as f64 / 1000.0;
    let mut by_engine: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in run.requests.iter().filter(|r| crate::requests::in_static_cell(r)) {
        let Some(tok) = crate::requests::decode_tok_s(&r) else { continue };
        // A request's record is written when it ends: place it at its start.
        let start = secs(r.unix_ms) - r.runner_total_ns as f64 / 1e9;
        match by_engine.iter_mut().find(|e| e.0 == r.engine) {
            Some(e) => e.1.push((start, tok)),
            None => by_engine.push((r.engine.to_string(), vec![(start, tok)])),
        }
    }
    // At most ~3000 probe points (a long run samples at 20 Hz).
    let every = run.host.len().div_ceil(3000).max(1);
    let probe: Vec<(f64, f64)> = run.host.iter().step_by(every).map(|s| (secs(s.unix_ms), s.probe_ns as f64 / 1e3)).collect();
    svg(|root| {
        let Some(bt) = bounds(by_engine.iter().flat_map(|e| e.1.iter().map(|p| p.0)).chain(probe.iter().map(|p| p.0))) else {
            return Ok(());
        };
        let (upper, lower) = root.split_vertically(SIZE.1 * 3 / 5);
        let top = by_engine.iter().flat_map(|e| e.1.iter().map(|p| p.1)).fold(0.0, f64::max) * 1.1 + 1.0;
        let mut chart = ChartBuilder::on(&upper)
            .caption("Decode rate of each measured request, and the host's speed below it", (FONT, 18))
            .margin(8)
            .x_label_area_size(25)
            .y_label_area_size(60)
            .build_cartesian_2d(bt.0..bt.1.max(bt.0 + 1.0), 0.0..top)?;
        chart.configure_mesh().y_desc("decode tok/s").draw()?;
        for (e, pts) in &by_engine {
            let c = engine_colour(e);
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 2, c.filled())))?
                .label(e.as_str())
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        }
        legend(&mut chart)?;
        let ptop = probe.iter().map(|p| p.1).fold(0.0, f64::max) * 1.15 + 1.0;
        let mut chart = ChartBuilder::on(&lower)
            .margin(8)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(bt.0..bt.1.max(bt.0 + 1.0), 0.0..ptop)?;
        chart.configure_mesh().x_desc("seconds since the run's first request or host sample").y_desc("host probe (µs)").draw()?;
        let grey = RGBColor(90, 90, 90);
        chart.draw_series(probe.iter().map(|&p| Circle::new(p, 1, grey.filled())))?;
        if let Some(t) = states.and_then(|s| s.threshold_us) {
            let red = RGBColor(200, 30, 45);
            chart
                .draw_series(LineSeries::new([(bt.0, t), (bt.1, t)], red.stroke_width(1)))?
                .label("fast / slow threshold")
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], red));
            legend(&mut chart)?;
        }
        Ok(())
    })
}

/// Roofline: achieved TFLOP/s against arithmetic intensity, under the measured copy-bandwidth roof
/// (and the compute roof when the config states the GPU's peak).
pub fn roofline(points: &[RooflinePoint], copy_gb_s: Option<f64>, peak_tflops: Option<f64>) -> anyhow::Result<String> {
    svg(|root| {
        let (Some(bx), Some(by)) =
            (bounds(points.iter().map(|p| p.intensity_flop_per_byte)), bounds(points.iter().map(|p| p.achieved_tflops)))
        else {
            return Ok(());
        };
        let x = (bx.0 / 2.0)..(bx.1 * 4.0);
        let roof_at = |i: f64| copy_gb_s.map(|bw| bw * i / 1000.0);
        let ceiling = [Some(by.1), roof_at(x.end), peak_tflops].into_iter().flatten().fold(0.0, f64::max) * 1.5;
        let mut chart = ChartBuilder::on(&root)
            .caption("Roofline of the decode phase", (FONT, 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(x.clone().log_scale(), (by.0 / 3.0)..ceiling)?;
        chart.configure_mesh().x_desc("arithmetic intensity (FLOP per byte moved, log)").y_desc("achieved TFLOP/s").draw()?;
        if let Some(bw) = copy_gb_s {
            let roof: Vec<(f64, f64)> = (0..=40)
                .map(|k| x.start * (x.end / x.start).powf(k as f64 / 40.0))
                .map(|i| (i, (bw * i / 1000.0).min(peak_tflops.unwrap_or(f64::INFINITY))))
                .collect();
            chart
                .draw_series(LineSeries::new(roof, BLACK.stroke_width(2)))?
                .label(format!("measured copy bandwidth {bw:.0} GB/s"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(2)));
        }
        if let Some(peak) = peak_tflops {
            chart
                .draw_series(DashedLineSeries::new([(x.start, peak), (x.end, peak)], 6, 4, BLACK.mix(0.5).stroke_width(1)))?
                .label(format!("compute peak {peak:.0} TFLOP/s (datasheet)"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.5)));
        }
        let mut names: Vec<&str> = points.iter().map(|p| p.engine.as_str()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let c = engine_colour(name);
            let mut pts: Vec<&RooflinePoint> = points.iter().filter(|p| p.engine == name).collect();
            pts.sort_by(|a, b| a.intensity_flop_per_byte.total_cmp(&b.intensity_flop_per_byte));
            chart
                .draw_series(pts.iter().map(|p| Circle::new((p.intensity_flop_per_byte, p.achieved_tflops), 4, c.filled())))?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        }
        legend(&mut chart)
    })
}

/// Every chart of a run, by file name.
pub fn all(run: &Run, summary: &Summary, roofline_points: &[RooflinePoint]) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut out =
        vec![("latency_distribution.svg", latency_distribution(run, summary)?), ("decode_throughput.svg", decode_throughput(summary)?)];
    if summary.engines.iter().any(|e| !e.scenarios.throughput.is_empty()) {
        out.push(("throughput_vs_latency.svg", throughput_vs_latency(summary)?));
    }
    if summary.engines.iter().any(|e| e.scenarios.load.iter().any(|p| matches!(p.level, LoadLevel::Open { .. }))) {
        out.push(("load_percentiles.svg", load_percentiles(summary)?));
    }
    if !run.monitor.is_empty() {
        out.push(("gpu_timeline.svg", gpu_timeline(run)?));
    }
    if !run.host.is_empty() {
        out.push(("host_timeline.svg", host_timeline(run, summary.host_states.as_ref())?));
    }
    if !roofline_points.is_empty() {
        out.push(("roofline.svg", roofline(roofline_points, run.copy_bandwidth_gb_s(), run.config.analysis.peak_tflops)?));
    }
    Ok(out)
}
