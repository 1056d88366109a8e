//! What an engine costs to run: price per million tokens (single stream and at its best batch),
//! energy per token, bytes per token and bandwidth share, GPU utilisation under load.

use crate::cells::CellKey;
use crate::roofline::decode_step;
use crate::run::Run;
use crate::summary::{Business, EngineSummary};

pub fn figures(run: &Run, e: &EngineSummary, cells: &[(CellKey, Vec<Vec<f64>>)]) -> Business {
    let price = run.config.analysis.gpu_price_per_hour;
    let on_cpu = e.on_cpu();
    let per_mtok = |tok_s: f64| price.filter(|_| tok_s > 0.0).map(|p| p / (tok_s * 3600.0) * 1e6);
    let head_tok_s = e.decode_tok_per_s.as_ref().map(|t| t.median);
    let best = e
        .scenarios
        .throughput
        .iter()
        .filter_map(|p| Some((p.output_tok_per_s.as_ref()?.median, p.batch_size)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    // Bandwidth at the headline cells: their decode steps' bytes, weighted by how many requests each had.
    let head: Vec<(CellKey, f64)> = cells
        .iter()
        .filter(|(k, _)| k.run == run.id && k.engine == e.name)
        .filter(|(k, _)| k.scenario == "latency" || !run.requests.iter().any(|r| r.scenario == "latency"))
        .filter_map(|(k, v)| {
            let r = run.requests.iter().find(|r| r.engine == k.engine && r.workload == k.workload)?;
            let context = k.prompt_tokens as f64 + r.max_new_tokens as f64 / 2.0;
            let (bytes, _) = decode_step(run, &r.dtype, k.batch_size, context)?;
            Some((k.clone(), bytes / k.batch_size as f64 * v[0].len() as f64))
        })
        .collect();
    let weight: f64 = head.iter().map(|(k, _)| cells.iter().find(|(c, _)| c == k).map_or(0.0, |(_, v)| v[0].len() as f64)).sum();
    let bytes_per_token = (weight > 0.0).then(|| head.iter().map(|(_, b)| b).sum::<f64>() / weight);
    let achieved = bytes_per_token.zip(head_tok_s).map(|(b, t)| b * t / 1e9);
    Business {
        cost_per_mtok_single_stream_usd: head_tok_s.and_then(per_mtok),
        best_output_tok_per_s: best.map(|b| b.0),
        best_batch_size: best.map(|b| b.1),
        cost_per_mtok_best_batch_usd: best.and_then(|b| per_mtok(b.0)),
        // The NVML figures are the GPU's: they say nothing about an engine running on the CPU.
        energy_per_token_mj: e.scenarios.energy_per_token_mj.filter(|_| !on_cpu),
        bytes_per_token,
        achieved_gb_per_s: achieved,
        fraction_of_copy_bandwidth: achieved.zip(run.copy_bandwidth_gb_s()).filter(|_| !on_cpu).map(|(a, bw)| a / bw),
        gpu_util_under_load_pct: e.scenarios.load.iter().filter_map(|p| p.mean_gpu_util_pct).reduce(f64::max).filter(|_| !on_cpu),
    }
}
