//! Binary region masks and their bounding boxes.

use std::path::Path;

use image::GrayImage;

use crate::error::{CoreError, Result, check_image_size};

/// An H×W binary mask; `true` is the region.
///
/// Built from an image file (Pillow's grey conversion, non-zero is foreground, as upstream's
/// `mask > 0`; [`Mask::open`]), a scribble layer ([`Mask::open_scribble`]), a `Vec<bool>` or
/// an `ndarray` array.
#[derive(Clone, PartialEq, Eq)]
pub struct Mask {
    width: u32,
    height: u32,
    data: Vec<bool>,
}

impl std::fmt::Debug for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mask")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("area", &self.area())
            .finish()
    }
}

/// A mask's bounding box in the upstream `mask_to_box` convention: `x0, y0` inclusive,
/// `w = x1 - x0`, `h = y1 - y0` with exclusive ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaskBox {
    /// Leftmost foreground column.
    pub x0: u32,
    /// Topmost foreground row.
    pub y0: u32,
    /// Width: one past the rightmost foreground column, minus `x0`.
    pub w: u32,
    /// Height: one past the bottom foreground row, minus `y0`.
    pub h: u32,
}

impl Mask {
    /// A mask from row-major values (`width * height` of them).
    pub fn from_vec(width: u32, height: u32, data: Vec<bool>) -> Result<Self> {
        check_image_size(width, height)?;
        let expected = width as usize * height as usize;
        if data.len() != expected {
            return Err(CoreError::MaskDataLength {
                len: data.len(),
                width,
                height,
                expected,
            });
        }
        Ok(Self { width, height, data })
    }

    /// A mask from an `[height, width]` array; non-zero is foreground.
    pub fn from_ndarray<T: PartialEq + Default>(array: ndarray::ArrayView2<'_, T>) -> Result<Self> {
        let (h, w) = array.dim();
        let zero = T::default();
        let data = array.iter().map(|v| *v != zero).collect();
        Self::from_vec(w as u32, h as u32, data)
    }

    /// A mask from an 8-bit grey image; non-zero is foreground.
    pub fn from_gray(image: &GrayImage) -> Result<Self> {
        let (w, h) = image.dimensions();
        Self::from_vec(w, h, image.as_raw().iter().map(|&v| v != 0).collect())
    }

    /// A mask from any image as the original reads a mask file: converted to Pillow's L (grey)
    /// and non-zero = foreground ([`crate::image_io::foreground`]) — a 0/255 PNG, a grey image,
    /// or a coloured drawing (any non-black colour marks the region, except the darkest reds and
    /// blues whose luma rounds to 0). Alpha is ignored.
    pub fn from_image(image: &image::DynamicImage) -> Result<Self> {
        let (w, h) = (image.width(), image.height());
        check_image_size(w, h)?;
        Self::from_vec(w, h, crate::image_io::foreground(image))
    }

