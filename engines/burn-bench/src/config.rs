//! The fields of a Hugging Face Llama `config.json` this engine reads, and the rotary tables.

use serde::Deserialize;
use shared_protocol::EngineError;

#[derive(Debug, Clone, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f32,
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    pub max_position_embeddings: Option<usize>,
}

fn default_theta() -> f32 {
    10_000.0
}

#[derive(Debug, Clone, Deserialize)]
pub struct RopeScaling {
    pub rope_type: Option<String>,
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: f32,
}

impl LlamaConfig {
    pub fn read(path: &std::path::Path) -> Result<Self, EngineError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EngineError::bad_request(format!("cannot read {}: {e}", path.display())))?;
        let cfg: LlamaConfig =
            serde_json::from_str(&text).map_err(|e| EngineError::bad_request(format!("{}: {e}", path.display())))?;
        if let Some(s) = &cfg.rope_scaling {
            if s.rope_type.as_deref().unwrap_or("llama3") != "llama3" {
                return Err(EngineError::unsupported(format!(
                    "{}: rope_scaling.rope_type {:?} (burn-bench implements llama3 scaling)",
                    path.display(),
                    s.rope_type
                )));
            }
        }
        if cfg.num_attention_heads % cfg.kv_heads() != 0 {
            return Err(EngineError::bad_request(format!(
                "{}: {} attention heads are not a multiple of {} key/value heads",
                path.display(),
                cfg.num_attention_heads,
                cfg.kv_heads()
            )));
        }
        if cfg.head_dim() % 2 != 0 {
            return Err(EngineError::bad_request(format!("{}: odd head_dim {}", path.display(), cfg.head_dim())));
        }
        Ok(cfg)
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Rotary inverse frequencies with Llama-3 scaling when configured, in f32 as transformers
    /// computes them (the same arithmetic as lm-rs-bench, so both engines agree to the bit).
    pub fn inv_freq(&self) -> Vec<f32> {
        let d = self.head_dim();
        let base: Vec<f32> = (0..d / 2).map(|i| 1.0 / self.rope_theta.powf((2 * i) as f32 / d as f32)).collect();
        let Some(s) = &self.rope_scaling else { return base };
        let low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
        let high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
        base.into_iter()
            .map(|f| {
                let wavelen = 2.0 * std::f32::consts::PI / f;
                if wavelen < high_wavelen {
                    f
                } else if wavelen > low_wavelen {
                    f / s.factor
                } else {
                    let smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor)
                        / (s.high_freq_factor - s.low_freq_factor);
                    (1.0 - smooth) * f / s.factor + smooth * f
                }
            })
            .collect()
    }

    /// `cos` and `sin` tables for positions `0..positions`, `[positions, head_dim]` row-major, in the
    /// "rotate half" layout: column `i` and `i + head_dim/2` share frequency `i`. The sine table
    /// carries the sign of `rotate_half` (negative in the first half), so that
    /// `rope(x) = x * cos + swap_halves(x) * sin`.
    pub fn rope_tables(&self, positions: usize) -> (Vec<f32>, Vec<f32>) {
        let inv_freq = self.inv_freq();
        let d = self.head_dim();
        let half = d / 2;
        let mut cos = vec![0f32; positions * d];
        let mut sin = vec![0f32; positions * d];
        for p in 0..positions {
            for (i, &f) in inv_freq.iter().enumerate() {
                let angle = p as f32 * f;
                let (s, c) = angle.sin_cos();
                cos[p * d + i] = c;
                cos[p * d + half + i] = c;
                sin[p * d + i] = -s;
                sin[p * d + half + i] = s;
            }
        }
        (cos, sin)
    }
}
