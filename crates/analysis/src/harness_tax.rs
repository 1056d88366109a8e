//! The harness tax: each engine's batch-1 latency figures behind the protocol against its plain
//! path, the upstream library called directly with nothing of ours around it. The plain paths'
//! timed calls are `plain_paths.jsonl` in the run directory (one line per call, written by each
//! engine's plain-path program in the same GPU session as the run). Per engine and prompt length
//! they hold, alternating: a call with 1 new token (time to first token), one with N, and the
//! N-token call again with the engine's own step clock inside it. Paired by repetition, the last
//! two give what the step clock costs; the clocked call's stamps give decode rates defined as the
//! engine's (Σ inter-token intervals), so what is left between them and the engine's cell is the
//! protocol, the process and the runner, and whatever the host did between the two measurements.
//! (N-token minus 1-token wall time is not used as a decode time: it is the difference of two
//! calls, so the host's drift between them enters it; the clocked call's stamps are one call's.)

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::stats::median;
use crate::summary::Summary;
use crate::Run;

pub const FILE: &str = "plain_paths.jsonl";

/// One timed call of a plain path.
#[derive(Debug, Clone, Deserialize)]
pub struct PlainCall {
    pub engine: String,
    /// What was called, in words.
    pub path: String,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    pub rep: usize,
    /// Wall time of the call, device synchronised before and after.
    pub total_ns: u64,
    /// Present when the call ran with the engine's step clock inside it.
    #[serde(default)]
    pub step_clock: Option<StepStamps>,
}

