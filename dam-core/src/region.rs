//! What a caller can point at: a mask, a box, points or a scribble.

use crate::error::{CoreError, Result};
use crate::mask::Mask;

/// A region of an image to describe.
///
/// The model itself only reads masks. `Box`, `Points` and `Scribble` become masks before the
/// model runs: through a segmenter (SAM) where one is configured, otherwise by the fallbacks
/// documented on each variant.
#[derive(Clone, Debug)]
pub enum Region {
    /// A binary mask of the image's size.
    Mask(Mask),
    /// An axis-aligned box in pixel coordinates. Without a segmenter it is rasterised as a
    /// filled rectangle ([`BoxRegion::to_mask`]).
    Box(BoxRegion),
    /// Clicks; the original turns them into a mask with SAM, so they need a segmenter.
    Points(Points),
    /// A drawn stroke (read a drawing layer with [`Mask::open_scribble`]). By default the
    /// stroke itself is the mask (the original demo's "skip SAM"); with a segmenter it can be
    /// sampled into points instead.
    Scribble(Mask),
}

/// A box `[x0, y0, x1, y1]` in pixel coordinates of the original image, as the original's
/// `--box` takes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoxRegion {
    /// Left edge, in pixels.
    pub x0: f64,
    /// Top edge, in pixels.
    pub y0: f64,
    /// Right edge, in pixels; must exceed `x0`.
    pub x1: f64,
    /// Bottom edge, in pixels; must exceed `y0`.
    pub y1: f64,
}

/// One click in pixel coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Column, in pixels.
    pub x: f64,
    /// Row, in pixels.
    pub y: f64,
    /// `true` for a positive (include) click, `false` for a negative (exclude) one.
    pub positive: bool,
}

/// A set of clicks forming one prompt.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Points(pub Vec<Point>);

impl BoxRegion {
    /// A box from its corners `(x0, y0)` and `(x1, y1)`; not validated here.
    pub fn new(x0: f64, y0: f64, x1: f64, y1: f64) -> Self {
        Self { x0, y0, x1, y1 }
    }

    /// Checks that the box has an area and overlaps a `width`×`height` image.
    pub fn validate(&self, width: u32, height: u32) -> Result<()> {
        let finite = [self.x0, self.y0, self.x1, self.y1].iter().all(|v| v.is_finite());
        if !finite || self.x1 <= self.x0 || self.y1 <= self.y0 {
            return Err(CoreError::BadCoordinates(format!(
                "box [{}, {}, {}, {}] must have x0 < x1 and y0 < y1",
                self.x0, self.y0, self.x1, self.y1
            )));
        }
        if self.x1 <= 0.0 || self.y1 <= 0.0 || self.x0 >= width as f64 || self.y0 >= height as f64 {
            return Err(CoreError::BadCoordinates(format!(
                "box [{}, {}, {}, {}] lies outside the {width}x{height} image",
                self.x0, self.y0, self.x1, self.y1
            )));
        }
        Ok(())
    }

    /// The fallback used when no segmenter is configured: the box as a filled rectangle,
    /// covering the pixels `[floor(x0), ceil(x1)) × [floor(y0), ceil(y1))` clamped to the image.
    pub fn to_mask(&self, width: u32, height: u32) -> Result<Mask> {
        self.validate(width, height)?;
        let clamp = |v: f64, max: u32| v.clamp(0.0, max as f64) as u32;
        Mask::from_rect(
            width,
            height,
            clamp(self.x0.floor(), width),
            clamp(self.y0.floor(), height),
            clamp(self.x1.ceil(), width),
            clamp(self.y1.ceil(), height),
        )
    }
}

impl Points {
    /// All-positive clicks, as the original's `--points`.
    pub fn positive(xy: &[(f64, f64)]) -> Self {
        Points(xy.iter().map(|&(x, y)| Point { x, y, positive: true }).collect())
    }

    /// Checks that there is at least one click and every click lies inside the image.
    pub fn validate(&self, width: u32, height: u32) -> Result<()> {
        if self.0.is_empty() {
            return Err(CoreError::BadCoordinates("no points given".into()));
        }
        for p in &self.0 {
            if !(p.x.is_finite() && p.y.is_finite())
                || p.x < 0.0
                || p.y < 0.0
                || p.x >= width as f64
                || p.y >= height as f64
            {
                return Err(CoreError::BadCoordinates(format!(
                    "point ({}, {}) lies outside the {width}x{height} image",
                    p.x, p.y
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_rasterises_to_covering_pixels() {
        let m = BoxRegion::new(1.5, 2.0, 4.0, 3.2).to_mask(6, 5).unwrap();
        assert_eq!(
            m.bbox().unwrap(),
            crate::MaskBox {
                x0: 1,
                y0: 2,
                w: 3,
                h: 2
            }
        );
    }

    #[test]
    fn bad_boxes_and_points_are_errors() {
        let bad = [
            BoxRegion::new(5.0, 1.0, 5.0, 3.0),
            BoxRegion::new(1.0, 4.0, 3.0, 2.0),
            BoxRegion::new(10.0, 1.0, 12.0, 3.0),
            BoxRegion::new(f64::NAN, 1.0, 2.0, 3.0),
        ];
        for b in bad {
            assert!(matches!(b.validate(8, 8), Err(CoreError::BadCoordinates(_))), "{b:?}");
        }
        assert!(matches!(
            Points(vec![]).validate(8, 8),
            Err(CoreError::BadCoordinates(_))
        ));
        assert!(matches!(
            Points::positive(&[(8.0, 1.0)]).validate(8, 8),
            Err(CoreError::BadCoordinates(_))
        ));
        Points::positive(&[(7.9, 0.0)]).validate(8, 8).unwrap();
    }
}
