//! # dam-core
//!
//! The backend-independent part of [dam-rs](https://github.com/dam-rs/dam-rs), a Rust port of
//! NVIDIA's Describe Anything Model (DAM-3B, DAM-3B-Video):
//!
//! * [`Region`]s (mask, box, points, scribble) and the [`Mask`] type;
//! * reading images and masks exactly as the original's Pillow does ([`image_io`]: JPEGs
//!   through libjpeg-turbo's decoder, Pillow's mode conversions);
//! * the focal prompt: crop geometry ([`focal_crop`](mod@focal_crop)), Pillow-exact resampling
//!   ([`resample`], hand-written because no crate matches Pillow bit for bit) and the
//!   8-channel view assembly ([`focal_prompt`]);
//! * the `v1` conversation template and DAM's queries ([`prompt`]);
//! * checkpoint configs with validation ([`config`]) and weight files ([`weights`]);
//! * small layers shared by the model crates ([`nn`]);
//! * one error type, [`CoreError`].

// Every public item is documented (`cargo clippy -- -D warnings` makes this an error).
#![warn(missing_docs)]

pub mod config;
#[cfg(feature = "cube")]
pub mod device_memory;
pub mod error;
#[cfg(feature = "flex")]
pub mod flex_kernels;
pub mod focal_crop;
#[cfg(feature = "cube")]
pub mod graph;
pub mod image_io;
#[cfg(feature = "kernel-cache")]
pub mod kernel_cache;
#[cfg(feature = "cube")]
pub mod layer_norm_kernel;
pub mod mask;
pub mod matmul_kernel;
pub mod nn;
#[cfg(feature = "cube")]
pub mod precompiled;
pub mod preprocess;
pub mod prompt;
pub mod region;
pub mod resample;
#[cfg(feature = "cube")]
pub mod row_kernels;
pub mod switch;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;
pub mod weights;

pub use config::CheckpointConfig;
pub use error::{CoreError, MAX_IMAGE_SIDE, Result};
pub use focal_crop::{CropRect, focal_crop};
pub use image_io::open_rgb;
pub use mask::{Mask, MaskBox};
pub use preprocess::{FocalPrompt, ImageProcessor, crop_views, focal_prompt, focal_prompts};
pub use prompt::Granularity;
pub use region::{BoxRegion, Point, Points, Region};
pub use weights::{Init, Loader, WeightError, Weights};

#[cfg(test)]
mod fixture_tests;
