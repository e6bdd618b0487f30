//! `config.json` (transformers `SamConfig`) and `preprocessor_config.json`
//! (`SamImageProcessor`), with transformers 4.46.3's defaults for every absent key.
//!
//! `save_pretrained` writes each nested config as a diff against its class defaults, so a
//! checkpoint's `config.json` may omit e.g. `mask_decoder_config.num_hidden_layers`. Every
//! struct here is `#[serde(default)]` with the transformers defaults, and derived values
//! (`mlp_dim` when absent or null, `image_embedding_size`) are computed as transformers does.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::error::{Result, SamError};
use super::layers::Activation;

/// The model config file name.
pub const CONFIG_FILE: &str = "config.json";
/// The processor config file name.
pub const PREPROCESSOR_FILE: &str = "preprocessor_config.json";

/// `null` or absent → `T::default()`, as transformers treats `vision_config=None`.
fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `SamVisionConfig`: the ViT image encoder and its neck.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct SamVisionConfig {
    /// Width D of the ViT hidden states (768 for sam-vit-base).
    pub hidden_size: usize,
    /// Channels of the neck output (the image embedding width C).
    pub output_channels: usize,
    /// Number of ViT blocks (`vision_encoder.layers.*`).
    pub num_hidden_layers: usize,
    /// Attention heads per ViT block; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Channels of the pixel values (3).
    pub num_channels: usize,
    /// Side S of the square model input (1024).
    pub image_size: usize,
    /// Side of a square patch (16); the patch grid is `image_size / patch_size`.
    pub patch_size: usize,
    /// Activation of the ViT MLP blocks (`gelu`).
    pub hidden_act: String,
    /// LayerNorm eps inside the ViT blocks (the neck always uses 1e-6).
    pub layer_norm_eps: f64,
    /// Attention dropout probability; unused here (inference only).
    pub attention_dropout: f64,
    /// Std of transformers' weight initialisation; not used by this port.
    pub initializer_range: f64,
    /// Whether the fused `qkv` projection has a bias.
    pub qkv_bias: bool,
    /// MLP width as a multiple of `hidden_size`, used when `mlp_dim` is absent.
    pub mlp_ratio: f64,
    /// Whether the encoder has an absolute position embedding (`pos_embed`).
    pub use_abs_pos: bool,
    /// Whether attention adds decomposed relative positions (`rel_pos_h`, `rel_pos_w`).
    pub use_rel_pos: bool,
    /// Window size of the windowed layers (0 makes every layer global).
    pub window_size: usize,
    /// Layers with global attention; every other layer is windowed.
    pub global_attn_indexes: Vec<usize>,
    /// Columns of the random-Fourier matrix (`shared_image_embedding`), C/2.
    pub num_pos_feats: usize,
    /// MLP width; `hidden_size * mlp_ratio` when absent or null (see [`Self::mlp_dim`]).
    pub mlp_dim: Option<usize>,
}

impl Default for SamVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            output_channels: 256,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 1024,
            patch_size: 16,
            hidden_act: "gelu".into(),
            layer_norm_eps: 1e-6,
            attention_dropout: 0.0,
            initializer_range: 1e-10,
            qkv_bias: true,
            mlp_ratio: 4.0,
            use_abs_pos: true,
            use_rel_pos: true,
            window_size: 14,
            global_attn_indexes: vec![2, 5, 8, 11],
            num_pos_feats: 128,
            mlp_dim: None,
        }
    }
}

impl SamVisionConfig {
    /// The effective MLP width: `mlp_dim`, or `int(hidden_size * mlp_ratio)`.
    pub fn mlp_dim(&self) -> usize {
        self.mlp_dim
            .unwrap_or((self.hidden_size as f64 * self.mlp_ratio) as usize)
    }

