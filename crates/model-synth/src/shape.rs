//! Model shapes and the config files derived from them.

use serde_json::{json, Value};

use crate::SynthError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The exact shapes of Llama-3.2-1B-Instruct (1.24 B parameters, 2.47 GB in bf16).
    Llama32_1b,
    /// The exact shapes of Llama-3.2-3B-Instruct (3.21 B parameters, tied embeddings, 6.4 GB in
    /// bf16, two shards as the real checkpoint has).
    Llama32_3b,
    /// The exact shapes of Llama-3.1-8B-Instruct (8.03 B parameters, untied `lm_head`, 16.1 GB in
    /// bf16, four shards of at most 5 GB as the real checkpoint has).
    Llama31_8b,
    /// The same architecture at toy size (full vocabulary, 2 layers) for CPU tests.
    Tiny,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Llama32_1b => "llama-3.2-1b",
            Preset::Llama32_3b => "llama-3.2-3b",
            Preset::Llama31_8b => "llama-3.1-8b",
            Preset::Tiny => "tiny",
        }
    }

    pub fn shape(self) -> LlamaShape {
        match self {
            Preset::Llama32_1b => LlamaShape {
                vocab_size: 128_256,
                hidden_size: 2048,
                num_hidden_layers: 16,
                num_attention_heads: 32,
                num_key_value_heads: 8,
                head_dim: 64,
                intermediate_size: 8192,
                rope_factor: 32.0,
                tie_word_embeddings: true,
                max_shard_bytes: None,
            },
            Preset::Llama32_3b => LlamaShape {
                vocab_size: 128_256,
                hidden_size: 3072,
                num_hidden_layers: 28,
                num_attention_heads: 24,
                num_key_value_heads: 8,
                head_dim: 128,
                intermediate_size: 8192,
                rope_factor: 32.0,
                tie_word_embeddings: true,
                max_shard_bytes: Some(SHARD_BYTES),
            },
            Preset::Llama31_8b => LlamaShape {
                vocab_size: 128_256,
                hidden_size: 4096,
                num_hidden_layers: 32,
                num_attention_heads: 32,
                num_key_value_heads: 8,
                head_dim: 128,
                intermediate_size: 14_336,
                rope_factor: 8.0,
                tie_word_embeddings: false,
                max_shard_bytes: Some(SHARD_BYTES),
            },
            Preset::Tiny => LlamaShape {
                vocab_size: 128_256,
                hidden_size: 64,
                num_hidden_layers: 2,
                num_attention_heads: 4,
                num_key_value_heads: 2,
                head_dim: 16,
                intermediate_size: 256,
                rope_factor: 32.0,
                tie_word_embeddings: true,
                max_shard_bytes: None,
            },
        }
    }
}

impl Preset {
    pub const ALL: [Preset; 4] = [Preset::Llama32_1b, Preset::Llama32_3b, Preset::Llama31_8b, Preset::Tiny];

    /// The Hugging Face model names whose shapes this preset has (their repository's last part).
    pub fn model_names(self) -> &'static [&'static str] {
        match self {
            Preset::Llama32_1b => &["Llama-3.2-1B-Instruct", "Llama-3.2-1B"],
            Preset::Llama32_3b => &["Llama-3.2-3B-Instruct", "Llama-3.2-3B"],
            Preset::Llama31_8b => &["Llama-3.1-8B-Instruct", "Llama-3.1-8B"],
            Preset::Tiny => &["tiny"],
        }
    }

    /// The preset with the shapes of model `name` (a name of [`Preset::model_names`], any case).
    pub fn of_model(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.model_names().iter().any(|n| n.eq_ignore_ascii_case(name)))
    }

    /// The folder under `models/` its synthetic checkpoint is written to.
    pub fn synthetic_dir(self) -> String {
        match self {
            Preset::Tiny => "tiny".into(),
            p => format!("{}-synthetic", p.name()),
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = SynthError;
    fn from_str(s: &str) -> Result<Self, SynthError> {
        match s {
            "llama-3.2-1b" => Ok(Preset::Llama32_1b),
            "llama-3.2-3b" => Ok(Preset::Llama32_3b),
            "llama-3.1-8b" => Ok(Preset::Llama31_8b),
            "tiny" => Ok(Preset::Tiny),
            other => Err(SynthError::UnknownPreset(other.to_string())),
        }
    }
}

/// What varies between presets; everything else is Llama-3.2's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LlamaShape {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    /// Llama-3 rope scaling factor (32 for Llama-3.2, 8 for Llama-3.1).
    pub rope_factor: f64,
    /// Without it the checkpoint has its own `lm_head.weight`.
    pub tie_word_embeddings: bool,
    /// Shards of at most this many bytes with `model.safetensors.index.json`; None: one
    /// `model.safetensors`.
    pub max_shard_bytes: Option<usize>,
}

/// The shard limit of the real multi-file Llama checkpoints (`save_pretrained`'s "5GB").
pub const SHARD_BYTES: usize = 5_000_000_000;

pub const BOS_TOKEN_ID: u32 = 128_000;
pub const EOS_TOKEN_IDS: [u32; 3] = [128_001, 128_008, 128_009];

