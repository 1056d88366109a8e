//! Llama-3 on burn's module API, generic over the backend: embeddings, then per layer RMSNorm →
//! q/k/v projections → RoPE → grouped-query attention over a preallocated KV cache → o_proj →
//! residual → RMSNorm → SwiGLU MLP → residual, then the final norm and the (tied) output projection.
//!
//! Every tensor is created in the compute dtype chosen at load (f32, or bf16 on CUDA); the RMSNorm
//! statistics are taken in f32 as transformers does.

use burn::module::{Module, Param, ParamId};
use burn::nn::{Embedding, Linear};
use burn::prelude::Backend;
use burn::tensor::activation::silu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{DType, Int, Tensor, TensorData};
use shared_protocol::{EngineError, ErrorKind};

use crate::config::LlamaConfig;
use crate::weights::Checkpoint;

/// How a linear layer's weight sits in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// burn's `Linear` layout: `[in, out]`, contiguous (transposed on the host at load).
    Row,
    /// The checkpoint's `[out, in]` layout, used through a transposed view (burn's
    /// `LinearLayout::Col`, PyTorch's `x @ W.T`): no copy at load, and the tied output projection
    /// shares the embedding's memory.
    Col,
}

impl WeightLayout {
    pub fn name(self) -> &'static str {
        match self {
            WeightLayout::Row => "row ([in, out] contiguous)",
            WeightLayout::Col => "col ([out, in] as stored, transposed view)",
        }
    }
}

/// RMSNorm as transformers computes it: statistics and normalisation in f32, the result cast back
/// to the compute dtype before the weight multiplies it.
///
/// It divides by the root mean square rather than multiplying by `recip()` of it: burn-ndarray's
/// SIMD `recip` (used from 32 elements on, so from 32 rows) is the approximate reciprocal
/// instruction, good to about 1e-4 only, which breaks the 1e-4 agreement with transformers.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dtype = x.dtype();
        let x = x.cast(DType::F32);
        let rms = (x.clone().square().mean_dim(D - 1) + self.eps).sqrt();
        (x / rms).cast(dtype) * self.weight.val().unsqueeze()
    }
}

#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    pub o_proj: Linear<B>,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub gate_proj: Linear<B>,
    pub up_proj: Linear<B>,
    pub down_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = silu(linear3(&self.gate_proj, x.clone()));
        linear3(&self.down_proj, gate * linear3(&self.up_proj, x))
    }
}

#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    pub input_layernorm: RmsNorm<B>,
    pub self_attn: SelfAttention<B>,
    pub post_attention_layernorm: RmsNorm<B>,
    pub mlp: Mlp<B>,
}

#[derive(Module, Debug)]
pub struct Llama<B: Backend> {
    pub embed_tokens: Embedding<B>,
    pub layers: Vec<DecoderLayer<B>>,
    pub norm: RmsNorm<B>,
    pub lm_head: Linear<B>,
}

/// Rotary tables `[positions, head_dim]` in the compute dtype (see `config::rope_tables`).
pub struct Rope<B: Backend> {
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
    positions: usize,
}

/// Keys and values of the current batch: per layer `[batch, kv_heads, capacity, head_dim]`,
/// allocated when a request starts; each step writes its positions in place.
pub struct KvCache<B: Backend> {
    layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    batch: usize,
    capacity: usize,
    len: usize,
}

/// The output of one forward step: last-position logits `[batch, vocab]`.
pub struct StepOutput<B: Backend> {
    pub logits: Tensor<B, 2>,
}

/// A linear layer on `[batch, seq, d_in]` activations, run as one 2-D matmul `[batch·seq, d_in]`.
/// Besides being the plain GEMM every backend optimises, this keeps burn's `linear` from
/// unsqueezing the weight to the activations' rank: in burn-ndarray 0.21 every reshape copies its
/// input (ndarray's `to_shape` borrows, `into_shared` then clones), so a 3-D activation cost one
/// extra copy of the whole weight per call, on top of the one its matmul already makes when it
/// reshapes both operands to `[batches, m, k]`.
fn linear3<B: Backend>(layer: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, s, d] = x.dims();
    let y = layer.forward(x.reshape([b * s, d]));
    let out = y.dims()[1];
    y.reshape([b, s, out])
}

fn param<B: Backend, const D: usize>(t: Tensor<B, D>) -> Param<Tensor<B, D>> {
    Param::initialized(ParamId::new(), t)
}

pub struct Loader<'a, B: Backend> {
    pub ckpt: &'a Checkpoint,
    pub device: &'a B::Device,
    pub dtype: DType,
    pub layout: WeightLayout,
}

