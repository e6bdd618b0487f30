//! Errors of the vision crate.

/// What can go wrong loading or running the localized vision backbone.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error(transparent)]
    Weights(#[from] dam_core::WeightError),
    #[error(transparent)]
    Core(#[from] dam_core::CoreError),
    /// Input tensor of the wrong shape.
    #[error("{what} has shape {found:?}, expected {expected}")]
    Shape {
        what: &'static str,
        found: Vec<usize>,
        expected: String,
    },
    /// With `masked_cross_attn`, a frame whose full-view mask touches no patch would make
    /// every key masked and the softmax NaN.
    #[error(
        "masked cross-attention: the mask of view {view} covers no patch of the full image, so no key is left to attend to"
    )]
    EmptyKeyMask { view: usize },
    /// The device failed to run the queued work (reported where values are read back).
    #[error("device error: {0}")]
    Device(String),
}

pub type Result<T, E = VisionError> = std::result::Result<T, E>;
