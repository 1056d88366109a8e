//! What each part of the host probe says about the engines (runs whose continuous samples keep
//! the probe's parts, [`ProbeParts`]). Per part: the run's distribution, and whether it shows two
//! speeds by the host-state rule. Per engine and cell: Spearman's ρ between each measured request's
//! decode rate and each part's mean over the samples taken while that request ran. A part whose
//! time rises as an engine slows (ρ well below 0) names the kind of host work the engine waits on;
//! ρ near 0 for every part says the engine's variation is not what the probe sees.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::host_state::HostStates;
use crate::rank_correlation::{spearman, MIN_PAIRS};
use crate::requests::decode_tok_s;
use crate::run::Run;
use crate::stats::{quantile, sorted};
use run_format::records::{HostSample, ProbeParts};

/// The parts ([`ProbeParts::NAMES`]), then their sum: the names of [`PartDistribution::part`] and
/// [`PartRho::part`].
pub const PART_NAMES: [&str; 6] = {
    let n = ProbeParts::NAMES;
    [n[0], n[1], n[2], n[3], n[4], "total"]
};

fn part_values(p: &ProbeParts) -> [f64; 6] {
    let v = p.values();
    [v[0], v[1], v[2], v[3], v[4], p.total_ns()].map(|x| x as f64)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartDistribution {
    pub part: &'static str,
    pub readings: usize,
    pub p05_us: f64,
    pub p50_us: f64,
    pub p95_us: f64,
    /// (p95 − p5) / p50.
    pub spread: f64,
    /// Whether the part's readings form two states by the host-state rule.
    pub two_states: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartRho {
    pub part: &'static str,
    pub rho: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellCorrelations {
    pub engine: String,
    pub workload: String,
    pub batch_size: usize,
    pub prompt_tokens: usize,
    /// Measured requests with at least one sample taken while they ran.
    pub n: usize,
    /// ρ(decode tok/s, the part's mean during the request), in [`PART_NAMES`] order (null below
    /// [`MIN_PAIRS`] requests).
    pub rho: Vec<PartRho>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbePartsReport {
    pub rule: &'static str,
    pub parts: Vec<PartDistribution>,
    pub cells: Vec<CellCorrelations>,
}

/// Each part's mean over the samples taken from `from_ms` to `to_ms` (None without one).
fn mean_during(samples: &[(u128, [f64; 6])], from_ms: u128, to_ms: u128) -> Option<[f64; 6]> {
    let start = samples.partition_point(|s| s.0 < from_ms);
    let during: Vec<&[f64; 6]> = samples[start..].iter().take_while(|s| s.0 <= to_ms).map(|s| &s.1).collect();
    (!during.is_empty()).then(|| std::array::from_fn(|k| during.iter().map(|v| v[k]).sum::<f64>() / during.len() as f64))
}

/// The report of a run whose host samples keep the probe's parts (None otherwise).
pub fn probe_parts(run: &Run) -> Option<ProbePartsReport> {
    let mut samples: Vec<(u128, [f64; 6])> =
        run.host.iter().filter_map(|s: &HostSample| Some((s.unix_ms, part_values(s.parts.as_ref()?)))).collect();
    if samples.is_empty() {
        return None;
    }
    samples.sort_by_key(|s| s.0);
    let parts = PART_NAMES
        .iter()
        .enumerate()
        .map(|(k, &part)| {
            let s = sorted(&samples.iter().map(|x| x.1[k]).collect::<Vec<_>>());
            let (p05, p50, p95) = (quantile(&s, 0.05), quantile(&s, 0.5), quantile(&s, 0.95));
            PartDistribution {
                part,
                readings: s.len(),
                p05_us: p05 / 1e3,
                p50_us: p50 / 1e3,
                p95_us: p95 / 1e3,
                spread: (p95 - p05) / p50,
                two_states: HostStates::from_readings(&s).is_some_and(|h| h.two_states),
            }
        })
        .collect();
    let order = run.engine_names();
    let rank = |e: &str| order.iter().position(|n| n == e).unwrap_or(order.len());
    // (engine rank, engine, workload, batch, prompt) → (decode tok/s, parts during) per request.
    type Cell<'a> = (usize, &'a str, &'a str, usize, usize);
    let mut by_cell: BTreeMap<Cell, Vec<(f64, [f64; 6])>> = BTreeMap::new();
    for r in run.requests.iter().filter(|r| crate::requests::in_static_cell(r)) {
        // A request's record is written when its answer has been read: it ran for runner_total_ns
        // before unix_ms.
        let from = r.unix_ms.saturating_sub((r.runner_total_ns / 1_000_000) as u128);
        if let (Some(rate), Some(during)) = (decode_tok_s(&r), mean_during(&samples, from, r.unix_ms)) {
            by_cell.entry((rank(r.engine), r.engine, r.workload, r.batch_size, r.prompt_tokens)).or_default().push((rate, during));
        }
    }
    let cells = by_cell
        .into_iter()
        .map(|((_, engine, workload, batch_size, prompt_tokens), values)| {
            let rates: Vec<f64> = values.iter().map(|v| v.0).collect();
            let rho = PART_NAMES
                .iter()
                .enumerate()
                .map(|(k, &part)| {
                    let rho =
                        (values.len() >= MIN_PAIRS).then(|| spearman(&rates, &values.iter().map(|v| v.1[k]).collect::<Vec<_>>())).flatten();
                    PartRho { part, rho }
                })
                .collect();
            CellCorrelations { engine: engine.into(), workload: workload.into(), batch_size, prompt_tokens, n: values.len(), rho }
        })
        .collect();
    Some(ProbePartsReport {
        rule: "per part: p5/p50/p95 of the continuous samples, and the host-state rule applied to that part alone; per cell: Spearman's ρ between each measured request's decode tok/s and the part's mean over the samples taken while it ran",
        parts,
        cells,
    })
}

/// The report as lines of the terminal table.
pub fn table(p: &ProbePartsReport) -> String {
    let mut out = String::from("Host probe by part (continuous samples): p50 µs, (p95 − p5) / p50, two states?\n ");
    for d in &p.parts {
        out += &format!(" {} {:.0} µs {:.0} %{}", d.part, d.p50_us, 100.0 * d.spread, if d.two_states { " TWO STATES" } else { "" });
        out += if d.part == "total" { "\n" } else { ";" };
    }
    out += &format!(
        "ρ(decode tok/s, part during the request), per cell: {} (|ρ| below 1.96/√(n−1) is within chance; none below n={MIN_PAIRS})\n",
        PART_NAMES.join(" / ")
    );
    for c in &p.cells {
        let rho: Vec<String> = c.rho.iter().map(|r| r.rho.map_or("–".into(), |x| format!("{x:+.2}"))).collect();
        out +=
            &format!("  {:<16} {:<10} b{:<3} p{:<5} n={:<3} {}\n", c.engine, c.workload, c.batch_size, c.prompt_tokens, c.n, rho.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use run_format::records::Tag;

    fn sample(unix_ms: u128, memory_ns: u64) -> HostSample {
        // interp jitters on its own, unrelated to the engine.
        let interp_ns = 80_000 + (unix_ms as u64 * 13 % 11) * 1000;
        let parts = ProbeParts { chain_ns: 80_000, ilp_ns: 50_000, interp_ns, memory_ns, syscall_ns: 50_000 };
        HostSample {
            schema: 1,
            unix_ms,
            tag: Tag::default(),
            probe_ns: parts.total_ns(),
            parts: Some(parts),
            probe_on_cpu: None,
            engine_on_cpu: None,
            system_busy_pct: None,
            engine_cpu_ms: None,
        }
    }

    #[test]
    fn a_part_that_slows_with_the_engine_is_named_and_the_others_are_not() {
        // Requests of 100 ms every 200 ms; memory is slow (300 µs instead of 100 µs) in every
        // third stretch of 10 requests, and the engine's token time follows it.
        let mut records = Vec::new();
        let mut host = Vec::new();
        for i in 0..60u128 {
            let slow = (i / 10) % 3 == 2;
            let end = 1_000_000 + i * 200 + 100;
            for t in [end - 90, end - 40] {
                host.push(sample(t, if slow { 300_000 } else { 100_000 } + (t as u64 % 7) * 1000));
            }
            let mut r = crate::requests::tests::request("e", 1, 5, &[if slow { 30 } else { 20 } + i as u64 % 5; 4]);
            (r.unix_ms, r.runner_total_ns) = (end, 100_000_000);
            records.push(r);
        }
        // Samples between requests are not any request's.
        host.push(sample(1_000_000 + 150, 5_000_000));
        let mut run = crate::requests::tests::run("r", records);
        run.host = host;
        let p = probe_parts(&run).unwrap();
        let memory = p.parts.iter().find(|d| d.part == "memory").unwrap();
        assert!(memory.two_states && (memory.p50_us - 100.0).abs() < 10.0, "{memory:?}");
        assert!(p.parts.iter().filter(|d| ["chain", "ilp", "syscall"].contains(&d.part)).all(|d| !d.two_states && d.spread == 0.0));
        let c = &p.cells[0];
        assert_eq!((c.engine.as_str(), c.n), ("e", 60));
        let rho = |name: &str| c.rho.iter().find(|r| r.part == name).unwrap().rho;
        // Ranks within each state are unrelated, so a perfect split into states gives about −0.7.
        assert!(rho("memory").unwrap() < -0.6, "{:?}", rho("memory"));
        assert!(rho("interp").unwrap().abs() < 0.3, "{:?}", rho("interp"));
        assert_eq!(rho("chain"), None, "a constant part has no correlation");
        let t = table(&p);
        assert!(t.contains(&format!("memory {:.0} µs", memory.p50_us)) && t.contains("TWO STATES"), "{t}");
    }

    #[test]
    fn runs_without_parts_have_no_report() {
        let mut run = crate::requests::tests::run("r", vec![]);
        let mut s = sample(1, 1);
        s.parts = None;
        run.host.push(s);
        assert_eq!(probe_parts(&run), None);
    }
}