    /// Patches per side, g = image_size / patch_size.
    pub fn grid_size(&self) -> usize {
        self.image_size / self.patch_size.max(1)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// The window size of layer `i`: 0 (global) for `global_attn_indexes`, else `window_size`.
    pub fn layer_window_size(&self, i: usize) -> usize {
        if self.global_attn_indexes.contains(&i) {
            0
        } else {
            self.window_size
        }
    }
}

/// `SamPromptEncoderConfig`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct SamPromptEncoderConfig {
    /// Width C of the prompt embeddings (256); must equal the vision `output_channels`.
    pub hidden_size: usize,
    /// The model input size S that point coordinates are divided by.
    pub image_size: usize,
    /// Patch size; `image_size / patch_size` is the embedding grid g.
    pub patch_size: usize,
    /// Channel width m of the mask downscaler `mask_embed` (1 → m/4 → m → C; at least 4).
    pub mask_input_channels: usize,
    /// Number of `point_embed` tables (at least 4: negative, positive, two box corners).
    pub num_point_embeddings: usize,
    /// Activation of the mask downscaler (`gelu`).
    pub hidden_act: String,
    /// LayerNorm eps of the mask downscaler.
    pub layer_norm_eps: f64,
}

impl Default for SamPromptEncoderConfig {
    fn default() -> Self {
        Self {
            hidden_size: 256,
            image_size: 1024,
            patch_size: 16,
            mask_input_channels: 16,
            num_point_embeddings: 4,
            hidden_act: "gelu".into(),
            layer_norm_eps: 1e-6,
        }
    }
}

impl SamPromptEncoderConfig {
    /// `image_size // patch_size`; transformers recomputes it and ignores a stored value.
    pub fn image_embedding_size(&self) -> usize {
        self.image_size / self.patch_size.max(1)
    }
}

/// `SamMaskDecoderConfig`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct SamMaskDecoderConfig {
    /// Width C of the decoder tokens (256); must equal the vision `output_channels`.
    pub hidden_size: usize,
    /// Activation of the two-way blocks' MLPs (`relu`); the upscaling path always uses GELU.
    pub hidden_act: String,
    /// Hidden width of the two-way blocks' MLPs (2048).
    pub mlp_dim: usize,
    /// Number of two-way attention blocks (2).
    pub num_hidden_layers: usize,
    /// Attention heads of every decoder attention (8).
    pub num_attention_heads: usize,
    /// Width divisor of `final_attn_token_to_image` (the blocks' cross attentions use 2).
    pub attention_downsample_rate: usize,
    /// Candidate masks in multimask mode (3); the decoder has one more mask token.
    pub num_multimask_outputs: usize,
    /// Number of linear layers in the IoU prediction head (3).
    pub iou_head_depth: usize,
    /// Hidden width of the IoU prediction head (256).
    pub iou_head_hidden_dim: usize,
    /// LayerNorm eps inside the two-way blocks (the final LayerNorm always uses 1e-5).
    pub layer_norm_eps: f64,
}

impl Default for SamMaskDecoderConfig {
    fn default() -> Self {
        Self {
            hidden_size: 256,
            hidden_act: "relu".into(),
            mlp_dim: 2048,
            num_hidden_layers: 2,
            num_attention_heads: 8,
            attention_downsample_rate: 2,
            num_multimask_outputs: 3,
            iou_head_depth: 3,
            iou_head_hidden_dim: 256,
            layer_norm_eps: 1e-6,
        }
    }
}

/// `SamConfig`: the three sub-configs. The defaults are `facebook/sam-vit-base`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct SamConfig {
    /// `vision_config`: the image encoder (defaults when `null` or absent).
    #[serde(deserialize_with = "null_default")]
    pub vision_config: SamVisionConfig,
    /// `prompt_encoder_config`: the prompt encoder (defaults when `null` or absent).
    #[serde(deserialize_with = "null_default")]
    pub prompt_encoder_config: SamPromptEncoderConfig,
    /// `mask_decoder_config`: the mask decoder (defaults when `null` or absent).
    #[serde(deserialize_with = "null_default")]
    pub mask_decoder_config: SamMaskDecoderConfig,
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| SamError::ConfigFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| SamError::ConfigFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

