//! The focal crop rectangle (spec §3.2): the mask's box grown to at least 48 px about its
//! centre, expanded by one box size on every side (3×), clamped to the image.

use crate::mask::MaskBox;

/// Smallest box side before the 3× expansion. Upscaling a tiny crop to 384 px produces
/// out-of-distribution artefacts, so upstream grows small boxes to 48 px first.
pub const MIN_BOX_SIDE: u32 = 48;

/// A half-open pixel rectangle `[x0, x1) × [y0, y1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropRect {
    /// Left edge (inclusive), in pixels.
    pub x0: u32,
    /// Top edge (inclusive), in pixels.
    pub y0: u32,
    /// Right edge (exclusive), in pixels.
    pub x1: u32,
    /// Bottom edge (exclusive), in pixels.
    pub y1: u32,
}

impl CropRect {
    /// Width in pixels: `x1 - x0`.
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }

    /// Height in pixels: `y1 - y0`.
    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }

    /// Whether the rectangle is the whole `width`×`height` image.
    pub fn is_whole(&self, width: u32, height: u32) -> bool {
        *self
            == CropRect {
                x0: 0,
                y0: 0,
                x1: width,
                y1: height,
            }
    }
}

/// The focal crop of a mask box in a `width`×`height` image, exactly as upstream's
/// `full+focal_crop` prompt mode computes it.
pub fn focal_crop(mask_box: MaskBox, width: u32, height: u32) -> CropRect {
    let (new_x0, w) = grow_axis(mask_box.x0, mask_box.w);
    let (new_y0, h) = grow_axis(mask_box.y0, mask_box.h);
    // Expand by one (grown) box size on each side, clamp without padding; half-open ranges.
    let clamp = |v: i64, max: u32| v.clamp(0, max as i64) as u32;
    CropRect {
        x0: clamp(new_x0 - w, width),
        y0: clamp(new_y0 - h, height),
        x1: clamp(new_x0 + 2 * w, width),
        y1: clamp(new_y0 + 2 * h, height),
    }
}

/// One axis of the box growth: returns the grown box's start and size.
fn grow_axis(start: u32, size: u32) -> (i64, i64) {
    // Centre as a real number, as Python's `x0 + w / 2`.
    let centre = start as f64 + size as f64 / 2.0;
    let grown = size.max(MIN_BOX_SIDE) as i64;
    // Python's `int()` truncates toward zero: near the top/left border the value is
    // negative and differs from floor (e.g. -17.5 -> -17, not -18).
    let new_start = (centre - grown as f64 / 2.0).trunc() as i64;
    (new_start, grown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x0: u32, x1: u32, y0: u32, y1: u32) -> CropRect {
        CropRect { x0, y0, x1, y1 }
    }

    #[test]
    fn spec_worked_examples() {
        // 640x480, small box grown to 48x48.
        let b = MaskBox {
            x0: 100,
            y0: 200,
            w: 20,
            h: 30,
        };
        assert_eq!(focal_crop(b, 640, 480), rect(38, 182, 143, 287));
        // 200x100 near the corner: x0' = -19, y0' = trunc(-17.5) = -17 (floor would be -18).
        let b = MaskBox {
            x0: 0,
            y0: 5,
            w: 10,
            h: 3,
        };
        let r = focal_crop(b, 200, 100);
        assert_eq!(r, rect(0, 77, 0, 79));
        assert_eq!((r.width(), r.height()), (77, 79));
        // Large central box: the crop is the whole image.
        let b = MaskBox {
            x0: 300,
            y0: 200,
            w: 400,
            h: 400,
        };
        let r = focal_crop(b, 1000, 800);
        assert!(r.is_whole(1000, 800));
    }

    #[test]
    fn truncation_toward_zero_differs_from_floor() {
        // y: centre 6.5, start 6.5 - 24 = -17.5 -> -17; rows end at -17 + 96 = 79 (floor: 78).
        let b = MaskBox {
            x0: 50,
            y0: 5,
            w: 10,
            h: 3,
        };
        assert_eq!(focal_crop(b, 200, 100).y1, 79);
    }
}
