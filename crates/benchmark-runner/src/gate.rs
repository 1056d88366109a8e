//! The correctness gate: before any timing, each engine's logits and greedy tokens for fixed probe
//! prompts are compared with the reference, eager transformers (float32 for f32 engines, the same
//! half dtype for bf16/f16 engines). An engine that disagrees is still measured, and flagged
//! wherever it appears.

use shared_protocol::{Dtype, LogitsRequest, LogitsResult};

use crate::config::Correctness;
use crate::process::{EngineProcess, Fault};
use crate::prompts::prompt_tokens;
use run_format::records::{CorrectnessRecord, SCHEMA};

/// The engine whose answers are the reference.
pub const REFERENCE_ENGINE: &str = run_format::engines::BASELINE;

/// Probe prompts use their own seed range, apart from the timed prompts.
const PROBE_SEED: u64 = 0xC0FF_EE00;

pub fn probes(c: &Correctness, vocab_size: usize) -> Vec<Vec<u32>> {
    c.prompt_lengths.iter().map(|&len| prompt_tokens(len, PROBE_SEED, vocab_size)).collect()
}

pub fn run_probes(p: &mut EngineProcess, c: &Correctness, vocab_size: usize, timeout_s: f64) -> Result<Vec<LogitsResult>, Fault> {
    probes(c, vocab_size)
        .into_iter()
        .enumerate()
        .map(|(i, prompt)| p.logits(LogitsRequest { id: format!("probe-{i}"), prompt, steps: c.steps }, timeout_s))
        .collect()
}

fn largest_magnitude(v: &[f32]) -> f64 {
    v.iter().map(|x| (*x as f64).abs()).fold(0.0, f64::max)
}

/// Largest absolute difference, and that over the largest reference magnitude.
pub fn logit_error(got: &[f32], want: &[f32]) -> (f64, f64) {
    if got.len() != want.len() {
        return (f64::INFINITY, f64::INFINITY);
    }
    let max_abs = got.iter().zip(want).map(|(a, b)| (*a as f64 - *b as f64).abs()).fold(0.0, f64::max);
    (max_abs, max_abs / largest_magnitude(want).max(f64::MIN_POSITIVE))
}

/// The near-tie margin for a half-precision engine: a top-2 logit gap below the error the gate
/// itself accepts (`tolerance_half` × the largest reference logit) is within rounding, and there a
/// correct bf16 engine may pick either token. None when the reference reports no gaps.
pub fn near_tie_margin(c: &Correctness, reference: &LogitsResult) -> Option<f64> {
    (!reference.top2_gaps.is_empty()).then(|| c.tolerance_half * largest_magnitude(&reference.logits))
}

