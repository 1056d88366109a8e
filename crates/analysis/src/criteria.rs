//! The success criteria every engine other than the PyTorch references is judged by: speedup over
//! the baseline, significance after Holm, GPU utilisation under load.

use run_format::config::Settings;
use run_format::engines::{BASELINE, COMPILED_REFERENCE};

use crate::compare::Comparison;
use crate::summary::{CriterionResult, EngineSummary};

/// The original design's criteria for every engine other than the PyTorch references.
pub fn criteria(engines: &[EngineSummary], comparisons: &[Comparison], settings: &Settings) -> Vec<CriterionResult> {
    let c = &settings.criteria;
    let mut out = Vec::new();
    for e in engines.iter().filter(|e| e.name != BASELINE && e.name != COMPILED_REFERENCE) {
        let s = e.speedup_vs_baseline.as_ref();
        out.push(CriterionResult {
            criterion: "speedup_vs_baseline",
            engine: e.name.clone(),
            target: c.min_speedup,
            value: s.map(|s| s.median),
            met: s.map(|s| s.ci95.map_or(s.median, |ci| ci[0]) > c.min_speedup),
            note: "median decode tok/s ratio; met only when the lower end of its interval clears the target".into(),
        });
        let own: Vec<&Comparison> =
            comparisons.iter().filter(|x| x.engine == e.name && x.reference == BASELINE && x.metric == "decode_tok_s").collect();
        // A cell too small for Mann-Whitney ever to reach α (3 requests against 3) cannot count
        // against the engine: the criterion asks for significance where the data could show it.
        let uses_mw = settings.statistical_tests.iter().any(|t| t == "mann_whitney_u");
        let (testable, too_small): (Vec<&Comparison>, Vec<&Comparison>) =
            own.iter().partition(|x| !uses_mw || crate::stats::mann_whitney_min_p(x.n, x.n_reference) < c.alpha);
        let sig = testable.iter().filter(|x| x.significant == Some(true)).count();
        out.push(CriterionResult {
            criterion: "significant_vs_baseline",
            engine: e.name.clone(),
            target: c.alpha,
            value: testable.iter().filter_map(|x| x.mann_whitney_p_holm.or(x.welch_p_holm)).reduce(f64::max),
            met: (!testable.is_empty()).then(|| sig == testable.len()),
            note: format!(
                "{sig} of {} decode-throughput comparisons with the baseline significant after Holm (largest adjusted p shown); \
                 {} more left out, too few requests for Mann-Whitney to reach {} at all",
                testable.len(),
                too_small.len(),
                c.alpha
            ),
        });
        let util = e.business.gpu_util_under_load_pct;
        out.push(CriterionResult {
            criterion: "gpu_util_under_load_pct",
            engine: e.name.clone(),
            target: c.min_gpu_util_pct,
            value: util,
            met: util.map(|u| u >= c.min_gpu_util_pct),
            note: "highest mean NVML utilisation over the concurrent scenario's load levels".into(),
        });
    }
    out
}
