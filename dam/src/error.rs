//! The facade's error type: every failure a caller can meet, typed.

use std::path::PathBuf;

/// Errors of [`Describer`](crate::Describer) and friends.
#[derive(Debug, thiserror::Error)]
pub enum DamError {
    #[error(transparent)]
    Core(#[from] dam_core::CoreError),
    #[error(transparent)]
    Vision(#[from] dam_vision::VisionError),
    #[error(transparent)]
    Llm(#[from] dam_llm::LlmError),
    #[error(transparent)]
    Video(#[from] dam_video::VideoError),
    #[error(transparent)]
    Sam(#[from] dam_vision::sam::SamError),
    #[error(transparent)]
    Weights(#[from] dam_core::WeightError),
    #[error(transparent)]
    Tokenizer(#[from] dam_llm::tokenizer::TokenizerError),
    /// Points (or sampled scribbles) need a segmenter to become a mask.
    #[error(
        "{0} regions need a segmenter (SAM) to become a mask: configure one with `Describer::builder().segmenter(...)` (CLI: `--sam DIR_OR_HUB_ID`)"
    )]
    SegmenterRequired(&'static str),
    /// No checkpoint was given to the builder.
    #[error("no checkpoint given: call `.checkpoint(\"path/to/DAM-3B\")` or a hub id such as `nvidia/DAM-3B`")]
    NoCheckpoint,
    /// The checkpoint is neither a folder nor (with the `hub` feature) a hub id.
    #[error("checkpoint {spec:?} is not a folder{hint}")]
    CheckpointNotFound { spec: String, hint: &'static str },
    /// Downloading or finding a hub checkpoint failed.
    #[error("hub checkpoint {id}: {reason}")]
    Hub { id: String, reason: String },
    /// A backend that this build does not include.
    #[error("the {0} backend is not compiled in; enable the `{0}` cargo feature of `dam`")]
    BackendNotCompiled(&'static str),
    /// A float type the device cannot compute in.
    #[error("{backend} does not support {dtype} arithmetic")]
    UnsupportedDType { backend: String, dtype: String },
    /// The device was configured with another float type before.
    #[error("device setup failed: {0}")]
    Device(String),
    /// An image file that could not be read.
    #[error("cannot read image {path}: {reason}")]
    ImageFile { path: PathBuf, reason: String },
    /// A request with no region, frame or image.
    #[error("nothing to describe: {0}")]
    Empty(&'static str),
}

pub type Result<T, E = DamError> = std::result::Result<T, E>;
