//! The roofline: for every decode cell, the FLOPs and bytes one step moves (from the checkpoint's
//! shape), the rate the cell achieved, and its share of the measured copy bandwidth.

use serde::Serialize;

use crate::cells::CellKey;
use crate::requests::METRICS;
use crate::run::Run;
use crate::stats::median;

fn dtype_bytes(dtype: &str) -> u64 {
    match dtype {
        "f32" => 4,
        "f16" | "bf16" => 2,
        _ => 4,
    }
}

/// One roofline point: a decode phase at one batch size.
#[derive(Debug, Clone, Serialize)]
pub struct RooflinePoint {
    pub run: String,
    pub engine: String,
    pub workload: String,
    pub batch_size: u64,
    pub prompt_tokens: u64,
    /// FLOPs per byte moved by one decode step.
    pub intensity_flop_per_byte: f64,
    pub achieved_tflops: f64,
    pub achieved_gb_per_s: f64,
    pub fraction_of_copy_bandwidth: Option<f64>,
}

/// Bytes and FLOPs of one decode step of `batch` rows at mean context `context`.
pub fn decode_step(run: &Run, dtype: &str, batch: u64, context: f64) -> Option<(f64, f64)> {
    let shape = run.model_shape()?;
    let b = dtype_bytes(dtype);
    let bytes = (shape.parameters() * b) as f64 + batch as f64 * shape.kv_bytes_per_token(b) as f64 * context;
    let attention = 4.0 * (shape.num_hidden_layers * shape.num_attention_heads * shape.head_dim()) as f64 * context;
    let flops = batch as f64 * (shape.matmul_flops_per_token() as f64 + attention);
    Some((bytes, flops))
}

/// Roofline points of every decode cell (latency and throughput scenarios) with a decode rate.
pub fn roofline(run: &Run, cells: &[(CellKey, Vec<Vec<f64>>)]) -> Vec<RooflinePoint> {
    let decode = METRICS.iter().position(|(m, _)| *m == "decode_tok_s").expect("metric");
    let bw = run.copy_bandwidth_gb_s();
    cells
        .iter()
        .filter(|(k, v)| k.run == run.id && (k.scenario == "latency" || k.scenario == "throughput") && !v[decode].is_empty())
        .filter_map(|(k, v)| {
            let r =
                run.requests.iter().find(|r| r.engine == k.engine && r.workload == k.workload && r.batch_size as u64 == k.batch_size)?;
            let context = k.prompt_tokens as f64 + r.max_new_tokens as f64 / 2.0;
            let (bytes, flops) = decode_step(run, &r.dtype, k.batch_size, context)?;
            let steps_per_s = median(&v[decode]) / k.batch_size as f64;
            let gb_s = bytes * steps_per_s / 1e9;
            Some(RooflinePoint {
                run: k.run.clone(),
                engine: k.engine.clone(),
                workload: k.workload.clone(),
                batch_size: k.batch_size,
                prompt_tokens: k.prompt_tokens,
                intensity_flop_per_byte: flops / bytes,
                achieved_tflops: flops * steps_per_s / 1e12,
                achieved_gb_per_s: gb_s,
                fraction_of_copy_bandwidth: bw.map(|bw| gb_s / bw),
            })
        })
        .collect()
}
