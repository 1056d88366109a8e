//! Figures over repeated runs of one config: per engine and cell, the median over runs with a
//! hierarchical bootstrap interval (resample runs, then requests within each run) and the spread
//! and CV of the per-run medians, overall and in the fast host state; the same for the paired
//! speedup over the compiled reference. Runs of different commits, checkpoints or configs are not
//! pooled unless asked.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::cell_figures::{cell_values, MIN_N_FOR_INTERVAL};
use crate::host_state::{host_states, HostState};
use crate::probe_parts::{probe_parts, PART_NAMES};
use crate::rank_correlation::chance_level;
use crate::run::Run;
use crate::shared_variation::shared_variation;
use crate::stats::{mean, median, quantile, sorted, variance};
use run_format::engines::{BASELINE, COMPILED_REFERENCE};
use seeded_rng::SplitMix64;

/// The goals the measurement issue set: between-run spread of fast-state medians and of paired
/// speedups, and the within-cell CV in one host state.
pub const GOAL_SPREAD: f64 = 0.03;
pub const GOAL_WITHIN_CV: f64 = 0.02;

#[derive(Debug, Clone, Serialize)]
pub struct RunIdentity {
    pub id: String,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub checkpoint_sha256: Option<String>,
    /// Whether the run recorded host probes (runs before them did not).
    pub host_probed: bool,
    pub two_host_states: Option<bool>,
}

/// One figure of one cell across runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AcrossRuns {
    /// Each run's median (null where the run has no value in this state).
    pub per_run: Vec<Option<f64>>,
    /// Median of the per-run medians.
    pub median: f64,
    /// Hierarchical bootstrap interval (runs, then values within runs); null below 2 runs.
    pub ci95: Option<[f64; 2]>,
    /// (max − min) / median of the per-run medians.
    pub spread: f64,
    /// Standard deviation over mean of the per-run medians.
    pub cv: f64,
    pub runs: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct CellOverRuns {
    pub engine: String,
    pub workload: String,
    pub batch_size: usize,
    pub prompt_tokens: usize,
    pub decode_tok_per_s: Option<AcrossRuns>,
    pub decode_tok_per_s_fast: Option<AcrossRuns>,
    /// The largest within-run CV of the cell's fast-state decode rates.
    pub within_cv_fast_max: Option<f64>,
    pub speedup_vs_compiled_fast: Option<AcrossRuns>,
    pub speedup_vs_baseline_fast: Option<AcrossRuns>,
}

/// Where a cell's variation comes from, per run (null where the run lacks the figure).
#[derive(Debug, Clone, Serialize)]
pub struct CellWhy {
    pub engine: String,
    pub workload: String,
    pub batch_size: usize,
    pub prompt_tokens: usize,
    /// ρ with the other engines of the same block ([`crate::shared_variation`]).
    pub shared_rho: Vec<Option<f64>>,
    /// ρ with each part of the host probe during the request ([`crate::probe_parts`]), by part.
    pub part_rho: BTreeMap<String, Vec<Option<f64>>>,
}

