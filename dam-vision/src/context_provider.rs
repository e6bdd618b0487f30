//! The context provider (spec §4.4–4.5): one gated cross-attention adapter after every SigLIP
//! layer, used only in the focal-crop pass; queries are the crop tokens, keys and values the
//! full-image features z (the same z for every layer).

use burn::module::{Module, Param};
use burn::tensor::{Bool, Tensor};
use dam_core::config::ContextProviderConfig;
use dam_core::nn::LayerNorm;
use dam_core::{Init, Loader, WeightError};

use crate::attention::MultiHeadAttention;
use crate::mlp::Mlp;

/// `context_provider_module.layers.{i}` (upstream `CrossAttnEncoderLayer`).
#[derive(Module, Debug)]
pub struct CrossAttnAdapter {
    /// LayerNorm on the queries only; z is never normalised.
    pub layer_norm1: LayerNorm,
    /// `cross_attn`: queries from the crop's hidden states, keys and values from z (the
    /// full image's features).
    pub cross_attn: MultiHeadAttention,
    /// LayerNorm before the MLP.
    pub layer_norm2: LayerNorm,
    /// `mlp`.
    pub mlp: Mlp,
    /// Linear scalar gates (no tanh, whatever the paper writes): the released code multiplies
    /// the branch by the raw parameter. Stored with shape `[1]`; 1.0 when absent.
    pub attn_factor: Param<Tensor<1>>,
    /// The MLP branch's gate, as `attn_factor`.
    pub mlp_factor: Param<Tensor<1>>,
}

impl CrossAttnAdapter {
    /// Loads one adapter under `loader` (`context_provider_module.layers.{i}`).
    pub fn load(loader: &Loader, c: &ContextProviderConfig) -> Result<Self, WeightError> {
        let d = c.hidden_size;
        let gate = |name: &str| -> Result<Param<Tensor<1>>, WeightError> {
            let t = if loader.contains(name) {
                loader.tensor(name, [1], Init::Const(0.1))?
            } else {
                // Only possible with zero_init_output = false upstream: no gate, i.e. 1.0.
                Tensor::ones([1], loader.device())
            };
            Ok(Param::from_tensor(t))
        };
        Ok(Self {
            layer_norm1: LayerNorm::load(loader, "layer_norm1", d, c.layer_norm_eps)?,
            cross_attn: MultiHeadAttention::load_cross(&loader.at("cross_attn"), d, c.num_attention_heads)?,
            layer_norm2: LayerNorm::load(loader, "layer_norm2", d, c.layer_norm_eps)?,
            mlp: Mlp::load(&loader.at("mlp"), d, c.intermediate_size, &c.hidden_act)?,
            attn_factor: gate("attn_factor")?,
            mlp_factor: gate("mlp_factor")?,
        })
    }

    /// `h += attn_factor · CrossAttn(LN1(h), z); h += mlp_factor · MLP(LN2(h))`.
    pub fn forward(&self, h: Tensor<3>, z: Tensor<3>, key_mask: Option<Tensor<2, Bool>>) -> Tensor<3> {
        let o = self
            .cross_attn
            .forward_cross(self.layer_norm1.forward(h.clone()), z, key_mask);
        let h = h + o * self.attn_factor.val().unsqueeze();
        let m = self.mlp.forward(self.layer_norm2.forward(h.clone()));
        h + m * self.mlp_factor.val().unsqueeze()
    }
}

/// All adapters, one per SigLIP layer that runs.
#[derive(Module, Debug)]
pub struct ContextProvider {
    /// `context_provider_module.layers.{i}`.
    pub layers: Vec<CrossAttnAdapter>,
}

impl ContextProvider {
    /// Loads adapters `0..n_layers` from `context_provider_module.layers`.
    pub fn load(loader: &Loader, c: &ContextProviderConfig, n_layers: usize) -> Result<Self, WeightError> {
        let layers = (0..n_layers)
            .map(|i| CrossAttnAdapter::load(&loader.at(format!("layers.{i}")), c))
            .collect::<Result<_, _>>()?;
        Ok(Self { layers })
    }
}
