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
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    /// `lm_head.weight` `[V, D]`, or the embedding matrix itself when `tie_word_embeddings`
    /// (same buffer, no copy).
    pub lm_head: TorchLinear,
    pub rope: Rope,
    pub config: LlmConfig,
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
        Ok(Self {
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
        })
    }

    pub fn device(&self) -> Device {
        self.embed_tokens.val().device()
    }

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

    /// Logits `[B, V]` of hidden states `[B, D]`.
    pub fn logits(&self, hidden: Tensor<2>) -> Tensor<2> {
        self.lm_head.forward(hidden)
    }
}
