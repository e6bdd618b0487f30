//! The random-Fourier positional encoding (`SamPositionalEmbedding`) and the prompt encoder
//! (`SamPromptEncoder`): points, boxes, and the dense no-mask embedding.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use dam_core::{Init, Loader, WeightError};

use super::config::{SamConfig, SamPromptEncoderConfig};
use super::error::{Result, SamError};
use super::layers::{Activation, Conv2d, EmbeddingTable, LayerNorm2d};

/// Label of a negative click.
pub const LABEL_NEGATIVE: i64 = 0;
/// Label of a positive click.
pub const LABEL_POSITIVE: i64 = 1;
/// Label of the padding point the model appends when there is no box (`not_a_point_embed`).
pub const LABEL_NOT_A_POINT: i64 = -1;
/// Label of a point that contributes nothing (the processor pads ragged batches with it).
pub const LABEL_PAD: i64 = -10;

/// `shared_image_embedding`: the Gaussian random-Fourier matrix `[2, C/2]`.
#[derive(Module, Debug)]
pub struct SamPositionalEmbedding {
    /// `positional_embedding` `[2, C/2]`: the Gaussian matrix (x, y) is projected with.
    pub positional_embedding: Param<Tensor<2>>,
}

impl SamPositionalEmbedding {
    /// Encodes coordinates already mapped to [-1, 1] (`[N, 2]`, (x, y)) as
    /// `[sin(2π c·M), cos(2π c·M)]`, `[N, C]`.
    pub fn encode(&self, coords: Tensor<2>) -> Tensor<2> {
        let proj = coords
            .matmul(self.positional_embedding.val())
            .mul_scalar((2.0 * std::f64::consts::PI) as f32);
        Tensor::cat(vec![proj.clone().sin(), proj.cos()], 1)
    }

    /// `get_image_wide_positional_embeddings()`: the encoding of the grid centres
    /// ((j + 0.5)/g, (i + 0.5)/g), `[1, C, g, g]`. The arithmetic is f32, as in transformers.
    pub fn image_wide(&self, grid: usize) -> Tensor<4> {
        let mut coords = Vec::with_capacity(grid * grid * 2);
        for i in 0..grid {
            for j in 0..grid {
                let x = (j as f32 + 0.5) / grid as f32;
                let y = (i as f32 + 0.5) / grid as f32;
                coords.push(2.0 * x - 1.0);
                coords.push(2.0 * y - 1.0);
            }
        }
        let device = self.positional_embedding.device();
        let coords = Tensor::<2>::from_data(TensorData::new(coords, [grid * grid, 2]), &device);
        let pe = self.encode(coords); // [g·g, C]
        let c = pe.dims()[1];
        pe.reshape([grid, grid, c]).permute([2, 0, 1]).unsqueeze_dim(0)
    }
}

/// `prompt_encoder.mask_embed`: the mask-prompt downscaler (conv-LN-act ×2, conv). DAM never
/// passes mask prompts; it is loaded so a checkpoint is read completely, and usable through
/// [`SamMaskEmbedding::forward`].
#[derive(Module, Debug)]
pub struct SamMaskEmbedding {
    /// `conv1`: 2×2 stride-2 conv, 1 → m/4 channels (m = `mask_input_channels`).
    pub conv1: Conv2d,
    /// `layer_norm1`: channels-first LayerNorm over m/4.
    pub layer_norm1: LayerNorm2d,
    /// `conv2`: 2×2 stride-2 conv, m/4 → m channels.
    pub conv2: Conv2d,
    /// `layer_norm2`: channels-first LayerNorm over m.
    pub layer_norm2: LayerNorm2d,
    /// `conv3`: 1×1 conv, m → C channels.
    pub conv3: Conv2d,
    /// The activation after each LayerNorm (`hidden_act`; not a parameter).
    #[module(skip)]
    pub act: Activation,
}

