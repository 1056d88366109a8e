//! The report's tables: engines ranked by decode speed, each cell per host state, and every flag
//! a reader must see before trusting a figure.

use analysis::summary::{Estimate, Ratio, Summary};
use analysis::Run;

use crate::page::{esc, table};

pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// `median [lo, hi] (n)`; without an interval when the data cannot support one.
pub fn estimate(e: Option<&Estimate>) -> String {
    match e {
        None => "–".into(),
        Some(e) => match e.ci95 {
            Some([lo, hi]) => format!("{} [{}, {}] <small>n={}</small>", num(e.median), num(lo), num(hi), e.n),
            None => format!("{} <small>n={}, no interval</small>", num(e.median), e.n),
        },
    }
}

pub fn ratio(r: Option<&Ratio>) -> String {
    match r {
        None => "–".into(),
        Some(r) => match r.ci95 {
            Some([lo, hi]) => format!("×{:.3} [{:.3}, {:.3}]", r.median, lo, hi),
            None => format!("×{:.3}", r.median),
        },
    }
}

fn gate(e: &analysis::summary::EngineSummary) -> String {
    let c = &e.correctness;
    match c.passed {
        Some(true) => format!(
            "<span class=\"good\">passed</span> <small>{}</small>",
            c.max_rel_logit_err.map(|x| format!("err {x:.1e}")).unwrap_or_default()
        ),
        Some(false) => format!(
            "<span class=\"bad\">⚠ failed</span> <small>err {}, {}/{} greedy steps</small>",
            c.max_rel_logit_err.map(|x| format!("{x:.1e}")).unwrap_or("–".into()),
            c.greedy_match_steps.map(|x| x.to_string()).unwrap_or("–".into()),
            c.steps.map(|x| x.to_string()).unwrap_or("–".into())
        ),
        None => "<span class=\"flag\">not run</span>".into(),
    }
}

/// Engines by median headline decode speed, fastest first; engines without one last.
pub fn ranked(summary: &Summary) -> String {
    let mut engines: Vec<&analysis::summary::EngineSummary> = summary.engines.iter().collect();
    engines.sort_by(|a, b| {
        let key = |e: &analysis::summary::EngineSummary| e.decode_tok_per_s.as_ref().map(|d| -d.median).unwrap_or(f64::INFINITY);
        key(a).total_cmp(&key(b))
    });
    let rows: Vec<Vec<String>> = engines
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let status = match (e.status.as_str(), &e.failure) {
                ("ok", _) => "ok".to_string(),
                (s, Some(f)) => format!("<span class=\"bad\">{}</span> <small>{}</small>", esc(s), esc(f)),
                (s, None) => format!("<span class=\"flag\">{}</span> <small>{} failed cells</small>", esc(s), e.failed_cells),
            };
            vec![
                (i + 1).to_string(),
                format!(
                    "<b>{}</b><br><small>{} {}</small>",
                    esc(&e.name),
                    esc(e.device.as_deref().unwrap_or("")),
                    esc(e.dtype.as_deref().unwrap_or(""))
                ),
                status,
                gate(e),
                estimate(e.decode_tok_per_s.as_ref()),
                estimate(e.ttft_ms.as_ref()),
                estimate(e.latency_ms.as_ref()),
                ratio(e.speedup_vs_baseline.as_ref()),
                ratio(e.speedup_vs_compiled.as_ref()),
            ]
        })
        .collect();
    table(
        "ranked",
        &[
            "#",
            "engine",
            "status",
            "correctness gate",
            "decode tok/s",
            "TTFT ms",
            "latency ms",
            &format!("vs {}", summary.baseline),
            &format!("vs {}", summary.compiled_reference),
        ],
        &rows,
    )
}

fn median(m: Option<&analysis::cell_figures::Median>) -> String {
    match m {
        None => "–".into(),
        Some(m) => {
            let ci = m.ci95.map(|[a, b]| format!(" [{}, {}]", num(a), num(b))).unwrap_or_else(|| " <small>no interval</small>".into());
            let cv = m.cv.map(|c| format!(", CV {:.1} %", c * 100.0)).unwrap_or_default();
            format!("{}{ci} <small>n={}{cv}</small>", num(m.median), m.n)
        }
    }
}

