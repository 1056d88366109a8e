//! Llama-3 forward pass with a KV cache: embeddings, then per layer RMSNorm → grouped-query
//! attention with RoPE → residual → RMSNorm → SwiGLU MLP → residual, then the final norm and the
//! (tied) output projection. Every sequence of a batch has its own cache; all rows of a step go
//! through each weight matrix together.

use std::path::Path;

use rayon::prelude::*;
use shared_protocol::{argmax, EngineError, ErrorKind, Step};

use checkpoint::LlamaConfig;
use crate::kernels::{attend, matmul, rms_norm, rope, silu, widen_row};
use crate::weights::{Checkpoint, Matrix, WeightDtype};

struct Layer {
    attn_norm: Vec<f32>,
    mlp_norm: Vec<f32>,
    q: Matrix,
    k: Matrix,
    v: Matrix,
    o: Matrix,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
}

/// Keys and values of every sequence, position-major, preallocated for the request.
struct Cache {
    /// `[layer][sequence]` → `capacity × kv_dim` floats.
    k: Vec<Vec<Vec<f32>>>,
    v: Vec<Vec<Vec<f32>>>,
    len: Vec<usize>,
    capacity: usize,
}

pub struct Llama {
    cfg: LlamaConfig,
    ckpt: Checkpoint,
    embed: Matrix,
    lm_head: Matrix,
    norm: Vec<f32>,
    layers: Vec<Layer>,
    inv_freq: Vec<f32>,
    cache: Cache,
}

fn zeroed(len: usize) -> Result<Vec<f32>, EngineError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        EngineError::new(ErrorKind::OutOfMemory, format!("KV cache: cannot allocate {} MiB", len * 4 >> 20))
    })?;
    v.resize(len, 0.0);
    Ok(v)
}

