//! Reading images and masks the way the original does: `Image.open(path).convert("RGB")` for
//! an image, `convert("L")` then `> 0` for a mask file (Pillow 11). The pixels that enter the
//! focal prompt must be Pillow's, or the model sees a different input.
//!
//! Two places where the `image` crate alone differs from Pillow, and what is done instead:
//!
//! * **JPEG decoding.** Pillow decodes with libjpeg-turbo (accurate integer IDCT, "fancy"
//!   chroma upsampling). The `image` crate's pure-Rust decoder rounds differently: on test
//!   photos it was off by up to 2 levels without chroma subsampling and up to 6 (4:2:0) or 12
//!   (4:2:2) levels with it, on 2–25 % of the pixels. JPEGs are therefore decoded by
//!   libjpeg-turbo's decoder itself, through the `mozjpeg` crate (mozjpeg is a libjpeg-turbo
//!   fork whose changes are in the encoder; built from source by `cc`, without the optional
//!   NASM SIMD): bit-identical to Pillow on every JPEG tested (baseline 4:4:4, 4:2:0, 4:2:2,
//!   greyscale, progressive; `tests/pillow_modes.rs`). CMYK/YCCK JPEGs, which Pillow converts
//!   with its own formula, fall back to the `image` crate (not Pillow-exact).
//! * **Mode conversions** (hand-written here, each rule checked against Pillow 11.3):
//!   - RGB from 16-bit RGB(A) or grey+alpha PNGs: Pillow keeps the high byte of each sample
//!     (`image` rounds `v / 257`); from a 16-bit grey PNG (Pillow's `I;16`) it clips to 255;
//!   - L (for masks) from colour: `(19595·R + 38470·G + 7471·B + 2¹⁵) >> 16`, ITU-R 601-2
//!     luma in Pillow's fixed point — so a pure green or blue mask is foreground (any channel
//!     can mark the region), but a blue of 1–4 or a red of 1 is not, exactly as upstream.
//!
//! Alpha is dropped (Pillow's RGBA → RGB and → L ignore it). PNG, BMP, TIFF and WebP are
//! decoded by the `image` crate (lossless formats decode to the same samples; the lossy WebP
//! test file too).

use std::path::Path;

use image::{DynamicImage, RgbImage};

use crate::error::{CoreError, Result, check_image_size};

/// Reads an image file as 8-bit RGB exactly as Pillow's `Image.open(path).convert("RGB")`.
pub fn open_rgb(path: impl AsRef<Path>) -> Result<RgbImage> {
    from_file(path.as_ref(), decode_rgb)
}

/// Decodes an encoded image (PNG, JPEG) as 8-bit RGB exactly as Pillow's
/// `Image.open(...).convert("RGB")`.
pub fn decode_rgb(bytes: &[u8]) -> std::result::Result<RgbImage, String> {
    if let Some(rgb) = decode_jpeg(bytes)? {
        return Ok(rgb);
    }
    Ok(to_rgb(&decode(bytes)?))
}

/// The foreground of a mask file, `[height × width]` row-major, as the original reads one:
/// `Image.open(path).convert("L")`, non-zero = foreground.
pub fn open_mask_bits(path: impl AsRef<Path>) -> Result<(u32, u32, Vec<bool>)> {
    from_file(path.as_ref(), mask_bits)
}

/// The strokes of a scribble file, `[height × width]` row-major, as the original's demo reads
/// its drawing layer: where the file has an alpha channel, alpha > 0 (the demo draws a black
/// brush on a transparent layer, so the colour says nothing); otherwise as a mask file
/// ([`open_mask_bits`]). 16-bit alpha counts by its high byte, as Pillow reads it.
pub fn open_scribble_bits(path: impl AsRef<Path>) -> Result<(u32, u32, Vec<bool>)> {
    from_file(path.as_ref(), |bytes| {
        if is_jpeg(bytes) {
            return mask_bits(bytes);
        }
        let image = decode(bytes)?;
        let bits = match &image {
            DynamicImage::ImageLumaA16(_) | DynamicImage::ImageRgba16(_) => {
                image.to_rgba16().pixels().map(|p| p.0[3] >> 8 != 0).collect()
            }
            _ if image.color().has_alpha() => image.to_rgba8().pixels().map(|p| p.0[3] != 0).collect(),
            _ => foreground(&image),
        };
        Ok((image.width(), image.height(), bits))
    })
}

/// Pillow's `convert("L")` `!= 0` of an encoded image (JPEGs decoded as Pillow decodes them).
fn mask_bits(bytes: &[u8]) -> std::result::Result<(u32, u32, Vec<bool>), String> {
    Ok(match decode_jpeg(bytes)? {
        Some(rgb) => (rgb.width(), rgb.height(), rgb_foreground(&rgb)),
        None => {
            let image = decode(bytes)?;
            (image.width(), image.height(), foreground(&image))
        }
    })
}

