//! `benchmark-runner check RUN_DIR`: a finished run checked the way a reviewer would. Every engine
//! measured without failures and past the correctness gate, every scenario of the run present in
//! the raw data and in summary.json, every request's timings consistent, host probes around every
//! static request, each interleaved block holding each engine once, and summary.json what the raw
//! data gives now.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use analysis::summary::Summary;
use analysis::Run;

/// Static scenarios: their requests are probed before and after, and may be interleaved.
const STATIC_SCENARIOS: [&str; 2] = ["latency", "throughput"];

/// The problems found in a run whose summary.json reads `written` and whose raw data gives `now`;
/// empty when there are none.
pub fn problems(run: &Run, written: &str, now: &Summary) -> Vec<String> {
    let mut out = Vec::new();
    for f in run.failures.iter().filter(|f| f.kind != "skipped") {
        out.push(format!("failure recorded: {} {}: {}", f.engine, f.stage, f.message));
    }
    let scenarios: BTreeSet<&str> = run.cells.iter().map(|c| c.scenario.as_str()).collect();
    for e in &now.engines {
        let name = &e.name;
        if e.status != "ok" {
            out.push(format!("{name}: status {}", e.status));
        }
        if e.correctness.passed != Some(true) {
            out.push(format!("{name}: correctness gate {:?}", e.correctness));
        }
        let measured: Vec<_> = run.requests.iter().filter(|r| r.engine == name && !r.warmup).collect();
        for s in &scenarios {
            if !measured.iter().any(|r| r.scenario == *s) {
                out.push(format!("{name}: no measured request in the {s} scenario"));
            }
        }
        for r in &measured {
            if r.generated_tokens != r.batch_size * r.max_new_tokens {
                out.push(format!("{name}: request {} b{} generated {} tokens", r.workload, r.batch_size, r.generated_tokens));
            }
            if r.total_ns != r.ttft_ns + r.token_ns.iter().sum::<u64>() {
                out.push(format!("{name}: request {} timings do not add up", r.workload));
            }
        }
        let f = &e.scenarios;
        for (scenario, key, empty) in
            [("throughput", "throughput", f.throughput.is_empty()), ("concurrent", "load", f.load.is_empty()), ("memory", "memory", f.memory.is_empty())]
        {
            if scenarios.contains(scenario) && empty {
                out.push(format!("{name}: summary has no {key} figures"));
            }
        }
        if !e.decode_tok_per_s.as_ref().is_some_and(|t| t.median > 0.0) {
            out.push(format!("{name}: no decode throughput"));
        }
    }
    out.extend(block_problems(run));
    if now.host_states.is_none() {
        out.push("summary.json has no host_states".into());
    }
    // Per-cell correlations need samples taken while a request ran, which short requests may not
    // have; the parts' distributions need only the continuous samples.
    if !now.probe_parts.as_ref().is_some_and(|p| p.parts.iter().all(|d| d.readings > 0)) {
        out.push("summary.json has no probe_parts (continuous samples without the probe's parts?)".into());
    }
    match analysis::rederive::as_written(now, written) {
        Ok(t) if t == written => {}
        Ok(_) => out.push("summary.json differs from what its raw data gives now (benchmark-runner analyze rebuilds it)".into()),
        Err(e) => out.push(format!("summary.json: {e}")),
    }
    out
}

/// Host probes around every measured static request; each interleaved block holds each engine once
/// and every block of a cell the same engines.
fn block_problems(run: &Run) -> Vec<String> {
    let mut out = Vec::new();
    let mut blocks: BTreeMap<(&str, usize, usize, usize), Vec<&str>> = BTreeMap::new();
    for r in run.requests.iter().filter(|r| !r.warmup && STATIC_SCENARIOS.contains(&r.scenario)) {
        if r.host_probe_before_ns.is_none() || r.host_probe_after_ns.is_none() {
            out.push(format!("{}: request {} b{} p{} has no host probes", r.engine, r.workload, r.batch_size, r.prompt_tokens));
        }
        if let Some(b) = r.block {
            blocks.entry((r.workload, r.batch_size, r.prompt_tokens, b)).or_default().push(r.engine);
        }
    }
    let mut widths: BTreeMap<(&str, usize, usize), BTreeSet<usize>> = BTreeMap::new();
    for ((w, b, p, block), engines) in &blocks {
        let distinct: BTreeSet<&&str> = engines.iter().collect();
        if distinct.len() != engines.len() {
            out.push(format!("block {block} of {w} b{b} p{p}: an engine measured twice: {engines:?}"));
        }
        widths.entry((w, *b, *p)).or_default().insert(engines.len());
    }
    for ((w, b, p), ws) in widths.iter().filter(|(_, ws)| ws.len() != 1) {
        out.push(format!("cell {w} b{b} p{p}: blocks hold different numbers of engines {ws:?}"));
    }
    out
}

/// Checks `run_dir`; the problems, or a one-line description when there are none.
pub fn check(run_dir: &Path) -> anyhow::Result<Result<String, Vec<String>>> {
    let summary_path = run_dir.join("summary.json");
    let text = std::fs::read_to_string(&summary_path).map_err(|e| anyhow::anyhow!("{}: {e}", summary_path.display()))?;
    let report = analysis::analyze(run_dir)?;
    let found = problems(&report.run, &text, &report.summary);
    if !found.is_empty() {
        return Ok(Err(found));
    }
    let scenarios: BTreeSet<&str> = report.run.cells.iter().map(|c| c.scenario.as_str()).collect();
    Ok(Ok(format!("{} engines, scenarios {scenarios:?}, {} requests: ok", report.summary.engines.len(), report.run.requests.len())))
}