impl SamMaskEmbedding {
    /// Loads the downscaler; fails with a `WeightError` for a missing or mis-shaped tensor.
    pub fn load(loader: &Loader, config: &SamPromptEncoderConfig) -> Result<Self, WeightError> {
        let m = config.mask_input_channels;
        let c1 = m / 4;
        let eps = config.layer_norm_eps;
        Ok(Self {
            conv1: Conv2d::load(loader, "conv1", 1, c1, 2, 2, 0, true)?,
            layer_norm1: LayerNorm2d::load(loader, "layer_norm1", c1, eps)?,
            conv2: Conv2d::load(loader, "conv2", c1, m, 2, 2, 0, true)?,
            layer_norm2: LayerNorm2d::load(loader, "layer_norm2", m, eps)?,
            conv3: Conv2d::load(loader, "conv3", m, config.hidden_size, 1, 1, 0, true)?,
            act: Activation::from_name(&config.hidden_act).unwrap_or(Activation::Gelu),
        })
    }

    /// Mask logits `[B, 1, 4g, 4g]` → dense embeddings `[B, C, g, g]`.
    pub fn forward(&self, masks: Tensor<4>) -> Tensor<4> {
        let x = self.act.forward(self.layer_norm1.forward(self.conv1.forward(masks)));
        let x = self.act.forward(self.layer_norm2.forward(self.conv2.forward(x)));
        self.conv3.forward(x)
    }
}

/// A prompt in model-input coordinates (after the processor's rescaling, before the model's
/// +0.5 pixel-centre shift), as f64 like the processor's tensors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SamModelPrompt {
    /// (x, y) per point.
    pub points: Vec<[f64; 2]>,
    /// One label per point: 1 positive, 0 negative, -1 not-a-point, -10 ignored.
    pub labels: Vec<i64>,
    /// `[x1, y1, x2, y2]`.
    pub bbox: Option<[f64; 4]>,
}

/// `SamPromptEncoder` (`prompt_encoder.*`).
#[derive(Module, Debug)]
pub struct SamPromptEncoder {
    /// `point_embed.{0,1,2,3}`: negative point, positive point, box top-left, box bottom-right.
    pub point_embed: Vec<EmbeddingTable>,
    /// `not_a_point_embed` `[1, C]`: replaces the padding point's (label −1) encoding.
    pub not_a_point_embed: EmbeddingTable,
    /// `no_mask_embed` `[1, C]`: the dense embedding, broadcast over the grid, without a mask.
    pub no_mask_embed: EmbeddingTable,
    /// `mask_embed`: the mask-prompt downscaler (DAM does not use it).
    pub mask_embed: SamMaskEmbedding,
    /// Width C of the prompt embeddings.
    pub hidden_size: usize,
    /// S: point coordinates are divided by it.
    pub input_image_size: usize,
    /// g.
    pub image_embedding_size: usize,
}