impl<B: Backend> Loader<'_, B> {
    fn tensor<const D: usize>(&self, name: &str, shape: [usize; D], transpose: bool) -> Result<Tensor<B, D>, EngineError> {
        let data = self.ckpt.data(name, &shape, transpose, self.dtype)?;
        Ok(Tensor::from_data(data, (self.device, self.dtype)))
    }

    /// A bias-free linear layer from an HF `[out, in]` weight.
    fn linear(&self, name: &str, d_in: usize, d_out: usize) -> Result<Linear<B>, EngineError> {
        let weight = match self.layout {
            WeightLayout::Row => self.tensor(name, [d_out, d_in], true)?,
            WeightLayout::Col => self.tensor::<2>(name, [d_out, d_in], false)?.transpose(),
        };
        Ok(Linear { weight: param(weight), bias: None })
    }

    fn norm(&self, name: &str, d: usize, eps: f64) -> Result<RmsNorm<B>, EngineError> {
        Ok(RmsNorm { weight: param(self.tensor(name, [d], false)?), eps })
    }

    pub fn llama(&self, cfg: &LlamaConfig) -> Result<Llama<B>, EngineError> {
        let (h, hd, m, v) = (cfg.hidden_size, cfg.head_dim(), cfg.intermediate_size, cfg.vocab_size);
        let (nh, nkv) = (cfg.num_attention_heads, cfg.kv_heads());
        let embed = self.tensor::<2>("model.embed_tokens.weight", [v, h], false)?;
        let lm_head = if self.ckpt.has("lm_head.weight") {
            self.linear("lm_head.weight", h, v)?
        } else if cfg.tie_word_embeddings {
            let weight = match self.layout {
                // A contiguous [hidden, vocab] copy for the matmul.
                WeightLayout::Row => self.tensor("model.embed_tokens.weight", [v, h], true)?,
                // The embedding's own memory, seen transposed.
                WeightLayout::Col => embed.clone().transpose(),
            };
            Linear { weight: param(weight), bias: None }
        } else {
            return Err(EngineError::bad_request("no lm_head.weight and tie_word_embeddings is false"));
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let p = |s: &str| format!("model.layers.{i}.{s}.weight");
                Ok(DecoderLayer {
                    input_layernorm: self.norm(&p("input_layernorm"), h, cfg.rms_norm_eps)?,
                    self_attn: SelfAttention {
                        q_proj: self.linear(&p("self_attn.q_proj"), h, nh * hd)?,
                        k_proj: self.linear(&p("self_attn.k_proj"), h, nkv * hd)?,
                        v_proj: self.linear(&p("self_attn.v_proj"), h, nkv * hd)?,
                        o_proj: self.linear(&p("self_attn.o_proj"), nh * hd, h)?,
                        n_heads: nh,
                        n_kv_heads: nkv,
                        head_dim: hd,
                    },
                    post_attention_layernorm: self.norm(&p("post_attention_layernorm"), h, cfg.rms_norm_eps)?,
                    mlp: Mlp {
                        gate_proj: self.linear(&p("mlp.gate_proj"), h, m)?,
                        up_proj: self.linear(&p("mlp.up_proj"), h, m)?,
                        down_proj: self.linear(&p("mlp.down_proj"), m, h)?,
                    },
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        Ok(Llama {
            embed_tokens: Embedding { weight: param(embed) },
            layers,
            norm: self.norm("model.norm.weight", h, cfg.rms_norm_eps)?,
            lm_head,
        })
    }
}

impl<B: Backend> Rope<B> {
    pub fn new(cfg: &LlamaConfig, positions: usize, device: &B::Device, dtype: DType) -> Self {
        let (cos, sin) = crate::config::rope_tables(cfg, positions);
        let d = cfg.head_dim();
        let make = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [positions, d]), (device, dtype));
        Rope { cos: make(cos), sin: make(sin), positions }
    }

    pub fn positions(&self) -> usize {
        self.positions
    }

    /// `[1, 1, len, head_dim]` slices of the tables starting at `start`.
    fn slice(&self, start: usize, len: usize) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let cos = self.cos.clone().narrow(0, start, len).unsqueeze::<4>();
        let sin = self.sin.clone().narrow(0, start, len).unsqueeze::<4>();
        (cos, sin)
    }
}

/// `x * cos + rotate_half(x) * sin` on `[batch, heads, seq, head_dim]`; the sign of rotate_half is
/// folded into the sine table, so only the halves are swapped here.
fn apply_rope<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
    let half = x.dims()[3] / 2;
    let first = x.clone().narrow(3, 0, half);
    let second = x.clone().narrow(3, half, half);
    let swapped = Tensor::cat(vec![second, first], 3);
    x * cos.clone() + swapped * sin.clone()
}

