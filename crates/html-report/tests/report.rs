//! The data each chart of a report carries is the summary's (or the raw samples it summarises),
//! read back from the rendered page the way the reader's browser gets it.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn committed(run: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results").join(run)
}

fn page_of(run: &str) -> (analysis::Report, String, serde_json::Map<String, Value>) {
    let report = analysis::analyze(&committed(run)).expect("a committed run analyses");
    let html = html_report::run_page(&report, Some("../../book/methodology.md")).render();
    let options = html_report::options_in(&html).expect("the page carries its chart options");
    (report, html, options)
}

fn series<'a>(options: &'a serde_json::Map<String, Value>, chart: &str) -> &'a Vec<Value> {
    options[chart]["series"].as_array().unwrap_or_else(|| panic!("chart {chart} has series"))
}

fn named<'a>(options: &'a serde_json::Map<String, Value>, chart: &str, name: &str) -> &'a Value {
    series(options, chart).iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("{chart}: no series {name}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn decode_speed_boxes_are_the_summarys_cell_medians_and_intervals() {
    let (report, _, options) = page_of("h200-ref-6");
    let labels: Vec<String> =
        options["decode-speed"]["xAxis"]["data"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let mut checked = 0;
    for c in report.summary.cells.iter().filter(|c| c.scenario == "latency") {
        let m = c.decode_tok_per_s.all.as_ref().unwrap();
        let i = labels.iter().position(|l| *l == html_report::charts::cell_label(&c.workload, c.batch_size, c.prompt_tokens)).unwrap();
        let b: Vec<f64> = named(&options, "decode-speed", &c.engine)["data"][i].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let [lo, hi] = m.ci95.expect("reference cells have intervals");
        assert!(close(b[2], m.median) && close(b[0], lo) && close(b[4], hi), "{} {}: box {b:?} against {m:?}", c.engine, labels[i]);
        checked += 1;
    }
    assert_eq!(checked, 8, "four engines × two prompt lengths");
}

#[test]
fn the_latency_distribution_spans_each_engines_headline_requests() {
    let (report, _, options) = page_of("h200-ref-6");
    for e in &report.summary.engines {
        let mut xs: Vec<f64> =
            analysis::summary::headline_requests(&report.run, &e.name).iter().map(|r| r.total_ns as f64 / 1e6).collect();
        xs.sort_by(f64::total_cmp);
        let pts = named(&options, "latency-distribution", &e.name)["data"].as_array().unwrap();
        let first = pts[0].as_array().unwrap();
        let last = pts[pts.len() - 1].as_array().unwrap();
        assert!(close(first[0].as_f64().unwrap(), xs[0]) && close(first[1].as_f64().unwrap(), 1.0 / xs.len() as f64), "{}", e.name);
        assert!(close(last[0].as_f64().unwrap(), xs[xs.len() - 1]) && last[1].as_f64() == Some(1.0), "{}", e.name);
        assert!(pts.len() <= html_report::charts::DISTRIBUTION_POINTS + 1);
    }
}

#[test]
fn ecdf_keeps_both_ends_and_thins_evenly() {
    let xs: Vec<f64> = (1..=10).map(f64::from).collect();
    assert_eq!(html_report::charts::ecdf(&xs, 100).len(), 10);
    let thin = html_report::charts::ecdf(&xs, 4);
    assert_eq!(thin, vec![[1.0, 0.1], [5.0, 0.5], [9.0, 0.9], [10.0, 1.0]]);
    assert!(html_report::charts::ecdf(&[], 4).is_empty());
}

#[test]
fn throughput_load_bandwidth_and_energy_charts_carry_the_summarys_figures() {
    let (report, _, options) = page_of("h200-5-gpu1");
    for e in &report.summary.engines {
        for p in &e.scenarios.throughput {
            let s = named(&options, "throughput", &format!("{} · prompt {}", e.name, p.prompt_tokens));
            let hit = s["data"].as_array().unwrap().iter().find(|d| d[0].as_f64() == Some(p.batch_size as f64)).expect("the batch size is plotted");
            assert!(close(hit[1].as_f64().unwrap(), p.output_tok_per_s.as_ref().unwrap().median), "{} batch {}", e.name, p.batch_size);
        }
        for p in e.scenarios.load.iter().filter(|p| matches!(p.level, run_format::records::LoadLevel::Open { .. })) {
            let q = p.e2e_ms.as_ref().unwrap();
            for (label, want) in [("p50", q.p50), ("p99", q.p99)] {
                let s = named(&options, "load", &format!("{} {label}", e.name));
                assert!(s["data"].as_array().unwrap().iter().any(|d| close(d[1].as_f64().unwrap(), want)), "{} {label}", e.name);
            }
        }
        let bar = |chart: &str| named(&options, chart, &e.name)["data"][0].as_f64().unwrap();
        assert!(close(bar("bandwidth"), e.business.fraction_of_copy_bandwidth.unwrap() * 100.0), "{}", e.name);
        assert!(close(bar("energy"), e.business.energy_per_token_mj.unwrap()), "{}", e.name);
    }
    let roofline: usize = series(&options, "roofline").iter().filter(|s| s["type"] == "scatter").map(|s| s["data"].as_array().unwrap().len()).sum();
    assert_eq!(roofline, report.roofline.len(), "one roofline point per decode phase");
}

#[test]
fn the_gpu_timeline_holds_nvml_samples_thinned_but_unchanged() {
    let (report, _, options) = page_of("h200-5-gpu1");
    let t0 = report.run.monitor[0].unix_ms;
    let power: Vec<&Value> = series(&options, "gpu").iter().filter(|s| s["xAxisIndex"].as_f64() == Some(0.0)).collect();
    let mut points = 0;
    for s in &power {
        for d in s["data"].as_array().unwrap() {
            let (t, w) = (d[0].as_f64().unwrap(), d[1].as_f64().unwrap());
            let sample = report.run.monitor.iter().find(|m| close((m.unix_ms - t0) as f64 / 1000.0, t)).expect("a sample at that time");
            assert!(close(sample.power_mw.unwrap() as f64 / 1000.0, w));
            points += 1;
        }
        assert!(s["data"].as_array().unwrap().len() <= html_report::charts::TIMELINE_POINTS);
    }
    assert!(points > 100, "the timeline is drawn ({points} points)");
}

#[test]
fn a_reference_report_is_self_contained_and_under_five_megabytes() {
    let (report, html, _) = page_of("h200-ref-6");
    assert!(html.len() < 5 << 20, "{} bytes", html.len());
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    for fetch in ["src=\"http", "href=\"http", "<link ", "cdn.", "@import"] {
        assert!(!html.contains(fetch), "the page would fetch something: {fetch}");
    }
    for e in &report.summary.engines {
        assert!(html.contains(&format!("<b>{}</b>", e.name)), "{} is in the ranked table", e.name);
    }
    assert!(html.contains("href=\"raw_data/requests.jsonl\""), "the raw data is linked");
}

#[test]
fn flags_name_failed_gates_and_failed_cells() {
    let (mut report, _, _) = page_of("h200-ref-6");
    report.summary.engines[0].correctness.passed = Some(false);
    report.run.failures.push(run_format::records::FailureRecord {
        schema: 1,
        engine: "candle_cuda".into(),
        stage: "latency".into(),
        request: None,
        batch_size: Some(1),
        prompt_tokens: Some(128),
        kind: "timeout".into(),
        message: "no answer in 60 s".into(),
        unix_ms: 0,
    });
    let flags = html_report::tables::flags(&report.run, &report.summary);
    assert!(flags.iter().any(|f| f.contains(&report.summary.engines[0].name) && f.contains("failed the correctness gate")), "{flags:?}");
    assert!(flags.iter().any(|f| f == "candle_cuda: latency failed (batch 1, prompt 128): timeout: no answer in 60 s"), "{flags:?}");
}

#[test]
fn the_host_timeline_holds_the_probe_and_each_requests_decode_rate() {
    let (report, _, options) = page_of("h200-ref-6");
    let s = series(&options, "host");
    let probes: usize = s.iter().filter(|x| x["xAxisIndex"].is_null()).map(|x| x["data"].as_array().unwrap().len()).sum();
    assert!(probes > 100 && probes <= report.run.host.len(), "{probes} probe points of {}", report.run.host.len());
    for e in &report.summary.engines {
        // The probe's series and the decode series share the engine's name (one legend entry hides both).
        let decode = s.iter().find(|x| x["name"] == e.name.as_str() && x["xAxisIndex"].as_f64() == Some(1.0)).unwrap();
        let rates: Vec<f64> = decode["data"].as_array().unwrap().iter().map(|d| d[1].as_f64().unwrap()).collect();
        let measured: Vec<f64> = report
            .run
            .requests
            .iter()
            .filter(|r| r.engine == e.name && !r.warmup && r.load.is_none())
            .filter_map(|r| analysis::requests::decode_tok_s(&r))
            .collect();
        assert_eq!(rates.len(), measured.len(), "{}: every measured request (fewer than the thinning limit)", e.name);
        assert!(rates.iter().zip(&measured).all(|(a, b)| close(*a, *b)), "{}", e.name);
    }
}

#[test]
fn roofline_points_are_the_analysiss() {
    let (report, _, options) = page_of("h200-5-gpu1");
    for p in &report.roofline {
        let s = named(&options, "roofline", &p.engine);
        assert!(
            s["data"].as_array().unwrap().iter().any(|d| close(d[0].as_f64().unwrap(), p.intensity_flop_per_byte)
                && close(d[1].as_f64().unwrap(), p.achieved_tflops)
                && d[2].as_f64() == Some(p.batch_size as f64)),
            "{} batch {}",
            p.engine,
            p.batch_size
        );
    }
}

#[test]
fn the_compare_page_draws_each_rows_change_and_interval() {
    let base = analysis::analyze(&committed("h200-ref-5")).unwrap();
    let new = analysis::analyze(&committed("h200-ref-6")).unwrap();
    let d = analysis::run_diff::diff(&base, &new, Some(0.05), None).unwrap();
    let html = html_report::compare_page::page(&d).render();
    let options = html_report::options_in(&html).unwrap();
    let labels: Vec<String> = options["decode-change"]["xAxis"]["data"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
    for r in d.rows.iter().filter(|r| r.metric == "decode_tok_s") {
        let i = labels.iter().position(|l| *l == html_report::charts::cell_label(&r.workload, r.batch_size as usize, r.prompt_tokens as usize)).unwrap();
        let b = &named(&options, "decode-change", &r.engine)["data"][i];
        let [lo, hi] = r.ratio_ci.unwrap();
        assert!(close(b[2].as_f64().unwrap(), (r.ratio - 1.0) * 100.0), "{}", r.engine);
        assert!(close(b[0].as_f64().unwrap(), (lo - 1.0) * 100.0) && close(b[4].as_f64().unwrap(), (hi - 1.0) * 100.0), "{}", r.engine);
        assert!(html.contains(r.verdict));
    }
}
