//! # dam-video
//!
//! The DAM-3B-Video temporal path: frame selection as the original
//! ([`selection::select_frames`]), frame and mask sources ([`source`]; video files through the
//! `ffmpeg` program behind the `video-file` feature), clips with one mask per selected frame
//! ([`clip::Clip`]), the [`propagate::MaskPropagator`] hook for one-frame annotations (SAM 2,
//! planned), and per-frame encoding with the frame tokens placed back to back ([`encode`]).

// Every public item is documented (`cargo clippy -- -D warnings` makes this an error).
#![warn(missing_docs)]

pub mod clip;
pub mod encode;
pub mod error;
pub mod propagate;
pub mod selection;
pub mod source;

pub use clip::{Clip, ClipOptions};
pub use error::{Result, VideoError};
pub use propagate::MaskPropagator;
pub use selection::select_frames;
