//! Errors of the vision crate.

/// What can go wrong loading or running the localized vision backbone.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// From reading the vision tower's, context provider's or projector's weights.
    #[error(transparent)]
    Weights(#[from] dam_core::WeightError),
    /// From `dam-core` (configs, views).
    #[error(transparent)]
    Core(#[from] dam_core::CoreError),
    /// Input tensor of the wrong shape.
    #[error("{what} has shape {found:?}, expected {expected}")]
    Shape {
        /// Which input.
        what: &'static str,
        /// Its shape.
        found: Vec<usize>,
        /// The shape expected, in words.
        expected: String,
    },
    /// With `masked_cross_attn`, a frame whose full-view mask touches no patch would make
    /// every key masked and the softmax NaN.
    #[error(
        "masked cross-attention: the mask of view {view} covers no patch of the full image, so no key is left to attend to"
    )]
    EmptyKeyMask {
        /// Index of the view in the batch.
        view: usize,
    },
    /// The device failed to run the queued work (reported where values are read back).
    #[error("device error: {0}")]
    Device(String),
}

/// `Result` with [`VisionError`] as its default error.
pub type Result<T, E = VisionError> = std::result::Result<T, E>;
