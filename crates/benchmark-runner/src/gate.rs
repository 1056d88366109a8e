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

/// Largest absolute difference, and that over the largest reference magnitude.
pub fn logit_error(got: &[f32], want: &[f32]) -> (f64, f64) {
    if got.len() != want.len() {
        return (f64::INFINITY, f64::INFINITY);
    }
    let max_abs = got.iter().zip(want).map(|(a, b)| (*a as f64 - *b as f64).abs()).fold(0.0, f64::max);
    let scale = want.iter().map(|v| (*v as f64).abs()).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    (max_abs, max_abs / scale)
}

/// How many leading greedy tokens a half-precision engine must share with the reference, and the
/// first near-tie that bounds it. A near-tie is a step where the reference's top two logits are
/// closer than the logit error the gate itself accepts (`tolerance_half` × the largest reference
/// logit): there a correct bf16 engine may pick either token, and after it the two runs continue
/// from different text. Every step before the first near-tie must match — all of them where there is
/// none — so a peaked model (a real checkpoint) is held to more tokens than the old fixed count, and
/// a flat one (random weights, where ties are common) is not failed for rounding. A reference that
/// reports no gaps falls back to `greedy_steps_half`.
pub fn required_half_steps(c: &Correctness, reference: &LogitsResult) -> (usize, Option<f64>, Option<usize>) {
    if reference.top2_gaps.is_empty() {
        return (c.greedy_steps_half.min(c.steps), None, None);
    }
    let scale = reference.logits.iter().map(|v| (*v as f64).abs()).fold(0.0, f64::max);
    let margin = c.tolerance_half * scale;
    let tie = reference.top2_gaps.iter().take(c.steps).position(|&g| (g as f64) < margin);
    (tie.unwrap_or(c.steps).min(c.steps), Some(margin), tie)
}

pub fn compare(engine: &str, dtype: Dtype, c: &Correctness, got: &[LogitsResult], reference: &[LogitsResult]) -> Vec<CorrectnessRecord> {
    got.iter()
        .zip(reference)
        .zip(&c.prompt_lengths)
        .map(|((g, r), &len)| {
            let (tolerance, (required, near_tie_margin, first_near_tie_step)) =
                if dtype == Dtype::F32 { (c.tolerance_f32, (c.steps, None, None)) } else { (c.tolerance_half, required_half_steps(c, r)) };
            let (max_abs, max_rel) = logit_error(&g.logits, &r.logits);
            let greedy_match_steps = g.tokens.iter().zip(&r.tokens).take_while(|(a, b)| a == b).count();
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
                required_greedy_steps: required,
                near_tie_margin,
                first_near_tie_step,
                passed: max_rel <= tolerance && greedy_match_steps >= required && g.tokens.len() == c.steps,
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
    fn half_precision_must_match_every_token_before_the_references_first_near_tie() {
        let c = Correctness { prompt_lengths: vec![3], steps: 4, tolerance_half: 5e-2, greedy_steps_half: 2, ..Default::default() };
        // Largest reference logit 20: a gap under 1.0 is within the error the gate accepts.
        let tied_at_2 = LogitsResult { top2_gaps: vec![3.0, 1.5, 0.4, 2.0], ..result(vec![20.0, 0.0], vec![0, 1, 2, 3]) };
        assert_eq!(required_half_steps(&c, &tied_at_2), (2, Some(1.0), Some(2)));
        let parts_at_tie = compare("e", Dtype::Bf16, &c, &[result(vec![20.0, 0.0], vec![0, 1, 9, 9])], &[tied_at_2.clone()]);
        assert!(parts_at_tie[0].passed && parts_at_tie[0].first_near_tie_step == Some(2));
        let parts_before = compare("e", Dtype::Bf16, &c, &[result(vec![20.0, 0.0], vec![0, 9, 9, 9])], &[tied_at_2]);
        assert!(!parts_before[0].passed, "a token parted before any near-tie is a different model");
        // No near-tie: every token, more than greedy_steps_half.
        let peaked = LogitsResult { top2_gaps: vec![3.0; 4], ..result(vec![20.0, 0.0], vec![0, 1, 2, 3]) };
        assert_eq!(required_half_steps(&c, &peaked), (4, Some(1.0), None));
        let late = compare("e", Dtype::Bf16, &c, &[result(vec![20.0, 0.0], vec![0, 1, 2, 7])], &[peaked]);
        assert!(!late[0].passed && late[0].required_greedy_steps == 4);
        // f32 engines: every token, whatever the gaps.
        let f32_tied = LogitsResult { top2_gaps: vec![0.0; 4], ..result(vec![20.0, 0.0], vec![0, 1, 2, 3]) };
        let f32 = compare("e", Dtype::F32, &c, &[result(vec![20.0, 0.0], vec![0, 1, 2, 7])], &[f32_tied]);
        assert!(!f32[0].passed && f32[0].required_greedy_steps == 4 && f32[0].near_tie_margin.is_none());
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
