//! LLaMA self-attention with a KV cache: fused q/k/v projection (no biases), rotate-half RoPE,
//! MHA or GQA, output projection.

use burn::module::Module;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};
use dam_core::config::LlmConfig;
use dam_core::nn::TorchLinear;
use dam_core::{Loader, WeightError};

use crate::kv_cache::LayerCache;
use crate::rope::Rope;

/// LLaMA self-attention (`model.layers.{i}.self_attn`): rotary positions, grouped KV heads,
/// the KV cache written in place.
#[derive(Module, Debug)]
pub struct LlamaAttention {
    /// `q_proj|k_proj|v_proj` fused, `[(H + 2·KVH)·Dh, D]`.
    pub qkv_proj: TorchLinear,
    /// `o_proj`: the output projection, `[D, H·Dh]`.
    pub o_proj: TorchLinear,
    /// Query heads (H, `num_attention_heads`).
    pub num_heads: usize,
    /// Key/value heads (KVH, `num_key_value_heads`; H for LLaMA 2.7B).
    pub num_kv_heads: usize,
    /// Width of one head (Dh: the config's `head_dim`, else hidden size / H).
    pub head_dim: usize,
}

/// Where a forward pass writes and what it reads, shared by every layer of one step.
#[derive(Clone, Debug)]
pub struct StepContext {
    /// Sequences and new positions per sequence: the layers see hidden states as `[B·S, D]`
    /// rows (one 2-D matmul per projection, no reshapes around it).
    pub batch: usize,
    /// New positions per sequence (S: the prompt length for a prefill, 1 per decode step).
    pub seq: usize,
    /// RoPE tables for the new positions, `[B, S, H + 2·KVH, Dh]`: q and k heads rotate,
    /// v heads pass through (see [`Rope::tables`]).
    pub cos: Tensor<4>,
    /// The matching `cat(−sin, sin)` table (see [`Rope`]).
    pub sin_signed: Tensor<4>,
    /// Cache position of the first new token.
    pub start: usize,
    /// Keys `0..key_len` of the cache are attended to (`start + S` for a prefill; the whole
    /// buffer for static-shape decode steps).
    pub key_len: usize,
    /// `[B, H, S, key_len]` (already expanded over the heads, once per forward), `true` =
    /// hidden; `None` = plain causal attention (a batch without padding).
    pub mask: Option<Tensor<4, Bool>>,
}

impl LlamaAttention {
    /// Loads `q_proj`, `k_proj`, `v_proj` (fused into `qkv_proj`) and `o_proj` under `loader`.
    pub fn load(loader: &Loader, c: &LlmConfig) -> Result<Self, WeightError> {
        let (d, h, kv, dh) = (c.hidden_size, c.num_attention_heads, c.num_kv_heads(), c.head_dim());
        Ok(Self {
            qkv_proj: loader.fused_torch_linear(
                &["q_proj", "k_proj", "v_proj"],
                d,
                &[h * dh, kv * dh, kv * dh],
                false,
            )?,
            o_proj: loader.torch_linear("o_proj", h * dh, d, false)?,
            num_heads: h,
            num_kv_heads: kv,
            head_dim: dh,
        })
    }

    /// `x` `[B·S, D]` (rows of `ctx.batch` sequences × `ctx.seq` new positions) at cache
    /// positions `ctx.start..ctx.start + S`; returns `[B·S, D]`.
    pub fn forward(&self, x: Tensor<2>, cache: &mut LayerCache, ctx: &StepContext) -> Tensor<2> {
        let key_len = ctx.key_len;
        let (b, s) = (ctx.batch, ctx.seq);
        let (h, kv, dh) = (self.num_heads, self.num_kv_heads, self.head_dim);
        // [B·S, (H + 2·KVH)·Dh] → [B, S, H + 2·KVH, Dh], RoPE on all heads at once (the
        // tables leave v as it is: in a decode step the time goes to per-operation overhead,
        // so every op counts), then heads first: [B, H + 2·KVH, S, Dh].
        let qkv = self.qkv_proj.forward(x).reshape([b, s, h + 2 * kv, dh]);
        let qkv = Rope::apply(qkv, &ctx.cos, &ctx.sin_signed).swap_dims(1, 2);
        let q = qkv.clone().narrow(1, 0, h);
        let k = qkv.clone().narrow(1, h, kv);
        let v = qkv.narrow(1, h + kv, kv);
        cache.write(ctx.start, k, v);

        let mut keys = cache.keys.clone();
        let mut values = cache.values.clone();
        if key_len != cache.keys.dims()[2] {
            keys = keys.narrow(2, 0, key_len);
            values = values.narrow(2, 0, key_len);
        }
        if kv != h {
            // GQA: repeat each key/value head for its group of query heads.
            let rep = h / kv;
            let expand = |t: Tensor<4>| {
                t.unsqueeze_dim::<5>(2)
                    .expand([b, kv, rep, key_len, dh])
                    .reshape([b, h, key_len, dh])
            };
            keys = expand(keys);
            values = expand(values);
        }
        let options = AttentionModuleOptions {
            is_causal: ctx.mask.is_none(),
            ..Default::default()
        };
        let o = attention(q, keys, values, ctx.mask.clone(), None, options);
        self.o_proj.forward(o.swap_dims(1, 2).reshape([b * s, h * dh]))
    }
}
