//! The LLaMA decoder (`LlamaForCausalLM`), entered with embeddings (for image splicing) or ids.

use std::path::Path;

use burn::module::Param;
use burn::tensor::{Device, Int, Tensor, TensorData};
use dam_core::config::LlmConfig;
use dam_core::nn::TorchLinear;
use dam_core::{Init, Loader, Weights};

use burn::tensor::Bool;

use crate::attention::StepContext;
use crate::decoder_layer::DecoderLayer;
use crate::error::{LlmError, Result};
use crate::kv_cache::KvCache;
use crate::rms_norm::RmsNorm;
use crate::rope::Rope;

/// The language model of `llm/`: embeddings, decoder layers, final norm, LM head.
#[derive(Debug)]
pub struct LlamaModel {
    /// `model.embed_tokens.weight` `[V, D]`.
    pub embed_tokens: Param<Tensor<2>>,
    /// `model.layers.{i}`.
    pub layers: Vec<DecoderLayer>,
    /// `model.norm`: the final RMSNorm.
    pub norm: RmsNorm,
    /// `lm_head.weight` `[V, D]`, or the embedding matrix itself when `tie_word_embeddings`
    /// (same buffer, no copy).
    pub lm_head: TorchLinear,
    /// Rotary tables for every position up to `max_position_embeddings`.
    pub rope: Rope,
    /// The `llm/config.json` it was built from.
    pub config: LlmConfig,
    /// On CUDA devices (feature `cube`): each layer's weights in the order
    /// [`crate::fused::decoder_layer`] takes them, when the fused path is on (see
    /// [`LlamaModel::set_fused`]); empty otherwise.
    #[cfg(feature = "cube")]
    fused_weights: Vec<crate::fused::LayerWeights>,
}

impl LlamaModel {
    /// Loads `llm/` (one `model.safetensors`, or shards with `model.safetensors.index.json`).
    pub fn load(llm_dir: &Path, config: &LlmConfig, device: &Device) -> Result<Self> {
        Self::from_weights(&Weights::open_dir(llm_dir)?, config, device)
    }

    /// A model of `config`'s size with random weights (benchmarks).
    pub fn random(config: &LlmConfig, device: &Device) -> Result<Self> {
        Self::from_weights(&Weights::Random, config, device)
    }

