//! A clip ready for DAM-3B-Video: the selected frames with their masks, validated.

use dam_core::Mask;
use image::RgbImage;

use crate::error::{Result, VideoError};
use crate::propagate::MaskPropagator;
use crate::selection::select_frames;

/// How a clip is built from frames and masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClipOptions {
    /// Frames the model sees (K = 8 for DAM-3B-Video).
    pub num_frames: usize,
    /// Drop frames whose mask is empty (the object is not visible) before selecting, as
    /// upstream's `demo_video.py`; otherwise an empty mask on a selected frame is an error.
    pub skip_empty: bool,
}

impl Default for ClipOptions {
    fn default() -> Self {
        Self {
            num_frames: 8,
            skip_empty: false,
        }
    }
}

/// Selected frames, their masks and their indices in the input.
#[derive(Clone, Debug)]
pub struct Clip {
    /// The selected frames, in order.
    pub frames: Vec<RgbImage>,
    /// The region's mask in each selected frame.
    pub masks: Vec<Mask>,
    /// Each selected frame's index in the input sequence.
    pub indices: Vec<usize>,
}

impl Clip {
    /// Builds a clip from all frames and either one mask per frame (the same frames are
    /// selected from both) or one mask per selected frame (in order).
    pub fn new(frames: Vec<RgbImage>, masks: Vec<Mask>, options: ClipOptions) -> Result<Self> {
        if frames.is_empty() {
            return Err(VideoError::NoFrames);
        }
        let (w, h) = frames[0].dimensions();
        for (index, f) in frames.iter().enumerate() {
            let (fw, fh) = f.dimensions();
            if (fw, fh) != (w, h) {
                return Err(VideoError::FrameSizeMismatch {
                    index,
                    found_w: fw,
                    found_h: fh,
                    w,
                    h,
                });
            }
        }
        if let Some(m) = masks.iter().find(|m| (m.width(), m.height()) != (w, h)) {
            return Err(dam_core::CoreError::MaskSizeMismatch {
                mask_w: m.width(),
                mask_h: m.height(),
                image_w: w,
                image_h: h,
            }
            .into());
        }
        let n = frames.len();
        let selected = select_frames(n, options.num_frames)?;
        if masks.len() == n {
            let candidates: Vec<usize> = if options.skip_empty {
                (0..n).filter(|&i| !masks[i].is_empty()).collect()
            } else {
                (0..n).collect()
            };
            if candidates.is_empty() {
                return Err(VideoError::NoVisibleFrame);
            }
            let picks = select_frames(candidates.len(), options.num_frames)?;
            let indices: Vec<usize> = picks.into_iter().map(|i| candidates[i]).collect();
            if let Some(&index) = indices.iter().find(|&&i| masks[i].is_empty()) {
                return Err(VideoError::EmptyFrameMask { index });
            }
            let mut frames: Vec<Option<RgbImage>> = frames.into_iter().map(Some).collect();
            let mut masks: Vec<Option<Mask>> = masks.into_iter().map(Some).collect();
            return Ok(Self {
                frames: indices
                    .iter()
                    .map(|&i| frames[i].take().expect("unique indices"))
                    .collect(),
                masks: indices
                    .iter()
                    .map(|&i| masks[i].take().expect("unique indices"))
                    .collect(),
                indices,
            });
        }
        if masks.len() == selected.len() {
            if let Some(k) = masks.iter().position(Mask::is_empty) {
                return Err(VideoError::EmptyFrameMask { index: selected[k] });
            }
            let mut frames: Vec<Option<RgbImage>> = frames.into_iter().map(Some).collect();
            return Ok(Self {
                frames: selected
                    .iter()
                    .map(|&i| frames[i].take().expect("unique indices"))
                    .collect(),
                masks,
                indices: selected,
            });
        }
        Err(VideoError::CountMismatch {
            frames: n,
            masks: masks.len(),
        })
    }

    /// Builds a clip from one annotated frame, propagating its mask with `propagator`.
    pub fn from_annotation(
        frames: Vec<RgbImage>,
        annotated: usize,
        mask: Mask,
        propagator: Option<&dyn MaskPropagator>,
        options: ClipOptions,
    ) -> Result<Self> {
        match propagator {
            Some(p) => {
                let masks = p.propagate(&frames, annotated, &mask)?;
                Self::new(frames, masks, options)
            }
            None if frames.len() == 1 && annotated == 0 => Self::new(frames, vec![mask], options),
            None => Err(VideoError::MissingMask {
                index: usize::from(annotated == 0),
            }),
        }
    }

    /// Number of selected frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame is selected.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}
