//! Fills a run's [`Summary`]: per engine its headline figures, per scenario its points, and the
//! figures across engines (speedups, tiers, criteria, host and GPU state).

use run_format::config::{Settings, Slo};
use run_format::engines::{BASELINE, COMPILED_REFERENCE};
use run_format::records::{CellRecord, FailureRecord, LoadLevel};
use run_format::Request;

use super::schema::*;
use crate::cells::{describe, CellKey, CellMetric, Describe};
use crate::compare::Comparison;
use crate::requests::{client_ttft_ms, decode_tok_s, tpot_ms};
use crate::run::Run;
use crate::stats::percentiles;

/// A cell's description as the summary states it: no interval below the smallest n that supports one.
fn estimate(d: Option<Describe>) -> Option<Estimate> {
    d.map(|d| Estimate { median: d.median, ci95: d.median_ci.filter(|_| d.n >= crate::cell_figures::MIN_N_FOR_INTERVAL), n: d.n })
}

fn load_point<'a>(
    workload: &str,
    level: LoadLevel,
    prompt: usize,
    reqs: impl Iterator<Item = Request<'a>>,
    failed: usize,
    slo: Option<Slo>,
    cell: Option<&CellRecord>,
) -> LoadPoint {
    // One pass over the level's requests (tens of thousands in a long run).
    let (mut start, mut end, mut tokens, mut good, mut completed) = (None::<u64>, None::<u64>, 0, 0, 0);
    let (mut ttft, mut tpot, mut e2e) = (Vec::new(), Vec::new(), Vec::new());
    for r in reqs {
        if let Some(o) = r.sent_offset_ns {
            start = Some(start.map_or(o, |s| s.min(o)));
            end = Some(end.map_or(o + r.runner_total_ns, |e| e.max(o + r.runner_total_ns)));
        }
        tokens += r.generated_tokens;
        completed += 1;
        let (client_ttft, per_token) = (client_ttft_ms(&r), tpot_ms(&r));
        if slo.is_some_and(|s| client_ttft <= s.ttft_ms && per_token.is_none_or(|t| t <= s.tpot_ms)) {
            good += 1;
        }
        ttft.push(client_ttft);
        tpot.extend(per_token);
        e2e.push(r.runner_total_ns as f64 / 1e6);
    }
    let span_s = match (start, end) {
        (Some(a), Some(b)) if b > a => Some((b - a) as f64 / 1e9),
        _ => None,
    };
    let good = slo.map(|_| good);
    let total = completed + failed;
    let fraction = good.filter(|_| total > 0).map(|g| g as f64 / total as f64);
    LoadPoint {
        workload: workload.into(),
        level,
        prompt_tokens: prompt,
        completed,
        failed,
        achieved_tok_per_s: span_s.map(|s| tokens as f64 / s),
        achieved_requests_per_s: span_s.map(|s| completed as f64 / s),
        ttft_ms: percentiles(ttft),
        tpot_ms: percentiles(tpot),
        e2e_ms: percentiles(e2e),
        goodput_fraction: fraction,
        goodput_requests_per_s: good.zip(span_s).map(|(g, s)| g as f64 / s),
        meets_slo: fraction.zip(slo).map(|(f, s)| f >= s.min_fraction),
        mean_gpu_util_pct: cell.and_then(|c| c.gpu.as_ref()?.mean_gpu_util_pct),
    }
}

