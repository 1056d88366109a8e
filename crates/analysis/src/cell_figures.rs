//! Headline figures per cell (one workload × batch size × prompt length of one engine), never
//! pooled across prompt lengths: median decode tok/s over the cell and per host state, the
//! engine's host sensitivity, and speedups from paired blocks (interleaved runs: the ratio of two
//! engines' requests measured in the same block, then the median of those ratios).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::host_state::{HostState, HostStates};
use crate::requests::decode_tok_s;
use crate::run::Run;
use crate::stats::{mean, median_interval, quantile, sorted, variance};
use run_format::config::Settings;
use run_format::Request;

/// Below this many values no interval is given (the figure says n instead).
pub const MIN_N_FOR_INTERVAL: usize = 5;

/// A median with its bootstrap interval (null below [`MIN_N_FOR_INTERVAL`] values) and n.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Median {
    pub median: f64,
    pub ci95: Option<[f64; 2]>,
    pub n: usize,
    /// Standard deviation over the mean of the values (null below 2 values).
    pub cv: Option<f64>,
}

impl Median {
    pub fn of(xs: &[f64], settings: &Settings, seed: u64) -> Option<Median> {
        if xs.is_empty() {
            return None;
        }
        let s = sorted(xs);
        let ci = (s.len() >= MIN_N_FOR_INTERVAL)
            .then(|| median_interval(&s, settings.confidence_level, settings.bootstrap_resamples, seed))
            .flatten()
            .map(|(a, b)| [a, b]);
        let m = mean(&s);
        let cv = (s.len() >= 2 && m != 0.0).then(|| variance(&s).sqrt() / m);
        Some(Median { median: quantile(&s, 0.5), ci95: ci, n: s.len(), cv })
    }
}

/// One figure overall and in each host state.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ByState {
    pub all: Option<Median>,
    pub fast: Option<Median>,
    pub slow: Option<Median>,
    pub mixed: Option<Median>,
}

impl ByState {
    fn of(values: &[(f64, Option<HostState>)], settings: &Settings, seed: u64) -> ByState {
        let pick = |s: HostState| -> Vec<f64> { values.iter().filter(|v| v.1 == Some(s)).map(|v| v.0).collect() };
        let all: Vec<f64> = values.iter().map(|v| v.0).collect();
        ByState {
            all: Median::of(&all, settings, seed),
            fast: Median::of(&pick(HostState::Fast), settings, seed),
            slow: Median::of(&pick(HostState::Slow), settings, seed),
            mixed: Median::of(&pick(HostState::Mixed), settings, seed),
        }
    }

    pub fn state(&self, s: Option<HostState>) -> Option<&Median> {
        match s {
            None => self.all.as_ref(),
            Some(HostState::Fast) => self.fast.as_ref(),
            Some(HostState::Slow) => self.slow.as_ref(),
            Some(HostState::Mixed) => self.mixed.as_ref(),
        }
    }
}

/// An engine's decode rate over a reference's, block by block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedSpeedup {
    pub reference: String,
    /// Over every block where both were measured.
    pub all: Option<Median>,
    /// Over the blocks where both requests were in the fast host state.
    pub fast: Option<Median>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellFigures {
    pub engine: String,
    pub workload: String,
    pub scenario: String,
    pub batch_size: usize,
    pub prompt_tokens: usize,
    /// Whether the cell was measured interleaved with other engines (paired blocks).
    pub interleaved: bool,
    pub decode_tok_per_s: ByState,
    pub ttft_ms: ByState,
    /// Slow-state median decode rate over the fast-state one: about 1.0 for an engine the host's
    /// speed does not hold back, lower for one that is launch-bound.
    pub host_sensitivity: Option<f64>,
    pub speedups: Vec<PairedSpeedup>,
}

type Key<'a> = (&'a str, &'a str, usize, usize);