impl<B: Backend> KvCache<B> {
    pub fn new(
        cfg: &LlamaConfig,
        batch: usize,
        capacity: usize,
        device: &B::Device,
        dtype: DType,
    ) -> Self {
        let shape = [batch, cfg.kv_heads(), capacity, cfg.head_dim()];
        let layers = (0..cfg.num_hidden_layers)
            .map(|_| Some((Tensor::zeros(shape, (device, dtype)), Tensor::zeros(shape, (device, dtype)))))
            .collect();
        KvCache { layers, batch, capacity, len: 0 }
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes the cache holds on the device.
    pub fn bytes(cfg: &LlamaConfig, batch: usize, capacity: usize, dtype: DType) -> usize {
        2 * cfg.num_hidden_layers * batch * cfg.kv_heads() * capacity * cfg.head_dim() * dtype.size()
    }
}

impl<B: Backend> SelfAttention<B> {
    /// `x`: `[batch, seq, hidden]` at positions `start..start+seq`; appends this step's keys and
    /// values to `cache` (`[batch, kv_heads, capacity, head_dim]` each).
    fn forward(
        &self,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
        cache: &mut (Tensor<B, 4>, Tensor<B, 4>),
        start: usize,
    ) -> Tensor<B, 3> {
        let [b, s, _] = x.dims();
        let (nh, nkv, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let group = nh / nkv;
        let heads = |t: Tensor<B, 3>, n: usize| t.reshape([b, s, n, hd]).swap_dims(1, 2);
        let q = apply_rope(heads(linear3(&self.q_proj, x.clone()), nh), cos, sin);
        let k = apply_rope(heads(linear3(&self.k_proj, x.clone()), nkv), cos, sin);
        let v = heads(linear3(&self.v_proj, x), nkv);

        let end = start + s;
        let ranges = |t: &Tensor<B, 4>| {
            let [cb, ch, _, cd] = t.dims();
            [0..cb, 0..ch, start..end, 0..cd]
        };
        let placeholder = || Tensor::<B, 4>::empty([0, 0, 0, 0], &cos.device());
        let kc = std::mem::replace(&mut cache.0, placeholder());
        let r = ranges(&kc);
        cache.0 = kc.slice_assign(r, k);
        let vc = std::mem::replace(&mut cache.1, placeholder());
        let r = ranges(&vc);
        cache.1 = vc.slice_assign(r, v);
        let keys = cache.0.clone().narrow(2, 0, end);
        let values = cache.1.clone().narrow(2, 0, end);

        let out = if s == 1 {
            // Decode: the query heads that share a key/value head become that head's query rows,
            // so the cache is read once per key/value head and never repeated. No mask: the one
            // new position sees every cached one.
            let q = q.reshape([b, nkv, group, hd]);
            let o = attention(q, keys, values, None, None, AttentionModuleOptions::default());
            o.reshape([b, nh, 1, hd])
        } else {
            // Prefill (a fresh cache, so keys and queries cover the same positions): repeat each
            // key/value head for its query heads and let burn apply the causal mask.
            debug_assert_eq!(start, 0, "prefill starts a fresh cache");
            let repeat = |t: Tensor<B, 4>| {
                let [_, _, len, _] = t.dims();
                if group == 1 {
                    t
                } else {
                    t.unsqueeze_dim::<5>(2).expand([b, nkv, group, len, hd]).reshape([b, nh, len, hd])
                }
            };
            let options = AttentionModuleOptions { is_causal: true, ..Default::default() };
            attention(q, repeat(keys), repeat(values), None, None, options)
        };
        linear3(&self.o_proj, out.swap_dims(1, 2).reshape([b, s, nh * hd]))
    }
}

impl<B: Backend> Llama<B> {
    /// Runs `tokens` (`[batch, seq]`) at positions `cache.len()..`, appends to the cache and returns
    /// the logits of the last position of each row.
    pub fn forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        rope: &Rope<B>,
        cache: &mut KvCache<B>,
    ) -> Result<StepOutput<B>, EngineError> {
        let [b, s] = tokens.dims();
        let start = cache.len;
        if b != cache.batch {
            return Err(EngineError::bad_request(format!("{b} rows for a batch of {}", cache.batch)));
        }
        if start + s > cache.capacity {
            return Err(EngineError::bad_request(format!(
                "position {} would exceed the {} positions reserved for this request",
                start + s,
                cache.capacity
            )));
        }
        if start + s > rope.positions {
            return Err(EngineError::internal(format!("rope tables cover {} positions, not {}", rope.positions, start + s)));
        }
        let (cos, sin) = rope.slice(start, s);
        let mut x = self.embed_tokens.forward(tokens);
        for (layer, slot) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let kv = slot.as_mut().ok_or_else(|| EngineError::new(ErrorKind::Internal, "KV cache slot missing"))?;
            let h = layer.self_attn.forward(layer.input_layernorm.forward(x.clone()), &cos, &sin, kv, start);
            x = x + h;
            let h = layer.mlp.forward(layer.post_attention_layernorm.forward(x.clone()));
            x = x + h;
        }
        cache.len += s;
        // Only the last position of each row needs logits: the output projection is the largest matmul.
        let hidden = x.dims()[2];
        let last = x.narrow(1, s - 1, 1).reshape([b, hidden]);
        let logits = self.lm_head.forward(self.norm.forward(last));
        Ok(StepOutput { logits })
    }
}
