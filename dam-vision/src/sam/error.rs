//! The error type of the SAM port.

use std::path::PathBuf;

use dam_core::{CoreError, WeightError};

/// Everything that can go wrong when loading or running SAM. User input (prompts, images,
/// embeddings from another model) never panics; it gives one of these.
#[derive(Debug, thiserror::Error)]
pub enum SamError {
    /// A weight file problem: missing tensor, wrong shape, corrupt or truncated file.
    #[error(transparent)]
    Weights(#[from] WeightError),
    /// A config value that is invalid or not supported, naming the file and the key.
    #[error("{file}: `{key}`: {reason}")]
    Config {
        /// The file name: `config.json` or `preprocessor_config.json`.
        file: String,
        /// The offending key as a dotted path (empty when the file failed to parse).
        key: String,
        /// Why the value is rejected.
        reason: String,
    },
    /// A config file that could not be read or parsed.
    #[error("cannot read {path}: {reason}")]
    ConfigFile {
        /// The file that could not be read or parsed.
        path: PathBuf,
        /// The I/O or JSON error message.
        reason: String,
    },
    /// A prompt the model cannot take: no points and no box, a point outside the image, labels
    /// that do not match the points, non-finite coordinates.
    #[error("bad SAM prompt: {0}")]
    BadPrompt(String),
    /// An input of the wrong size or kind (an image that resizes to nothing, pixel values or
    /// image embeddings whose shape does not match the model).
    #[error("bad SAM input: {0}")]
    BadInput(String),
    /// Errors from `dam-core` (image size limits, mask construction).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Tensor data that could not be read back from the device.
    #[error("cannot read tensor data: {0}")]
    TensorData(String),
}

impl SamError {
    pub(crate) fn config(file: &str, key: &str, reason: impl Into<String>) -> Self {
        SamError::Config {
            file: file.to_string(),
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

/// Result with [`SamError`].
pub type Result<T, E = SamError> = std::result::Result<T, E>;
