//! Engines against a reference, cell by cell: the speedup with its bootstrap interval, the tests the
//! config asks for (Mann-Whitney U, Welch's t) with Holm's correction across every comparison of
//! the run, and effect sizes.

use rayon::prelude::*;
use serde::Serialize;

use crate::cells::CellKey;
use crate::requests::METRICS;
use crate::stats::{cliffs_delta_sorted, hodges_lehmann, holm, mann_whitney_u_sorted, quantile, ratio_of_medians, sorted, welch_t};
use run_format::config::Settings;

/// The figures compared: decode speed (higher is better) and time to first token (lower is better).
pub const COMPARED: [&str; 2] = ["decode_tok_s", "ttft_ms"];

/// Above this many resample-values (resamples × (n + m)) the speedup bootstrap uses fewer
/// resamples (never under 200); the count used is in each row.
const RESAMPLE_BUDGET: usize = 20_000_000;
/// Above this many values in the two samples together, the speedup's interval comes from each
/// median's closed-form bootstrap interval (`stats::median_interval_exact`) combined on the log
/// scale, instead of resampling both samples (0 resamples in the row says so).
const CLOSED_FORM_ABOVE: usize = 2 * crate::stats::EXACT_BOOTSTRAP_ABOVE;

/// The ratio of medians `num / den` with its interval at the settings' level, and how many
/// resamples that took (0: closed form). The one rule for every speedup the analysis states.
pub fn ratio_interval(num: &[f64], den: &[f64], settings: &Settings, seed: u64) -> (Option<(f64, (f64, f64))>, usize) {
    let n = num.len() + den.len();
    if n > CLOSED_FORM_ABOVE {
        // Callers that hold sorted samples (compare) are not made to sort them again.
        fn sorted_once(xs: &[f64]) -> std::borrow::Cow<'_, [f64]> {
            if xs.is_sorted() {
                std::borrow::Cow::Borrowed(xs)
            } else {
                std::borrow::Cow::Owned(sorted(xs))
            }
        }
        (ratio_closed_form(&sorted_once(num), &sorted_once(den), settings.confidence_level), 0)
    } else {
        let resamples = settings.bootstrap_resamples.min((RESAMPLE_BUDGET / n.max(1)).max(200));
        (ratio_of_medians(num, den, settings.confidence_level, resamples, seed), resamples)
    }
}

/// `a` and `b` sorted.
fn ratio_closed_form(a: &[f64], b: &[f64], level: f64) -> Option<(f64, (f64, f64))> {
    use statrs::distribution::{ContinuousCDF, Normal};
    let z = Normal::new(0.0, 1.0).ok()?.inverse_cdf(0.5 + level / 2.0);
    let log_se = |xs: &[f64]| -> Option<f64> {
        let (lo, hi) = crate::stats::median_interval_exact(xs, level)?;
        (lo > 0.0).then(|| (hi.ln() - lo.ln()) / (2.0 * z))
    };
    let r = quantile(a, 0.5) / quantile(b, 0.5);
    let se = (log_se(a)?.powi(2) + log_se(b)?.powi(2)).sqrt();
    Some((r, ((r.ln() - z * se).exp(), (r.ln() + z * se).exp())))
}

/// Hodges–Lehmann takes all n × m differences: only for samples up to this product.
const HL_MAX_PAIRS: usize = 1_000_000;

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub run: String,
    pub workload: String,
    pub scenario: String,
    pub batch_size: u64,
    pub prompt_tokens: u64,
    pub load: String,
    pub metric: &'static str,
    pub engine: String,
    pub reference: String,
    pub n: usize,
    pub n_reference: usize,
    pub median: f64,
    pub median_reference: f64,
    /// How many times better the engine is: a ratio of medians oriented so that > 1 is better
    /// (engine / reference for throughput, reference / engine for times).
    pub speedup: f64,
    pub speedup_ci: Option<[f64; 2]>,
    pub bootstrap_resamples: usize,
    pub mann_whitney_u: Option<f64>,
    pub mann_whitney_p: Option<f64>,
    /// Holm-adjusted across every Mann-Whitney test of the run.
    pub mann_whitney_p_holm: Option<f64>,
    pub welch_t: Option<f64>,
    pub welch_p: Option<f64>,
    pub welch_p_holm: Option<f64>,
    /// P(engine > reference) − P(engine < reference) on the raw metric.
    pub cliffs_delta: f64,
    /// Median of all engine − reference differences (null for large samples).
    pub hodges_lehmann: Option<f64>,
    /// Every configured test rejects equality at `criteria.alpha` after Holm.
    pub significant: Option<bool>,
}

