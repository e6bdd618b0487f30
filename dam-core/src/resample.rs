//! Pillow-exact resampling of 8-bit images (`Image.resize` with BICUBIC or BILINEAR).
//!
//! Hand-written on purpose: no Rust crate reproduces Pillow bit for bit (the `image` crate's
//! CatmullRom differs by up to 7 grey levels, burn-notes §7.1), and DAM was trained on Pillow's
//! output, so a crop one level off already changes every description slightly. This follows
//! Pillow's `src/libImaging/Resample.c`:
//!
//! * per axis `scale = in / out`, `filterscale = max(scale, 1)`: the kernel's support is
//!   stretched when shrinking (antialiasing);
//! * output `i` has centre `(i + 0.5) * scale`, taps `trunc(centre - support + 0.5)` (≥ 0) to
//!   `trunc(centre + support + 0.5)` (≤ in), tap `x` weight `K((x - centre + 0.5) / filterscale)`,
//!   normalised to sum 1 in f64, then fixed point with 22 fractional bits, rounded half away
//!   from zero;
//! * accumulation starts at 2^21 (rounding), `>> 22`, clipped to 0..=255;
//! * the first pass is stored as 8-bit and the second pass reads that.
//!
//! The pass order changed in Pillow 13 ([`PassOrder`]); DAM's fixtures were made with Pillow
//! 11.3, which always runs the horizontal pass first.

use image::{GrayImage, ImageBuffer, Pixel, RgbImage};
use rayon::prelude::*;

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Resampling filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Pillow `BILINEAR` (2): triangle filter, support 1. SAM's processor uses it.
    Bilinear,
    /// Pillow `BICUBIC` (3): Keys cubic with a = -0.5, support 2. DAM's processor uses it.
    Bicubic,
}

impl Filter {
    /// From Pillow's resample code in a `preprocessor_config.json`.
    pub fn from_pillow_code(code: u32) -> Option<Self> {
        match code {
            2 => Some(Filter::Bilinear),
            3 => Some(Filter::Bicubic),
            _ => None,
        }
    }

    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// Which separable pass runs first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PassOrder {
    /// Pillow 9.4 to 12.x: always horizontal, then vertical. Upstream DAM ran on this.
    #[default]
    HorizontalFirst,
    /// Pillow 13: vertical first when `in_h - out_h > 0` and `in_h - out_h > 2 (in_w - out_w)`.
    Pillow13,
}

/// Per-output-pixel taps along one axis: first input index and fixed-point weights.
struct Taps {
    ksize: usize,
    starts: Vec<usize>,
    counts: Vec<usize>,
    weights: Vec<i32>,
}

fn precompute(in_size: usize, out_size: usize, filter: Filter) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut taps = Taps {
        ksize,
        starts: Vec::with_capacity(out_size),
        counts: Vec::with_capacity(out_size),
        weights: vec![0; out_size * ksize],
    };
    let ss = 1.0 / filterscale;
    let mut k = vec![0.0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C `(int)` truncation toward zero; both are clamped to the input range.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut total = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            total += w;
        }
        let row = &mut taps.weights[xx * ksize..(xx + 1) * ksize];
        for x in 0..n {
            let w = if total != 0.0 { k[x] / total } else { k[x] };
            // Round half away from zero into 22-bit fixed point.
            let scaled = w * (1u32 << PRECISION_BITS) as f64;
            row[x] = if w < 0.0 {
                (scaled - 0.5) as i32
            } else {
                (scaled + 0.5) as i32
            };
        }
        taps.starts.push(xmin);
        taps.counts.push(n);
    }
    taps
}