/// Each probe against the reference's. Greedy tokens must all be equal, except that a half-precision
/// engine may part from the reference at a step where the reference itself was at a near-tie (after
/// it the two runs continue from different text, so nothing later is compared); a token that
/// differs where the reference's choice was clear fails it, however late. A reference that reports
/// no gaps: the first `greedy_steps_half` tokens, as before gaps were reported.
pub fn compare(engine: &str, dtype: Dtype, c: &Correctness, got: &[LogitsResult], reference: &[LogitsResult]) -> Vec<CorrectnessRecord> {
    let half = dtype != Dtype::F32;
    let tolerance = if half { c.tolerance_half } else { c.tolerance_f32 };
    got.iter()
        .zip(reference)
        .zip(&c.prompt_lengths)
        .map(|((g, r), &len)| {
            let (max_abs, max_rel) = logit_error(&g.logits, &r.logits);
            let greedy_match_steps = g.tokens.iter().zip(&r.tokens).take_while(|(a, b)| a == b).count();
            let margin = if half { near_tie_margin(c, r) } else { None };
            let required_greedy_steps = if half && margin.is_none() { c.greedy_steps_half.min(c.steps) } else { c.steps };
            let divergence_gap = r.top2_gaps.get(greedy_match_steps).filter(|_| greedy_match_steps < c.steps).map(|&g| g as f64);
            let parted_at_near_tie = margin.zip(divergence_gap).is_some_and(|(m, gap)| gap < m);
            CorrectnessRecord {
                schema: SCHEMA,
                engine: engine.into(),
                reference: format!("{REFERENCE_ENGINE} {dtype}"),
                prompt_tokens: len,
                max_abs_logit_err: max_abs,
                max_rel_logit_err: max_rel,
                tolerance,
                greedy_match_steps,
                steps: c.steps,
                required_greedy_steps,
                near_tie_margin: margin,
                divergence_gap,
                passed: max_rel <= tolerance
                    && (greedy_match_steps >= required_greedy_steps || parted_at_near_tie)
                    && g.tokens.len() == c.steps,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(logits: Vec<f32>, tokens: Vec<u32>) -> LogitsResult {
        LogitsResult { id: "p".into(), logits, tokens, top2_gaps: Vec::new() }
    }

    #[test]
    fn half_precision_may_part_from_the_reference_only_where_the_reference_was_at_a_near_tie() {
        let c = Correctness { prompt_lengths: vec![3], steps: 4, tolerance_half: 5e-2, greedy_steps_half: 2, ..Default::default() };
        // Largest reference logit 20: a gap under 1.0 is within the error the gate accepts.
        let reference = LogitsResult { top2_gaps: vec![0.4, 3.0, 0.5, 2.0], ..result(vec![20.0, 0.0], vec![0, 1, 2, 3]) };
        assert_eq!(near_tie_margin(&c, &reference), Some(1.0));
        let run = |tokens: Vec<u32>| compare("e", Dtype::Bf16, &c, &[result(vec![20.0, 0.0], tokens)], &[reference.clone()]).remove(0);
        // Every token equal, though the reference had near-ties at steps 0 and 2.
        let all = run(vec![0, 1, 2, 3]);
        assert!(all.passed && all.divergence_gap.is_none() && all.required_greedy_steps == 4);
        // Parted at step 2, a near-tie (gap 0.5): passes, nothing later compared.
        let at_tie = run(vec![0, 1, 9, 9]);
        assert!(at_tie.passed && at_tie.greedy_match_steps == 2 && at_tie.divergence_gap == Some(0.5));
        // Parted at step 1 or 3, where the reference's choice was clear: a different model.
        assert!(!run(vec![0, 9, 9, 9]).passed);
        assert!(!run(vec![0, 1, 2, 9]).passed, "late, but at a clear step");
        // f32 engines: every token, whatever the gaps.
        let f32 = compare("e", Dtype::F32, &c, &[result(vec![20.0, 0.0], vec![0, 1, 9, 9])], &[reference.clone()]);
        assert!(!f32[0].passed && f32[0].near_tie_margin.is_none());
    }

    #[test]
    fn relative_error_is_scaled_by_the_largest_reference_logit() {
        let (abs, rel) = logit_error(&[1.0, 2.0, -4.0], &[1.0, 2.5, -5.0]);
        assert!((abs - 1.0).abs() < 1e-12 && (rel - 0.2).abs() < 1e-12);
        assert_eq!(logit_error(&[1.0], &[1.0, 2.0]).0, f64::INFINITY);
    }

    #[test]
    fn a_probe_passes_only_within_tolerance_and_with_every_greedy_token() {
        let c = Correctness { prompt_lengths: vec![3, 4], steps: 3, ..Default::default() };
        let reference = [result(vec![10.0, 0.0], vec![0, 1, 2]), result(vec![10.0, 0.0], vec![0, 1, 2])];
        let got = [result(vec![10.0005, 0.0], vec![0, 1, 2]), result(vec![10.0, 0.0], vec![0, 1, 5])];
        let recs = compare("e", Dtype::F32, &c, &got, &reference);
        assert!(recs[0].passed, "5e-5 relative is within 1e-4");
        assert!(!recs[1].passed);
        assert_eq!(recs[1].greedy_match_steps, 2);
        let recs = compare("e", Dtype::F32, &c, &[result(vec![10.01, 0.0], vec![0, 1, 2])], &reference);
        assert!(!recs[0].passed, "1e-3 relative fails an f32 engine");
        let recs = compare("e", Dtype::Bf16, &c, &[result(vec![10.01, 0.0], vec![0, 1, 2])], &reference);
        assert!(recs[0].passed, "but passes a bf16 one");
        // Half precision may drift late in a greedy run, not early.
        let c = Correctness { greedy_steps_half: 2, ..c };
        let recs = compare("e", Dtype::Bf16, &c, &[result(vec![10.0, 0.0], vec![0, 1, 7])], &reference);
        assert!(recs[0].passed && recs[0].required_greedy_steps == 2);
        let recs = compare("e", Dtype::Bf16, &c, &[result(vec![10.0, 0.0], vec![0, 9, 2])], &reference);
        assert!(!recs[0].passed);
    }
}