    /// A mask read from an image file (usually a 0/255 PNG), as [`Mask::from_image`] reads it
    /// (JPEGs decoded as Pillow decodes them).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let (w, h, data) = crate::image_io::open_mask_bits(path)?;
        Self::from_vec(w, h, data)
    }

    /// A scribble read from an image file as the original's demo reads its drawing layer:
    /// alpha > 0 where the file has alpha (a black brush on a transparent layer), else as
    /// [`Mask::open`] ([`crate::image_io::open_scribble_bits`]).
    pub fn open_scribble(path: impl AsRef<Path>) -> Result<Self> {
        let (w, h, data) = crate::image_io::open_scribble_bits(path)?;
        Self::from_vec(w, h, data)
    }

    /// A mask filled inside the half-open rectangle `[x0, x1) × [y0, y1)`.
    pub fn from_rect(width: u32, height: u32, x0: u32, y0: u32, x1: u32, y1: u32) -> Result<Self> {
        check_image_size(width, height)?;
        if x0 >= x1 || y0 >= y1 || x1 > width || y1 > height {
            return Err(CoreError::BadCoordinates(format!(
                "rectangle [{x0}, {x1}) x [{y0}, {y1}) is empty or outside the {width}x{height} image"
            )));
        }
        let mut data = vec![false; width as usize * height as usize];
        for y in y0..y1 {
            let row = y as usize * width as usize;
            data[row + x0 as usize..row + x1 as usize].fill(true);
        }
        Self::from_vec(width, height, data)
    }

    /// Width of the mask, in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height of the mask, in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Row-major values.
    pub fn as_slice(&self) -> &[bool] {
        &self.data
    }

    /// Whether pixel `(x, y)` is foreground. Out-of-range pixels are background.
    pub fn get(&self, x: u32, y: u32) -> bool {
        x < self.width && y < self.height && self.data[y as usize * self.width as usize + x as usize]
    }

    /// Number of foreground pixels.
    pub fn area(&self) -> usize {
        self.data.iter().filter(|&&v| v).count()
    }

    /// Whether no pixel is foreground.
    pub fn is_empty(&self) -> bool {
        !self.data.iter().any(|&v| v)
    }

    /// The bounding box of the foreground, or [`CoreError::EmptyMask`].
    pub fn bbox(&self) -> Result<MaskBox> {
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0u32, 0u32);
        for (i, _) in self.data.iter().enumerate().filter(|(_, v)| **v) {
            let (x, y) = ((i % self.width as usize) as u32, (i / self.width as usize) as u32);
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x + 1);
            y1 = y1.max(y + 1);
        }
        if x0 == u32::MAX {
            return Err(CoreError::EmptyMask);
        }
        Ok(MaskBox {
            x0,
            y0,
            w: x1 - x0,
            h: y1 - y0,
        })
    }

    /// The mask as an 8-bit image with 0 for background and 255 for foreground, the form
    /// upstream resizes into the mask channel.
    pub fn to_gray(&self) -> GrayImage {
        let data = self.data.iter().map(|&v| if v { 255 } else { 0 }).collect();
        GrayImage::from_raw(self.width, self.height, data).expect("length checked at construction")
    }

    /// The sub-mask `[x0, x1) × [y0, y1)`; the rectangle must lie inside the mask.
    pub(crate) fn crop(&self, x0: u32, y0: u32, x1: u32, y1: u32) -> Mask {
        let mut data = Vec::with_capacity(((x1 - x0) * (y1 - y0)) as usize);
        for y in y0..y1 {
            let row = y as usize * self.width as usize;
            data.extend_from_slice(&self.data[row + x0 as usize..row + x1 as usize]);
        }
        Mask {
            width: x1 - x0,
            height: y1 - y0,
            data,
        }
    }

    /// Indices (row-major) of the foreground pixels, in order: numpy's `np.nonzero` order.
    pub fn foreground_pixels(&self) -> Vec<(u32, u32)> {
        let w = self.width as usize;
        self.data
            .iter()
            .enumerate()
            .filter(|(_, v)| **v)
            .map(|(i, _)| ((i % w) as u32, (i / w) as u32))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::MAX_IMAGE_SIDE;

    #[test]
    fn bbox_uses_exclusive_ends() {
        let m = Mask::from_rect(10, 8, 2, 3, 5, 7).unwrap();
        assert_eq!(m.area(), 12);
        assert_eq!(
            m.bbox().unwrap(),
            MaskBox {
                x0: 2,
                y0: 3,
                w: 3,
                h: 4
            }
        );
    }

    #[test]
    fn empty_mask_is_an_error() {
        let m = Mask::from_vec(4, 4, vec![false; 16]).unwrap();
        assert!(m.is_empty());
        assert!(matches!(m.bbox(), Err(CoreError::EmptyMask)));
    }

    #[test]
    fn wrong_length_and_zero_size_are_errors() {
        assert!(matches!(
            Mask::from_vec(4, 4, vec![true; 15]),
            Err(CoreError::MaskDataLength {
                len: 15,
                expected: 16,
                ..
            })
        ));
        assert!(matches!(
            Mask::from_vec(0, 4, vec![]),
            Err(CoreError::ZeroSizedImage { .. })
        ));
        assert!(matches!(
            Mask::from_vec(MAX_IMAGE_SIDE + 1, 1, vec![true; MAX_IMAGE_SIDE as usize + 1]),
            Err(CoreError::ImageTooLarge { .. })
        ));
    }

    #[test]
    fn from_ndarray_treats_nonzero_as_foreground() {
        let a = ndarray::arr2(&[[0u8, 3, 0], [0, 0, 255]]);
        let m = Mask::from_ndarray(a.view()).unwrap();
        assert_eq!((m.width(), m.height()), (3, 2));
        assert_eq!(m.as_slice(), &[false, true, false, false, false, true]);
        assert_eq!(m.foreground_pixels(), vec![(1, 0), (2, 1)]);
    }
}
