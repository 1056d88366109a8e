//! The fields of a Hugging Face Llama `config.json` this engine uses.

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
    pub rms_norm_eps: f32,
    #[serde(default = "default_theta")]
    pub rope_theta: f32,
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
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
        let cfg: LlamaConfig = serde_json::from_str(&text)
            .map_err(|e| EngineError::bad_request(format!("{}: {e}", path.display())))?;
        if let Some(s) = &cfg.rope_scaling {
            if s.rope_type.as_deref().unwrap_or("llama3") != "llama3" {
                return Err(EngineError::unsupported(format!(
                    "{}: rope_scaling.rope_type {:?} (lm_rs implements llama3)",
                    path.display(),
                    s.rope_type
                )));
            }
        }
        Ok(cfg)
    }
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Rotary inverse frequencies, with Llama-3 scaling when configured. Computed in f32, as
    /// transformers does, so the angles agree to the last bit or two.
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
}
