//! LLaMA self-attention with a KV cache: fused q/k/v projection (no biases), rotate-half RoPE,
//! MHA or GQA, output projection.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};
use dam_core::config::LlmConfig;
use dam_core::{Loader, WeightError};

use crate::kv_cache::LayerCache;
use crate::rope::Rope;

#[derive(Module, Debug)]
pub struct LlamaAttention {
    /// `q_proj|k_proj|v_proj` fused, `[D, (H + 2·KVH)·Dh]`.
    pub qkv_proj: Linear,
    pub o_proj: Linear,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

/// Where a forward pass writes and what it reads, shared by every layer of one step.
#[derive(Clone, Debug)]
pub struct StepContext {
    /// RoPE tables for the new positions, `[B, 1, S, Dh]`.
    pub cos: Tensor<4>,
    pub sin: Tensor<4>,
    /// Cache position of the first new token.
    pub start: usize,
    /// Keys `0..key_len` of the cache are attended to (`start + S` for a prefill; the whole
    /// buffer for static-shape decode steps).
    pub key_len: usize,
    /// `[B, 1, S, key_len]`, `true` = hidden; `None` = plain causal attention (a batch
    /// without padding).
    pub mask: Option<Tensor<4, Bool>>,
}

impl LlamaAttention {
    pub fn load(loader: &Loader, c: &LlmConfig) -> Result<Self, WeightError> {
        let (d, h, kv, dh) = (c.hidden_size, c.num_attention_heads, c.num_kv_heads(), c.head_dim());
        Ok(Self {
            qkv_proj: loader.fused_linear(&["q_proj", "k_proj", "v_proj"], d, &[h * dh, kv * dh, kv * dh], false)?,
            o_proj: loader.linear("o_proj", h * dh, d, false)?,
            num_heads: h,
            num_kv_heads: kv,
            head_dim: dh,
        })
    }

    /// `x` `[B, S, D]` at cache positions `ctx.start..ctx.start + S`.
    pub fn forward(&self, x: Tensor<3>, cache: &mut LayerCache, ctx: &StepContext) -> Tensor<3> {
        let key_len = ctx.key_len;
        let [b, s, _] = x.dims();
        let (h, kv, dh) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let qkv = self.qkv_proj.forward(x);
        let split = |offset: usize, heads: usize| {
            qkv.clone()
                .narrow(2, offset * dh, heads * dh)
                .reshape([b, s, heads, dh])
                .swap_dims(1, 2)
        };
        let q = Rope::apply(split(0, h), &ctx.cos, &ctx.sin);
        let k = Rope::apply(split(h, kv), &ctx.cos, &ctx.sin);
        let v = split(h + kv, kv);
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
        let (mask, is_causal) = match &ctx.mask {
            None => (None, true),
            Some(m) => (Some(m.clone().expand([b, h, s, key_len])), false),
        };
        let options = AttentionModuleOptions {
            is_causal,
            ..Default::default()
        };
        let o = attention(q, keys, values, mask, None, options);
        self.o_proj.forward(o.swap_dims(1, 2).reshape([b, s, h * dh]))
    }
}
