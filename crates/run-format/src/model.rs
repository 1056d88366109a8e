//! The model's shape from its config.json: what the runner needs for prompt ids and for predicting a
//! cell's memory (`system.memory_limit_gb`), and what the analysis needs for bytes and FLOPs per token.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct ModelShape {
    pub vocab_size: usize,
    #[serde(default)]
    pub hidden_size: usize,
    #[serde(default)]
    pub intermediate_size: usize,
    #[serde(default)]
    pub num_hidden_layers: usize,
    #[serde(default)]
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
}

impl ModelShape {
    pub fn read(model: &Path) -> anyhow::Result<ModelShape> {
        let path = model.join("config.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Parameters of a Llama with this shape (no biases).
    pub fn parameters(&self) -> u64 {
        let (h, v, m, l) = (self.hidden_size as u64, self.vocab_size as u64, self.intermediate_size as u64, self.num_hidden_layers as u64);
        let (q, kv) = ((self.num_attention_heads * self.head_dim()) as u64, (self.kv_heads() * self.head_dim()) as u64);
        let per_layer = h * q * 2 + h * kv * 2 + 3 * h * m + 2 * h;
        let head = if self.tie_word_embeddings { 0 } else { v * h };
        v * h + l * per_layer + h + head
    }

    /// Bytes of keys and values per token of context at `dtype_bytes` per element.
    pub fn kv_bytes_per_token(&self, dtype_bytes: u64) -> u64 {
        2 * (self.num_hidden_layers * self.kv_heads() * self.head_dim()) as u64 * dtype_bytes
    }

    /// Multiply-adds ×2 per generated token in the weight matmuls (attention over the context not
    /// included): the FLOPs side of the roofline. The tied embedding's lookup is free, its use as the
    /// output head is not.
    pub fn matmul_flops_per_token(&self) -> u64 {
        let embed = self.vocab_size as u64 * self.hidden_size as u64;
        let norms = (2 * self.num_hidden_layers as u64 + 1) * self.hidden_size as u64;
        2 * (self.parameters() - norms - if self.tie_word_embeddings { 0 } else { embed })
    }

    /// Weights plus a full KV cache for `batch` sequences of `tokens` positions.
    pub fn predicted_bytes(&self, dtype_bytes: u64, batch: usize, tokens: usize) -> u64 {
        self.parameters() * dtype_bytes + self.kv_bytes_per_token(dtype_bytes) * (batch * tokens) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_3_2_1b_figures() {
        let s: ModelShape = serde_json::from_value(model_synth_config()).unwrap();
        assert_eq!(s.parameters(), 1_235_814_400);
        // 16 layers × 8 KV heads × 64 dims × K and V × 2 bytes = 32 KiB per token in bf16.
        assert_eq!(s.kv_bytes_per_token(2), 32_768);
        assert_eq!(s.predicted_bytes(2, 1, 0), 2_471_628_800);
    }

    /// The fields of Llama-3.2-1B-Instruct's config.json that the shape reads.
    fn model_synth_config() -> serde_json::Value {
        serde_json::json!({"vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
            "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
            "head_dim": 64, "tie_word_embeddings": true})
    }
}
