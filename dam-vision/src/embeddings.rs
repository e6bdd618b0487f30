//! SigLIP vision embeddings with DAM's mask patch embedding (spec §4.1–4.2).

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use dam_core::config::VisionConfig;
use dam_core::{Init, Loader, WeightError};

/// `E = PatchConv_RGB(ch 0..3) + PatchConv_mask(ch 3)`, flattened row-major to T tokens, plus
/// the learned position table. No CLS token.
#[derive(Module, Debug)]
pub struct VisionEmbeddings {
    /// `patch_embedding.weight` `[C, 3, p, p]` and `mask_patch_embedding.weight` `[C, 1, p, p]`
    /// concatenated on the input-channel axis: one 4-channel convolution computes the sum of
    /// both convolutions.
    pub patch_weight: Param<Tensor<4>>,
    /// `patch_embedding.bias + mask_patch_embedding.bias` (the mask conv has a bias too).
    pub patch_bias: Param<Tensor<1>>,
    /// `position_embedding.weight` `[T, C]`, added at native resolution (never interpolated).
    pub position_embedding: Param<Tensor<2>>,
    /// Side of a patch in pixels (14 in DAM-3B): the convolutions' kernel and stride.
    pub patch_size: usize,
}

impl VisionEmbeddings {
    /// Loads from `vision_model.embeddings`.
    pub fn load(loader: &Loader, c: &VisionConfig) -> Result<Self, WeightError> {
        let (d, p) = (c.hidden_size, c.patch_size);
        let g = c.num_patches_per_side();
        let init = Init::Normal(0.02);
        let rgb = loader.tensor("patch_embedding.weight", [d, c.num_channels, p, p], init)?;
        let rgb_bias = loader.tensor("patch_embedding.bias", [d], Init::Zeros)?;
        let mask = loader.tensor("mask_patch_embedding.weight", [d, 1, p, p], init)?;
        let mask_bias = loader.tensor("mask_patch_embedding.bias", [d], Init::Zeros)?;
        Ok(Self {
            patch_weight: Param::from_tensor(Tensor::cat(vec![rgb, mask], 1)),
            patch_bias: Param::from_tensor(rgb_bias + mask_bias),
            position_embedding: Param::from_tensor(loader.tensor("position_embedding.weight", [g * g, d], init)?),
            patch_size: p,
        })
    }

    /// `[B, 4, S, S]` (RGB + mask channel) → `[B, T, C]`.
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        let p = self.patch_size;
        let x = conv2d(
            pixels,
            self.patch_weight.val(),
            Some(self.patch_bias.val()),
            ConvOptions::new([p, p], [0, 0], [1, 1], 1),
        );
        let [b, c, gh, gw] = x.dims();
        // Row-major patch order: index = row * g + col.
        let x = x.reshape([b, c, gh * gw]).swap_dims(1, 2);
        x + self.position_embedding.val().unsqueeze()
    }
}