/// The measured values of one latency or throughput cell, each with its request's host state.
#[derive(Debug, Clone)]
pub struct CellValues {
    pub engine: String,
    pub workload: String,
    pub scenario: String,
    pub batch_size: usize,
    pub prompt_tokens: usize,
    pub interleaved: bool,
    pub decode_tok_per_s: Vec<(f64, Option<HostState>)>,
    pub ttft_ms: Vec<(f64, Option<HostState>)>,
    /// Per reference engine: the ratio of this engine's decode rate to the reference's in each
    /// block both were measured in, and whether both requests were in the fast state.
    pub ratios: Vec<(String, Vec<(f64, bool)>)>,
}

/// The values of every latency and throughput cell of the run, in the run's engine order.
pub fn cell_values(run: &Run, states: Option<&HostStates>, references: &[&str]) -> Vec<CellValues> {
    let mut by_cell: BTreeMap<(usize, Key), Vec<Request>> = BTreeMap::new();
    let order: Vec<String> = run.engine_names();
    let rank = |e: &str| order.iter().position(|n| n == e).unwrap_or(order.len());
    for r in run.requests.iter().filter(|r| crate::requests::in_static_cell(r)) {
        by_cell.entry((rank(r.engine), (r.engine, r.workload, r.batch_size, r.prompt_tokens))).or_default().push(r);
    }
    let state = |r: &Request| states.and_then(|h| h.of(r));
    // Per cell (without the engine) and block: each engine's request, for the pairing. Blocks are
    // kept in order, so the ratios (and every resampling of them) come out the same in any process.
    let mut blocks: HashMap<(&str, usize, usize), BTreeMap<usize, HashMap<&str, Request>>> = HashMap::new();
    for ((_, (engine, workload, batch, prompt)), rs) in &by_cell {
        for r in rs {
            if let Some(b) = r.block {
                blocks.entry((workload, *batch, *prompt)).or_default().entry(b).or_default().insert(engine, *r);
            }
        }
    }
    by_cell
        .iter()
        .map(|((_, (engine, workload, batch, prompt)), rs)| {
            let cell_blocks = blocks.get(&(*workload, *batch, *prompt));
            let ratios = references
                .iter()
                .filter(|r| *r != engine)
                .filter_map(|reference| {
                    let pairs: Vec<(f64, bool)> = cell_blocks?
                        .values()
                        .filter_map(|b| {
                            let (mine, theirs) = (b.get(engine)?, b.get(reference)?);
                            let both_fast = state(mine) == Some(HostState::Fast) && state(theirs) == Some(HostState::Fast);
                            Some((decode_tok_s(mine)? / decode_tok_s(theirs)?, both_fast))
                        })
                        .collect();
                    (!pairs.is_empty()).then(|| (reference.to_string(), pairs))
                })
                .collect();
            CellValues {
                engine: engine.to_string(),
                workload: workload.to_string(),
                scenario: rs[0].scenario.to_string(),
                batch_size: *batch,
                prompt_tokens: *prompt,
                interleaved: rs.iter().any(|r| r.block.is_some()),
                decode_tok_per_s: rs.iter().filter_map(|r| Some((decode_tok_s(r)?, state(r)))).collect(),
                ttft_ms: rs.iter().map(|r| (r.ttft_ns as f64 / 1e6, state(r))).collect(),
                ratios,
            }
        })
        .collect()
}