fn scenario_figures(run: &Run, name: &str, measured: &[usize], settings: &Settings) -> ScenarioFigures {
    let mut f = ScenarioFigures::default();
    // The engine's cells in the order their first request appears, grouped in one pass.
    type Key<'a> = (&'a str, &'a str, usize, usize, Option<LoadLevel>);
    let mut keys: Vec<(Key, Vec<usize>)> = Vec::new();
    let mut last: Option<usize> = None;
    for (row, r) in measured.iter().zip(run.requests.rows(measured)) {
        let k: Key = (r.scenario, r.workload, r.batch_size, r.prompt_tokens, r.load);
        // Requests of a cell are written together, so the previous cell is almost always the one.
        let i = match last.filter(|&i| keys[i].0 == k).or_else(|| keys.iter().position(|(x, _)| *x == k)) {
            Some(i) => i,
            None => {
                keys.push((k, Vec::new()));
                keys.len() - 1
            }
        };
        keys[i].1.push(*row);
        last = Some(i);
    }
    let own: Vec<&CellRecord> = run.cells.iter().filter(|c| c.engine == name).collect();
    let cell_of = |workload: &str, batch: usize, prompt: usize, level: Option<LoadLevel>| {
        own.iter().copied().find(|c| c.workload == workload && c.batch_size == batch && c.prompt_tokens == prompt && c.load == level)
    };
    let est = |xs: Vec<f64>| estimate(describe(&xs, settings, settings.bootstrap_seed));
    for ((scenario, workload, batch, prompt, level), rows) in keys {
        let cell = cell_of(workload, batch, prompt, level);
        match (scenario, level) {
            ("throughput", _) => f.throughput.push({
                let reqs: Vec<Request> = run.requests.rows(&rows).collect();
                ThroughputPoint {
                    workload: workload.to_string(),
                    batch_size: batch,
                    prompt_tokens: prompt,
                    output_tok_per_s: est(reqs.iter().map(|r| r.generated_tokens as f64 / (r.total_ns as f64 * 1e-9)).collect()),
                    decode_tok_per_s: est(reqs.iter().filter_map(decode_tok_s).collect()),
                    requests_per_s: est(reqs.iter().map(|r| r.batch_size as f64 / (r.total_ns as f64 * 1e-9)).collect()),
                    latency_ms: est(reqs.iter().map(|r| r.total_ns as f64 / 1e6).collect()),
                    energy_per_token_mj: cell.and_then(|c| Some(c.gpu.as_ref()?.energy_mj? as f64 / c.generated_tokens.max(1) as f64)),
                    mean_gpu_util_pct: cell.and_then(|c| c.gpu.as_ref()?.mean_gpu_util_pct),
                }
            }),
            ("concurrent", Some(level)) => {
                let failed = run
                    .failures
                    .iter()
                    .filter(|x| x.engine == name && x.stage == workload && x.request.is_some() && x.prompt_tokens == Some(prompt))
                    .filter(|x| x.request.as_deref().is_some_and(|id| id.contains(&level.label())))
                    .count();
                f.load.push(load_point(workload, level, prompt, run.requests.rows(&rows), failed, run.config.slo(workload), cell));
            }
            _ => {}
        }
    }
    f.max_sustained_rate_per_s = f
        .load
        .iter()
        .filter(|p| p.meets_slo == Some(true))
        .filter_map(|p| match p.level {
            LoadLevel::Open { rate_per_s } => Some(rate_per_s),
            LoadLevel::Closed { .. } => None,
        })
        .reduce(f64::max);
    f.memory = own
        .iter()
        .filter(|c| c.scenario == "memory" && c.status == "ok")
        .map(|c| MemoryPoint {
            workload: c.workload.clone(),
            batch_size: c.batch_size,
            prompt_tokens: c.prompt_tokens,
            max_new_tokens: c.max_new_tokens,
            peak_rss_bytes: c.peak_rss_bytes,
            gpu_proc_peak_bytes: c.gpu.as_ref().and_then(|g| g.gpu_proc_peak_bytes),
            gpu_device_peak_bytes: c.gpu.as_ref().and_then(|g| g.gpu_device_peak_bytes),
        })
        .collect();
    let with_energy: Vec<(&CellRecord, u64)> = own.iter().filter_map(|c| c.gpu.as_ref()?.energy_mj.map(|e| (*c, e))).collect();
    let tokens: usize = with_energy.iter().map(|(c, _)| c.generated_tokens).sum();
    if tokens > 0 {
        f.energy_per_token_mj = Some(with_energy.iter().map(|(_, e)| *e as f64).sum::<f64>() / tokens as f64);
    }
    let powered: Vec<(f64, f64)> = own.iter().filter_map(|c| Some((c.gpu.as_ref()?.mean_power_w?, c.wall_ns as f64))).collect();
    let wall: f64 = powered.iter().map(|p| p.1).sum();
    if wall > 0.0 {
        f.mean_power_w = Some(powered.iter().map(|(p, w)| p * w).sum::<f64>() / wall);
    }
    f
}

/// The requests behind an engine's headline figures: its latency scenario, or everything it
/// measured when the run has no latency scenario.
pub fn headline_requests<'a>(run: &'a Run, engine: &str) -> Vec<Request<'a>> {
    let run_has_latency = has_latency(run);
    run.requests.iter().filter(|r| r.engine == engine && !r.warmup && is_headline(r, run_has_latency)).collect()
}

/// Whether a measured request counts for the headline figures (the one rule for both above).
fn is_headline(r: &Request, run_has_latency: bool) -> bool {
    !run_has_latency || r.scenario == "latency"
}

