//! One LLaMA decoder layer: `h += Attn(RMSNorm(h)); h += MLP(RMSNorm(h))`.

use burn::module::Module;
use burn::tensor::Tensor;
use dam_core::config::LlmConfig;
use dam_core::{Loader, WeightError};

use crate::attention::{LlamaAttention, StepContext};
use crate::kv_cache::LayerCache;
use crate::mlp::LlamaMlp;
use crate::rms_norm::RmsNorm;

/// One LLaMA decoder layer (`model.layers.{i}`): pre-norm attention and pre-norm MLP, each
/// added to the residual stream.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// RMSNorm before the attention.
    pub input_layernorm: RmsNorm,
    /// `self_attn`.
    pub self_attn: LlamaAttention,
    /// RMSNorm before the MLP.
    pub post_attention_layernorm: RmsNorm,
    /// `mlp`.
    pub mlp: LlamaMlp,
}

impl DecoderLayer {
    /// Loads `model.layers.{i}`.
    pub fn load(loader: &Loader, c: &LlmConfig) -> Result<Self, WeightError> {
        let d = c.hidden_size;
        Ok(Self {
            input_layernorm: RmsNorm::load(loader, "input_layernorm", d, c.rms_norm_eps)?,
            self_attn: LlamaAttention::load(&loader.at("self_attn"), c)?,
            post_attention_layernorm: RmsNorm::load(loader, "post_attention_layernorm", d, c.rms_norm_eps)?,
            mlp: LlamaMlp::load(&loader.at("mlp"), d, c.intermediate_size)?,
        })
    }

    /// `h` `[B·S, D]` (see [`StepContext`]).
    pub fn forward(&self, h: Tensor<2>, cache: &mut LayerCache, ctx: &StepContext) -> Tensor<2> {
        let a = self
            .self_attn
            .forward(self.input_layernorm.forward(h.clone()), cache, ctx);
        let h = h + a;
        h.clone() + self.mlp.forward(self.post_attention_layernorm.forward(h))
    }
}