    /// Builds the model from opened weights (a checkpoint's files, or random ones).
    pub fn from_weights(weights: &Weights, config: &LlmConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let root = Loader::new(weights, device);
        let m = root.at("model");
        let (d, v) = (config.hidden_size, config.vocab_size);
        let embed = m.tensor("embed_tokens.weight", [v, d], Init::Normal(0.02))?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| DecoderLayer::load(&m.at(format!("layers.{i}")), config))
            .collect::<Result<Vec<_>, _>>()?;
        let lm_head = if config.tie_word_embeddings {
            TorchLinear::new(embed.clone(), None)
        } else {
            root.torch_linear("lm_head", d, v, false)?
        };
        let mut model = Self {
            embed_tokens: Param::from_tensor(embed),
            layers,
            norm: RmsNorm::load(&m, "norm", d, config.rms_norm_eps)?,
            lm_head,
            rope: Rope::new(
                config.head_dim(),
                config.max_position_embeddings,
                config.rope_theta,
                device,
            ),
            config: config.clone(),
            #[cfg(feature = "cube")]
            fused_weights: Vec::new(),
        };
        model.set_fused(fused_available(device));
        Ok(model)
    }

    /// Parameters held on the device: embeddings, layers, final norm and the LM head (counted
    /// once when tied to the embeddings). The RoPE tables are not parameters.
    pub fn num_params(&self) -> usize {
        use burn::module::Module;
        let head = if self.config.tie_word_embeddings {
            0
        } else {
            self.lm_head.num_params()
        };
        self.embed_tokens.val().shape().num_elements()
            + self.layers.iter().map(Module::num_params).sum::<usize>()
            + self.norm.num_params()
            + head
    }

    /// Whether the fused decoder stack runs on `device` (a CUDA device with the `cube`
    /// feature, unless `DAM_FUSED_OPS=0`; see `dam_llm::fused`, built with the `cube` feature).
    pub fn fused_ops_available(device: &Device) -> bool {
        fused_available(device)
    }

    /// Whether forward passes run the fused decoder stack.
    pub fn fused(&self) -> bool {
        #[cfg(feature = "cube")]
        {
            !self.fused_weights.is_empty()
        }
        #[cfg(not(feature = "cube"))]
        {
            false
        }
    }

    /// Turns the fused decoder stack on or off. On takes effect only where it is available
    /// ([`LlamaModel::fused_ops_available`]) and for bias-free projections (LLaMA's); off
    /// runs the plain burn-op path.
    pub fn set_fused(&mut self, on: bool) {
        #[cfg(feature = "cube")]
        {
            self.fused_weights.clear();
            let biased = self.layers.iter().any(|l| {
                [
                    &l.self_attn.qkv_proj,
                    &l.self_attn.o_proj,
                    &l.mlp.gate_up_proj,
                    &l.mlp.down_proj,
                ]
                .iter()
                .any(|p| p.bias.is_some())
            });
            if !on || biased || !fused_available(&self.device()) {
                return;
            }
            self.fused_weights = self
                .layers
                .iter()
                .map(|l| {
                    [
                        l.input_layernorm.weight.val(),
                        l.self_attn.qkv_proj.weight.val(),
                        l.self_attn.o_proj.weight.val(),
                        l.post_attention_layernorm.weight.val(),
                        l.mlp.gate_up_proj.weight.val(),
                        l.mlp.down_proj.weight.val(),
                    ]
                })
                .collect();
        }
        #[cfg(not(feature = "cube"))]
        let _ = on;
    }

    /// The device the weights are on.
    pub fn device(&self) -> Device {
        self.embed_tokens.val().device()
    }

    /// The LLM's hidden size D (2560 in DAM-3B).
    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// Embeddings `[S, D]` of token ids.
    pub fn embed(&self, ids: &[u32]) -> Result<Tensor<2>> {
        let vocab = self.config.vocab_size;
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(LlmError::BadTokenId { id: bad as i64, vocab });
        }
        let ids: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let n = ids.len();
        let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [n]), &self.device());
        Ok(self.embed_ids(ids))
    }

    /// Embeddings `[N, D]` of ids already on the device (e.g. chosen there by argmax); they
    /// must be in the vocabulary.
    pub fn embed_ids(&self, ids: Tensor<1, Int>) -> Tensor<2> {
        self.embed_tokens.val().select(0, ids)
    }

    /// A cache for `batch` sequences of up to `max_len` positions.
    pub fn new_cache(&self, batch: usize, max_len: usize) -> KvCache {
        let c = &self.config;
        KvCache::new(
            c.num_hidden_layers,
            batch,
            c.num_kv_heads(),
            max_len,
            c.head_dim(),
            &self.device(),
        )
    }

    /// Runs `embeds` `[B, S, D]` at cache positions `start..start + S` (RoPE positions
    /// `positions` `[B, S]`), attending to cache keys `0..key_len` through `mask`
    /// (`[B, 1, S, key_len]`, `true` = hidden; `None` = causal); returns the final-norm hidden
    /// states `[B, S, D]`.
    pub fn forward(
        &self,
        embeds: Tensor<3>,
        positions: Tensor<2, Int>,
        cache: &mut KvCache,
        start: usize,
        key_len: usize,
        mask: Option<Tensor<4, Bool>>,
    ) -> Tensor<3> {
        let [b, s, d] = embeds.dims();
        let heads = self.config.num_attention_heads;
        let kv = self.config.num_kv_heads();
        #[cfg(feature = "cube")]
        if self.fused() {
            let slot = Tensor::<1, Int>::from_data(TensorData::new(vec![start as i64], [1]), &self.device());
            return self.forward_fused(embeds, positions, slot, cache, key_len, mask);
        }
        let (cos, sin_signed) = self.rope.tables(positions, heads + kv, kv);
        let ctx = StepContext {
            batch: b,
            seq: s,
            cos,
            sin_signed,
            start,
            key_len,
            mask: mask.map(|m| m.expand([b, heads, s, key_len])),
        };
        let mut h = embeds.reshape([b * s, d]);
        for (layer, layer_cache) in self.layers.iter().zip(cache.layers.iter_mut()) {
            h = layer.forward(h, layer_cache, &ctx);
        }
        self.norm.forward(h).reshape([b, s, d])
    }

    /// [`LlamaModel::forward`] on the fused decoder layers ([`LlamaModel::fused`] must be on),
    /// with the cache position of the first new token given on the device (`slot`, one int),
    /// so that a recorded decode step can replay at any position. The cache is written in
    /// place.
    #[cfg(feature = "cube")]
    pub fn forward_fused(
        &self,
        embeds: Tensor<3>,
        positions: Tensor<2, Int>,
        slot: Tensor<1, Int>,
        cache: &KvCache,
        key_len: usize,
        mask: Option<Tensor<4, Bool>>,
    ) -> Tensor<3> {
        let [b, s, d] = embeds.dims();
        let heads = self.config.num_attention_heads;
        let (cos, sin_signed) = self.rope.rows(positions);
        let step = crate::fused::LayerStep {
            cos,
            sin_signed,
            // Also as floats, the decode-attention kernel's form.
            mask: mask.map(|m| {
                let hidden = m.clone().float().reshape([b, s * key_len]);
                (m.expand([b, heads, s, key_len]), hidden)
            }),
            slot,
            seq: s,
            key_len,
            heads,
            kv_heads: self.config.num_kv_heads(),
            eps: self.config.rms_norm_eps,
        };
        let mut h = embeds.reshape([b * s, d]);
        let mut pending = None;
        for (weights, c) in self.fused_weights.iter().zip(cache.layers.iter()) {
            let (next, m) = crate::fused::decoder_layer(h, pending, weights, &c.keys, &c.values, &step);
            h = next;
            pending = Some(m);
        }
        let out = match pending {
            Some(m) => crate::fused::add_rms_norm(h, m, &self.norm.weight.val(), self.norm.eps).1,
            None => crate::fused::rms_norm(h, &self.norm.weight.val(), self.norm.eps),
        };
        out.reshape([b, s, d])
    }

    /// Logits `[B, V]` of hidden states `[B, D]`.
    pub fn logits(&self, hidden: Tensor<2>) -> Tensor<2> {
        self.lm_head.forward(hidden)
    }
}

/// Whether `device` runs the fused decoder stack (see [`crate::fused::available`]).
fn fused_available(device: &Device) -> bool {
    #[cfg(feature = "cube")]
    {
        crate::fused::available(device)
    }
    #[cfg(not(feature = "cube"))]
    {
        let _ = device;
        false
    }
}