fn has_latency(run: &Run) -> bool {
    run.requests.iter().any(|r| r.scenario == "latency" && !r.warmup)
}

/// The headline requests among an engine's measured rows (see [`headline_requests`]).
fn headline<'a>(run: &'a Run, measured: &'a [usize], run_has_latency: bool) -> Vec<Request<'a>> {
    run.requests.rows(measured).filter(|r| is_headline(r, run_has_latency)).collect()
}

/// The rows of every measured (not warm-up) request of the run, per engine, in one pass.
fn measured_by_engine(run: &Run) -> std::collections::HashMap<&str, Vec<usize>> {
    let mut by: std::collections::HashMap<&str, Vec<usize>> = std::collections::HashMap::new();
    // Requests of one engine come together: a run of rows is filed when the engine changes.
    let mut current: Option<(&str, Vec<usize>)> = None;
    for (i, r) in run.requests.iter().enumerate().filter(|(_, r)| !r.warmup) {
        match &mut current {
            Some((engine, rows)) if *engine == r.engine => rows.push(i),
            _ => {
                if let Some((engine, rows)) = current.replace((r.engine, vec![i])) {
                    by.entry(engine).or_default().extend(rows);
                }
            }
        }
    }
    if let Some((engine, rows)) = current {
        by.entry(engine).or_default().extend(rows);
    }
    by
}

/// The engine's headline decode rate over the reference's, on the cells both measured (same
/// workload, batch size and prompt length): none when they share no cell, as when a CPU engine
/// runs its own shorter workload.
fn speedup(head: &[Request], reference: &[Request], settings: &Settings) -> Option<Ratio> {
    fn cell<'a>(r: &Request<'a>) -> (&'a str, usize, usize) {
        (r.workload, r.batch_size, r.prompt_tokens)
    }
    let (mine, theirs): (std::collections::HashSet<_>, std::collections::HashSet<_>) =
        (head.iter().map(|r| cell(r)).collect(), reference.iter().map(|r| cell(r)).collect());
    let tok = |rs: &[Request], other: &std::collections::HashSet<_>| -> Vec<f64> {
        rs.iter().filter(|r| other.contains(&cell(r))).filter_map(decode_tok_s).collect()
    };
    let (a, b) = (tok(head, &theirs), tok(reference, &mine));
    if a.is_empty() || b.is_empty() {
        return None;
    }
    match crate::compare::ratio_interval(&a, &b, settings, settings.bootstrap_seed).0 {
        Some((m, ci)) => Some(Ratio { median: m, ci95: Some([ci.0, ci.1]) }),
        None => Some(Ratio { median: crate::stats::median(&a) / crate::stats::median(&b), ci95: None }),
    }
}