impl SamConfig {
    /// Reads and validates a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let config: Self = read_json(path)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates `config.json` text.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let config: Self = serde_json::from_str(text).map_err(|e| SamError::config(CONFIG_FILE, "", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks that the sizes fit together and that every activation is known.
    pub fn validate(&self) -> Result<()> {
        let f = CONFIG_FILE;
        let v = &self.vision_config;
        let p = &self.prompt_encoder_config;
        let m = &self.mask_decoder_config;
        let positive = [
            ("vision_config.hidden_size", v.hidden_size),
            ("vision_config.output_channels", v.output_channels),
            ("vision_config.num_attention_heads", v.num_attention_heads),
            ("vision_config.num_channels", v.num_channels),
            ("vision_config.image_size", v.image_size),
            ("vision_config.patch_size", v.patch_size),
            ("vision_config.num_pos_feats", v.num_pos_feats),
            ("vision_config.mlp_dim", v.mlp_dim()),
            ("prompt_encoder_config.hidden_size", p.hidden_size),
            ("prompt_encoder_config.image_size", p.image_size),
            ("prompt_encoder_config.patch_size", p.patch_size),
            ("mask_decoder_config.hidden_size", m.hidden_size),
            ("mask_decoder_config.mlp_dim", m.mlp_dim),
            ("mask_decoder_config.num_attention_heads", m.num_attention_heads),
            (
                "mask_decoder_config.attention_downsample_rate",
                m.attention_downsample_rate,
            ),
            ("mask_decoder_config.num_multimask_outputs", m.num_multimask_outputs),
            ("mask_decoder_config.iou_head_hidden_dim", m.iou_head_hidden_dim),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(SamError::config(f, key, "must be at least 1"));
            }
        }
        if p.mask_input_channels < 4 {
            return Err(SamError::config(
                f,
                "prompt_encoder_config.mask_input_channels",
                format!(
                    "{} < 4 (the mask downscaler starts with C/4 channels)",
                    p.mask_input_channels
                ),
            ));
        }
        if v.image_size < v.patch_size {
            return Err(SamError::config(
                f,
                "vision_config.image_size",
                format!("{} is smaller than the patch size {}", v.image_size, v.patch_size),
            ));
        }
        if !v.hidden_size.is_multiple_of(v.num_attention_heads) {
            return Err(SamError::config(
                f,
                "vision_config.num_attention_heads",
                format!(
                    "{} does not divide hidden_size {}",
                    v.num_attention_heads, v.hidden_size
                ),
            ));
        }
        if p.hidden_size != v.output_channels || m.hidden_size != v.output_channels {
            return Err(SamError::config(
                f,
                "prompt_encoder_config.hidden_size",
                format!(
                    "the neck output ({}), the prompt encoder ({}) and the mask decoder ({}) must have the same width",
                    v.output_channels, p.hidden_size, m.hidden_size
                ),
            ));
        }
        if 2 * v.num_pos_feats != p.hidden_size {
            return Err(SamError::config(
                f,
                "vision_config.num_pos_feats",
                format!("{} must be half the prompt width {}", v.num_pos_feats, p.hidden_size),
            ));
        }
        if p.image_embedding_size() != v.grid_size() {
            return Err(SamError::config(
                f,
                "prompt_encoder_config.image_size",
                format!(
                    "the prompt grid {}/{} differs from the vision grid {}/{}",
                    p.image_size, p.patch_size, v.image_size, v.patch_size
                ),
            ));
        }
        if p.num_point_embeddings < 4 {
            return Err(SamError::config(
                f,
                "prompt_encoder_config.num_point_embeddings",
                format!("{} < 4 (negative, positive, box corners)", p.num_point_embeddings),
            ));
        }
        if !m.hidden_size.is_multiple_of(8) {
            return Err(SamError::config(
                f,
                "mask_decoder_config.hidden_size",
                format!(
                    "{} must be a multiple of 8 (the upscaling path uses C/4 and C/8)",
                    m.hidden_size
                ),
            ));
        }
        for rate in [1, 2, m.attention_downsample_rate] {
            let internal = m.hidden_size / rate;
            if !m.hidden_size.is_multiple_of(rate) || !internal.is_multiple_of(m.num_attention_heads) {
                return Err(SamError::config(
                    f,
                    "mask_decoder_config.num_attention_heads",
                    format!(
                        "{} heads do not divide the attention width {} / {rate}",
                        m.num_attention_heads, m.hidden_size
                    ),
                ));
            }
        }
        for (key, act) in [
            ("vision_config.hidden_act", &v.hidden_act),
            ("prompt_encoder_config.hidden_act", &p.hidden_act),
            ("mask_decoder_config.hidden_act", &m.hidden_act),
        ] {
            if Activation::from_name(act).is_none() {
                return Err(SamError::config(
                    f,
                    key,
                    format!("unsupported activation {act:?}; supported: {}", Activation::SUPPORTED),
                ));
            }
        }
        Ok(())
    }
}

