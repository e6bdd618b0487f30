//! Per-frame focal prompts and their visual tokens, placed back to back (spec §7): each frame
//! gets its own mask, focal crop and two-pass encoding; all frames go through the vision model
//! as one batch (frames whose crop equals the full view take the degenerate branch on their
//! own); the LLM integrates the frames through the `<image>` placeholders in order.

use burn::tensor::{Device, Tensor};
use dam_core::prompt::{self, VIDEO_QUESTION};
use dam_core::{FocalPrompt, ImageProcessor, focal_prompt};
use dam_vision::{VisionModel, split_views, stack_focal_prompts};

use crate::clip::Clip;
use crate::error::Result;

/// The focal prompt of every frame of the clip.
pub fn focal_prompts(clip: &Clip, processor: &ImageProcessor) -> Result<Vec<FocalPrompt>> {
    clip.frames
        .iter()
        .zip(&clip.masks)
        .map(|(f, m)| focal_prompt(f, m, processor).map_err(Into::into))
        .collect()
}

/// One `[T', H]` block of visual tokens per frame, in frame order, from one batched forward.
pub fn encode_frames(vision: &VisionModel, prompts: &[FocalPrompt], device: &Device) -> Result<Vec<Tensor<2>>> {
    let refs: Vec<&FocalPrompt> = prompts.iter().collect();
    let (pixels, flags) = stack_focal_prompts(&refs, device)?;
    Ok(split_views(vision.encode(pixels, &flags)?))
}

/// DAM-3B-Video's query for a clip of `frames` frames:
/// `Video: <image>…<image>\nGiven the video in the form of a sequence of frames above, …`.
pub fn video_query(frames: usize) -> String {
    prompt::video_query(frames, VIDEO_QUESTION)
}
