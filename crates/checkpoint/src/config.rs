//! A Llama `config.json` as transformers 4 or 5 writes it, normalised to one typed config. An
//! engine that reads this never falls back to a default for a key it did not find where the
//! other form keeps it (transformers 5 moves `rope_theta` and the llama3 scaling into
//! `rope_parameters` and renames `torch_dtype` to `dtype`).

use std::path::Path;

use serde_json::Value;

/// Llama-3 rope scaling (`rope_type: llama3`).
#[derive(Debug, Clone, PartialEq)]
pub struct Llama3Rope {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// Explicit in the file, or hidden_size / num_attention_heads.
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f32,
    pub rope_scaling: Option<Llama3Rope>,
    pub tie_word_embeddings: bool,
    pub max_position_embeddings: Option<usize>,
    /// `torch_dtype` (transformers 4) or `dtype` (5).
    pub dtype: Option<String>,
}

/// transformers' default when a Llama config names no rope base.
const DEFAULT_ROPE_THETA: f32 = 10_000.0;

impl LlamaConfig {
    /// `dir/config.json`.
    pub fn read(dir: &Path) -> Result<LlamaConfig, String> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        LlamaConfig::from_json(&json).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The config from its JSON; an error names the key and the value that cannot be used.
    pub fn from_json(v: &Value) -> Result<LlamaConfig, String> {
        let int = |k: &str| -> Result<usize, String> {
            v.get(k).ok_or_else(|| format!("missing key `{k}`"))?.as_u64().map(|x| x as usize).ok_or_else(|| format!("`{k}` is {}, not a count", v[k]))
        };
        let opt_int = |k: &str| -> Result<Option<usize>, String> { if v.get(k).is_none_or(Value::is_null) { Ok(None) } else { int(k).map(Some) } };
        let float = |o: &Value, at: &str, k: &str| -> Result<f64, String> {
            o.get(k).ok_or_else(|| format!("missing key `{at}{k}`"))?.as_f64().ok_or_else(|| format!("`{at}{k}` is {}, not a number", o[k]))
        };
        let heads = int("num_attention_heads")?;
        let hidden = int("hidden_size")?;
        let kv = opt_int("num_key_value_heads")?.unwrap_or(heads);
        if heads == 0 || kv == 0 || heads % kv != 0 {
            return Err(format!("num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}"));
        }
        let head_dim = match opt_int("head_dim")? {
            Some(d) => d,
            None if hidden % heads == 0 => hidden / heads,
            None => return Err(format!("hidden_size {hidden} is not a multiple of num_attention_heads {heads} and no head_dim is given")),
        };
        if head_dim % 2 != 0 {
            return Err(format!("head_dim {head_dim} is odd (rotary embeddings pair dimensions)"));
        }
        // transformers 5: `rope_parameters` holds the base and the scaling; 4: `rope_theta` and `rope_scaling`.
        let (rope_theta, scaling, at) = match v.get("rope_parameters").filter(|p| !p.is_null()) {
            Some(p) => (float(p, "rope_parameters.", "rope_theta")? as f32, Some(p), "rope_parameters."),
            None => {
                let theta = if v.get("rope_theta").is_none_or(Value::is_null) { DEFAULT_ROPE_THETA } else { float(v, "", "rope_theta")? as f32 };
                (theta, v.get("rope_scaling").filter(|s| !s.is_null()), "rope_scaling.")
            }
        };
        let rope_scaling = match scaling {
            None => None,
            Some(s) => {
                let kind = s.get("rope_type").or_else(|| s.get("type")).and_then(Value::as_str).unwrap_or("default");
                match kind {
                    "default" => None,
                    "llama3" => Some(Llama3Rope {
                        factor: float(s, at, "factor")? as f32,
                        low_freq_factor: float(s, at, "low_freq_factor")? as f32,
                        high_freq_factor: float(s, at, "high_freq_factor")? as f32,
                        original_max_position_embeddings: float(s, at, "original_max_position_embeddings")? as f32,
                    }),
                    other => return Err(format!("`{at}rope_type` is {other:?}; only llama3 scaling (or none) is implemented")),
                }
            }
        };
        let dtype = v.get("dtype").or_else(|| v.get("torch_dtype")).and_then(Value::as_str).map(String::from);
        Ok(LlamaConfig {
            vocab_size: int("vocab_size")?,
            hidden_size: hidden,
            intermediate_size: int("intermediate_size")?,
            num_hidden_layers: int("num_hidden_layers")?,
            num_attention_heads: heads,
            num_key_value_heads: kv,
            head_dim,
            rms_norm_eps: float(v, "", "rms_norm_eps")?,
            rope_theta,
            rope_scaling,
            tie_word_embeddings: v.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(false),
            max_position_embeddings: opt_int("max_position_embeddings")?,
            dtype,
        })
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// For an upstream loader that derives head_dim as hidden_size / num_attention_heads (and
    /// ignores the key): an error naming the key when the config says otherwise, since that
    /// loader would build a different model.
    pub fn require_derived_head_dim(&self, loader: &str) -> Result<(), String> {
        let derived = self.hidden_size / self.num_attention_heads;
        if self.head_dim == derived {
            return Ok(());
        }
        Err(format!(
            "`head_dim` is {}, not hidden_size / num_attention_heads = {derived}; {loader} derives head_dim from those and would build a different model",
            self.head_dim
        ))
    }

    /// Rotary inverse frequencies, with Llama-3 scaling when configured. Computed in f32, as
    /// transformers does, so the angles agree to the last bit or two.
    pub fn inv_freq(&self) -> Vec<f32> {
        let d = self.head_dim;
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
                    let smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                    (1.0 - smooth) * f / s.factor + smooth * f
                }
            })
            .collect()
    }
}

