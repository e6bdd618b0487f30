//! The high-level segmenter: image → embedding once, then prompt → best mask at the original
//! size, as DAM's demo does it (`multimask_output=True`, best predicted IoU, post-processing,
//! threshold `> 0`).

use std::path::Path;

use burn::tensor::{Device, Tensor};
use dam_core::{BoxRegion, CoreError, Mask, Points};
use image::RgbImage;

use super::config::{PREPROCESSOR_FILE, SamProcessorConfig};
use super::error::{Result, SamError};
use super::model::{SamModel, SamPromptOutput};
use super::postprocess::{PostProcessSizes, post_process_mask};
use super::processor::{SamPixelValues, SamProcessor};
use super::prompt_encoder::{LABEL_NEGATIVE, LABEL_NOT_A_POINT, LABEL_PAD, LABEL_POSITIVE, SamModelPrompt};
use super::scribble::sample_scribble_points;

/// A prompt in pixel coordinates of the original image.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SamPrompt {
    /// Clicks (x, y); each must lie inside the image.
    pub points: Vec<(f64, f64)>,
    /// One label per point (1 positive, 0 negative); `None` means all positive, as when the
    /// demo passes no labels.
    pub labels: Option<Vec<i64>>,
    /// A box `[x1, y1, x2, y2]`.
    pub bbox: Option<[f64; 4]>,
}

impl SamPrompt {
    /// Positive clicks without explicit labels.
    pub fn points(points: &[(f64, f64)]) -> Self {
        Self {
            points: points.to_vec(),
            ..Self::default()
        }
    }

    /// A box.
    pub fn bbox(bbox: [f64; 4]) -> Self {
        Self {
            bbox: Some(bbox),
            ..Self::default()
        }
    }

    /// Labelled clicks from `dam_core` [`Points`].
    pub fn from_points(points: &Points) -> Self {
        Self {
            points: points.0.iter().map(|p| (p.x, p.y)).collect(),
            labels: Some(
                points
                    .0
                    .iter()
                    .map(|p| if p.positive { LABEL_POSITIVE } else { LABEL_NEGATIVE })
                    .collect(),
            ),
            bbox: None,
        }
    }

    /// A box from a `dam_core` [`BoxRegion`].
    pub fn from_box(b: &BoxRegion) -> Self {
        Self::bbox([b.x0, b.y0, b.x1, b.y1])
    }
}

/// The image side of SAM for one image: computed once, reused for many prompts.
#[derive(Debug, Clone)]
pub struct SamImageEmbedding {
    /// `[1, C, g, g]`.
    pub image_embeddings: Tensor<4>,
    /// (H, W) of the original image.
    pub original_size: (usize, usize),
    /// (h', w') of the resized image inside the padded model input.
    pub reshaped_size: (usize, usize),
}

/// The result of one prompt.
#[derive(Debug, Clone)]
pub struct SamOutput {
    /// The best candidate (highest predicted IoU, ties to the first), binarised with
    /// `logit > 0` at the original image size.
    pub mask: Mask,
    /// Index of the best candidate among the decoder's outputs.
    pub best_index: usize,
    /// Predicted IoU per candidate (3 with multimask output, else 1).
    pub iou_scores: Vec<f32>,
    /// Post-processed logits of the best candidate, row-major H × W.
    pub best_mask_logits: Vec<f32>,
    /// Low-resolution logits of every candidate, `[K, 4g, 4g]` row-major.
    pub low_res_masks: Vec<f32>,
    /// The side 4g of the low-resolution masks.
    pub low_res_size: usize,
    /// The prompt in model-input coordinates (`input_points`, `input_labels`, `input_boxes`).
    pub model_prompt: SamModelPrompt,
    /// Intermediate tensors (prompt embeddings, two-way transformer outputs, raw decoder output).
    pub details: SamPromptOutput,
}

/// Reads a tensor back as f32 values.
pub(crate) fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.try_into_data()
        .map_err(|e| SamError::TensorData(format!("{e:?}")))?
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| SamError::TensorData(format!("{e:?}")))
}

