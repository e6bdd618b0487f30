//! The focal prompt's pixel side (spec §3.3–3.5): each view squashed to S×S with Pillow's
//! bicubic, rescaled and normalised; the mask pushed through the same pipeline as a 0/255
//! image so its channel is soft at the edges; the 8-channel view
//! `[full RGB, full mask, crop RGB, crop mask]`; and upstream's "crop equals full" test.

use image::{GrayImage, RgbImage};

use crate::config::PreprocessorConfig;
use crate::error::{CoreError, Result, check_image_size};
use crate::focal_crop::{CropRect, focal_crop};
use crate::mask::{Mask, MaskBox};
use crate::resample::{Filter, PassOrder, resize_gray, resize_rgb};

/// SigLIP's image processor as DAM configures it: resize to S×S (no aspect preservation),
/// rescale by 1/255, normalise with mean = std = 0.5.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageProcessor {
    /// Output side S (384 for DAM-3B).
    pub size: u32,
    /// Resampling filter (Pillow's bicubic for DAM-3B).
    pub filter: Filter,
    /// Which of the resize's two separable passes runs first (Pillow ≤ 12's order,
    /// horizontal first, unless changed with [`ImageProcessor::with_pass_order`]).
    pub pass_order: PassOrder,
    /// Factor applied to the 8-bit values before normalising (1/255 for DAM-3B).
    pub rescale_factor: f64,
    /// Per-channel mean subtracted after rescaling (0.5 for DAM-3B).
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by after subtracting the mean (0.5 for
    /// DAM-3B).
    pub std: [f32; 3],
}

impl ImageProcessor {
    /// The processor of a checkpoint's `vision_tower/preprocessor_config.json`.
    pub fn from_config(config: &PreprocessorConfig) -> Result<Self> {
        config.validate()?;
        let filter = Filter::from_pillow_code(config.resample).expect("validated");
        Ok(Self {
            size: config.size.height,
            filter,
            pass_order: PassOrder::HorizontalFirst,
            rescale_factor: config.rescale_factor,
            mean: config.image_mean.map(|v| v as f32),
            std: config.image_std.map(|v| v as f32),
        })
    }

    /// DAM-3B's processor (S = 384) without reading a file.
    pub fn dam_3b() -> Self {
        Self {
            size: 384,
            filter: Filter::Bicubic,
            pass_order: PassOrder::HorizontalFirst,
            rescale_factor: 1.0 / 255.0,
            mean: [0.5; 3],
            std: [0.5; 3],
        }
    }

    /// Uses Pillow 13's pass order instead of Pillow ≤ 12's.
    pub fn with_pass_order(mut self, order: PassOrder) -> Self {
        self.pass_order = order;
        self
    }

    /// `u8 → f32`: transformers rescales in f64 then casts to f32, then normalises in f32.
    #[inline]
    fn normalise(&self, v: u8, c: usize) -> f32 {
        let rescaled = (v as f64 * self.rescale_factor) as f32;
        (rescaled - self.mean[c]) / self.std[c]
    }

    /// Writes the 3 CHW planes of `image` resized to S×S into `out` (length 3·S²).
    pub fn rgb_planes(&self, image: &RgbImage, out: &mut [f32]) {
        let s = self.size;
        let resized = resize_rgb(image, s, s, self.filter, self.pass_order);
        let plane = (s * s) as usize;
        for (i, px) in resized.as_raw().chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + i] = self.normalise(px[c], c);
            }
        }
    }

    /// Writes the mask plane (length S²). Upstream converts the 0/255 mask to RGB, runs the
    /// RGB pipeline and keeps channel 0; the channels are resized independently, so resizing
    /// the grey image and normalising with channel 0's statistics is the same computation.
    pub fn mask_plane(&self, mask: &GrayImage, out: &mut [f32]) {
        let s = self.size;
        let resized = resize_gray(mask, s, s, self.filter, self.pass_order);
        for (o, &v) in out.iter_mut().zip(resized.as_raw()) {
            *o = self.normalise(v, 0);
        }
    }
}

/// One image's (or frame's) focal prompt, ready for the vision backbone.
#[derive(Clone, Debug)]
pub struct FocalPrompt {
    /// Side S of each view.
    pub size: u32,
    /// The mask's bounding box.
    pub mask_box: MaskBox,
    /// The focal crop rectangle in the original image.
    pub crop: CropRect,
    /// `[8, S, S]` row-major: full RGB, full mask, crop RGB, crop mask, all in [-1, 1].
    pub pixel_values: Vec<f32>,
    /// Upstream's `cimage_mask`: `true` when the crop view differs from the full view, so the
    /// crop pass with the context provider runs; `false` when the two 4-channel views are
    /// bit-identical and the full-view features go on to the projector.
    pub crop_differs: bool,
}

