//! The facade's error type: every failure a caller can meet, typed.

use std::path::PathBuf;

/// Errors of [`Describer`](crate::Describer) and friends.
#[derive(Debug, thiserror::Error)]
pub enum DamError {
    /// From regions, masks, images and preprocessing (`dam-core`).
    #[error(transparent)]
    Core(#[from] dam_core::CoreError),
    /// From the vision tower, the context provider or the projector.
    #[error(transparent)]
    Vision(#[from] dam_vision::VisionError),
    /// From the language model: prompt, generation, device read-backs.
    #[error(transparent)]
    Llm(#[from] dam_llm::LlmError),
    /// From a video request: frames, masks, frame sampling, video files.
    #[error(transparent)]
    Video(#[from] dam_video::VideoError),
    /// From Segment Anything, turning points or boxes into a mask.
    #[error(transparent)]
    Sam(#[from] dam_vision::sam::SamError),
    /// From reading a checkpoint's safetensors files (missing tensor, wrong shape, …).
    #[error(transparent)]
    Weights(#[from] dam_core::WeightError),
    /// From loading or converting the SentencePiece tokenizer.
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
    CheckpointNotFound {
        /// The path or hub id as given.
        spec: String,
        /// What to do about it (empty when there is nothing to add).
        hint: &'static str,
    },
    /// Downloading or finding a hub checkpoint failed.
    #[error("hub checkpoint {id}: {reason}")]
    Hub {
        /// The hub id, e.g. `nvidia/DAM-3B`.
        id: String,
        /// What hf-hub reported.
        reason: String,
    },
    /// A backend that this build does not include.
    #[error("the {0} backend is not compiled in; enable the `{0}` cargo feature of `dam`")]
    BackendNotCompiled(&'static str),
    /// A float type the device cannot compute in.
    #[error("{backend} does not support {dtype} arithmetic")]
    UnsupportedDType {
        /// The backend's name.
        backend: String,
        /// The float type asked for.
        dtype: String,
    },
    /// The device was configured with another float type before.
    #[error("device setup failed: {0}")]
    Device(String),
    /// An image file that could not be read.
    #[error("cannot read image {path}: {reason}")]
    ImageFile {
        /// The file.
        path: PathBuf,
        /// Why it could not be read or decoded.
        reason: String,
    },
    /// A request with no region, frame or image.
    #[error("nothing to describe: {0}")]
    Empty(&'static str),
}

/// `Result` with [`DamError`] as its default error.
pub type Result<T, E = DamError> = std::result::Result<T, E>;
