//! Errors of the video crate.

use std::path::PathBuf;

/// What can go wrong describing a region through a clip of frames.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// From a frame's mask, image or focal prompt (`dam-core`).
    #[error(transparent)]
    Core(#[from] dam_core::CoreError),
    /// From encoding the frames' views.
    #[error(transparent)]
    Vision(#[from] dam_vision::VisionError),
    /// Different numbers of frames and masks.
    #[error("{frames} frame(s) but {masks} mask(s): every selected frame needs its mask")]
    CountMismatch {
        /// Number of frames.
        frames: usize,
        /// Number of masks.
        masks: usize,
    },
    /// Frames must all have the same size.
    #[error("frame {index} is {found_w}x{found_h} but frame 0 is {w}x{h}; all frames must have the same size")]
    FrameSizeMismatch {
        /// Index of the frame that differs.
        index: usize,
        /// Its width, in pixels.
        found_w: u32,
        /// Its height, in pixels.
        found_h: u32,
        /// Width of frame 0.
        w: u32,
        /// Height of frame 0.
        h: u32,
    },
    /// A selected frame whose mask has no foreground (pass `skip_empty` to drop such frames).
    #[error(
        "the mask of frame {index} is empty (the object is not visible there); drop the frame or enable skipping empty frames"
    )]
    EmptyFrameMask {
        /// Index of the frame.
        index: usize,
    },
    /// After skipping empty frames, nothing is left.
    #[error("no frame has a non-empty mask")]
    NoVisibleFrame,
    /// No frames at all.
    #[error("no frames given")]
    NoFrames,
    /// A frame without a mask and no propagator to provide one.
    #[error("frame {index} has no mask and no mask propagator (e.g. SAM 2) is configured")]
    MissingMask {
        /// Index of the frame.
        index: usize,
    },
    /// A frame file that cannot be read.
    #[error("cannot read frame {path}: {reason}")]
    UnreadableFrame {
        /// The frame's file.
        path: PathBuf,
        /// Why it could not be read or decoded.
        reason: String,
    },
    /// A folder that cannot be listed or holds no images.
    #[error("{path}: {reason}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Video decoding through the `ffmpeg` program failed.
    #[error("video decoding failed: {0}")]
    Decode(String),
    /// K = 0 frames requested.
    #[error("the number of frames to select must be at least 1")]
    ZeroFrames,
}

/// `Result` with [`VideoError`] as its default error.
pub type Result<T, E = VideoError> = std::result::Result<T, E>;