fn higher_is_better(metric: &str) -> bool {
    metric.ends_with("tok_s")
}

/// Compares every engine with each reference present in the same cell (same run, workload, batch,
/// prompt and load level), for each metric of [`COMPARED`].
pub fn compare(cells: &[(CellKey, Vec<Vec<f64>>)], references: &[&str], settings: &Settings) -> Vec<Comparison> {
    let metric_index = |m: &str| METRICS.iter().position(|(n, _)| *n == m).expect("compared metric is a metric");
    let same_cell = |a: &CellKey, b: &CellKey| {
        (a.run.as_str(), a.workload.as_str(), a.batch_size, a.prompt_tokens, a.load.as_str())
            == (b.run.as_str(), b.workload.as_str(), b.batch_size, b.prompt_tokens, b.load.as_str())
    };
    let mut pairs = Vec::new();
    for reference in references {
        for (rk, rv) in cells.iter().filter(|(k, _)| k.engine == *reference) {
            for (k, v) in cells.iter().filter(|(k, _)| k.engine != *reference && same_cell(k, rk)) {
                for metric in COMPARED {
                    let i = metric_index(metric);
                    if v[i].len() >= 2 && rv[i].len() >= 2 {
                        pairs.push((k, &v[i], *reference, &rv[i], metric));
                    }
                }
            }
        }
    }
    // Each sample sorted once, however many comparisons it is in, for the medians, the
    // closed-form intervals, the ranks and Cliff's delta.
    let mut samples: Vec<&Vec<f64>> = pairs.iter().flat_map(|(_, a, _, b, _)| [*a, *b]).collect();
    samples.sort_by_key(|v| v.as_ptr());
    samples.dedup_by_key(|v| v.as_ptr());
    let sorted_samples: Vec<Vec<f64>> = samples.par_iter().map(|v| sorted(v)).collect();
    let sorted_of =
        |v: &Vec<f64>| &sorted_samples[samples.binary_search_by_key(&v.as_ptr(), |s| s.as_ptr()).expect("every sample was sorted")];
    let tests = |name: &str| settings.statistical_tests.iter().any(|t| t == name);
    let mut rows: Vec<Comparison> = pairs
        .par_iter()
        .enumerate()
        .map(|(i, (k, a, reference, b, metric))| {
            let (sa, sb) = (sorted_of(a), sorted_of(b));
            let (num, den) = if higher_is_better(metric) { (sa, sb) } else { (sb, sa) };
            let (ratio, resamples) = ratio_interval(num, den, settings, settings.bootstrap_seed.wrapping_add(i as u64));
            let mw = tests("mann_whitney_u").then(|| mann_whitney_u_sorted(sa, sb)).flatten();
            let wt = tests("welch_t_test").then(|| welch_t(a, b)).flatten();
            Comparison {
                run: k.run.clone(),
                workload: k.workload.clone(),
                scenario: k.scenario.clone(),
                batch_size: k.batch_size,
                prompt_tokens: k.prompt_tokens,
                load: k.load.clone(),
                metric,
                engine: k.engine.clone(),
                reference: reference.to_string(),
                n: a.len(),
                n_reference: b.len(),
                median: quantile(sa, 0.5),
                median_reference: quantile(sb, 0.5),
                speedup: ratio.map_or(f64::NAN, |r| r.0),
                speedup_ci: ratio.map(|r| [r.1 .0, r.1 .1]),
                bootstrap_resamples: resamples,
                mann_whitney_u: mw.map(|t| t.statistic),
                mann_whitney_p: mw.map(|t| t.p_value),
                mann_whitney_p_holm: None,
                welch_t: wt.map(|t| t.statistic),
                welch_p: wt.map(|t| t.p_value),
                welch_p_holm: None,
                cliffs_delta: cliffs_delta_sorted(sa, sb),
                hodges_lehmann: (a.len() * b.len() <= HL_MAX_PAIRS).then(|| hodges_lehmann(a, b)),
                significant: None,
            }
        })
        .collect();
    adjust(&mut rows, settings);
    rows
}