/// Reads `path` once and hands its bytes to `parse`; errors name the file.
fn from_file<T>(path: &Path, parse: impl FnOnce(&[u8]) -> std::result::Result<T, String>) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, e.to_string()))?;
    parse(&bytes).map_err(|reason| file_error(path, reason))
}

/// Pillow's `convert("RGB")` of a decoded image (see the module docs for the 16-bit rules).
pub fn to_rgb(image: &DynamicImage) -> RgbImage {
    let (w, h) = (image.width(), image.height());
    let high = |v: u16| (v >> 8) as u8;
    let from = |px: Vec<u8>| RgbImage::from_raw(w, h, px).expect("3 samples per pixel");
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb.clone(),
        DynamicImage::ImageRgb16(rgb) => from(rgb.as_raw().iter().map(|&v| high(v)).collect()),
        DynamicImage::ImageRgba16(rgba) => from(rgba.pixels().flat_map(|p| [0, 1, 2].map(|c| high(p.0[c]))).collect()),
        DynamicImage::ImageLuma16(grey) => from(grey.as_raw().iter().flat_map(|&v| [v.min(255) as u8; 3]).collect()),
        DynamicImage::ImageLumaA16(grey) => from(grey.pixels().flat_map(|p| [high(p.0[0]); 3]).collect()),
        // 8-bit grey (replicated), RGBA and grey+alpha (alpha dropped) agree with Pillow.
        other => other.to_rgb8(),
    }
}

/// Pillow's `convert("L")` of a decoded image, then `!= 0`, per pixel.
pub fn foreground(image: &DynamicImage) -> Vec<bool> {
    match image {
        // Grey: L itself; from 16 bits Pillow clips (I;16 → L) or keeps the high byte (LA).
        DynamicImage::ImageLuma8(grey) => grey.as_raw().iter().map(|&v| v != 0).collect(),
        DynamicImage::ImageLumaA8(grey) => grey.pixels().map(|p| p.0[0] != 0).collect(),
        DynamicImage::ImageLuma16(grey) => grey.as_raw().iter().map(|&v| v != 0).collect(),
        other => rgb_foreground(&to_rgb(other)),
    }
}

/// Pillow's RGB → L, then `!= 0`, per pixel.
fn rgb_foreground(rgb: &RgbImage) -> Vec<bool> {
    rgb.pixels().map(|p| luma(p.0) != 0).collect()
}

/// Pillow's RGB → L: ITU-R 601-2 luma in 16-bit fixed point, rounded.
fn luma([r, g, b]: [u8; 3]) -> u8 {
    ((19595 * r as u32 + 38470 * g as u32 + 7471 * b as u32 + 0x8000) >> 16) as u8
}

fn decode(bytes: &[u8]) -> std::result::Result<DynamicImage, String> {
    let image = image::load_from_memory(bytes).map_err(|e| e.to_string())?;
    check_image_size(image.width(), image.height()).map_err(|e| e.to_string())?;
    Ok(image)
}

/// A JPEG decoded by libjpeg-turbo's decoder (through `mozjpeg`) as RGB; `None` when `bytes`
/// is not a JPEG, or is a CMYK/YCCK one (left to the `image` crate).
fn decode_jpeg(bytes: &[u8]) -> std::result::Result<Option<RgbImage>, String> {
    if !is_jpeg(bytes) {
        return Ok(None);
    }
    // libjpeg reports fatal errors by unwinding out of its error handler (mozjpeg's design:
    // `resume_unwind`, so no panic message is printed); they end here as an `Err`.
    let decoded = std::panic::catch_unwind(|| -> std::result::Result<Option<RgbImage>, String> {
        let jpeg = mozjpeg::Decompress::new_mem(bytes).map_err(|e| e.to_string())?;
        if matches!(
            jpeg.color_space(),
            mozjpeg::ColorSpace::JCS_CMYK | mozjpeg::ColorSpace::JCS_YCCK
        ) {
            return Ok(None);
        }
        let (w, h) = (jpeg.width() as u32, jpeg.height() as u32);
        check_image_size(w, h).map_err(|e| e.to_string())?;
        let mut started = jpeg.rgb().map_err(|e| e.to_string())?;
        let pixels = started.read_scanlines::<u8>().map_err(|e| e.to_string())?;
        started.finish().map_err(|e| e.to_string())?;
        RgbImage::from_raw(w, h, pixels)
            .map(Some)
            .ok_or_else(|| "the JPEG decoder returned fewer pixels than the header declares".to_string())
    });
    match decoded {
        Ok(result) => result,
        Err(payload) => Err(payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "libjpeg fatal error".to_string())),
    }
}

fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

fn file_error(path: &Path, reason: String) -> CoreError {
    CoreError::ImageFile {
        path: path.to_path_buf(),
        reason,
    }
}