/// Figures of every latency and throughput cell of the run, in the run's engine order.
pub fn cell_figures(run: &Run, states: Option<&HostStates>, references: &[&str], settings: &Settings) -> Vec<CellFigures> {
    cell_values(run, states, references)
        .into_iter()
        .map(|v| {
            let seed = settings.bootstrap_seed ^ (v.batch_size as u64).rotate_left(16) ^ (v.prompt_tokens as u64).rotate_left(40);
            let decode = ByState::of(&v.decode_tok_per_s, settings, seed);
            let host_sensitivity = match (&decode.slow, &decode.fast) {
                (Some(s), Some(f)) if f.median > 0.0 => Some(s.median / f.median),
                _ => None,
            };
            let speedups = v
                .ratios
                .iter()
                .map(|(reference, pairs)| {
                    let all: Vec<f64> = pairs.iter().map(|p| p.0).collect();
                    let fast: Vec<f64> = pairs.iter().filter(|p| p.1).map(|p| p.0).collect();
                    PairedSpeedup {
                        reference: reference.clone(),
                        all: Median::of(&all, settings, seed ^ 1),
                        fast: Median::of(&fast, settings, seed ^ 2),
                    }
                })
                .collect();
            CellFigures {
                ttft_ms: ByState::of(&v.ttft_ms, settings, seed ^ 3),
                engine: v.engine,
                workload: v.workload,
                scenario: v.scenario,
                batch_size: v.batch_size,
                prompt_tokens: v.prompt_tokens,
                interleaved: v.interleaved,
                decode_tok_per_s: decode,
                host_sensitivity,
                speedups,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use run_format::records::RequestRecord;

    /// Two engines in interleaved blocks; the host is slow in every third block, and engine `a`
    /// (launch-bound) slows down with it while `b` (GPU-bound) does not.
    fn interleaved_run() -> Run {
        let mut records: Vec<RequestRecord> = Vec::new();
        for block in 0..30 {
            let slow = block % 3 == 2;
            let probe = if slow { 360_000 } else { 200_000 };
            for (engine, fast_ms, slow_ms) in [("a", 10, 16), ("b", 20, 20)] {
                let ms = if slow { slow_ms } else { fast_ms };
                let mut r = crate::requests::tests::request(engine, 1, 5, &[ms; 4]);
                r.prompt_tokens = 128;
                (r.block, r.host_probe_before_ns, r.host_probe_after_ns) = (Some(block), Some(probe), Some(probe + 1000));
                records.push(r);
            }
        }
        crate::requests::tests::run("r", records)
    }

    #[test]
    fn per_state_medians_sensitivity_and_paired_speedups() {
        let run = interleaved_run();
        let states = crate::host_state::host_states(&run).unwrap();
        assert!(states.two_states);
        assert_eq!((states.requests_fast, states.requests_slow, states.requests_mixed), (40, 20, 0));
        let figs = cell_figures(&run, Some(&states), &["b"], &Settings::default());
        assert_eq!(figs.len(), 2);
        let a = figs.iter().find(|f| f.engine == "a").unwrap();
        assert!(a.interleaved);
        let d = &a.decode_tok_per_s;
        assert_eq!((d.fast.as_ref().unwrap().median, d.slow.as_ref().unwrap().median), (100.0, 62.5));
        assert_eq!(d.fast.as_ref().unwrap().n, 20);
        assert_eq!(d.fast.as_ref().unwrap().cv, Some(0.0));
        assert!((a.host_sensitivity.unwrap() - 0.625).abs() < 1e-12);
        let b = figs.iter().find(|f| f.engine == "b").unwrap();
        assert_eq!(b.host_sensitivity, Some(1.0));
        assert!(b.speedups.is_empty(), "no speedup of the reference over itself");
        // Paired: a/b is 2.0 in fast blocks and 1.25 in slow ones.
        let s = &a.speedups[0];
        assert_eq!(s.reference, "b");
        assert_eq!(s.fast.as_ref().unwrap().median, 2.0);
        assert_eq!(s.all.as_ref().unwrap().n, 30);
        assert_eq!(s.all.as_ref().unwrap().median, 2.0);
    }

    #[test]
    fn no_interval_below_five_values() {
        let s = Settings::default();
        let m = Median::of(&[1.0, 2.0, 3.0, 4.0], &s, 1).unwrap();
        assert_eq!((m.n, m.ci95), (4, None));
        assert!(Median::of(&[1.0, 2.0, 3.0, 4.0, 5.0], &s, 1).unwrap().ci95.is_some());
        assert!(Median::of(&[], &s, 1).is_none());
    }
}