/// A part of the host probe in each run: its (p95 − p5) / p50 and whether it showed two states.
#[derive(Debug, Clone, Serialize)]
pub struct PartOverRuns {
    pub part: String,
    pub spread: Vec<Option<f64>>,
    pub two_states: Vec<Option<bool>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OverRuns {
    pub runs: Vec<RunIdentity>,
    /// Differences between the runs that were pooled anyway (`--allow-mixed`) or that do not
    /// prevent pooling (a dirty tree, no host probes).
    pub warnings: Vec<String>,
    pub method: &'static str,
    pub cells: Vec<CellOverRuns>,
    /// The probe's parts in each run (empty when no run kept them).
    pub probe_parts: Vec<PartOverRuns>,
    pub why: Vec<CellWhy>,
}

fn identity(run: &Run) -> RunIdentity {
    let env = &run.environment;
    RunIdentity {
        id: run.id.clone(),
        git_commit: env["git_commit"].as_str().map(String::from),
        git_dirty: env["git_dirty"].as_bool(),
        checkpoint_sha256: env.pointer("/checkpoint/config_sha256").and_then(|v| v.as_str()).map(String::from),
        host_probed: run.requests.iter().any(|r| r.host_probe_before_ns.is_some()),
        two_host_states: None,
    }
}

/// Per run, the values of one figure of one cell (empty where the run lacks it).
fn across(per_run: &[Vec<f64>], resamples: usize, level: f64, seed: u64) -> Option<AcrossRuns> {
    let medians: Vec<Option<f64>> = per_run.iter().map(|v| (!v.is_empty()).then(|| median(v))).collect();
    let present: Vec<f64> = medians.iter().flatten().copied().collect();
    if present.is_empty() {
        return None;
    }
    let med = median(&present);
    let (lo, hi) = present.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let cv = if present.len() > 1 { variance(&present).sqrt() / mean(&present) } else { 0.0 };
    let groups: Vec<&Vec<f64>> = per_run.iter().filter(|v| !v.is_empty()).collect();
    let ci = (groups.len() >= 2).then(|| hierarchical_median_interval(&groups, resamples, level, seed));
    Some(AcrossRuns { per_run: medians, median: med, ci95: ci, spread: (hi - lo) / med, cv, runs: present.len() })
}

/// Percentile interval of the median of per-run medians, resampling runs and then the values of
/// each drawn run (both with replacement, seeded).
pub fn hierarchical_median_interval(groups: &[&Vec<f64>], resamples: usize, level: f64, seed: u64) -> [f64; 2] {
    let mut rng = SplitMix64(seed);
    let mut stats = Vec::with_capacity(resamples);
    let (mut meds, mut buf) = (Vec::with_capacity(groups.len()), Vec::new());
    for _ in 0..resamples {
        meds.clear();
        for _ in 0..groups.len() {
            let g = groups[rng.below(groups.len())];
            buf.clear();
            buf.extend((0..g.len()).map(|_| g[rng.below(g.len())]));
            buf.sort_unstable_by(f64::total_cmp);
            meds.push(quantile(&buf, 0.5));
        }
        meds.sort_unstable_by(f64::total_cmp);
        stats.push(quantile(&meds, 0.5));
    }
    stats.sort_unstable_by(f64::total_cmp);
    [quantile(&stats, (1.0 - level) / 2.0), quantile(&stats, (1.0 + level) / 2.0)]
}

/// Pools `runs`; refuses runs of different commits or checkpoints unless `allow_mixed`.
pub fn over_runs(runs: &[&Run], allow_mixed: bool) -> anyhow::Result<OverRuns> {
    anyhow::ensure!(!runs.is_empty(), "no runs to pool");
    let mut ids: Vec<RunIdentity> = runs.iter().map(|r| identity(r)).collect();
    let mut warnings = Vec::new();
    let first = &ids[0];
    for other in &ids[1..] {
        for (what, a, b) in [
            ("commit", &first.git_commit, &other.git_commit),
            ("checkpoint (config.json sha256)", &first.checkpoint_sha256, &other.checkpoint_sha256),
        ] {
            if a != b {
                let msg = format!(
                    "{} and {} differ in {what}: {} vs {}",
                    first.id,
                    other.id,
                    a.as_deref().unwrap_or("none"),
                    b.as_deref().unwrap_or("none")
                );
                anyhow::ensure!(allow_mixed, "{msg}; pool them anyway with --allow-mixed");
                warnings.push(msg);
            }
        }
    }
    let workloads = |r: &Run| -> Vec<String> { r.config.workloads.iter().map(|w| w.name.clone()).collect() };
    for r in &runs[1..] {
        if workloads(r) != workloads(runs[0]) || r.config.engines != runs[0].config.engines {
            let msg = format!("{} and {} were run with different configs (engines or workloads)", runs[0].id, r.id);
            anyhow::ensure!(allow_mixed, "{msg}; pool them anyway with --allow-mixed");
            warnings.push(msg);
        }
    }
    for id in &ids {
        if id.git_dirty == Some(true) {
            warnings.push(format!("{} was measured from a tree with uncommitted changes", id.id));
        }
        if !id.host_probed {
            warnings.push(format!("{} has no host probes: its requests have no host state", id.id));
        }
    }
    let settings = &runs[0].config.analysis;
    let refs = [COMPILED_REFERENCE, BASELINE];
    type Key = (String, String, usize, usize);
    // Per cell, per run: decode values (all, fast), within-run fast CV, fast paired ratios.
    let mut by_cell: BTreeMap<Key, Vec<[Vec<f64>; 4]>> = BTreeMap::new();
    let mut cv_fast: BTreeMap<Key, f64> = BTreeMap::new();
    for (k, run) in runs.iter().enumerate() {
        let states = host_states(run);
        ids[k].two_host_states = states.as_ref().map(|s| s.two_states);
        for v in cell_values(run, states.as_ref(), &refs) {
            let key = (v.engine.clone(), v.workload.clone(), v.batch_size, v.prompt_tokens);
            let slot = &mut by_cell.entry(key.clone()).or_insert_with(|| vec![Default::default(); runs.len()])[k];
            slot[0] = v.decode_tok_per_s.iter().map(|x| x.0).collect();
            slot[1] = v.decode_tok_per_s.iter().filter(|x| x.1 == Some(HostState::Fast)).map(|x| x.0).collect();
            for (reference, pairs) in &v.ratios {
                let i = if reference == COMPILED_REFERENCE { 2 } else { 3 };
                slot[i] = pairs.iter().filter(|p| p.1).map(|p| p.0).collect();
            }
            // The within-run CV only (no interval needed), from as many values as an interval needs.
            // Summed in sorted order, as the per-cell figures are (same value to the last bit).
            let fast = &sorted(&slot[1]);
            if let Some(cv) = (fast.len() >= MIN_N_FOR_INTERVAL && mean(fast) != 0.0).then(|| variance(fast).sqrt() / mean(fast)) {
                let e = cv_fast.entry(key).or_insert(0.0);
                *e = e.max(cv);
            }
        }
    }
    let (probe_parts, why) = why(runs);
    let (level, resamples, seed) = (settings.confidence_level, settings.bootstrap_resamples, settings.bootstrap_seed);
    let cells = by_cell
        .into_iter()
        .map(|(key, per_run)| {
            let col = |i: usize| -> Vec<Vec<f64>> { per_run.iter().map(|s| s[i].clone()).collect() };
            CellOverRuns {
                decode_tok_per_s: across(&col(0), resamples, level, seed),
                decode_tok_per_s_fast: across(&col(1), resamples, level, seed ^ 1),
                within_cv_fast_max: cv_fast.get(&key).copied(),
                speedup_vs_compiled_fast: across(&col(2), resamples, level, seed ^ 2),
                speedup_vs_baseline_fast: across(&col(3), resamples, level, seed ^ 3),
                engine: key.0,
                workload: key.1,
                batch_size: key.2,
                prompt_tokens: key.3,
            }
        })
        .collect();
    Ok(OverRuns {
        runs: ids,
        warnings,
        method: "per run: the cell's median (overall, and over requests in the fast host state); over runs: the median of those, a hierarchical percentile bootstrap (runs resampled, then requests within each drawn run), and spread = (max − min) / median of the per-run medians. Paired speedups: per block ratio of decode rates where both requests were fast, then as above.",
        cells,
        probe_parts,
        why,
    })
}

/// Per run: each probe part's spread, and each cell's correlations with it and with the other
/// engines of its blocks.
fn why(runs: &[&Run]) -> (Vec<PartOverRuns>, Vec<CellWhy>) {
    type Key = (String, String, usize, usize);
    let n = runs.len();
    let mut parts: BTreeMap<&'static str, PartOverRuns> = BTreeMap::new();
    let mut cells: BTreeMap<Key, CellWhy> = BTreeMap::new();
    fn cell<'a>(
        cells: &'a mut BTreeMap<Key, CellWhy>,
        n: usize,
        engine: &str,
        workload: &str,
        batch_size: usize,
        prompt_tokens: usize,
    ) -> &'a mut CellWhy {
        cells.entry((engine.into(), workload.into(), batch_size, prompt_tokens)).or_insert_with(|| CellWhy {
            engine: engine.into(),
            workload: workload.into(),
            batch_size,
            prompt_tokens,
            shared_rho: vec![None; n],
            part_rho: BTreeMap::new(),
        })
    }
    for (k, run) in runs.iter().enumerate() {
        for v in shared_variation(run) {
            cell(&mut cells, n, &v.engine, &v.workload, v.batch_size, v.prompt_tokens).shared_rho[k] = v.rho;
        }
        let Some(p) = probe_parts(run) else { continue };
        for d in &p.parts {
            let e = parts.entry(d.part).or_insert_with(|| PartOverRuns {
                part: d.part.into(),
                spread: vec![None; n],
                two_states: vec![None; n],
            });
            (e.spread[k], e.two_states[k]) = (Some(d.spread), Some(d.two_states));
        }
        for c in &p.cells {
            let w = cell(&mut cells, n, &c.engine, &c.workload, c.batch_size, c.prompt_tokens);
            for r in &c.rho {
                w.part_rho.entry(r.part.into()).or_insert_with(|| vec![None; n])[k] = r.rho;
            }
        }
    }
    // Parts in the probe's order, not the alphabet's.
    let parts = PART_NAMES.iter().filter_map(|p| parts.remove(p)).collect();
    (parts, cells.into_values().collect())
}

