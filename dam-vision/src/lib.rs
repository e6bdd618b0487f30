//! # dam-vision
//!
//! DAM's localized vision backbone on burn: SigLIP with a mask patch embedding, the
//! context provider (a gated cross-attention adapter after every layer, attending from the
//! focal crop to the full image), and the `mlp_downsample` projector. Also Segment Anything
//! v1 ([`sam`]), which turns points and boxes into masks.
//!
//! Nothing here names a burn backend: every function takes a runtime [`burn::tensor::Device`].
//!
//! Data flow (one stage per module): [`embeddings`] → [`encoder_layer`] × n in [`tower`]
//! (context pass), then the same tower with a [`context_provider`] adapter after each layer
//! (focal pass), then [`projector`]; [`model::VisionModel`] ties them together.

// Every public item is documented (`cargo clippy -- -D warnings` makes this an error).
#![warn(missing_docs)]

pub mod attention;
pub mod context_provider;
pub mod embeddings;
pub mod encoder_layer;
pub mod error;
#[cfg(feature = "cube")]
pub mod flash;
pub mod hand_attention;
pub mod mlp;
pub mod model;
pub mod projector;
pub mod recorded;
pub mod sam;
pub mod sdpa;
#[cfg(feature = "cube")]
pub mod softmax;
pub mod tower;

pub use error::{Result, VisionError};
pub use model::{VisionModel, VisionOutput, split_views, stack_focal_prompts};
pub use recorded::VisionRecorder;