/// The same config in the transformers 4 form (`rope_theta`, `rope_scaling`, `torch_dtype`), for
/// upstream loaders that read only that form (candle-transformers). Values are moved, never
/// recomputed; a config already in that form is returned unchanged.
pub fn in_transformers_4_form(raw: &Value) -> Value {
    let mut v = raw.clone();
    let Some(o) = v.as_object_mut() else { return v };
    if let Some(Value::Object(mut params)) = o.remove("rope_parameters") {
        if let Some(theta) = params.remove("rope_theta") {
            o.insert("rope_theta".into(), theta);
        }
        let kind = params.get("rope_type").and_then(Value::as_str).unwrap_or("default");
        if kind != "default" {
            o.insert("rope_scaling".into(), Value::Object(params));
        }
    }
    if !o.contains_key("torch_dtype") {
        if let Some(d) = o.get("dtype").cloned() {
            o.insert("torch_dtype".into(), d);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v4() -> Value {
        json!({
            "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
            "num_attention_heads": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
            "rope_scaling": {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192, "rope_type": "llama3"},
            "tie_word_embeddings": true, "torch_dtype": "bfloat16"
        })
    }

    /// The same model as transformers 5 writes its config.
    fn v5() -> Value {
        let mut v = v4();
        let o = v.as_object_mut().unwrap();
        let mut params = o.remove("rope_scaling").unwrap();
        params["rope_theta"] = o.remove("rope_theta").unwrap();
        o.insert("rope_parameters".into(), params);
        let dtype = o.remove("torch_dtype").unwrap();
        o.insert("dtype".into(), dtype);
        v
    }

    #[test]
    fn an_explicit_head_dim_is_refused_only_for_loaders_that_derive_it() {
        let mut v = v4();
        v["head_dim"] = 64.into();
        assert_eq!(LlamaConfig::from_json(&v).unwrap().require_derived_head_dim("candle"), Ok(()));
        v["head_dim"] = 128.into();
        let cfg = LlamaConfig::from_json(&v).unwrap();
        assert_eq!(cfg.head_dim, 128);
        let e = cfg.require_derived_head_dim("candle").unwrap_err();
        assert!(e.contains("`head_dim` is 128") && e.contains("= 64") && e.contains("candle"), "{e}");
    }

    #[test]
    fn transformers_4_and_5_forms_read_as_one_model() {
        let (a, b) = (LlamaConfig::from_json(&v4()).unwrap(), LlamaConfig::from_json(&v5()).unwrap());
        assert_eq!(a, b);
        assert_eq!((a.rope_theta, a.head_dim, a.kv_heads(), a.dtype.as_deref()), (500000.0, 64, 8, Some("bfloat16")));
        assert_eq!(a.rope_scaling.as_ref().unwrap().factor, 32.0);
        // Low frequencies are divided by the factor, high ones kept.
        let f = a.inv_freq();
        assert_eq!(f[0], 1.0);
        assert!((f[31] - 1.0 / 500000f32.powf(62.0 / 64.0) / 32.0).abs() < 1e-12);
    }

    #[test]
    fn the_transformers_4_form_of_a_transformers_5_config_is_the_original() {
        let mut back = in_transformers_4_form(&v5());
        back.as_object_mut().unwrap().remove("dtype");
        assert_eq!(back, v4());
        assert_eq!(in_transformers_4_form(&v4()), v4());
    }

    #[test]
    fn an_explicit_head_dim_is_kept() {
        let mut v = v4();
        v["head_dim"] = json!(128);
        let c = LlamaConfig::from_json(&v).unwrap();
        assert_eq!((c.head_dim(), c.inv_freq().len()), (128, 64));
    }

    #[test]
    fn what_cannot_be_run_is_refused_naming_the_key() {
        let refuse = |edit: &dyn Fn(&mut Value)| {
            let mut v = v4();
            edit(&mut v);
            LlamaConfig::from_json(&v).unwrap_err()
        };
        assert_eq!(refuse(&|v| v["rope_scaling"]["rope_type"] = json!("yarn")), "`rope_scaling.rope_type` is \"yarn\"; only llama3 scaling (or none) is implemented");
        assert_eq!(refuse(&|v| drop(v.as_object_mut().unwrap().remove("hidden_size"))), "missing key `hidden_size`");
        assert_eq!(refuse(&|v| v["num_key_value_heads"] = json!(5)), "num_attention_heads 32 is not a multiple of num_key_value_heads 5");
        let mut v5 = v5();
        v5["rope_parameters"].as_object_mut().unwrap().remove("rope_theta");
        assert_eq!(LlamaConfig::from_json(&v5).unwrap_err(), "missing key `rope_parameters.rope_theta`");
    }
}
