//! Errors of the video crate.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error(transparent)]
    Core(#[from] dam_core::CoreError),
    #[error(transparent)]
    Vision(#[from] dam_vision::VisionError),
    /// Different numbers of frames and masks.
    #[error("{frames} frame(s) but {masks} mask(s): every selected frame needs its mask")]
    CountMismatch { frames: usize, masks: usize },
    /// Frames must all have the same size.
    #[error("frame {index} is {found_w}x{found_h} but frame 0 is {w}x{h}; all frames must have the same size")]
    FrameSizeMismatch {
        index: usize,
        found_w: u32,
        found_h: u32,
        w: u32,
        h: u32,
    },
    /// A selected frame whose mask has no foreground (pass `skip_empty` to drop such frames).
    #[error(
        "the mask of frame {index} is empty (the object is not visible there); drop the frame or enable skipping empty frames"
    )]
    EmptyFrameMask { index: usize },
    /// After skipping empty frames, nothing is left.
    #[error("no frame has a non-empty mask")]
    NoVisibleFrame,
    /// No frames at all.
    #[error("no frames given")]
    NoFrames,
    /// A frame without a mask and no propagator to provide one.
    #[error("frame {index} has no mask and no mask propagator (e.g. SAM 2) is configured")]
    MissingMask { index: usize },
    /// A frame file that cannot be read.
    #[error("cannot read frame {path}: {reason}")]
    UnreadableFrame { path: PathBuf, reason: String },
    /// A folder that cannot be listed or holds no images.
    #[error("{path}: {reason}")]
    Folder { path: PathBuf, reason: String },
    /// Video decoding through the `ffmpeg` program failed.
    #[error("video decoding failed: {0}")]
    Decode(String),
    /// K = 0 frames requested.
    #[error("the number of frames to select must be at least 1")]
    ZeroFrames,
}

pub type Result<T, E = VideoError> = std::result::Result<T, E>;