/// `size` in `preprocessor_config.json`: `{"longest_edge": N}` or a bare integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LongestEdge {
    /// Length the longer image side is resized to.
    pub longest_edge: usize,
}

impl<'de> Deserialize<'de> for LongestEdge {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Int(usize),
            Dict { longest_edge: usize },
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Int(n) | Repr::Dict { longest_edge: n } => LongestEdge { longest_edge: n },
        })
    }
}

/// `pad_size`: `{"height": H, "width": W}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct PadSize {
    /// Padded height.
    pub height: usize,
    /// Padded width.
    pub width: usize,
}

/// A mean/std value: a list per channel, or one number for all channels.
fn per_channel<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        One(f64),
        Many(Vec<f64>),
    }
    Ok(match Repr::deserialize(d)? {
        Repr::One(v) => vec![v; 3],
        Repr::Many(v) => v,
    })
}

/// `preprocessor_config.json` (`SamImageProcessor`), with its defaults.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct SamProcessorConfig {
    /// Whether to resize to `size`; [`super::SamProcessor::new`] requires it.
    pub do_resize: bool,
    /// Target of the longest side of the resized image.
    pub size: LongestEdge,
    /// Pillow resample code (2 = bilinear, 3 = bicubic).
    pub resample: u32,
    /// Whether to multiply the uint8 values by `rescale_factor`.
    pub do_rescale: bool,
    /// Rescaling factor applied in f64 (1/255).
    pub rescale_factor: f64,
    /// Whether to subtract `image_mean` and divide by `image_std`.
    pub do_normalize: bool,
    /// Per-channel (RGB) mean; a single number applies to all 3 channels.
    #[serde(deserialize_with = "per_channel")]
    pub image_mean: Vec<f64>,
    /// Per-channel (RGB) standard deviation; a single number applies to all 3 channels.
    #[serde(deserialize_with = "per_channel")]
    pub image_std: Vec<f64>,
    /// Whether to zero-pad to `pad_size`; [`super::SamProcessor::new`] requires it.
    pub do_pad: bool,
    /// Size the normalised image is zero-padded to (bottom and right).
    pub pad_size: PadSize,
    /// Read for compatibility; unused (the processor takes an `RgbImage` already).
    pub do_convert_rgb: bool,
}

impl Default for SamProcessorConfig {
    fn default() -> Self {
        Self::for_image_size(1024)
    }
}

impl SamProcessorConfig {
    /// The defaults with `longest_edge` = `pad_size` = `image_size` (what a checkpoint without
    /// a `preprocessor_config.json` needs).
    pub fn for_image_size(image_size: usize) -> Self {
        Self {
            do_resize: true,
            size: LongestEdge {
                longest_edge: image_size,
            },
            resample: 2,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: vec![0.485, 0.456, 0.406],
            image_std: vec![0.229, 0.224, 0.225],
            do_pad: true,
            pad_size: PadSize {
                height: image_size,
                width: image_size,
            },
            do_convert_rgb: true,
        }
    }

    /// Reads a `preprocessor_config.json` (not yet checked against a model; see
    /// [`super::SamProcessor::new`]).
    pub fn from_file(path: &Path) -> Result<Self> {
        read_json(path)
    }
}