pub fn write(out: &Path, o: &OverRuns) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let path = out.join("over_runs.json");
    std::fs::write(&path, serde_json::to_string_pretty(o)? + "\n").map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let path = out.join("over_runs.txt");
    std::fs::write(&path, table(o)).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The figures against the goals, one line per engine and cell.
pub fn table(o: &OverRuns) -> String {
    let pct = |x: Option<f64>| x.map_or("     –".to_string(), |x| format!("{:>5.1}%", 100.0 * x));
    let mark = |x: Option<f64>, goal: f64| match x {
        Some(v) if v <= goal => "✓",
        Some(_) => "✗",
        None => " ",
    };
    let mut out =
        format!("Over {} runs (spread = (max − min) / median of per-run medians; goals ≤ 3 %, within-cell CV ≤ 2 %)\n", o.runs.len());
    out += &format!(
        "{:<18} {:<10} {:>4} {:>5} | {:>9} {:>7} | {:>9} {:>7} | {:>7} | {:>7} {:>7}\n",
        "engine", "workload", "b", "p", "tok/s", "spread", "fast", "spread", "cv fast", "×comp.", "spread"
    );
    for c in &o.cells {
        let fast = c.decode_tok_per_s_fast.as_ref();
        let sp = c.speedup_vs_compiled_fast.as_ref();
        out += &format!(
            "{:<18} {:<10} {:>4} {:>5} | {:>9.1} {:>7} | {:>9} {}{} | {}{} | {:>7} {}{}\n",
            c.engine,
            c.workload,
            c.batch_size,
            c.prompt_tokens,
            c.decode_tok_per_s.as_ref().map_or(f64::NAN, |d| d.median),
            pct(c.decode_tok_per_s.as_ref().map(|d| d.spread)),
            fast.map_or("–".into(), |f| format!("{:.1}", f.median)),
            pct(fast.map(|f| f.spread)),
            mark(fast.map(|f| f.spread), GOAL_SPREAD),
            pct(c.within_cv_fast_max),
            mark(c.within_cv_fast_max, GOAL_WITHIN_CV),
            sp.map_or("–".into(), |s| format!("{:.3}", s.median)),
            pct(sp.map(|s| s.spread)),
            mark(sp.map(|s| s.spread), GOAL_SPREAD),
        );
    }
    out += &why_table(o);
    for w in &o.warnings {
        out += &format!("note: {w}\n");
    }
    out
}