/// Each latency / throughput cell's decode rate overall and per host state, with paired
/// speedups where the cell was interleaved.
pub fn cells(summary: &Summary) -> String {
    let states = summary.host_states.as_ref().is_some_and(|h| h.two_states);
    let rows: Vec<Vec<String>> = summary
        .cells
        .iter()
        .map(|c| {
            let speedups: Vec<String> = c
                .speedups
                .iter()
                .map(|s| {
                    format!(
                        "÷{}: {}<br><small>fast host only:</small> {}",
                        esc(&s.reference),
                        median(s.all.as_ref()),
                        median(s.fast.as_ref())
                    )
                })
                .collect();
            vec![
                esc(&c.engine),
                format!(
                    "{} <small>{}</small>",
                    esc(&crate::charts::cell_label(&c.workload, c.batch_size, c.prompt_tokens)),
                    esc(&c.scenario)
                ),
                median(c.decode_tok_per_s.all.as_ref()),
                median(c.decode_tok_per_s.fast.as_ref()),
                median(c.decode_tok_per_s.slow.as_ref()),
                c.host_sensitivity.map(|h| format!("{h:.3}")).unwrap_or("–".into()),
                if c.interleaved { speedups.join("<br>") } else { "<small>not interleaved</small>".into() },
            ]
        })
        .collect();
    let note = if states {
        "The host ran in two speed states in this run (see the host section); fast and slow are the requests measured in each."
    } else {
        "The host showed one speed state in this run (or had no probe): the per-state columns are empty or equal the overall figure."
    };
    format!(
        "<p class=\"note\">{note}</p>{}",
        table(
            "cells",
            &["engine", "cell", "decode tok/s, all", "fast host", "slow host", "slow ÷ fast", "paired speedup (per block)"],
            &rows
        )
    )
}

/// Everything that qualifies a figure: failed gates and cells, throttling, small samples, a
/// refused bandwidth reading, resumed launches.
pub fn flags(run: &Run, summary: &Summary) -> Vec<String> {
    let mut out = Vec::new();
    for e in &summary.engines {
        if e.correctness.passed == Some(false) {
            out.push(format!("⚠ {}: failed the correctness gate; its figures are of a model that does not match the reference.", e.name));
        }
        if e.correctness.passed.is_none() && e.status != "failed" {
            out.push(format!("{}: the correctness gate did not run.", e.name));
        }
        for (what, est) in [("decode tok/s", &e.decode_tok_per_s), ("TTFT", &e.ttft_ms)] {
            if let Some(est) = est.as_ref().filter(|x| x.ci95.is_none()) {
                out.push(format!("{}: {what} rests on {} requests, too few for an interval.", e.name, est.n));
            }
        }
    }
    for f in &run.failures {
        let cell = match (f.batch_size, f.prompt_tokens) {
            (Some(b), Some(p)) => format!(" (batch {b}, prompt {p})"),
            _ => String::new(),
        };
        let request = f.request.as_deref().map(|r| format!(", request {r}")).unwrap_or_default();
        out.push(format!("{}: {} failed{cell}{request}: {}: {}", f.engine, f.stage, f.kind, f.message));
    }
    for g in summary.gpu_state.iter().filter(|g| !g.flags.is_empty()) {
        out.push(format!("{}, {} {}: GPU slowed: {}", g.engine, g.workload, g.cell, g.flags.join("; ")));
    }
    if let Some(b) = summary.bandwidth_probe.as_ref().filter(|b| !b.accepted) {
        out.push(format!("The copy-bandwidth probe's reading ({:.0} GB/s) is refused: {}", b.measured_gb_s, b.note));
    }
    if run.attempts.len() > 1 {
        out.push(format!(
            "The run was launched {} times (resumed); unfinished cells were measured again from their start.",
            run.attempts.len()
        ));
    }
    if run.environment.get("git_dirty").and_then(|v| v.as_bool()) == Some(true) {
        out.push("The run was made from a checkout with uncommitted changes (git.diff in the run directory).".into());
    }
    out
}

pub fn flags_html(flags: &[String]) -> String {
    if flags.is_empty() {
        return "<p class=\"good\">None: every engine passed the gate, no cell failed, no GPU was slowed, every headline figure has an interval.</p>".into();
    }
    let items: String = flags.iter().map(|f| format!("<li class=\"flag\">{}</li>", esc(f))).collect();
    format!("<ul class=\"flags\">{items}</ul>")
}
