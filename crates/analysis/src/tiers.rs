//! Deployment tiers: for each, a stated rule and the engine it picks from a run.

use crate::run::Run;
use crate::summary::{EngineSummary, Tier};

/// Engines a tier may pick: measured, and not flagged by the correctness gate.
fn eligible(e: &EngineSummary) -> bool {
    e.status != "failed" && e.correctness.passed != Some(false)
}

fn pick(engines: &[EngineSummary], f: impl Fn(&EngineSummary) -> Option<f64>, lowest: bool) -> (Option<String>, Option<f64>) {
    let best = engines.iter().filter(|e| eligible(e)).filter_map(|e| f(e).map(|v| (e, v))).max_by(|a, b| {
        if lowest {
            b.1.total_cmp(&a.1)
        } else {
            a.1.total_cmp(&b.1)
        }
    });
    (best.map(|b| b.0.name.clone()), best.map(|b| b.1))
}

pub fn tiers(run: &Run, engines: &[EngineSummary]) -> Vec<Tier> {
    let price = run.config.analysis.gpu_price_per_hour;
    let mut out = Vec::new();
    let mut add = |tier, rule, unit, (engine, value): (Option<String>, Option<f64>)| out.push(Tier { tier, rule, engine, value, unit });
    add(
        "interactive",
        "lowest p99 client-side time to first token, one request at a time (latency scenario)",
        "ms",
        pick(engines, |e| e.ttft_p99_ms, true),
    );
    add(
        "single-stream",
        "highest median decode throughput, one request at a time",
        "tok/s",
        pick(engines, |e| e.decode_tok_per_s.as_ref().map(|t| t.median), false),
    );
    match price {
        Some(p) => add(
            "batch",
            "most output tokens per dollar at the best batch size of the throughput sweep",
            "tokens/USD",
            pick(engines, |e| e.business.best_output_tok_per_s.map(|t| t * 3600.0 / p), false),
        ),
        None => add(
            "batch",
            "highest output tokens per second at the best batch size (no price in the config)",
            "tok/s",
            pick(engines, |e| e.business.best_output_tok_per_s, false),
        ),
    }
    add(
        "serving",
        "highest Poisson arrival rate whose requests met the workload's SLO",
        "requests/s",
        pick(engines, |e| e.scenarios.max_sustained_rate_per_s, false),
    );
    add(
        "efficiency",
        "lowest GPU energy per generated token over every cell",
        "mJ/token",
        pick(engines, |e| e.scenarios.energy_per_token_mj.filter(|_| e.on_gpu()), true),
    );
    add(
        "cpu-only",
        "highest median decode throughput among CPU engines",
        "tok/s",
        pick(engines, |e| e.decode_tok_per_s.as_ref().filter(|_| e.on_cpu()).map(|t| t.median), false),
    );
    out
}