/// Builds the summary of one run from its raw data and the per-cell tables.
pub fn assemble(run: &Run, cell_metrics: &[CellMetric], comparisons: &[Comparison], cells: &[(CellKey, Vec<Vec<f64>>)]) -> Summary {
    let settings = &run.config.analysis;
    let by_engine = measured_by_engine(run);
    let run_has_latency = has_latency(run);
    let none = Vec::new();
    let head_of = |engine: &str| headline(run, by_engine.get(engine).unwrap_or(&none), run_has_latency);
    let (head_baseline, head_compiled) = (head_of(BASELINE), head_of(COMPILED_REFERENCE));
    // Engines are independent: summarised in parallel, kept in the run's order.
    use rayon::prelude::*;
    let engines: Vec<EngineSummary> = run
        .engine_names()
        .into_par_iter()
        .map(|name| {
            let fails: Vec<&FailureRecord> = run.failures.iter().filter(|f| f.engine == name && f.kind != "skipped").collect();
            let ready = run.engines.iter().find(|r| r.engine == name);
            let gates: Vec<_> = run.correctness.iter().filter(|g| g.engine == name).collect();
            let everything: &[usize] = by_engine.get(name.as_str()).unwrap_or(&none);
            let status = match (everything.len(), fails.is_empty()) {
                (0, _) => "failed",
                (_, true) => "ok",
                (_, false) => "partial",
            };
            let head = head_of(&name);
            let est = |xs: Vec<f64>| estimate(describe(&xs, settings, settings.bootstrap_seed));
            let ms = |ns: u64| ns as f64 / 1e6;
            let scenarios = scenario_figures(run, &name, everything, settings);
            let mut e = EngineSummary {
                name: name.clone(),
                status: status.into(),
                failure: fails.first().map(|f| format!("{} ({}): {}", f.stage, f.kind, f.message)),
                failed_cells: fails.iter().filter(|f| f.batch_size.is_some()).count(),
                version: ready.map(|r| r.ready.engine.version.clone()),
                device: ready.map(|r| r.ready.engine.device.clone()),
                dtype: ready.map(|r| r.ready.engine.dtype.to_string()),
                load_ms: ready.map(|r| ms(r.ready.load_ns)),
                correctness: CorrectnessSummary {
                    passed: (!gates.is_empty()).then(|| gates.iter().all(|g| g.passed)),
                    max_rel_logit_err: gates.iter().map(|g| g.max_rel_logit_err).reduce(f64::max),
                    greedy_match_steps: gates.iter().map(|g| g.greedy_match_steps).min(),
                    steps: gates.first().map(|g| g.steps),
                },
                decode_tok_per_s: est(head.iter().filter_map(decode_tok_s).collect()),
                ttft_ms: est(head.iter().map(|r| ms(r.ttft_ns)).collect()),
                latency_ms: est(head.iter().map(|r| ms(r.total_ns)).collect()),
                ttft_p99_ms: percentiles(head.iter().map(|r| client_ttft_ms(r)).collect()).map(|p| p.p99),
                harness_overhead_ms: est(head
                    .iter()
                    .map(|r| (r.runner_total_ns as f64 - (r.total_ns + r.queue_ns) as f64) / 1e6)
                    .collect()),
                speedup_vs_baseline: speedup(&head, &head_baseline, settings),
                speedup_vs_compiled: speedup(&head, &head_compiled, settings),
                scenarios,
                business: Business::default(),
            };
            e.business = crate::cost::figures(run, &e, cells);
            e
        })
        .collect();
    let tiers = crate::tiers::tiers(run, &engines);
    let criteria = crate::criteria::criteria(&engines, comparisons, settings);
    let host_states = crate::host_state::host_states(run);
    Summary {
        schema: 1,
        run: serde_json::json!({
            "id": run.id,
            "config": run.config.benchmark.name,
            "environment": run.environment,
        }),
        baseline: BASELINE.into(),
        compiled_reference: COMPILED_REFERENCE.into(),
        confidence_level: settings.confidence_level,
        outliers: OutlierNote {
            rule: "Tukey fences: beyond 1.5 IQR from the quartiles, per cell and metric",
            removed: settings.remove_outliers,
            flagged: cell_metrics.iter().map(|c| c.stats.outliers).sum(),
        },
        engines,
        comparisons: ComparisonCount {
            comparisons: comparisons.len(),
            significant: comparisons.iter().filter(|c| c.significant == Some(true)).count(),
            tests: settings.statistical_tests.clone(),
            correction: "Holm, per test over every comparison of the run",
        },
        tiers,
        criteria,
        cells: crate::cell_figures::cell_figures(run, host_states.as_ref(), &[COMPILED_REFERENCE, BASELINE], settings),
        host_states,
        probe_parts: crate::probe_parts::probe_parts(run),
        gpu_state: crate::gpu_state::gpu_states(run),
        bandwidth_probe: run.bandwidth_check(),
        outputs: Vec::new(),
    }
}

#[cfg(test)]
mod speedup_tests {
    use super::*;
    use crate::requests::tests::request;
    use run_format::records::RequestRecord;

    #[test]
    fn speedups_only_compare_cells_both_engines_measured() {
        let cell = |engine: &str, workload: &str, prompt: usize, token_ms: u64| {
            let mut r = request(engine, 1, 5, &[token_ms; 4]);
            r.workload = workload.into();
            r.prompt_tokens = prompt;
            r
        };
        let base: Vec<RequestRecord> =
            (0..5).map(|_| cell("b", "latency", 128, 20)).chain((0..5).map(|_| cell("b", "latency", 1024, 40))).collect();
        let fast: Vec<RequestRecord> = (0..5).map(|_| cell("f", "latency", 128, 10)).collect();
        let cpu: Vec<RequestRecord> = (0..5).map(|_| cell("c", "latency-cpu", 32, 5)).collect();
        fn refs(v: &[RequestRecord]) -> Vec<Request<'_>> {
            v.iter().map(Request::from).collect()
        }
        let s = Settings::default();
        // Against the baseline's 128-token cell only (its 1024-token cell, twice as slow, is left out).
        assert_eq!(speedup(&refs(&fast), &refs(&base), &s).unwrap().median, 2.0);
        // No cell in common: no speedup rather than one across workloads.
        assert!(speedup(&refs(&cpu), &refs(&base), &s).is_none());
    }
}
