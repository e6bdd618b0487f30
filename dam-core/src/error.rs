//! The one error type of `dam-core`.

use std::path::PathBuf;

/// Largest accepted image side, in pixels. Larger inputs are rejected before any allocation
/// proportional to their size (a 16384² RGB image is already 768 MiB).
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Everything that can go wrong in `dam-core`: bad user input, bad checkpoint files.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The mask has no foreground pixel, so there is no region to describe.
    #[error("the mask is empty: it has no non-zero pixel, so there is no region to describe")]
    EmptyMask,
    /// Mask and image must have the same width and height.
    #[error("mask is {mask_w}x{mask_h} but the image is {image_w}x{image_h}; they must be the same size")]
    MaskSizeMismatch {
        /// Width of the mask, in pixels.
        mask_w: u32,
        /// Height of the mask, in pixels.
        mask_h: u32,
        /// Width of the image, in pixels.
        image_w: u32,
        /// Height of the image, in pixels.
        image_h: u32,
    },
    /// An image or mask with a zero side.
    #[error("image is {width}x{height}: both sides must be at least 1 pixel")]
    ZeroSizedImage {
        /// Width of the image or mask, in pixels.
        width: u32,
        /// Height of the image or mask, in pixels.
        height: u32,
    },
    /// An image or mask larger than [`MAX_IMAGE_SIDE`] on a side.
    #[error("image is {width}x{height}: the largest supported side is {max} pixels")]
    ImageTooLarge {
        /// Width of the image or mask, in pixels.
        width: u32,
        /// Height of the image or mask, in pixels.
        height: u32,
        /// Largest supported side, in pixels ([`MAX_IMAGE_SIDE`]).
        max: u32,
    },
    /// A mask built from raw data whose length is not width × height.
    #[error("mask data has {len} values but {width}x{height} needs {expected}")]
    MaskDataLength {
        /// Number of values given.
        len: usize,
        /// Width of the mask, in pixels.
        width: u32,
        /// Height of the mask, in pixels.
        height: u32,
        /// Number of values the mask needs: `width * height`.
        expected: usize,
    },
    /// A box or point outside the image, or a box with no area.
    #[error("bad region coordinates: {0}")]
    BadCoordinates(String),
    /// A query without `<image>`, or with a placeholder count that differs from the number of
    /// images or frames given.
    #[error("bad prompt: {0}")]
    BadPrompt(String),
    /// A config value this implementation does not support.
    #[error("{file}: `{key}` is {found}, but dam-rs supports {supported}")]
    UnsupportedConfig {
        /// The config file, relative to the checkpoint folder (e.g. `llm/config.json`).
        file: String,
        /// The key whose value is not supported.
        key: String,
        /// The value found, in Rust's `Debug` form.
        found: String,
        /// What this implementation supports, in words.
        supported: String,
    },
    /// A config file that could not be read or parsed.
    #[error("cannot read config {path}: {reason}")]
    ConfigFile {
        /// Path of the file (the top-level `config.json` for a nested sub-config).
        path: PathBuf,
        /// The I/O or JSON error.
        reason: String,
    },
    /// A checkpoint folder that lacks a file it must have.
    #[error("checkpoint folder {dir} has no {file}")]
    MissingCheckpointFile {
        /// The checkpoint folder.
        dir: PathBuf,
        /// The missing file, relative to `dir` (e.g. `config.json`).
        file: String,
    },
    /// An image or mask file that could not be read or decoded.
    #[error("cannot read image {path}: {reason}")]
    ImageFile {
        /// Path of the image or mask file.
        path: PathBuf,
        /// Why it could not be read or decoded.
        reason: String,
    },
    /// Errors from the weight files.
    #[error(transparent)]
    Weights(#[from] crate::weights::WeightError),
    /// A kernel-cache bundle that could not be written or read.
    #[error("kernel cache bundle {path}: {reason}")]
    KernelCacheBundle {
        /// Path of the bundle file.
        path: PathBuf,
        /// Why it could not be written or read.
        reason: String,
    },
}

/// Result with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Checks the size limits every image and mask must meet.
pub fn check_image_size(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(CoreError::ZeroSizedImage { width, height });
    }
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(CoreError::ImageTooLarge {
            width,
            height,
            max: MAX_IMAGE_SIDE,
        });
    }
    Ok(())
}
