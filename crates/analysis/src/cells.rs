//! Per-cell statistics: every figure of every cell described the same way, as one long table
//! (a row per cell × metric).

use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use crate::requests::{CELL_KEYS, METRICS};
use crate::stats::{mean, median_interval_sorted, quantile, sorted, t_interval, variance, Fences};
use run_format::config::Settings;

/// One metric of one cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Describe {
    /// Values the statistics below cover (after outlier removal when the settings ask for it).
    pub n: usize,
    /// Values beyond Tukey's inner fences (1.5 IQR), counted whether or not they were removed.
    pub outliers: usize,
    pub outliers_removed: bool,
    pub median: f64,
    pub mean: f64,
    pub std: f64,
    /// Standard deviation over the mean.
    pub cv: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    /// Bootstrap interval of the median at `confidence_level` (n ≥ 2).
    pub median_ci: Option<[f64; 2]>,
    /// Student's t interval of the mean (n ≥ 2).
    pub mean_ci: Option<[f64; 2]>,
}

pub fn describe(xs: &[f64], settings: &Settings, seed: u64) -> Option<Describe> {
    if xs.is_empty() {
        return None;
    }
    // One sort serves the fences, the quantiles and the median's interval.
    let mut s = sorted(xs);
    let fences = Fences::of_sorted(&s);
    let outliers = s.iter().filter(|&&x| fences.is_outlier(x)).count();
    if settings.remove_outliers {
        s.retain(|&x| !fences.is_outlier(x));
    }
    let m = mean(&s);
    let sd = if s.len() > 1 { variance(&s).sqrt() } else { 0.0 };
    let level = settings.confidence_level;
    Some(Describe {
        n: s.len(),
        outliers,
        outliers_removed: settings.remove_outliers,
        median: quantile(&s, 0.5),
        mean: m,
        std: sd,
        cv: if m != 0.0 { sd / m } else { f64::NAN },
        p50: quantile(&s, 0.5),
        p90: quantile(&s, 0.9),
        p99: quantile(&s, 0.99),
        median_ci: median_interval_sorted(&s, level, settings.bootstrap_resamples, seed).map(|(a, b)| [a, b]),
        mean_ci: t_interval(&s, level).map(|(a, b)| [a, b]),
    })
}

/// The key of one cell, as in the requests table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CellKey {
    pub run: String,
    pub engine: String,
    pub workload: String,
    pub scenario: String,
    pub batch_size: u64,
    pub prompt_tokens: u64,
    /// Load level label of the concurrent scenario (`closed-8u`, `open-4rps`), empty otherwise.
    pub load: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CellMetric {
    #[serde(flatten)]
    pub key: CellKey,
    pub metric: &'static str,
    pub unit: &'static str,
    #[serde(flatten)]
    pub stats: Describe,
}

/// The measured values of every cell, per metric, in the requests table's order; cells in the
/// order of their first measured request.
pub fn samples(requests: &DataFrame) -> PolarsResult<Vec<(CellKey, Vec<Vec<f64>>)>> {
    // Grouped by row indices, and each cell's values gathered straight from the metric columns:
    // no filtered or partitioned copy of a million-row table.
    let keys = requests.select(CELL_KEYS)?;
    let by = keys.group_by_stable(CELL_KEYS)?;
    let warmup = requests.column("warmup")?.bool()?.rechunk();
    let measured = |i: IdxSize| warmup.get(i as usize) == Some(false);
    let mut groups: Vec<(IdxSize, Vec<IdxSize>)> = by
        .get_groups()
        .iter()
        .filter_map(|g| {
            let rows: Vec<IdxSize> = match g {
                GroupsIndicator::Idx((_, all)) => all.iter().copied().filter(|&i| measured(i)).collect(),
                GroupsIndicator::Slice([first, len]) => (first..first + len).filter(|&i| measured(i)).collect(),
            };
            Some((*rows.first()?, rows))
        })
        .collect();
    groups.sort_by_key(|(first, _)| *first);
    let columns: Vec<_> =
        METRICS.iter().map(|(m, _)| Ok(requests.column(m)?.f64()?.rechunk().into_owned())).collect::<PolarsResult<_>>()?;
    groups
        .into_par_iter()
        .map(|(first, rows)| {
            let at = |c: &str| keys.column(c).and_then(|c| c.get(first as usize));
            let s = |c: &str| -> PolarsResult<String> { Ok(at(c)?.str_value().into_owned()) };
            let u = |c: &str| -> PolarsResult<u64> { Ok(at(c)?.extract::<u64>().unwrap_or_default()) };
            let key = CellKey {
                run: s("run")?,
                engine: s("engine")?,
                workload: s("workload")?,
                scenario: s("scenario")?,
                batch_size: u("batch_size")?,
                prompt_tokens: u("prompt_tokens")?,
                load: s("load")?,
            };
            let values = columns
                .iter()
                .map(|c| match c.cont_slice() {
                    Ok(values) => rows.iter().map(|&i| values[i as usize]).collect(),
                    Err(_) => rows.iter().filter_map(|&i| c.get(i as usize)).collect(),
                })
                .collect();
            Ok((key, values))
        })
        .collect()
}