/// SAM with its processor: the segmenter DAM uses for clicks, boxes and scribbles.
#[derive(Debug)]
pub struct Sam {
    /// The SAM model.
    pub model: SamModel,
    /// The image preprocessor and prompt-coordinate rescaler.
    pub processor: SamProcessor,
    device: Device,
    multimask_output: bool,
}

impl Sam {
    /// Loads a checkpoint folder: `config.json`, `model.safetensors` and, when present,
    /// `preprocessor_config.json` (otherwise the transformers defaults for the model's input
    /// size).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let model = SamModel::load(dir, device)?;
        let pre = dir.join(PREPROCESSOR_FILE);
        let config = if pre.is_file() {
            SamProcessorConfig::from_file(&pre)?
        } else {
            SamProcessorConfig::for_image_size(model.image_size())
        };
        Self::new(model, SamProcessor::new(config)?, device)
    }

    /// Pairs a model with a processor; the processor must pad to the model's input size.
    pub fn new(model: SamModel, processor: SamProcessor, device: &Device) -> Result<Self> {
        let s = model.image_size();
        if processor.pad_size() != (s, s) {
            let (h, w) = processor.pad_size();
            return Err(SamError::config(
                PREPROCESSOR_FILE,
                "pad_size",
                format!("{h}x{w} does not match the model input size {s}x{s}"),
            ));
        }
        Ok(Self {
            model,
            processor,
            device: device.clone(),
            multimask_output: true,
        })
    }

    /// Whether the decoder returns 3 candidates (the default, as DAM) or only the single-mask
    /// token's output.
    pub fn with_multimask_output(mut self, multimask_output: bool) -> Self {
        self.multimask_output = multimask_output;
        self
    }

    /// The device the model's tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Preprocesses an image and runs the image encoder; reuse the result for every prompt on
    /// this image.
    pub fn embed_image(&self, image: &RgbImage) -> Result<SamImageEmbedding> {
        let pixels = self.processor.preprocess(image)?;
        self.embed_pixel_values(&pixels)
    }

    /// Runs the image encoder on already preprocessed pixels.
    pub fn embed_pixel_values(&self, pixels: &SamPixelValues) -> Result<SamImageEmbedding> {
        let image_embeddings = self.model.image_embeddings(pixels.to_tensor(&self.device))?;
        Ok(SamImageEmbedding {
            image_embeddings,
            original_size: pixels.original_size,
            reshaped_size: pixels.reshaped_size,
        })
    }

    /// The sizes recorded in an embedding must be those the processor can produce.
    fn check_embedding_sizes(&self, embedding: &SamImageEmbedding) -> Result<()> {
        let (h, w) = embedding.original_size;
        let (rh, rw) = embedding.reshaped_size;
        let (ph, pw) = self.processor.pad_size();
        if h == 0 || w == 0 || rh == 0 || rw == 0 || rh > ph || rw > pw {
            return Err(SamError::BadInput(format!(
                "embedding sizes: original {h}x{w}, resized {rh}x{rw}, padded {ph}x{pw}; \
                 sides must be at least 1 and the resized image must fit the padding"
            )));
        }
        Ok(())
    }

    /// Checks a prompt against the image and rescales it to model-input coordinates, as
    /// `SamProcessor(..., input_points=..., input_labels=..., input_boxes=...)` does. Missing
    /// labels become ones.
    pub fn prepare_prompt(&self, embedding: &SamImageEmbedding, prompt: &SamPrompt) -> Result<SamModelPrompt> {
        self.check_embedding_sizes(embedding)?;
        let (h, w) = embedding.original_size;
        if prompt.points.is_empty() && prompt.bbox.is_none() {
            return Err(SamError::BadPrompt("the prompt has no points and no box".into()));
        }
        let labels = match &prompt.labels {
            Some(labels) => {
                if labels.len() != prompt.points.len() {
                    return Err(SamError::BadPrompt(format!(
                        "{} points but {} labels",
                        prompt.points.len(),
                        labels.len()
                    )));
                }
                if let Some(bad) = labels
                    .iter()
                    .find(|l| ![LABEL_POSITIVE, LABEL_NEGATIVE, LABEL_NOT_A_POINT, LABEL_PAD].contains(l))
                {
                    return Err(SamError::BadPrompt(format!(
                        "point label {bad}: supported are 1 (positive), 0 (negative), -1 and -10"
                    )));
                }
                labels.clone()
            }
            None => vec![LABEL_POSITIVE; prompt.points.len()],
        };
        for &(x, y) in &prompt.points {
            if !(x.is_finite() && y.is_finite()) || x < 0.0 || y < 0.0 || x >= w as f64 || y >= h as f64 {
                return Err(SamError::BadPrompt(format!(
                    "point ({x}, {y}) lies outside the {w}x{h} image"
                )));
            }
        }
        if let Some(b) = prompt.bbox {
            BoxRegion::new(b[0], b[1], b[2], b[3])
                .validate(w as u32, h as u32)
                .map_err(|e| match e {
                    CoreError::BadCoordinates(m) => SamError::BadPrompt(m),
                    other => SamError::Core(other),
                })?;
        }
        Ok(SamModelPrompt {
            points: self.processor.normalize_points(&prompt.points, (h, w)),
            labels,
            bbox: prompt.bbox.map(|b| self.processor.normalize_box(b, (h, w))),
        })
    }

    /// Segments one prompt on an embedded image: the best candidate at the original size.
    pub fn segment(&self, embedding: &SamImageEmbedding, prompt: &SamPrompt) -> Result<SamOutput> {
        let model_prompt = self.prepare_prompt(embedding, prompt)?;
        let details =
            self.model
                .forward_prompt(embedding.image_embeddings.clone(), &model_prompt, self.multimask_output)?;
        let [_, k, side, _] = details.decoder.masks.dims();
        let iou_scores = to_vec(details.decoder.iou_scores.clone())?;
        let low_res_masks = to_vec(details.decoder.masks.clone())?;
        let mut best_index = 0;
        for (i, &s) in iou_scores.iter().enumerate() {
            if s > iou_scores[best_index] {
                best_index = i;
            }
        }
        let (h, w) = embedding.original_size;
        let plane = side * side;
        let best_low = low_res_masks
            .get(best_index * plane..(best_index + 1) * plane)
            .ok_or_else(|| SamError::TensorData(format!("{k} masks of {side}x{side}")))?;
        let s = self.model.image_size();
        let best_mask_logits = post_process_mask(
            best_low,
            PostProcessSizes {
                low_res: (side, side),
                pad: (s, s),
                reshaped: embedding.reshaped_size,
                original: (h, w),
            },
        );
        let mask = Mask::from_vec(w as u32, h as u32, best_mask_logits.iter().map(|&v| v > 0.0).collect())?;
        Ok(SamOutput {
            mask,
            best_index,
            iou_scores,
            best_mask_logits,
            low_res_masks,
            low_res_size: side,
            model_prompt,
            details,
        })
    }

    /// Segments a scribble the way DAM's demo does: up to 8 of its pixels, sampled with
    /// numpy's legacy RNG seeded with `seed` (the demo uses 0), sent as points without labels.
    pub fn segment_scribble(&self, embedding: &SamImageEmbedding, scribble: &Mask, seed: u32) -> Result<SamOutput> {
        let (h, w) = embedding.original_size;
        if (scribble.height() as usize, scribble.width() as usize) != (h, w) {
            return Err(SamError::BadPrompt(format!(
                "the scribble is {}x{} but the image is {w}x{h}",
                scribble.width(),
                scribble.height()
            )));
        }
        let points = sample_scribble_points(scribble, seed);
        if points.is_empty() {
            return Err(SamError::BadPrompt("the scribble has no pixels".into()));
        }
        self.segment(embedding, &SamPrompt::points(&points))
    }
}