/// The focal crop of `image` and `mask`: the rectangle, the cropped image and cropped mask.
pub fn crop_views(image: &RgbImage, mask: &Mask) -> Result<(CropRect, RgbImage, Mask)> {
    check_same_size(image, mask)?;
    Ok(crop_at(image, mask, mask.bbox()?))
}

/// The focal crop for an already computed mask box (sizes already checked).
fn crop_at(image: &RgbImage, mask: &Mask, mask_box: MaskBox) -> (CropRect, RgbImage, Mask) {
    let (w, h) = image.dimensions();
    let rect = focal_crop(mask_box, w, h);
    let crop_image = image::imageops::crop_imm(image, rect.x0, rect.y0, rect.width(), rect.height()).to_image();
    let crop_mask = mask.crop(rect.x0, rect.y0, rect.x1, rect.y1);
    (rect, crop_image, crop_mask)
}

fn check_same_size(image: &RgbImage, mask: &Mask) -> Result<()> {
    let (w, h) = image.dimensions();
    check_image_size(w, h)?;
    if (mask.width(), mask.height()) != (w, h) {
        return Err(CoreError::MaskSizeMismatch {
            mask_w: mask.width(),
            mask_h: mask.height(),
            image_w: w,
            image_h: h,
        });
    }
    Ok(())
}

/// Builds the focal prompt (`full+focal_crop`) of one image and its mask.
pub fn focal_prompt(image: &RgbImage, mask: &Mask, processor: &ImageProcessor) -> Result<FocalPrompt> {
    check_same_size(image, mask)?;
    // One pass over the mask for its box, shared by the crop and the result.
    let mask_box = mask.bbox()?;
    let (crop, crop_image, crop_mask) = crop_at(image, mask, mask_box);
    let s = processor.size as usize;
    let plane = s * s;
    let mut pixel_values = vec![0.0f32; 8 * plane];
    {
        let (full, cropped) = pixel_values.split_at_mut(4 * plane);
        processor.rgb_planes(image, &mut full[..3 * plane]);
        processor.mask_plane(&mask.to_gray(), &mut full[3 * plane..]);
        processor.rgb_planes(&crop_image, &mut cropped[..3 * plane]);
        processor.mask_plane(&crop_mask.to_gray(), &mut cropped[3 * plane..]);
    }
    // Upstream compares the two preprocessed 4-channel halves exactly (spec §4.6).
    let (full, cropped) = pixel_values.split_at(4 * plane);
    let crop_differs = full != cropped;
    Ok(FocalPrompt {
        size: processor.size,
        mask_box,
        crop,
        pixel_values,
        crop_differs,
    })
}

/// The focal prompts of several regions of one image, computed in parallel.
pub fn focal_prompts(image: &RgbImage, masks: &[Mask], processor: &ImageProcessor) -> Result<Vec<FocalPrompt>> {
    use rayon::prelude::*;
    masks.par_iter().map(|m| focal_prompt(image, m, processor)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatched_or_empty_masks_are_errors() {
        let image = RgbImage::new(20, 10);
        let processor = ImageProcessor::dam_3b();
        let small = Mask::from_rect(10, 10, 1, 1, 4, 4).unwrap();
        assert!(matches!(
            focal_prompt(&image, &small, &processor),
            Err(CoreError::MaskSizeMismatch {
                mask_w: 10,
                mask_h: 10,
                image_w: 20,
                image_h: 10
            })
        ));
        let empty = Mask::from_vec(20, 10, vec![false; 200]).unwrap();
        assert!(matches!(
            focal_prompt(&image, &empty, &processor),
            Err(CoreError::EmptyMask)
        ));
        let zero = RgbImage::new(0, 0);
        assert!(matches!(
            crop_views(&zero, &small),
            Err(CoreError::ZeroSizedImage { .. })
        ));
    }

    #[test]
    fn whole_image_crop_gives_identical_halves() {
        // A large central region: the focal crop is the whole image, so both views match.
        let image = RgbImage::from_fn(60, 40, |x, y| image::Rgb([(x * 4) as u8, (y * 6) as u8, 7]));
        let mask = Mask::from_rect(60, 40, 15, 10, 45, 30).unwrap();
        let fp = focal_prompt(&image, &mask, &ImageProcessor::dam_3b()).unwrap();
        assert!(fp.crop.is_whole(60, 40));
        assert!(!fp.crop_differs);
        // A small region of a larger image: a 144 x 144 crop, different from the full view.
        let image = RgbImage::from_fn(300, 200, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let small = Mask::from_rect(300, 200, 100, 100, 104, 104).unwrap();
        let fp = focal_prompt(&image, &small, &ImageProcessor::dam_3b()).unwrap();
        assert_eq!((fp.crop.width(), fp.crop.height()), (144, 144));
        assert!(fp.crop_differs);
    }
}
