//! How much of an engine's request-to-request variation it shares with the other engines of an
//! interleaved cell: Spearman's ρ, over the cell's blocks, between the engine's decode rate and
//! the other engines' in the same block (the mean of the logarithm of each one's rate over its own
//! cell median). The engines of a block ran within a second or two of each other on the same CPUs,
//! so a high ρ is a host-wide effect, whether or not the host probe sees it (paired ratios cancel
//! it); a ρ near 0 is the engine's own variation.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::rank_correlation::{spearman, MIN_PAIRS};
use crate::requests::decode_tok_s;
use crate::run::Run;
use crate::stats::median;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedVariation {
    pub engine: String,
    pub workload: String,
    pub batch_size: usize,
    pub prompt_tokens: usize,
    /// Blocks holding this engine's request and at least one other engine's.
    pub blocks: usize,
    /// Null below [`MIN_PAIRS`] blocks.
    pub rho: Option<f64>,
}

/// One figure per engine and interleaved cell, in the run's engine order.
pub fn shared_variation(run: &Run) -> Vec<SharedVariation> {
    type Cell<'a> = (&'a str, usize, usize);
    let mut blocks: BTreeMap<Cell, BTreeMap<usize, HashMap<&str, f64>>> = BTreeMap::new();
    for r in run.requests.iter().filter(|r| crate::requests::in_static_cell(r)) {
        if let (Some(b), Some(rate)) = (r.block, decode_tok_s(&r)) {
            blocks.entry((r.workload, r.batch_size, r.prompt_tokens)).or_default().entry(b).or_default().insert(r.engine, rate);
        }
    }
    // Each engine's median rate per cell, once.
    let mut medians: BTreeMap<Cell, HashMap<&str, f64>> = BTreeMap::new();
    for (key, cell) in &blocks {
        let m = medians.entry(*key).or_default();
        for e in cell.values().flat_map(|b| b.keys()) {
            if !m.contains_key(e) {
                m.insert(e, median(&cell.values().filter_map(|b| b.get(e).copied()).collect::<Vec<_>>()));
            }
        }
    }
    let mut out = Vec::new();
    for engine in run.engine_names() {
        for (key @ &(workload, batch_size, prompt_tokens), cell) in &blocks {
            let medians = &medians[key];
            let (mut mine, mut others) = (Vec::new(), Vec::new());
            for b in cell.values() {
                let Some(&rate) = b.get(engine.as_str()) else { continue };
                let logs: Vec<f64> = b.iter().filter(|(e, _)| **e != engine).map(|(e, x)| (x / medians[e]).ln()).collect();
                if !logs.is_empty() {
                    mine.push(rate);
                    others.push(logs.iter().sum::<f64>() / logs.len() as f64);
                }
            }
            if !mine.is_empty() {
                let (workload, blocks) = (workload.to_string(), mine.len());
                out.push(SharedVariation {
                    engine: engine.clone(),
                    workload,
                    batch_size,
                    prompt_tokens,
                    blocks,
                    rho: (blocks >= MIN_PAIRS).then(|| spearman(&mine, &others)).flatten(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requests::tests::{request, run};

    #[test]
    fn an_engine_that_moves_with_the_others_shares_its_variation_and_a_steady_one_does_not() {
        // Three engines, 20 blocks; a and b are slowed together in odd blocks, c varies on its own.
        let mut records = Vec::new();
        for block in 0..20u64 {
            let host = if block % 2 == 1 { 4 } else { 0 };
            for (engine, ms) in [("a", 10 + host + block % 3), ("b", 20 + 2 * host + block % 4), ("c", 30 + (block * 7) % 5)] {
                let mut r = request(engine, 1, 5, &[ms; 4]);
                r.block = Some(block as usize);
                records.push(r);
            }
        }
        let mut run = run("r", records);
        run.config.engines = vec!["a".into(), "b".into(), "c".into()];
        let s = shared_variation(&run);
        assert_eq!(s.iter().map(|v| (v.engine.as_str(), v.blocks)).collect::<Vec<_>>(), vec![("a", 20), ("b", 20), ("c", 20)]);
        assert!(s[0].rho.unwrap() > 0.7 && s[1].rho.unwrap() > 0.7, "{s:?}");
        assert!(s[2].rho.unwrap().abs() < 0.4, "{s:?}");
    }

    #[test]
    fn sequential_cells_have_no_figure() {
        assert!(shared_variation(&run("r", vec![request("a", 1, 5, &[5, 5])])).is_empty());
    }
}
