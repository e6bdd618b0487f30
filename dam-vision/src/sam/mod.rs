//! Segment Anything v1 (transformers' `SamModel` / `SamProcessor`) on burn.
//!
//! A port of Hugging Face transformers 4.46.3 `SamModel`, `SamProcessor` and
//! `SamImageProcessor.post_process_masks`, exact against them in f32 (see
//! `tests/fixtures/sam-tiny/README.md` for every numeric detail). DAM uses it to turn clicks,
//! boxes and scribbles into masks:
//!
//! ```no_run
//! # fn main() -> Result<(), dam_vision::sam::SamError> {
//! use dam_vision::sam::{Sam, SamPrompt};
//! # let device: burn::tensor::Device = todo!();
//! # let image: image::RgbImage = todo!();
//! let sam = Sam::load(std::path::Path::new("sam-vit-base"), &device)?;
//! let embedding = sam.embed_image(&image)?; // once per image
//! let out = sam.segment(&embedding, &SamPrompt::points(&[(119.0, 62.0)]))?;
//! println!("best candidate {} covers {} pixels", out.best_index, out.mask.area());
//! # Ok(()) }
//! ```
//!
//! Stages, one per module: [`processor`] (Pillow-exact resize, normalisation, padding,
//! coordinate rescaling), [`vision_encoder`] (windowed/global ViT with decomposed relative
//! positions, neck), [`prompt_encoder`] (random-Fourier points and boxes), [`mask_decoder`]
//! (two-way transformer, upscaling, hypernetworks, IoU head), [`postprocess`] (torch bilinear
//! to the original size), [`scribble`] (numpy legacy MT19937 sampling), [`model`] and the
//! high-level [`Sam`].

pub mod config;
pub mod error;
pub mod layers;
pub mod mask_decoder;
pub mod model;
pub mod postprocess;
pub mod processor;
pub mod prompt_encoder;
pub mod scribble;
pub mod segmenter;
pub mod vision_encoder;

pub use config::{SamConfig, SamMaskDecoderConfig, SamProcessorConfig, SamPromptEncoderConfig, SamVisionConfig};
pub use error::SamError;
pub use mask_decoder::MaskDecoderOutput;
pub use model::{SamModel, SamPromptOutput};
pub use postprocess::{PostProcessSizes, post_process_mask, torch_bilinear_resize};
pub use processor::{SamPixelValues, SamProcessor};
pub use prompt_encoder::SamModelPrompt;
pub use scribble::{LegacyMt19937, numpy_choice_without_replacement, sample_scribble_indices, sample_scribble_points};
pub use segmenter::{Sam, SamImageEmbedding, SamOutput, SamPrompt};
