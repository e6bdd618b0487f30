//! One pre-LN SigLIP encoder layer: `h += SelfAttn(LN1(h)); h += MLP(LN2(h))`.

use burn::module::Module;
use burn::tensor::Tensor;
use dam_core::config::VisionConfig;
use dam_core::nn::LayerNorm;
use dam_core::{Loader, WeightError};

use crate::attention::MultiHeadAttention;
use crate::mlp::Mlp;

/// One SigLIP encoder layer (`vision_model.encoder.layers.{i}`): pre-norm self-attention and
/// pre-norm MLP, each added to the residual stream.
#[derive(Module, Debug)]
pub struct EncoderLayer {
    /// LayerNorm before the attention.
    pub layer_norm1: LayerNorm,
    /// `self_attn`.
    pub self_attn: MultiHeadAttention,
    /// LayerNorm before the MLP.
    pub layer_norm2: LayerNorm,
    /// `mlp`.
    pub mlp: Mlp,
}

impl EncoderLayer {
    /// Loads `vision_model.encoder.layers.{i}`.
    pub fn load(loader: &Loader, c: &VisionConfig) -> Result<Self, WeightError> {
        let d = c.hidden_size;
        Ok(Self {
            layer_norm1: LayerNorm::load(loader, "layer_norm1", d, c.layer_norm_eps)?,
            self_attn: MultiHeadAttention::load_self(&loader.at("self_attn"), d, c.num_attention_heads)?,
            layer_norm2: LayerNorm::load(loader, "layer_norm2", d, c.layer_norm_eps)?,
            mlp: Mlp::load(&loader.at("mlp"), d, c.intermediate_size, &c.hidden_act)?,
        })
    }

    /// `h` `[B, T, C]` → `[B, T, C]`.
    pub fn forward(&self, h: Tensor<3>) -> Tensor<3> {
        let h = h.clone() + self.self_attn.forward_self(self.layer_norm1.forward(h));
        h.clone() + self.mlp.forward(self.layer_norm2.forward(h))
    }
}