#[inline]
fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS) << 8 {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

fn horizontal(src: &[u8], w: usize, h: usize, ch: usize, out_w: usize, taps: &Taps) -> Vec<u8> {
    match ch {
        1 => horizontal_ch::<1>(src, w, h, out_w, taps),
        3 => horizontal_ch::<3>(src, w, h, out_w, taps),
        4 => horizontal_ch::<4>(src, w, h, out_w, taps),
        _ => horizontal_any(src, w, h, ch, out_w, taps),
    }
}

/// The horizontal pass for any channel count (slower: the channel loop is outside the taps).
fn horizontal_any(src: &[u8], w: usize, h: usize, ch: usize, out_w: usize, taps: &Taps) -> Vec<u8> {
    let mut out = vec![0u8; out_w * h * ch];
    out.par_chunks_mut(out_w * ch).enumerate().for_each(|(y, out_row)| {
        let src_row = &src[y * w * ch..(y + 1) * w * ch];
        for (xx, out_px) in out_row.chunks_exact_mut(ch).enumerate() {
            let k = &taps.weights[xx * taps.ksize..xx * taps.ksize + taps.counts[xx]];
            let start = taps.starts[xx];
            for (c, o) in out_px.iter_mut().enumerate() {
                let mut acc: i32 = 1 << (PRECISION_BITS - 1);
                for (i, &kw) in k.iter().enumerate() {
                    acc += src_row[(start + i) * ch + c] as i32 * kw;
                }
                *o = clip8(acc);
            }
        }
    });
    out
}

/// The horizontal pass with the channel count known at compile time, so each tap updates
/// all channels' accumulators at once.
fn horizontal_ch<const CH: usize>(src: &[u8], w: usize, h: usize, out_w: usize, taps: &Taps) -> Vec<u8> {
    let mut out = vec![0u8; out_w * h * CH];
    // Rows are independent: split them across threads.
    out.par_chunks_mut(out_w * CH).enumerate().for_each(|(y, out_row)| {
        let src_row = &src[y * w * CH..(y + 1) * w * CH];
        for (xx, out_px) in out_row.chunks_exact_mut(CH).enumerate() {
            let k = &taps.weights[xx * taps.ksize..xx * taps.ksize + taps.counts[xx]];
            let start = taps.starts[xx];
            let window = &src_row[start * CH..(start + k.len()) * CH];
            let mut acc = [1i32 << (PRECISION_BITS - 1); CH];
            for (px, &kw) in window.chunks_exact(CH).zip(k) {
                for c in 0..CH {
                    acc[c] += px[c] as i32 * kw;
                }
            }
            for c in 0..CH {
                out_px[c] = clip8(acc[c]);
            }
        }
    });
    out
}

fn vertical(src: &[u8], w: usize, ch: usize, out_h: usize, taps: &Taps) -> Vec<u8> {
    let stride = w * ch;
    let mut out = vec![0u8; out_h * stride];
    out.par_chunks_mut(stride).enumerate().for_each(|(yy, out_row)| {
        let k = &taps.weights[yy * taps.ksize..yy * taps.ksize + taps.counts[yy]];
        let start = taps.starts[yy];
        let mut acc = vec![1i32 << (PRECISION_BITS - 1); stride];
        for (i, &kw) in k.iter().enumerate() {
            let src_row = &src[(start + i) * stride..(start + i + 1) * stride];
            for (a, &s) in acc.iter_mut().zip(src_row) {
                *a += s as i32 * kw;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    });
    out
}

/// Resizes an interleaved 8-bit image with `ch` channels from `w`×`h` to `out_w`×`out_h`,
/// exactly as Pillow's `Image.resize(size, filter)` (no `box`, no `reducing_gap`).
///
/// # Panics
///
/// If `src.len() != w * h * ch` or a size is zero (a malformed buffer, not image content);
/// [`resize_image`] takes an `image` buffer and cannot fail.
#[allow(clippy::too_many_arguments)]
pub fn resize_u8(
    src: &[u8],
    w: usize,
    h: usize,
    ch: usize,
    out_w: usize,
    out_h: usize,
    filter: Filter,
    order: PassOrder,
) -> Vec<u8> {
    assert_eq!(src.len(), w * h * ch, "resize_u8: buffer length");
    assert!(w > 0 && h > 0 && out_w > 0 && out_h > 0, "resize_u8: zero size");
    let need_h = out_w != w;
    let need_v = out_h != h;
    let vertical_first = order == PassOrder::Pillow13
        && (h as i64 - out_h as i64) > 0
        && (h as i64 - out_h as i64) > 2 * (w as i64 - out_w as i64);
    let run_h = |s: &[u8], rows: usize| horizontal(s, w, rows, ch, out_w, &precompute(w, out_w, filter));
    if vertical_first {
        let tmp = if need_v {
            vertical(src, w, ch, out_h, &precompute(h, out_h, filter))
        } else {
            src.to_vec()
        };
        if need_h { run_h(&tmp, out_h) } else { tmp }
    } else {
        let tmp = if need_h { run_h(src, h) } else { src.to_vec() };
        if need_v {
            vertical(&tmp, out_w, ch, out_h, &precompute(h, out_h, filter))
        } else {
            tmp
        }
    }
}

/// [`resize_u8`] for any 8-bit `image` buffer (RGB, grey, RGBA, …).
pub fn resize_image<P>(
    image: &ImageBuffer<P, Vec<u8>>,
    out_w: u32,
    out_h: u32,
    filter: Filter,
    order: PassOrder,
) -> ImageBuffer<P, Vec<u8>>
where
    P: Pixel<Subpixel = u8>,
{
    let (w, h) = image.dimensions();
    let data = resize_u8(
        image.as_raw(),
        w as usize,
        h as usize,
        P::CHANNEL_COUNT as usize,
        out_w as usize,
        out_h as usize,
        filter,
        order,
    );
    ImageBuffer::from_raw(out_w, out_h, data).expect("resize output length")
}

/// [`resize_u8`] for an RGB image.
pub fn resize_rgb(image: &RgbImage, out_w: u32, out_h: u32, filter: Filter, order: PassOrder) -> RgbImage {
    resize_image(image, out_w, out_h, filter, order)
}

/// [`resize_u8`] for a grey image.
pub fn resize_gray(image: &GrayImage, out_w: u32, out_h: u32, filter: Filter, order: PassOrder) -> GrayImage {
    resize_image(image, out_w, out_h, filter, order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_channel_count_agrees_with_single_channels() {
        // 2 channels (generic path) equal each channel resized on its own (1-channel path).
        let src: Vec<u8> = (0..2 * 17 * 11).map(|i| ((i * 53) % 256) as u8).collect();
        let two = resize_u8(&src, 17, 11, 2, 7, 5, Filter::Bicubic, PassOrder::HorizontalFirst);
        for c in 0..2 {
            let plane: Vec<u8> = src.iter().skip(c).step_by(2).copied().collect();
            let one = resize_u8(&plane, 17, 11, 1, 7, 5, Filter::Bicubic, PassOrder::HorizontalFirst);
            let picked: Vec<u8> = two.iter().skip(c).step_by(2).copied().collect();
            assert_eq!(picked, one);
        }
    }

    #[test]
    fn same_size_is_a_copy() {
        let src: Vec<u8> = (0..60).map(|v| (v * 7 % 256) as u8).collect();
        let out = resize_u8(&src, 5, 4, 3, 5, 4, Filter::Bicubic, PassOrder::HorizontalFirst);
        assert_eq!(out, src);
    }

    #[test]
    fn constant_image_stays_constant() {
        let src = vec![77u8; 13 * 9];
        for (ow, oh) in [(5, 4), (40, 31), (13, 2)] {
            let out = resize_u8(&src, 13, 9, 1, ow, oh, Filter::Bicubic, PassOrder::HorizontalFirst);
            assert!(out.iter().all(|&v| v == 77), "{ow}x{oh}");
        }
    }

    #[test]
    fn bicubic_overshoot_is_clipped() {
        // A hard 0/255 edge upscaled: bicubic overshoots, Pillow clips to 0..=255 and keeps
        // intermediate values at the edge.
        let src = [0u8, 0, 255, 255];
        let out = resize_u8(&src, 4, 1, 1, 16, 1, Filter::Bicubic, PassOrder::HorizontalFirst);
        assert_eq!(out[0], 0);
        assert_eq!(out[15], 255);
        assert!(out.iter().any(|&v| v > 0 && v < 255));
    }

    #[test]
    fn pass_orders_differ_only_under_pillow13_rule() {
        let src: Vec<u8> = (0..40 * 200).map(|i| ((i * 37) % 251) as u8).collect();
        // Tall input shrunk mostly vertically: Pillow 13 goes vertical first.
        let a = resize_u8(&src, 40, 200, 1, 30, 20, Filter::Bicubic, PassOrder::HorizontalFirst);
        let b = resize_u8(&src, 40, 200, 1, 30, 20, Filter::Bicubic, PassOrder::Pillow13);
        assert_ne!(a, b);
        // Upscaling: the rule does not apply, both orders agree.
        let a = resize_u8(&src, 40, 200, 1, 80, 300, Filter::Bicubic, PassOrder::HorizontalFirst);
        let b = resize_u8(&src, 40, 200, 1, 80, 300, Filter::Bicubic, PassOrder::Pillow13);
        assert_eq!(a, b);
    }
}