impl Llama {
    pub fn load(dir: &Path) -> Result<Self, EngineError> {
        let cfg = LlamaConfig::read(dir).map_err(EngineError::bad_request)?;
        let ckpt = Checkpoint::open(dir)?;
        let (h, hd) = (cfg.hidden_size, cfg.head_dim());
        let (qd, kvd, m) = (cfg.num_attention_heads * hd, cfg.kv_heads() * hd, cfg.intermediate_size);
        let embed = ckpt.matrix("model.embed_tokens.weight", cfg.vocab_size, h)?;
        let lm_head = if ckpt.has("lm_head.weight") {
            ckpt.matrix("lm_head.weight", cfg.vocab_size, h)?
        } else if cfg.tie_word_embeddings {
            embed
        } else {
            return Err(EngineError::bad_request(format!(
                "{}: no lm_head.weight and tie_word_embeddings is false",
                dir.display()
            )));
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let p = |s: &str| format!("model.layers.{i}.{s}.weight");
                Ok(Layer {
                    attn_norm: ckpt.vector(&p("input_layernorm"), h)?,
                    mlp_norm: ckpt.vector(&p("post_attention_layernorm"), h)?,
                    q: ckpt.matrix(&p("self_attn.q_proj"), qd, h)?,
                    k: ckpt.matrix(&p("self_attn.k_proj"), kvd, h)?,
                    v: ckpt.matrix(&p("self_attn.v_proj"), kvd, h)?,
                    o: ckpt.matrix(&p("self_attn.o_proj"), h, qd)?,
                    gate: ckpt.matrix(&p("mlp.gate_proj"), m, h)?,
                    up: ckpt.matrix(&p("mlp.up_proj"), m, h)?,
                    down: ckpt.matrix(&p("mlp.down_proj"), h, m)?,
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        let norm = ckpt.vector("model.norm.weight", h)?;
        let inv_freq = cfg.inv_freq();
        let cache = Cache { k: vec![], v: vec![], len: vec![], capacity: 0 };
        Ok(Llama { cfg, ckpt, embed, lm_head, norm, layers, inv_freq, cache })
    }

    pub fn weight_dtype(&self) -> WeightDtype {
        self.embed.dtype
    }

    pub fn prefill(&mut self, prompts: &[Vec<u32>], capacity: usize, want_logits: bool) -> Result<Step, EngineError> {
        let kvd = self.cfg.kv_heads() * self.cfg.head_dim();
        let (layers, batch) = (self.cfg.num_hidden_layers, prompts.len());
        // Drop the previous request's cache before allocating this one.
        self.cache = Cache { k: vec![], v: vec![], len: vec![0; batch], capacity };
        let alloc = || -> Result<Vec<Vec<Vec<f32>>>, EngineError> {
            (0..layers).map(|_| (0..batch).map(|_| zeroed(capacity * kvd)).collect()).collect()
        };
        self.cache.k = alloc()?;
        self.cache.v = alloc()?;
        self.forward(prompts, want_logits)
    }

    pub fn decode(&mut self, tokens: &[u32], want_logits: bool) -> Result<Step, EngineError> {
        if tokens.len() != self.cache.len.len() {
            return Err(EngineError::bad_request(format!(
                "decode step with {} tokens for a batch of {}",
                tokens.len(),
                self.cache.len.len()
            )));
        }
        let rows: Vec<Vec<u32>> = tokens.iter().map(|&t| vec![t]).collect();
        self.forward(&rows, want_logits)
    }

    /// Appends `new[s]` to sequence `s` and returns each sequence's next greedy token.
    fn forward(&mut self, new: &[Vec<u32>], want_logits: bool) -> Result<Step, EngineError> {
        let cfg = &self.cfg;
        let (h, hd, nh) = (cfg.hidden_size, cfg.head_dim(), cfg.num_attention_heads);
        let (kvd, m) = (cfg.kv_heads() * hd, cfg.intermediate_size);
        let qd = nh * hd;
        let group = nh / cfg.kv_heads();

        // (sequence, position, token) for every row of this step.
        let mut rows = Vec::new();
        for (s, toks) in new.iter().enumerate() {
            if self.cache.len[s] + toks.len() > self.cache.capacity {
                return Err(EngineError::bad_request(format!(
                    "sequence {s} would exceed the {} positions reserved for this request",
                    self.cache.capacity
                )));
            }
            for (i, &t) in toks.iter().enumerate() {
                if t as usize >= cfg.vocab_size {
                    return Err(EngineError::bad_request(format!("token {t} is outside the vocabulary ({})", cfg.vocab_size)));
                }
                rows.push((s, self.cache.len[s] + i, t));
            }
        }
        let n = rows.len();

        let embed = self.ckpt.rows(&self.embed);
        let mut x = vec![0f32; n * h];
        for (r, &(_, _, t)) in rows.iter().enumerate() {
            widen_row(embed, t as usize * h, h, &mut x[r * h..(r + 1) * h]);
        }
        let mut xn = vec![0f32; n * h];
        let (mut q, mut k, mut v) = (vec![0f32; n * qd], vec![0f32; n * kvd], vec![0f32; n * kvd]);
        let mut att = vec![0f32; n * qd];
        let mut proj = vec![0f32; n * h];
        let (mut g, mut u) = (vec![0f32; n * m], vec![0f32; n * m]);

        for (l, layer) in self.layers.iter().enumerate() {
            let w = |mat: &Matrix| self.ckpt.rows(mat);
            rms_norm(&mut xn, &x, &layer.attn_norm, cfg.rms_norm_eps as f32);
            matmul(&mut q, &xn, w(&layer.q), qd, h, n);
            matmul(&mut k, &xn, w(&layer.k), kvd, h, n);
            matmul(&mut v, &xn, w(&layer.v), kvd, h, n);
            for (r, &(s, pos, _)) in rows.iter().enumerate() {
                for head in q[r * qd..(r + 1) * qd].chunks_mut(hd) {
                    rope(head, pos, &self.inv_freq);
                }
                for head in k[r * kvd..(r + 1) * kvd].chunks_mut(hd) {
                    rope(head, pos, &self.inv_freq);
                }
                self.cache.k[l][s][pos * kvd..(pos + 1) * kvd].copy_from_slice(&k[r * kvd..(r + 1) * kvd]);
                self.cache.v[l][s][pos * kvd..(pos + 1) * kvd].copy_from_slice(&v[r * kvd..(r + 1) * kvd]);
            }
            let (kc, vc) = (&self.cache.k[l], &self.cache.v[l]);
            att.par_chunks_mut(hd).enumerate().for_each_init(Vec::new, |scores, (i, out)| {
                let (r, head) = (i / nh, i % nh);
                let (s, pos, _) = rows[r];
                let qh = &q[r * qd + head * hd..r * qd + (head + 1) * hd];
                attend(out, qh, &kc[s], &vc[s], pos + 1, kvd, (head / group) * hd, scores);
            });
            matmul(&mut proj, &att, w(&layer.o), h, qd, n);
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);

            rms_norm(&mut xn, &x, &layer.mlp_norm, cfg.rms_norm_eps as f32);
            matmul(&mut g, &xn, w(&layer.gate), m, h, n);
            matmul(&mut u, &xn, w(&layer.up), m, h, n);
            g.iter_mut().zip(&u).for_each(|(a, b)| *a = silu(*a) * b);
            matmul(&mut proj, &g, w(&layer.down), h, m, n);
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
        }
        for (s, toks) in new.iter().enumerate() {
            self.cache.len[s] += toks.len();
        }

        // Only the last row of each sequence needs logits: the output projection is the largest matrix.
        let batch = new.len();
        let mut last = vec![0f32; batch * h];
        let mut r = 0;
        for (s, toks) in new.iter().enumerate() {
            r += toks.len();
            last[s * h..(s + 1) * h].copy_from_slice(&x[(r - 1) * h..r * h]);
        }
        let mut last_n = vec![0f32; batch * h];
        rms_norm(&mut last_n, &last, &self.norm, cfg.rms_norm_eps as f32);
        let vocab = cfg.vocab_size;
        let mut logits = vec![0f32; batch * vocab];
        matmul(&mut logits, &last_n, self.ckpt.rows(&self.lm_head), vocab, h, batch);
        let next_tokens = logits.chunks(vocab).map(argmax).collect();
        let logits = want_logits.then(|| logits.chunks(vocab).map(<[f32]>::to_vec).collect());
        Ok(Step { next_tokens, logits })
    }
}
