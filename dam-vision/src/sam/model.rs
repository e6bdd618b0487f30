//! `SamModel`: the vision encoder, the prompt encoder, the shared Fourier matrix and the mask
//! decoder, with forwards that expose every intermediate the reference fixtures record.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use dam_core::{Loader, Weights};

use super::config::{CONFIG_FILE, SamConfig};
use super::error::{Result, SamError};
use super::mask_decoder::{MaskDecoderOutput, SamMaskDecoder};
use super::prompt_encoder::{SamModelPrompt, SamPositionalEmbedding, SamPromptEncoder, load_positional_embedding};
use super::segmenter::to_vec;
use super::vision_encoder::SamVisionEncoder;

/// Segment Anything v1 (transformers `SamModel`). Field names follow the checkpoint.
#[derive(Module, Debug)]
pub struct SamModel {
    /// `shared_image_embedding.positional_embedding` `[2, C/2]` (tied with
    /// `prompt_encoder.shared_embedding`).
    pub shared_image_embedding: SamPositionalEmbedding,
    /// `vision_encoder.*`: the ViT image encoder and its neck.
    pub vision_encoder: SamVisionEncoder,
    /// `prompt_encoder.*`: point, box and mask prompt embeddings.
    pub prompt_encoder: SamPromptEncoder,
    /// `mask_decoder.*`: the two-way transformer and mask/IoU heads.
    pub mask_decoder: SamMaskDecoder,
    /// The validated config the model was built from (not part of the module record).
    #[module(skip)]
    pub config: SamConfig,
}

/// Everything one prompt goes through after the image encoder.
#[derive(Debug, Clone)]
pub struct SamPromptOutput {
    /// `[1, T, C]` prompt tokens.
    pub sparse_embeddings: Tensor<3>,
    /// `[1, C, g, g]`.
    pub dense_embeddings: Tensor<4>,
    /// `[1, C, g, g]`.
    pub image_positional_embeddings: Tensor<4>,
    /// Mask decoder outputs (`pred_masks` = `decoder.masks`, `iou_scores`, two-way outputs).
    pub decoder: MaskDecoderOutput,
}

impl SamModel {
    /// Loads `config.json` and `model.safetensors` (or a sharded index) from a checkpoint
    /// folder such as `facebook/sam-vit-base`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config = SamConfig::from_file(&dir.join(CONFIG_FILE))?;
        let weights = Weights::open_dir(dir)?;
        Self::from_weights(config, &weights, device)
    }

    /// Builds the model from any weight source (the config is validated first).
    pub fn from_weights(config: SamConfig, weights: &Weights, device: &Device) -> Result<Self> {
        config.validate()?;
        let loader = Loader::new(weights, device);
        Ok(Self {
            shared_image_embedding: load_positional_embedding(&loader, &config)?,
            vision_encoder: SamVisionEncoder::load(&loader.at("vision_encoder"), &config.vision_config)?,
            prompt_encoder: SamPromptEncoder::load(&loader.at("prompt_encoder"), &config.prompt_encoder_config)?,
            mask_decoder: SamMaskDecoder::load(&loader.at("mask_decoder"), &config.mask_decoder_config)?,
            config,
        })
    }

    /// Random weights of the right shapes (benchmarks). Fails only for an invalid config.
    pub fn random(config: &SamConfig, device: &Device) -> Result<Self> {
        Self::from_weights(config.clone(), &Weights::Random, device)
    }

    /// The model input size S (pixel values are `[B, 3, S, S]`).
    pub fn image_size(&self) -> usize {
        self.config.vision_config.image_size
    }

    /// Patches per side g.
    pub fn grid_size(&self) -> usize {
        self.config.vision_config.grid_size()
    }

    /// The image embedding width C.
    pub fn embed_dim(&self) -> usize {
        self.config.vision_config.output_channels
    }

    fn check_pixel_values(&self, pixel_values: &Tensor<4>) -> Result<()> {
        let s = self.image_size();
        let [b, c, h, w] = pixel_values.dims();
        if b == 0 || c != self.config.vision_config.num_channels || h != s || w != s {
            return Err(SamError::BadInput(format!(
                "pixel values are [{b}, {c}, {h}, {w}]; the model takes [B, {}, {s}, {s}]",
                self.config.vision_config.num_channels
            )));
        }
        Ok(())
    }

    /// `get_image_embeddings`: pixel values `[B, 3, S, S]` → `[B, C, g, g]`.
    pub fn image_embeddings(&self, pixel_values: Tensor<4>) -> Result<Tensor<4>> {
        self.check_pixel_values(&pixel_values)?;
        Ok(self.vision_encoder.forward(pixel_values))
    }

    /// Image embeddings plus the ViT hidden states (patch embeddings + `pos_embed`, then each
    /// layer's output, channels-last `[B, g, g, D]`).
    pub fn image_embeddings_with_hidden_states(&self, pixel_values: Tensor<4>) -> Result<(Tensor<4>, Vec<Tensor<4>>)> {
        self.check_pixel_values(&pixel_values)?;
        Ok(self.vision_encoder.forward_with_hidden_states(pixel_values))
    }

    /// `get_image_wide_positional_embeddings()`: `[1, C, g, g]`.
    pub fn image_positional_embeddings(&self) -> Tensor<4> {
        self.shared_image_embedding.image_wide(self.grid_size())
    }

    /// The prompt encoder: sparse `[1, T, C]` and dense `[1, C, g, g]` embeddings.
    pub fn encode_prompt(&self, prompt: &SamModelPrompt) -> Result<(Tensor<3>, Tensor<4>)> {
        self.prompt_encoder.forward(prompt, &self.shared_image_embedding)
    }

    /// Prompt encoder + mask decoder for one image embedding `[1, C, g, g]`, as
    /// `SamModel.forward(image_embeddings=..., multimask_output=...)`.
    pub fn forward_prompt(
        &self,
        image_embeddings: Tensor<4>,
        prompt: &SamModelPrompt,
        multimask_output: bool,
    ) -> Result<SamPromptOutput> {
        let (c, g) = (self.embed_dim(), self.grid_size());
        let dims = image_embeddings.dims();
        if dims != [1, c, g, g] {
            return Err(SamError::BadInput(format!(
                "image embeddings are {dims:?}; this model needs [1, {c}, {g}, {g}]"
            )));
        }
        let (sparse, dense) = self.encode_prompt(prompt)?;
        let image_pe = self.image_positional_embeddings();
        // transformers drops the prompt tokens when `sparse.sum() == 0`.
        let sum = to_vec(sparse.clone().sum())?;
        let sparse_is_zero = sum.first().is_some_and(|&s| s == 0.0);
        let decoder = self.mask_decoder.forward(
            image_embeddings,
            image_pe.clone(),
            sparse.clone(),
            dense.clone(),
            sparse_is_zero,
            multimask_output,
        );
        Ok(SamPromptOutput {
            sparse_embeddings: sparse,
            dense_embeddings: dense,
            image_positional_embeddings: image_pe,
            decoder,
        })
    }
}
