//! The SigLIP vision tower (embeddings + encoder layers), run for `n` layers with an optional
//! adapter after each one.

use burn::module::Module;
use burn::tensor::{Bool, Tensor};
use dam_core::config::VisionConfig;
use dam_core::{Loader, WeightError};

use crate::context_provider::ContextProvider;
use crate::embeddings::VisionEmbeddings;
use crate::encoder_layer::EncoderLayer;

/// `vision_model.*` of `vision_tower/model.safetensors`. Only the layers that influence the
/// selected hidden state are loaded; `post_layernorm` and the attention-pooling `head` are
/// never used by DAM (features are taken before them) and are not read.
#[derive(Module, Debug)]
pub struct VisionTower {
    /// `vision_model.embeddings`: image and mask patch convolutions, positions.
    pub embeddings: VisionEmbeddings,
    /// `vision_model.encoder.layers.{i}`, up to the selected hidden state.
    pub layers: Vec<EncoderLayer>,
}

/// Cross-attention context for the focal pass.
pub struct Context<'a> {
    /// The adapters, one per layer that runs.
    pub provider: &'a ContextProvider,
    /// Full-image features z, `[B, T, C]`.
    pub features: Tensor<3>,
    /// Optional key mask `[B, T]` (`masked_cross_attn`).
    pub key_mask: Option<Tensor<2, Bool>>,
}

impl VisionTower {
    /// Loads the embeddings and layers `0..n_layers` from `vision_model`.
    pub fn load(loader: &Loader, c: &VisionConfig, n_layers: usize) -> Result<Self, WeightError> {
        let layers = (0..n_layers)
            .map(|i| EncoderLayer::load(&loader.at(format!("encoder.layers.{i}")), c))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            embeddings: VisionEmbeddings::load(&loader.at("embeddings"), c)?,
            layers,
        })
    }

    /// Runs `[B, 4, S, S]` through the embeddings and the first `select` layers, each followed
    /// by its adapter when `context` is given, and returns that hidden state (upstream's
    /// `hidden_states[select]`). With `keep_states` every loaded layer runs and every hidden
    /// state is returned too (index 0 = embeddings, k = after layer k−1 and its adapter).
    pub fn forward(
        &self,
        pixels: Tensor<4>,
        context: Option<&Context>,
        select: usize,
        keep_states: bool,
    ) -> (Tensor<3>, Vec<Tensor<3>>) {
        let mut h = self.embeddings.forward(pixels);
        let mut states = Vec::new();
        let mut selected = None;
        let run = if keep_states {
            self.layers.len()
        } else {
            select.min(self.layers.len())
        };
        for (i, layer) in self.layers.iter().take(run).enumerate() {
            if i == select {
                selected = Some(h.clone());
            }
            if keep_states {
                states.push(h.clone());
            }
            h = layer.forward(h);
            if let Some(ctx) = context {
                // The adapter comes after the whole SigLIP block (after its MLP residual).
                h = ctx.provider.layers[i].forward(h, ctx.features.clone(), ctx.key_mask.clone());
            }
        }
        if keep_states {
            states.push(h.clone());
        }
        (selected.unwrap_or(h), states)
    }
}
