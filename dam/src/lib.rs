//! # dam — Describe Anything in Rust
//!
//! NVIDIA's Describe Anything Model (DAM-3B, DAM-3B-Video) on [burn](https://burn.dev): give an
//! image (or video) and a region — a mask, a box, points or a scribble — and get a detailed
//! description of just that region.
//!
//! ```no_run
//! # fn main() -> Result<(), dam::DamError> {
//! use dam::{BoxRegion, Describer, Region};
//! let describer = Describer::builder()
//!     .checkpoint("nvidia/DAM-3B") // or a local folder
//!     .build()?;
//! let image = dam::open_rgb("photo.jpg")?;
//! let d = describer.describe(&image, &Region::Box(BoxRegion::new(40.0, 60.0, 220.0, 300.0)))?;
//! println!("{}", d.text);
//! # Ok(()) }
//! ```
//!
//! Read images with [`open_rgb`]: it gives the pixels the original's Pillow gives (JPEGs
//! through libjpeg-turbo's decoder; the `image` crate's own JPEG decoder is a few levels off on
//! many pixels), so the model sees what it would see upstream.
//!
//! Backends are cargo features (`cpu` = burn's `flex`, default; `wgpu`; `cuda`), chosen at run
//! time with [`Backend`]; the model code is the same for all. The `hub` feature resolves
//! Hugging Face ids through the `hf-hub` cache; a local folder always works offline. With the
//! GPU features, what a process compiles and autotunes is kept on disk for the next one
//! (`KernelCache`, feature `kernel-cache`, on with `wgpu` and `cuda`).
//!
//! The crates underneath are re-exported: [`core`] (regions, masks, focal prompt, configs),
//! [`vision`] (backbone, projector, SAM), [`llm`] (tokenizer, decoder, generation), [`video`].

// Every public item is documented (`cargo clippy -- -D warnings` makes this an error).
#![warn(missing_docs)]

pub mod backend;
pub mod checkpoint;
pub mod describer;
pub mod description;
pub mod error;
pub mod segmenter;

pub use backend::{Backend, FloatType};
pub use describer::{DescribeOptions, Describer, DescriberBuilder, DescriptionStream, QueryStyle};
pub use description::{Description, HostTensor, PhaseTimings, Trace};
pub use error::{DamError, Result};
pub use segmenter::{SamSegmenter, ScribbleMode, SegmentPrompt, Segmenter};

pub use dam_core as core;
#[cfg(feature = "kernel-cache")]
pub use dam_core::kernel_cache::KernelCache;
pub use dam_core::{BoxRegion, Granularity, Mask, Point, Points, Region, open_rgb};
pub use dam_llm as llm;
pub use dam_llm::session::StopReason;
pub use dam_llm::{GenerationOptions, Sampling, SamplingParams};
pub use dam_video as video;
pub use dam_video::{Clip, ClipOptions};
pub use dam_vision as vision;

/// burn's `Device`, for callers that pick a device themselves.
pub use burn::tensor::Device;