impl LlamaShape {
    /// `config.json` in the form Llama-3.2-1B-Instruct ships it (rope settings under `rope_scaling`,
    /// which is where candle and transformers both read them).
    pub fn config_json(&self) -> Value {
        json!({
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": false,
            "attention_dropout": 0.0,
            "bos_token_id": BOS_TOKEN_ID,
            "eos_token_id": EOS_TOKEN_IDS,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "hidden_size": self.hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": 131072,
            "mlp_bias": false,
            "model_type": "llama",
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "num_key_value_heads": self.num_key_value_heads,
            "pretraining_tp": 1,
            "rms_norm_eps": 1e-5,
            "rope_scaling": {
                "factor": self.rope_factor,
                "high_freq_factor": 4.0,
                "low_freq_factor": 1.0,
                "original_max_position_embeddings": 8192,
                "rope_type": "llama3"
            },
            "rope_theta": 500000.0,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": "bfloat16",
            "use_cache": true,
            "vocab_size": self.vocab_size
        })
    }

    pub fn generation_config_json(&self) -> Value {
        json!({
            "bos_token_id": BOS_TOKEN_ID,
            "do_sample": true,
            "eos_token_id": EOS_TOKEN_IDS,
            "temperature": 0.6,
            "top_p": 0.9
        })
    }

    /// Every tensor of the checkpoint with its shape, in file order (sorted by name, as safetensors stores them).
    /// With tied embeddings there is no `lm_head.weight`, as in the real checkpoints.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let (h, q, kv, m) =
            (self.hidden_size, self.num_attention_heads * self.head_dim, self.num_key_value_heads * self.head_dim, self.intermediate_size);
        let mut t = vec![("model.embed_tokens.weight".to_string(), vec![self.vocab_size, h]), ("model.norm.weight".to_string(), vec![h])];
        for i in 0..self.num_hidden_layers {
            let p = format!("model.layers.{i}");
            t.extend([
                (format!("{p}.input_layernorm.weight"), vec![h]),
                (format!("{p}.self_attn.q_proj.weight"), vec![q, h]),
                (format!("{p}.self_attn.k_proj.weight"), vec![kv, h]),
                (format!("{p}.self_attn.v_proj.weight"), vec![kv, h]),
                (format!("{p}.self_attn.o_proj.weight"), vec![h, q]),
                (format!("{p}.post_attention_layernorm.weight"), vec![h]),
                (format!("{p}.mlp.gate_proj.weight"), vec![m, h]),
                (format!("{p}.mlp.up_proj.weight"), vec![m, h]),
                (format!("{p}.mlp.down_proj.weight"), vec![h, m]),
            ]);
        }
        if !self.tie_word_embeddings {
            t.push(("lm_head.weight".to_string(), vec![self.vocab_size, h]));
        }
        t.sort_by(|a, b| a.0.cmp(&b.0));
        t
    }

    pub fn parameter_count(&self) -> usize {
        self.tensors().iter().map(|(_, s)| s.iter().product::<usize>()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_1b_preset_has_the_parameter_count_of_llama_3_2_1b() {
        // 1,235,814,400 parameters with tied embeddings: the figure the real checkpoint has.
        assert_eq!(Preset::Llama32_1b.shape().parameter_count(), 1_235_814_400);
    }

    #[test]
    fn the_3b_and_8b_presets_have_the_parameter_counts_of_the_real_models() {
        assert_eq!(Preset::Llama32_3b.shape().parameter_count(), 3_212_749_824);
        assert_eq!(Preset::Llama31_8b.shape().parameter_count(), 8_030_261_248);
        assert!(Preset::Llama31_8b.shape().tensors().iter().any(|t| t.0 == "lm_head.weight"), "8B's head is untied");
        assert_eq!(Preset::Llama31_8b.shape().config_json()["rope_scaling"]["factor"], 8.0);
    }

    #[test]
    fn presets_parse_by_name_and_unknown_ones_are_named_in_the_error() {
        assert_eq!("tiny".parse::<Preset>().unwrap(), Preset::Tiny);
        assert_eq!("llama-3.1-8b".parse::<Preset>().unwrap(), Preset::Llama31_8b);
        let err = "llama-70b".parse::<Preset>().unwrap_err().to_string();
        assert!(err.contains("llama-70b") && err.contains("tiny"), "{err}");
    }

    #[test]
    fn model_names_find_the_preset_of_their_shapes() {
        assert_eq!(Preset::of_model("Llama-3.2-1B-Instruct"), Some(Preset::Llama32_1b));
        assert_eq!(Preset::of_model("llama-3.1-8b-instruct"), Some(Preset::Llama31_8b));
        assert_eq!(Preset::of_model("Llama-3.2-3B"), Some(Preset::Llama32_3b));
        assert_eq!(Preset::of_model("Llama-3.3-70B-Instruct"), None);
        assert_eq!(Preset::Llama31_8b.synthetic_dir(), "llama-3.1-8b-synthetic");
        assert_eq!(Preset::Tiny.synthetic_dir(), "tiny");
    }
}
