//! Record builders for tests (the `testing` feature).

use crate::records::RequestRecord;

/// A measured latency request of `batch` rows: `ttft_ms` to the first token, then one token per
/// entry of `token_ms`; the runner's total is the engine's plus 1 ms.
pub fn request(engine: &str, batch: usize, ttft_ms: u64, token_ms: &[u64]) -> RequestRecord {
    let token_ns: Vec<u64> = token_ms.iter().map(|t| t * 1_000_000).collect();
    let total_ns = ttft_ms * 1_000_000 + token_ns.iter().sum::<u64>();
    RequestRecord {
        schema: 1,
        engine: engine.into(),
        workload: "latency".into(),
        scenario: "latency".into(),
        device: "cpu".into(),
        dtype: "f32".into(),
        batch_size: batch,
        prompt_tokens: 16,
        max_new_tokens: token_ms.len() + 1,
        warmup: false,
        iteration: 0,
        generated_tokens: batch * (token_ms.len() + 1),
        queue_ns: 0,
        ttft_ns: ttft_ms * 1_000_000,
        token_ns,
        total_ns,
        runner_ttft_ns: None,
        runner_total_ns: total_ns + 1_000_000,
        load: None,
        sent_offset_ns: None,
        unix_ms: 0,
        block: None,
        attempt: None,
        host_probe_before_ns: None,
        host_probe_after_ns: None,
    }
}
