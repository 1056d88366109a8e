//! Seeing each generated token, and when, from inside mistral.rs.
//!
//! mistral.rs gives a request's sampler the full-vocabulary logits of every step on the host (it
//! copies them there to sample) and runs the request's custom logits processors on them first, with
//! the sequence's tokens so far. [`Recorder`] is such a processor, one per batch row: it picks the
//! greedy token itself (ties to the lowest index, as `torch.argmax` and the protocol want), notes it
//! with the time and sends both to the request's task. It hands the logits back untouched unless
//! several entries share the maximum; then it lowers the others so that mistral.rs's own argmax
//! (which keeps the *last* maximum) takes the same token. So the recorded token is the one
//! mistral.rs appends, and the time is when that token is known on the host.

use std::time::Instant;

use candle_core::{DType, Device, Storage, Tensor};
use mistralrs::CustomLogitsProcessor;
use shared_protocol::EngineError;
use tokio::sync::mpsc::UnboundedSender;

/// What a request's task hears from its rows.
pub enum Msg {
    /// Row `row` chose `token` at `step` (0 = the token from the prefill) at `at`. `logits` holds the
    /// step's logits when they were asked for (row 0, step 0 of a `logits` request).
    Step { row: usize, step: usize, token: u32, at: Instant, logits: Option<Vec<f32>> },
    /// mistral.rs's final answer for row `row`: its finish reason, or why it failed.
    Finished { row: usize, result: Result<String, EngineError> },
}

pub struct Recorder {
    pub row: usize,
    pub prompt_len: usize,
    pub want_logits: bool,
    pub tx: UnboundedSender<Msg>,
}

impl CustomLogitsProcessor for Recorder {
    fn apply(&self, logits: &Tensor, context: &[u32]) -> candle_core::Result<Tensor> {
        // `context` is the prompt plus the tokens generated so far.
        let step = context.len().saturating_sub(self.prompt_len);
        let want = self.want_logits && step == 0;
        let (token, tied, copy) = with_f32(logits, |v| {
            let (token, tied) = argmax_lowest(v);
            (token, tied, want.then(|| v.to_vec()))
        })?;
        let at = Instant::now();
        // The task may be gone (it gave up on an error); the generation goes on regardless.
        let _ = self.tx.send(Msg::Step { row: self.row, step, token, at, logits: copy });
        if !tied {
            return Ok(logits.clone());
        }
        let mut v = with_f32(logits, <[f32]>::to_vec)?;
        let best = v[token as usize];
        for (i, x) in v.iter_mut().enumerate() {
            if *x == best && i != token as usize {
                *x = f32::NEG_INFINITY;
            }
        }
        let n = v.len();
        Tensor::from_vec(v, n, &Device::Cpu)
    }
}

/// Runs `f` on the logits as an f32 slice: in place when they are a contiguous f32 CPU tensor (they
/// are, as mistral.rs hands them over), else on a converted copy.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    if t.dtype() == DType::F32 {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) {
            let all = cpu.as_slice::<f32>()?;
            return Ok(f(&all[start..end]));
        }
    }
    let v = t.flatten_all()?.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.to_vec1::<f32>()?;
    Ok(f(&v))
}

/// Index of the largest value, the first one on ties (as `torch.argmax`), and whether another entry
/// equals it. NaNs never win.
pub fn argmax_lowest(v: &[f32]) -> (u32, bool) {
    let mut best = 0usize;
    let mut tied = false;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || v[best].is_nan() && !x.is_nan() {
            best = i;
            tied = false;
        } else if i != best && x == v[best] {
            tied = true;
        }
    }
    (best as u32, tied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum_and_reports_ties() {
        assert_eq!(argmax_lowest(&[1.0, 3.0, 2.0]), (1, false));
        assert_eq!(argmax_lowest(&[1.0, 3.0, 3.0, -1.0]), (1, true));
        assert_eq!(argmax_lowest(&[3.0, 3.0, 4.0]), (2, false));
        assert_eq!(argmax_lowest(&[f32::NAN, -5.0, f32::NEG_INFINITY]), (1, false));
    }

    #[test]
    fn a_tie_is_broken_so_that_a_last_maximum_argmax_agrees() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let r = Recorder { row: 0, prompt_len: 2, want_logits: true, tx };
        let logits = Tensor::new(&[0.5f32, 2.0, -1.0, 2.0], &Device::Cpu).unwrap();
        let out = r.apply(&logits, &[7, 8]).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(out, vec![0.5, 2.0, -1.0, f32::NEG_INFINITY]);
        let Some(Msg::Step { row: 0, step: 0, token: 1, logits: Some(l), .. }) = rx.try_recv().ok() else {
            panic!("no step message")
        };
        assert_eq!(l, vec![0.5, 2.0, -1.0, 2.0]);
        // A later step: no logits copy, logits passed through untouched.
        let logits = Tensor::new(&[0.0f32, 1.0], &Device::Cpu).unwrap();
        let out = r.apply(&logits, &[7, 8, 1]).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(out, vec![0.0, 1.0]);
        assert!(matches!(rx.try_recv(), Ok(Msg::Step { step: 1, token: 1, logits: None, .. })));
    }
}
