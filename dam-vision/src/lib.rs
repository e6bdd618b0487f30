//! # dam-vision
//!
//! DAM's localized vision backbone on burn: SigLIP with a mask patch embedding, the
//! context provider (a gated cross-attention adapter after every layer, attending from the
//! focal crop to the full image), and the `mlp_downsample` projector. Also Segment Anything
//! v1 ([`sam`]), which turns points and boxes into masks.
//!
//! Nothing here names a burn backend: every function takes a runtime [`burn::tensor::Device`].

pub mod sam;
