//! `SamImageProcessor.post_process_masks` on the host: torch's bilinear interpolation
//! (`align_corners=False`, no antialias) to the padded input size, crop to the resized image,
//! bilinear again to the original size, threshold `> 0`.

/// Source taps and weights of torch's bilinear interpolation along one axis.
struct Axis {
    i0: Vec<usize>,
    i1: Vec<usize>,
    l0: Vec<f32>,
    l1: Vec<f32>,
}

/// Torch `upsample_bilinear2d` (CPU) index arithmetic in f32: `scale = in / out`,
/// `src = max(scale (dst + 0.5) − 0.5, 0)`, `i0 = min(⌊src⌋, in − 1)`,
/// `i1 = i0 + (i0 < in − 1)`, `λ1 = src − i0`, `λ0 = 1 − λ1`; a copy when `in == out`.
/// Only the first `count` outputs are computed (a crop of the result).
fn axis(input: usize, output: usize, count: usize) -> Axis {
    let mut a = Axis {
        i0: Vec::with_capacity(count),
        i1: Vec::with_capacity(count),
        l0: Vec::with_capacity(count),
        l1: Vec::with_capacity(count),
    };
    let scale = input as f32 / output as f32;
    for dst in 0..count {
        if input == output {
            a.i0.push(dst);
            a.i1.push(dst);
            a.l0.push(1.0);
            a.l1.push(0.0);
            continue;
        }
        let src = (scale * (dst as f32 + 0.5) - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(input - 1);
        let l1 = (src - i0 as f32).clamp(0.0, 1.0);
        a.i0.push(i0);
        a.i1.push(if i0 < input - 1 { i0 + 1 } else { i0 });
        a.l0.push(1.0 - l1);
        a.l1.push(l1);
    }
    a
}

/// `F.interpolate(x, (out_h, out_w), mode="bilinear", align_corners=False)` of one
/// `in_h`×`in_w` channel, keeping only the top-left `keep_h`×`keep_w` of the result.
fn bilinear_cropped(
    src: &[f32],
    (in_h, in_w): (usize, usize),
    (out_h, out_w): (usize, usize),
    (keep_h, keep_w): (usize, usize),
) -> Vec<f32> {
    let ay = axis(in_h, out_h, keep_h);
    let ax = axis(in_w, out_w, keep_w);
    let mut out = Vec::with_capacity(keep_h * keep_w);
    for y in 0..keep_h {
        let r0 = &src[ay.i0[y] * in_w..(ay.i0[y] + 1) * in_w];
        let r1 = &src[ay.i1[y] * in_w..(ay.i1[y] + 1) * in_w];
        let (h0, h1) = (ay.l0[y], ay.l1[y]);
        for x in 0..keep_w {
            let (x0, x1, w0, w1) = (ax.i0[x], ax.i1[x], ax.l0[x], ax.l1[x]);
            out.push(h0 * (w0 * r0[x0] + w1 * r0[x1]) + h1 * (w0 * r1[x0] + w1 * r1[x1]));
        }
    }
    out
}

/// Torch bilinear resize (`align_corners=False`, no antialias) of one row-major channel.
pub fn torch_bilinear_resize(src: &[f32], in_size: (usize, usize), out_size: (usize, usize)) -> Vec<f32> {
    bilinear_cropped(src, in_size, out_size, out_size)
}

/// Sizes that [`post_process_mask`] needs, all as (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostProcessSizes {
    /// The low-resolution mask (4g × 4g).
    pub low_res: (usize, usize),
    /// The processor's `pad_size` (S × S).
    pub pad: (usize, usize),
    /// The resized image inside the padding (`reshaped_input_sizes`).
    pub reshaped: (usize, usize),
    /// The original image (`original_sizes`).
    pub original: (usize, usize),
}

/// `post_process_masks(..., binarize=False)` of one low-resolution mask: logits at the
/// original size, row-major `H × W`. Binarise with `> 0`.
pub fn post_process_mask(low_res: &[f32], sizes: PostProcessSizes) -> Vec<f32> {
    let keep = (sizes.reshaped.0.min(sizes.pad.0), sizes.reshaped.1.min(sizes.pad.1));
    let padded = bilinear_cropped(low_res, sizes.low_res, sizes.pad, keep);
    torch_bilinear_resize(&padded, keep, sizes.original)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_a_copy_and_upsampling_interpolates() {
        let src = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(torch_bilinear_resize(&src, (2, 2), (2, 2)), src.to_vec());
        // torch: F.interpolate([[1, 2]], size=4, bilinear) = [1, 1.25, 1.75, 2].
        let up = torch_bilinear_resize(&[1.0, 2.0], (1, 2), (1, 4));
        assert_eq!(up, vec![1.0, 1.25, 1.75, 2.0]);
    }
}