/// Holm's correction per run and per test, over every comparison of that run.
fn adjust(rows: &mut [Comparison], settings: &Settings) {
    let mut runs: Vec<String> = rows.iter().map(|r| r.run.clone()).collect();
    runs.sort();
    runs.dedup();
    for run in runs {
        let idx: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].run == run).collect();
        let mw: Vec<(usize, f64)> = idx.iter().filter_map(|&i| rows[i].mann_whitney_p.map(|p| (i, p))).collect();
        let wt: Vec<(usize, f64)> = idx.iter().filter_map(|&i| rows[i].welch_p.map(|p| (i, p))).collect();
        for ((i, _), p) in mw.iter().zip(holm(&mw.iter().map(|x| x.1).collect::<Vec<_>>())) {
            rows[*i].mann_whitney_p_holm = Some(p);
        }
        for ((i, _), p) in wt.iter().zip(holm(&wt.iter().map(|x| x.1).collect::<Vec<_>>())) {
            rows[*i].welch_p_holm = Some(p);
        }
    }
    for r in rows.iter_mut() {
        let adjusted: Vec<f64> = [r.mann_whitney_p_holm, r.welch_p_holm].into_iter().flatten().collect();
        r.significant = (!adjusted.is_empty()).then(|| adjusted.iter().all(|&p| p < settings.criteria.alpha));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(engine: &str) -> CellKey {
        CellKey {
            run: "r".into(),
            engine: engine.into(),
            workload: "latency".into(),
            scenario: "latency".into(),
            batch_size: 1,
            prompt_tokens: 16,
            load: String::new(),
        }
    }

    fn cell(engine: &str, tok_s: Vec<f64>, ttft: Vec<f64>) -> (CellKey, Vec<Vec<f64>>) {
        let mut v = vec![Vec::new(); METRICS.len()];
        v[0] = tok_s;
        v[1] = ttft;
        (key(engine), v)
    }

    #[test]
    fn closed_form_speedup_interval_agrees_with_resampling() {
        // Just above the switch: skewed samples around 100 and 50 (ratio 2).
        let n = crate::stats::EXACT_BOOTSTRAP_ABOVE + 1;
        let mut g = seeded_rng::SplitMix64(11);
        let mut draw = |scale: f64| -> Vec<f64> { (0..n).map(|_| scale * (1.0 + (g.next_u64() % 1000) as f64 / 2000.0).powi(3)).collect() };
        let (a, b) = (draw(100.0), draw(50.0));
        let closed = ratio_closed_form(&sorted(&a), &sorted(&b), 0.95).unwrap();
        let resampled = ratio_of_medians(&a, &b, 0.95, 4000, 5).unwrap();
        assert_eq!(closed.0, resampled.0);
        for (c, r) in [(closed.1 .0, resampled.1 .0), (closed.1 .1, resampled.1 .1)] {
            assert!((c / r - 1.0).abs() < 0.03, "{closed:?} vs {resampled:?}");
        }
        assert_eq!(ratio_interval(&a, &b, &Settings::default(), 0).1, 0);
        assert!(ratio_interval(&a[..100], &b[..100], &Settings::default(), 0).1 > 0);
    }

    #[test]
    fn speedups_point_the_right_way_and_holm_covers_the_run() {
        let cells = vec![
            cell("base", vec![10.0, 11.0, 9.0, 10.5, 9.5, 10.2, 9.8], vec![100.0, 98.0, 103.0, 99.0, 101.0, 100.5, 99.5]),
            cell("fast", vec![30.0, 31.0, 29.0, 30.5, 29.5, 30.2, 29.8], vec![50.0, 49.0, 51.0, 50.5, 49.5, 50.2, 49.8]),
            cell("same", vec![10.1, 10.9, 9.1, 10.4, 9.6, 10.3, 9.7], vec![100.0, 98.5, 102.0, 99.2, 101.0, 100.4, 99.7]),
        ];
        let rows = compare(&cells, &["base"], &Settings::default());
        assert_eq!(rows.len(), 4);
        let get = |e: &str, m: &str| rows.iter().find(|r| r.engine == e && r.metric == m).unwrap();
        let fast = get("fast", "decode_tok_s");
        assert!((fast.speedup - 3.0).abs() < 1e-12, "{}", fast.speedup);
        let ci = fast.speedup_ci.unwrap();
        assert!(ci[0] < 3.0 && 3.0 < ci[1] && ci[0] > 2.5);
        // Time to first token halves: a speedup of 2, not 0.5.
        assert!((get("fast", "ttft_ms").speedup - 2.0).abs() < 1e-12);
        // 7 vs 7 fully separated: exact Mann-Whitney p = 2 / C(14, 7) = 0.000583; Holm × 4 tests at most.
        assert!((fast.mann_whitney_p.unwrap() - 2.0 / 3432.0).abs() < 1e-12);
        assert!(fast.mann_whitney_p_holm.unwrap() <= 4.0 * fast.mann_whitney_p.unwrap() + 1e-15);
        assert_eq!(fast.significant, Some(true));
        assert_eq!(fast.cliffs_delta, 1.0);
        assert_eq!(get("same", "decode_tok_s").significant, Some(false));
    }
}
