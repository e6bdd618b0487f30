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

/// How the new queries see the keys.
#[derive(Clone, Debug)]
pub enum AttnMask {
    /// Plain causal attention over the cache prefix `0..start + S` (batch without padding).
    Causal,
    /// Explicit mask over the key range given to [`LlamaAttention::forward`], `[B, 1, S, L]`,
    /// `true` = hidden.
    Explicit(Tensor<4, Bool>),
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

    /// `x` `[B, S, D]` at cache positions `start..start + S`. Keys `0..key_len` of the cache
    /// are attended to (`key_len = start + S` for prefill; the whole buffer for static-shape
    /// decode steps, with a mask hiding what is not written yet).
    pub fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        cache: &mut LayerCache,
        start: usize,
        key_len: usize,
        mask: &AttnMask,
    ) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let (h, kv, dh) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let qkv = self.qkv_proj.forward(x);
        let split = |offset: usize, heads: usize| {
            qkv.clone()
                .narrow(2, offset * dh, heads * dh)
                .reshape([b, s, heads, dh])
                .swap_dims(1, 2)
        };
        let q = Rope::apply(split(0, h), cos, sin);
        let k = Rope::apply(split(h, kv), cos, sin);
        let v = split(h + kv, kv);
        cache.write(start, k, v);

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
        let (mask, is_causal) = match mask {
            AttnMask::Causal => (None, true),
            AttnMask::Explicit(m) => (Some(m.clone().expand([b, h, s, key_len])), false),
        };
        let options = AttentionModuleOptions {
            is_causal,
            ..Default::default()
        };
        let o = attention(q, keys, values, mask, None, options);
        self.o_proj.forward(o.swap_dims(1, 2).reshape([b, s, h * dh]))
    }
}
