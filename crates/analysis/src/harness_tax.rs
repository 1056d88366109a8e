//! The harness tax: each engine's batch-1 latency figures behind the protocol against its plain
//! path, the upstream library called directly with nothing of ours around it. The plain paths'
//! timed calls are `plain_paths.jsonl` in the run directory (one line per call, written by each
//! engine's plain-path program in the same GPU session as the run): a call with 1 new token gives
//! the time to first token, a call with N new tokens minus it the N − 1 decode steps.

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
    pub total_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaxRow {
    pub engine: String,
    pub path: String,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    /// Timed calls of each length (1 and N new tokens).
    pub plain_calls: usize,
    pub plain_ttft_ms: f64,
    pub plain_decode_tok_per_s: f64,
    /// The engine's own cell (latency, batch 1, same prompt length and new tokens): medians.
    pub ours_ttft_ms: f64,
    pub ours_decode_tok_per_s: f64,
    pub ours_requests: usize,
}

impl TaxRow {
    /// Ours ÷ plain decode rate: below 1 is what the harness costs.
    pub fn decode_ratio(&self) -> f64 {
        self.ours_decode_tok_per_s / self.plain_decode_tok_per_s
    }
    /// Ours ÷ plain time to first token: above 1 is what the harness costs.
    pub fn ttft_ratio(&self) -> f64 {
        self.ours_ttft_ms / self.plain_ttft_ms
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

/// One row per engine and prompt length the plain paths measured, beside the run's own cell;
/// an error names a plain path with no matching cell, or a cell missing one call length.
pub fn rows(calls: &[PlainCall], run: &Run, summary: &Summary) -> anyhow::Result<Vec<TaxRow>> {
    type Key<'a> = (&'a str, usize);
    let mut by: BTreeMap<Key, (String, BTreeMap<usize, Vec<f64>>)> = BTreeMap::new();
    for c in calls {
        let e = by.entry((c.engine.as_str(), c.prompt_tokens)).or_insert_with(|| (c.path.clone(), BTreeMap::new()));
        e.1.entry(c.new_tokens).or_default().push(c.total_ns as f64 / 1e6);
    }
    let mut out = Vec::new();
    for ((engine, prompt_tokens), (path, by_length)) in by {
        let lengths: Vec<usize> = by_length.keys().copied().collect();
        let [1, n] = lengths[..] else {
            anyhow::bail!("{FILE}: {engine} p{prompt_tokens} has calls of {lengths:?} new tokens, not 1 and one N > 1");
        };
        let (first, whole) = (&by_length[&1], &by_length[&n]);
        let plain_decode_ms = median(whole) - median(first);
        anyhow::ensure!(plain_decode_ms > 0.0, "{FILE}: {engine} p{prompt_tokens}: {n} tokens took no longer than 1");
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
        out.push(TaxRow {
            engine: engine.to_string(),
            path,
            prompt_tokens,
            new_tokens: n,
            plain_calls: first.len().min(whole.len()),
            plain_ttft_ms: median(first),
            plain_decode_tok_per_s: (n - 1) as f64 / (plain_decode_ms / 1e3),
            ours_ttft_ms: ttft.median,
            ours_decode_tok_per_s: decode.median,
            ours_requests: decode.n,
        });
    }
    Ok(out)
}

/// The rows as a Markdown table.
pub fn table(rows: &[TaxRow]) -> String {
    let mut out = String::from(
        "| engine | plain path | prompt | new tokens | plain decode tok/s | ours | ours ÷ plain | plain TTFT ms | ours | ours ÷ plain | n plain / ours |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out += &format!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.3} | {:.2} | {:.2} | {:.3} | {} / {} |\n",
            r.engine,
            r.path,
            r.prompt_tokens,
            r.new_tokens,
            r.plain_decode_tok_per_s,
            r.ours_decode_tok_per_s,
            r.decode_ratio(),
            r.plain_ttft_ms,
            r.ours_ttft_ms,
            r.ttft_ratio(),
            r.plain_calls,
            r.ours_requests
        );
    }
    out
}

/// The table of a run directory holding `plain_paths.jsonl`.
pub fn of_run(dir: &Path) -> anyhow::Result<String> {
    let calls = read_calls(dir)?;
    let report = crate::analyze(dir)?;
    Ok(table(&rows(&calls, &report.run, &report.summary)?))
}