/// Where the variation comes from: the probe's parts run by run, and per cell the median over runs
/// of each correlation with the request's decode rate.
fn why_table(o: &OverRuns) -> String {
    let mut out = String::new();
    if !o.probe_parts.is_empty() {
        out += "\nHost probe by part, per run: (p95 − p5) / p50 of its continuous samples (* = two states)\n";
        for p in &o.probe_parts {
            let runs: Vec<String> = p
                .spread
                .iter()
                .zip(&p.two_states)
                .map(|(s, t)| s.map_or("–".into(), |s| format!("{:.0}%{}", 100.0 * s, if *t == Some(true) { "*" } else { "" })))
                .collect();
            out += &format!("  {:<8} {}\n", p.part, runs.join(" "));
        }
    }
    if o.why.iter().all(|c| c.shared_rho.iter().all(Option::is_none) && c.part_rho.is_empty()) {
        return out;
    }
    let names: Vec<&str> = PART_NAMES.iter().copied().filter(|p| o.probe_parts.iter().any(|q| q.part == *p)).collect();
    out += "\nSpearman ρ with the request's decode tok/s, median over runs: with the other engines of its block (shared), with each probe part during the request\n";
    out += &format!("(in one run of n requests, |ρ| below 1.96/√(n−1) is within chance: {:.2} at n = 30)\n", chance_level(30));
    out += &format!("{:<18} {:<10} {:>4} {:>5} | {:>6} |", "engine", "workload", "b", "p", "shared");
    for p in &names {
        out += &format!(" {p:>7}");
    }
    out += "\n";
    let med = |v: &[Option<f64>]| -> String {
        let present: Vec<f64> = v.iter().flatten().copied().collect();
        if present.is_empty() {
            "–".into()
        } else {
            format!("{:+.2}", median(&present))
        }
    };
    for c in &o.why {
        out += &format!("{:<18} {:<10} {:>4} {:>5} | {:>6} |", c.engine, c.workload, c.batch_size, c.prompt_tokens, med(&c.shared_rho));
        for p in &names {
            out += &format!(" {:>7}", c.part_rho.get(*p).map_or("–".into(), |v| med(v)));
        }
        out += "\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_and_hierarchical_interval() {
        let runs = vec![vec![100.0, 101.0, 99.0], vec![103.0, 104.0, 102.0], vec![], vec![97.0, 98.0, 96.0]];
        let a = across(&runs, 2000, 0.95, 1).unwrap();
        assert_eq!(a.per_run, vec![Some(100.0), Some(103.0), None, Some(97.0)]);
        assert_eq!((a.median, a.runs), (100.0, 3));
        assert!((a.spread - 0.06).abs() < 1e-12);
        let ci = a.ci95.unwrap();
        assert!(ci[0] >= 96.0 && ci[0] < 100.0 && ci[1] > 100.0 && ci[1] <= 104.0, "{ci:?}");
        // One run: no interval across runs.
        assert!(across(&[vec![1.0, 2.0]], 100, 0.95, 1).unwrap().ci95.is_none());
        assert!(across(&[vec![], vec![]], 100, 0.95, 1).is_none());
    }

    #[test]
    fn runs_of_different_commits_are_not_pooled_unless_asked() {
        let mut a = crate::requests::tests::run("a", vec![crate::requests::tests::request("e", 1, 5, &[5, 5])]);
        let mut b = a.clone();
        b.id = "b".into();
        a.environment = serde_json::json!({"git_commit": "111", "checkpoint": {"config_sha256": "x"}});
        b.environment = serde_json::json!({"git_commit": "222", "checkpoint": {"config_sha256": "x"}});
        let e = over_runs(&[&a, &b], false).unwrap_err().to_string();
        assert!(e.contains("a and b differ in commit: 111 vs 222; pool them anyway with --allow-mixed"), "{e}");
        let o = over_runs(&[&a, &b], true).unwrap();
        assert_eq!(o.cells.len(), 1);
        assert!(o.warnings.iter().any(|w| w.contains("differ in commit")));
        assert!(o.warnings.iter().any(|w| w.contains("has no host probes")));
        assert_eq!(o.cells[0].decode_tok_per_s.as_ref().unwrap().spread, 0.0);
    }
}