/// The step clock's stamps of one call, ns from the call's start.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct StepStamps {
    pub ttft_ns: u64,
    pub last_ns: u64,
    pub steps: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaxRow {
    pub engine: String,
    pub path: String,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    /// Repetitions with all three calls.
    pub reps: usize,
    /// Medians of the plain calls' wall times: 1 new token, N new tokens.
    pub plain_ttft_ms: f64,
    pub plain_request_ms: f64,
    /// Median over repetitions of (N tokens with the step clock) ÷ (N tokens plain), wall time;
    /// null for a plain path run without the clocked call.
    pub step_clock_cost: Option<f64>,
    /// Median over repetitions of the clocked call's decode rate, Σ inter-token intervals.
    pub in_process_decode_tok_per_s: Option<f64>,
    /// The engine's own cell (latency, batch 1, same prompt length and new tokens): medians;
    /// null for a folder holding the plain path alone.
    pub ours: Option<Ours>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ours {
    pub ttft_ms: f64,
    pub decode_tok_per_s: f64,
    pub requests: usize,
}

impl TaxRow {
    /// Ours ÷ in-process decode rate: below 1 is what the protocol, process and runner cost (or
    /// the host was slower while the cell ran).
    pub fn decode_ratio(&self) -> Option<f64> {
        Some(self.ours?.decode_tok_per_s / self.in_process_decode_tok_per_s?)
    }
    /// Ours ÷ plain time to first token: above 1 is what the harness costs.
    pub fn ttft_ratio(&self) -> Option<f64> {
        Some(self.ours?.ttft_ms / self.plain_ttft_ms)
    }
}

pub fn read_calls(dir: &Path) -> anyhow::Result<Vec<PlainCall>> {
    let path = dir.join(FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{}: line {}", path.display(), i + 1)))
        .collect()
}

/// One row per engine and prompt length the plain paths measured, beside the run's own cell
/// (`run`: the run and its summary; none for the plain path alone); an error names a plain path
/// with no matching cell, or one missing a call length.
pub fn rows(calls: &[PlainCall], run: Option<(&Run, &Summary)>) -> anyhow::Result<Vec<TaxRow>> {
    // (engine, prompt) → rep → (1-token wall, N-token wall, clocked call)
    type Reps = BTreeMap<usize, (Option<f64>, Option<(usize, f64)>, Option<(f64, StepStamps)>)>;
    type Whole = (f64, (usize, f64), Option<(f64, StepStamps)>);
    let mut by: BTreeMap<(&str, usize), (String, Reps)> = BTreeMap::new();
    for c in calls {
        let (_, reps) = by.entry((c.engine.as_str(), c.prompt_tokens)).or_insert_with(|| (c.path.clone(), BTreeMap::new()));
        let rep = reps.entry(c.rep).or_default();
        let ms = c.total_ns as f64 / 1e6;
        match (c.new_tokens, c.step_clock) {
            (1, None) => rep.0 = Some(ms),
            (n, None) => rep.1 = Some((n, ms)),
            (_, Some(s)) => rep.2 = Some((ms, s)),
        }
    }
    let mut out = Vec::new();
    for ((engine, prompt_tokens), (path, reps)) in by {
        // A file with clocked calls needs them in every repetition; one without has none.
        let clocked = reps.values().any(|r| r.2.is_some());
        let whole: Vec<Whole> = reps.values().filter(|r| r.2.is_some() == clocked).filter_map(|&(a, b, c)| Some((a?, b?, c))).collect();
        let lengths: Vec<usize> = {
            let mut l: Vec<usize> = whole.iter().map(|w| w.1 .0).collect();
            l.dedup();
            l
        };
        let [n] = lengths[..] else {
            anyhow::bail!("{FILE}: {engine} p{prompt_tokens}: no repetitions with a 1-token and an N-token call (and a clocked one, where any is) of one N (N = {lengths:?})");
        };
        anyhow::ensure!(n > 1, "{FILE}: {engine} p{prompt_tokens}: N must exceed 1");
        let steps: Vec<f64> = whole
            .iter()
            .filter_map(|w| w.2)
            .map(|c| c.1)
            .filter(|s| s.steps == n && s.last_ns > s.ttft_ns)
            .map(|s| (n - 1) as f64 / ((s.last_ns - s.ttft_ns) as f64 / 1e9))
            .collect();
        anyhow::ensure!(
            steps.len() == if clocked { whole.len() } else { 0 },
            "{FILE}: {engine} p{prompt_tokens}: a clocked call has not {n} increasing stamps"
        );
        let clock_ratios: Vec<f64> = whole.iter().filter_map(|w| Some(w.2?.0 / w.1 .1)).collect();
        let ours = run.map(|(run, summary)| ours(run, summary, engine, prompt_tokens, n)).transpose()?;
        let column = |f: &dyn Fn(&Whole) -> f64| median(&whole.iter().map(f).collect::<Vec<_>>());
        out.push(TaxRow {
            engine: engine.to_string(),
            path,
            prompt_tokens,
            new_tokens: n,
            reps: whole.len(),
            plain_ttft_ms: column(&|w| w.0),
            plain_request_ms: column(&|w| w.1 .1),
            step_clock_cost: clocked.then(|| median(&clock_ratios)),
            in_process_decode_tok_per_s: clocked.then(|| median(&steps)),
            ours,
        });
    }
    Ok(out)
}

/// The engine's latency cell of batch 1 with the plain path's shape.
fn ours(run: &Run, summary: &Summary, engine: &str, prompt_tokens: usize, n: usize) -> anyhow::Result<Ours> {
    let max_new: Vec<usize> = run
        .requests
        .iter()
        .filter(|r| r.engine == engine && r.scenario == "latency" && r.batch_size == 1 && r.prompt_tokens == prompt_tokens)
        .map(|r| r.max_new_tokens)
        .collect();
    anyhow::ensure!(
        !max_new.is_empty() && max_new.iter().all(|&m| m == n),
        "{FILE}: {engine} p{prompt_tokens} × {n} new tokens has no latency cell of batch 1 with the same shape in {}",
        run.dir.display()
    );
    let cell = summary
        .cells
        .iter()
        .find(|c| c.engine == engine && c.scenario == "latency" && c.batch_size == 1 && c.prompt_tokens == prompt_tokens)
        .with_context(|| format!("summary.json has no latency cell for {engine} p{prompt_tokens}"))?;
    let (Some(decode), Some(ttft)) = (&cell.decode_tok_per_s.all, &cell.ttft_ms.all) else {
        anyhow::bail!("summary.json: {engine} p{prompt_tokens} has no decode or TTFT median");
    };
    Ok(Ours { ttft_ms: ttft.median, decode_tok_per_s: decode.median, requests: decode.n })
}

/// The rows as a Markdown table.
pub fn table(rows: &[TaxRow]) -> String {
    let mut out = String::from(
        "| engine | plain path | prompt | new tokens | generate() ms | step clock: wall ÷ plain | in-process decode tok/s | ours | ours ÷ in-process | generate(), 1 token, ms | ours TTFT ms | ours ÷ plain | reps / requests |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out += &format!(
            "| {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {:.2} | {} | {} | {} / {} |\n",
            r.engine,
            r.path,
            r.prompt_tokens,
            r.new_tokens,
            r.plain_request_ms,
            dash(r.step_clock_cost, 3),
            dash(r.in_process_decode_tok_per_s, 1),
            dash(r.ours.map(|o| o.decode_tok_per_s), 1),
            dash(r.decode_ratio(), 3),
            r.plain_ttft_ms,
            dash(r.ours.map(|o| o.ttft_ms), 2),
            dash(r.ttft_ratio(), 3),
            r.reps,
            r.ours.map_or("–".into(), |o| o.requests.to_string())
        );
    }
    out
}

fn dash(v: Option<f64>, decimals: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.decimals$}"))
}

/// The table of a folder holding `plain_paths.jsonl`: a run directory (the engines' cells beside
/// the plain path), or a folder of the plain path alone.
pub fn of_dir(dir: &Path) -> anyhow::Result<String> {
    let calls = read_calls(dir)?;
    if !dir.join("raw_data").is_dir() {
        return Ok(table(&rows(&calls, None)?));
    }
    let report = crate::analyze(dir)?;
    Ok(table(&rows(&calls, Some((&report.run, &report.summary)))?))
}