impl SamPromptEncoder {
    /// Loads the prompt encoder; fails with a `WeightError` for a missing or mis-shaped tensor.
    pub fn load(loader: &Loader, config: &SamPromptEncoderConfig) -> Result<Self, WeightError> {
        let c = config.hidden_size;
        let point_embed = (0..config.num_point_embeddings)
            .map(|i| EmbeddingTable::load(&loader.at("point_embed"), &i.to_string(), 1, c))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            point_embed,
            not_a_point_embed: EmbeddingTable::load(loader, "not_a_point_embed", 1, c)?,
            no_mask_embed: EmbeddingTable::load(loader, "no_mask_embed", 1, c)?,
            mask_embed: SamMaskEmbedding::load(&loader.at("mask_embed"), config)?,
            hidden_size: c,
            input_image_size: config.image_size,
            image_embedding_size: config.image_embedding_size(),
        })
    }

    /// Maps a model-input coordinate to [-1, 1] in f64 (`(v + 0.5) / S * 2 - 1`), then to f32,
    /// as transformers does with the processor's float64 tensors.
    fn unit(&self, v: f64, shift: bool) -> f32 {
        let v = if shift { v + 0.5 } else { v };
        (2.0 * (v / self.input_image_size as f64) - 1.0) as f32
    }

    /// Sparse `[1, T, C]` and dense `[1, C, g, g]` embeddings of one prompt. Without a box, a
    /// padding point (label −1) is appended, so T = N + 1; with a box T = N + 2.
    pub fn forward(&self, prompt: &SamModelPrompt, pe: &SamPositionalEmbedding) -> Result<(Tensor<3>, Tensor<4>)> {
        let device = pe.positional_embedding.device();
        let c = self.hidden_size;
        if prompt.points.len() != prompt.labels.len() {
            return Err(SamError::BadPrompt(format!(
                "{} points but {} labels",
                prompt.points.len(),
                prompt.labels.len()
            )));
        }
        let mut rows: Vec<Tensor<2>> = Vec::new();
        if !prompt.points.is_empty() {
            let pad = prompt.bbox.is_none();
            let mut coords = Vec::new();
            let mut labels = prompt.labels.clone();
            for p in &prompt.points {
                coords.push(self.unit(p[0], true));
                coords.push(self.unit(p[1], true));
            }
            if pad {
                // The padding point is (0, 0) after the shift; its encoding is replaced anyway.
                coords.push(self.unit(0.0, false));
                coords.push(self.unit(0.0, false));
                labels.push(LABEL_NOT_A_POINT);
            }
            let n = labels.len();
            let enc = pe.encode(Tensor::from_data(TensorData::new(coords, [n, 2]), &device));
            for (i, &label) in labels.iter().enumerate() {
                let row = enc.clone().narrow(0, i, 1);
                rows.push(match label {
                    LABEL_NOT_A_POINT => self.not_a_point_embed.row(0),
                    LABEL_PAD => Tensor::zeros([1, c], &device),
                    LABEL_NEGATIVE => row + self.point_embed[0].row(0),
                    LABEL_POSITIVE => row + self.point_embed[1].row(0),
                    other => {
                        return Err(SamError::BadPrompt(format!(
                            "point label {other}: supported are 1 (positive), 0 (negative), -1 and -10"
                        )));
                    }
                });
            }
        }
        if let Some(b) = prompt.bbox {
            let coords = vec![
                self.unit(b[0], true),
                self.unit(b[1], true),
                self.unit(b[2], true),
                self.unit(b[3], true),
            ];
            let enc = pe.encode(Tensor::from_data(TensorData::new(coords, [2, 2]), &device));
            rows.push(enc.clone().narrow(0, 0, 1) + self.point_embed[2].row(0));
            rows.push(enc.narrow(0, 1, 1) + self.point_embed[3].row(0));
        }
        let sparse = if rows.is_empty() {
            Tensor::zeros([1, 1, c], &device)
        } else {
            Tensor::cat(rows, 0).unsqueeze_dim(0)
        };
        Ok((sparse, self.dense_no_mask(&device)))
    }

    /// The dense embedding without a mask prompt: `no_mask_embed` broadcast to `[1, C, g, g]`.
    pub fn dense_no_mask(&self, _device: &Device) -> Tensor<4> {
        let g = self.image_embedding_size;
        let c = self.hidden_size;
        self.no_mask_embed.row(0).reshape([1, c, 1, 1]).expand([1, c, g, g])
    }
}

/// Loads the Fourier matrix under `shared_image_embedding.positional_embedding`, or else
/// under `prompt_encoder.shared_embedding.positional_embedding` (the tied copy).
pub fn load_positional_embedding(loader: &Loader, config: &SamConfig) -> Result<SamPositionalEmbedding, WeightError> {
    let shape = [2, config.vision_config.num_pos_feats];
    let main = loader.at("shared_image_embedding");
    let tied = loader.at("prompt_encoder").at("shared_embedding");
    let from = if !main.contains("positional_embedding") && tied.contains("positional_embedding") {
        tied
    } else {
        main
    };
    Ok(SamPositionalEmbedding {
        positional_embedding: Param::from_tensor(from.tensor("positional_embedding", shape, Init::Normal(1.0))?),
    })
}
