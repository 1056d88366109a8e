//! Between runs: the same cell measured in repeated runs (fresh processes, ideally fresh machines),
//! and how far its median moved. The original design asks for < 10 % run-to-run variance; this is
//! where that is evaluated rather than assumed.

use serde::Serialize;

use crate::cells::CellMetric;
use crate::stats::mean;
use run_format::config::Settings;

/// The figures whose reproducibility is reported.
pub const TRACKED: [&str; 3] = ["decode_tok_s", "ttft_ms", "output_tok_s"];

#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    pub engine: String,
    pub workload: String,
    pub scenario: String,
    pub batch_size: u64,
    pub prompt_tokens: u64,
    pub load: String,
    pub metric: &'static str,
    pub runs: Vec<String>,
    /// The cell's median in each run, in `runs` order.
    pub medians: Vec<f64>,
    /// (largest − smallest median) / their mean.
    pub relative_range: f64,
    /// Standard deviation of the medians over their mean (n − 1 denominator).
    pub cv: f64,
    pub within_limit: bool,
}

/// Every tracked cell metric present in at least two of the runs.
pub fn spreads(metrics: &[CellMetric], settings: &Settings) -> Vec<Spread> {
    let mut out: Vec<Spread> = Vec::new();
    // Memory cells hold one request each: they say how much memory, not how fast.
    for m in metrics.iter().filter(|m| TRACKED.contains(&m.metric) && m.key.scenario != "memory") {
        let k = &m.key;
        let same = |s: &Spread| {
            (s.engine.as_str(), s.workload.as_str(), s.batch_size, s.prompt_tokens, s.load.as_str(), s.metric)
                == (k.engine.as_str(), k.workload.as_str(), k.batch_size, k.prompt_tokens, k.load.as_str(), m.metric)
        };
        match out.iter_mut().find(|s| same(s)) {
            Some(s) => {
                s.runs.push(k.run.clone());
                s.medians.push(m.stats.median);
            }
            None => out.push(Spread {
                engine: k.engine.clone(),
                workload: k.workload.clone(),
                scenario: k.scenario.clone(),
                batch_size: k.batch_size,
                prompt_tokens: k.prompt_tokens,
                load: k.load.clone(),
                metric: m.metric,
                runs: vec![k.run.clone()],
                medians: vec![m.stats.median],
                relative_range: 0.0,
                cv: 0.0,
                within_limit: true,
            }),
        }
    }
    out.retain(|s| s.medians.len() >= 2);
    for s in &mut out {
        let mu = mean(&s.medians);
        let (lo, hi) = s.medians.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        s.relative_range = (hi - lo) / mu;
        s.cv = crate::stats::variance(&s.medians).sqrt() / mu;
        s.within_limit = s.relative_range <= settings.criteria.max_run_to_run_spread;
    }
    out
}

/// Per engine: the largest relative range of its headline decode medians across runs.
#[derive(Debug, Clone, Serialize)]
pub struct EngineReproducibility {
    pub engine: String,
    pub cells: usize,
    pub cells_within_limit: usize,
    pub worst_relative_range: f64,
    pub limit: f64,
}

pub fn per_engine(spreads: &[Spread], settings: &Settings) -> Vec<EngineReproducibility> {
    let mut names: Vec<&str> = spreads.iter().map(|s| s.engine.as_str()).collect();
    names.dedup();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|e| {
            let own: Vec<&Spread> = spreads.iter().filter(|s| s.engine == e && s.metric == "decode_tok_s").collect();
            EngineReproducibility {
                engine: e.into(),
                cells: own.len(),
                cells_within_limit: own.iter().filter(|s| s.within_limit).count(),
                worst_relative_range: own.iter().map(|s| s.relative_range).fold(0.0, f64::max),
                limit: settings.criteria.max_run_to_run_spread,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cells::{describe, CellKey};

    fn metric(run: &str, engine: &str, xs: &[f64]) -> CellMetric {
        CellMetric {
            key: CellKey {
                run: run.into(),
                engine: engine.into(),
                workload: "latency".into(),
                scenario: "latency".into(),
                batch_size: 1,
                prompt_tokens: 128,
                load: String::new(),
            },
            metric: "decode_tok_s",
            unit: "tok/s",
            stats: describe(xs, &Settings::default(), 1).unwrap(),
        }
    }

    #[test]
    fn run_to_run_range_is_judged_against_the_limit() {
        let m = vec![
            metric("a", "steady", &[100.0, 101.0, 99.0]),
            metric("b", "steady", &[104.0, 105.0, 103.0]),
            metric("a", "jumpy", &[100.0, 100.0, 100.0]),
            metric("b", "jumpy", &[125.0, 125.0, 125.0]),
            metric("a", "alone", &[1.0, 2.0, 3.0]),
        ];
        let s = spreads(&m, &Settings::default());
        assert_eq!(s.len(), 2, "a cell seen in one run has no spread");
        let steady = s.iter().find(|s| s.engine == "steady").unwrap();
        assert!((steady.relative_range - 4.0 / 102.0).abs() < 1e-12 && steady.within_limit);
        let jumpy = s.iter().find(|s| s.engine == "jumpy").unwrap();
        assert!((jumpy.relative_range - 25.0 / 112.5).abs() < 1e-12 && !jumpy.within_limit);
        let e = per_engine(&s, &Settings::default());
        assert_eq!(e.iter().map(|e| (e.engine.as_str(), e.cells_within_limit)).collect::<Vec<_>>(), vec![("jumpy", 0), ("steady", 1)]);
    }
}