/// Every metric of every cell described; the seed of each cell's bootstrap is derived from the
/// settings' seed and the cell's position, so a run's intervals are reproducible.
pub fn describe_all(cells: &[(CellKey, Vec<Vec<f64>>)], settings: &Settings) -> Vec<CellMetric> {
    cells
        .par_iter()
        .enumerate()
        .flat_map_iter(|(i, (key, values))| {
            METRICS.iter().zip(values).enumerate().filter_map(move |(j, ((metric, unit), xs))| {
                let seed = settings.bootstrap_seed ^ ((i as u64) << 8 | j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                describe(xs, settings, seed).map(|stats| CellMetric { key: key.clone(), metric, unit, stats })
            })
        })
        .collect()
}

/// The long table as a DataFrame (CSV / Parquet output).
pub fn frame(rows: &[CellMetric]) -> PolarsResult<DataFrame> {
    let s = |f: &dyn Fn(&CellMetric) -> String| -> Vec<String> { rows.iter().map(f).collect() };
    let f = |g: &dyn Fn(&Describe) -> f64| -> Vec<f64> { rows.iter().map(|r| g(&r.stats)).collect() };
    let o = |g: &dyn Fn(&Describe) -> Option<f64>| -> Vec<Option<f64>> { rows.iter().map(|r| g(&r.stats)).collect() };
    DataFrame::new_infer_height(vec![
        Column::new("run".into(), s(&|r| r.key.run.clone())),
        Column::new("engine".into(), s(&|r| r.key.engine.clone())),
        Column::new("workload".into(), s(&|r| r.key.workload.clone())),
        Column::new("scenario".into(), s(&|r| r.key.scenario.clone())),
        Column::new("batch_size".into(), rows.iter().map(|r| r.key.batch_size).collect::<Vec<u64>>()),
        Column::new("prompt_tokens".into(), rows.iter().map(|r| r.key.prompt_tokens).collect::<Vec<u64>>()),
        Column::new("load".into(), s(&|r| r.key.load.clone())),
        Column::new("metric".into(), s(&|r| r.metric.to_string())),
        Column::new("unit".into(), s(&|r| r.unit.to_string())),
        Column::new("n".into(), rows.iter().map(|r| r.stats.n as u64).collect::<Vec<u64>>()),
        Column::new("outliers".into(), rows.iter().map(|r| r.stats.outliers as u64).collect::<Vec<u64>>()),
        Column::new("outliers_removed".into(), rows.iter().map(|r| r.stats.outliers_removed).collect::<Vec<bool>>()),
        Column::new("median".into(), f(&|d| d.median)),
        Column::new("median_ci_low".into(), o(&|d| d.median_ci.map(|c| c[0]))),
        Column::new("median_ci_high".into(), o(&|d| d.median_ci.map(|c| c[1]))),
        Column::new("mean".into(), f(&|d| d.mean)),
        Column::new("mean_ci_low".into(), o(&|d| d.mean_ci.map(|c| c[0]))),
        Column::new("mean_ci_high".into(), o(&|d| d.mean_ci.map(|c| c[1]))),
        Column::new("std".into(), f(&|d| d.std)),
        Column::new("cv".into(), f(&|d| d.cv)),
        Column::new("p50".into(), f(&|d| d.p50)),
        Column::new("p90".into(), f(&|d| d.p90)),
        Column::new("p99".into(), f(&|d| d.p99)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outliers_are_counted_and_removed_only_when_asked() {
        let xs = [10.0, 11.0, 12.0, 11.5, 10.5, 11.2, 100.0];
        let keep = describe(&xs, &Settings::default(), 1).unwrap();
        assert_eq!((keep.n, keep.outliers, keep.outliers_removed), (7, 1, false));
        assert!(keep.mean > 20.0);
        let settings = Settings { remove_outliers: true, ..Settings::default() };
        let drop = describe(&xs, &settings, 1).unwrap();
        assert_eq!((drop.n, drop.outliers, drop.outliers_removed), (6, 1, true));
        assert!((drop.mean - 11.033333333333333).abs() < 1e-12);
        assert!((drop.median - 11.1).abs() < 1e-12);
    }

    #[test]
    fn describes_like_numpy() {
        // numpy: std(ddof=1) of 1..=10 = 3.0276503540974917; percentile 90 (linear) = 9.1.
        let xs: Vec<f64> = (1..=10).map(f64::from).collect();
        let d = describe(&xs, &Settings::default(), 1).unwrap();
        assert!((d.std - 3.0276503540974917).abs() < 1e-12);
        assert_eq!((d.median, d.p90), (5.5, 9.1));
        assert!((d.cv - 3.0276503540974917 / 5.5).abs() < 1e-12);
        let ci = d.mean_ci.unwrap();
        // scipy.stats.t.interval(0.95, 9, loc=5.5, scale=sem) = (3.334149, 7.665851)
        assert!((ci[0] - 3.334149).abs() < 1e-5 && (ci[1] - 7.665851).abs() < 1e-5, "{ci:?}");
        let m = d.median_ci.unwrap();
        assert!(m[0] < 5.5 && 5.5 < m[1]);
    }
}
