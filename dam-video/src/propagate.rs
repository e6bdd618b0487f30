//! Masks for every frame from an annotation on one frame.

use dam_core::Mask;
use image::RgbImage;

use crate::error::Result;

/// Turns one annotated frame's mask into a mask per frame, as SAM 2's video predictor does
/// upstream (annotation on frame `annotated`, propagated through the clip, `logits > 0`).
/// No implementation ships yet (SAM 2 is planned); without one, every frame needs its mask.
pub trait MaskPropagator {
    /// One mask per frame of `frames` (the annotated frame's included).
    fn propagate(&self, frames: &[RgbImage], annotated: usize, mask: &Mask) -> Result<Vec<Mask>>;
}
