//! The cubecl kernel behind [`super::LayerNormOps::layer_norm`].
//!
//! Every tensor is indexed through its strides (cubecl's allocator may pad rows: "pitched"
//! layouts) and sizes come in as arguments, never from a binding's length.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

use crate::row_kernels::grid_row;

/// LayerNorm of one row per cube (one plane per cube: `CUBE_DIM_X == PLANE_DIM`) with the
/// rounding points of [`crate::nn::LayerNorm::forward`]: mean and biased variance in f32
/// (two passes over the row), `(x − mean) / √(var + eps)` rounded to the activation dtype `E`,
/// then `· weight + bias` in `E`. Rows are laid out over [`crate::row_kernels::row_grid`].
///
/// `per_lane` (comptime) picks how the row is read: `0`, once per pass, each lane walking its
/// values (`lane`, `lane + plane`, …) one after another; `k > 0`, once, a lane's `k` values
/// loaded together (unrolled, zeros past `d`) and kept in registers for every pass
/// (`crate::row_kernels::cached_per_lane`). Both do the same sums in the same order: the same
/// results, bit for bit.
#[cube(launch_unchecked)]
pub fn layer_norm_kernel<E: Float>(
    x: &Tensor<E>,
    weight: &Tensor<E>,
    bias: &Tensor<E>,
    out: &mut Tensor<E>,
    rows: u32,
    d: u32,
    eps: f32,
    #[comptime] per_lane: usize,
    #[define(E)] _dtype: ElemType,
) {
    let row = grid_row();
    // Uniform per cube (one plane = one row), so the whole plane leaves together.
    if row >= rows as usize {
        terminate!();
    }
    let d = d as usize;
    let lane = UNIT_POS_X as usize;
    let step = CUBE_DIM_X as usize;
    let (xs, xc) = (row * x.stride(0), x.stride(1));
    let (os, oc) = (row * out.stride(0), out.stride(1));
    let (wc, bc) = (weight.stride(0), bias.stride(0));

    if comptime![per_lane == 0] {
        let mut sum = 0.0f32;
        for i in range_stepped(lane, d, step) {
            sum += f32::cast_from(x[xs + i * xc]);
        }
        let mean = plane_sum(sum) / f32::cast_from(d);
        let mut sq = 0.0f32;
        for i in range_stepped(lane, d, step) {
            let c = f32::cast_from(x[xs + i * xc]) - mean;
            sq += c * c;
        }
        let inv = (plane_sum(sq) / f32::cast_from(d) + eps).inverse_sqrt();
        for i in range_stepped(lane, d, step) {
            let normed = E::cast_from((f32::cast_from(x[xs + i * xc]) - mean) * inv);
            out[os + i * oc] = normed * weight[i * wc] + bias[i * bc];
        }
    } else {
        let mut vals = Array::<f32>::new(per_lane);
        #[unroll]
        for j in 0..per_lane {
            let i = lane + j * step;
            vals[j] = f32::new(0.0);
            if i < d {
                vals[j] = f32::cast_from(x[xs + i * xc]);
            }
        }
        let mut sum = 0.0f32;
        #[unroll]
        for j in 0..per_lane {
            if lane + j * step < d {
                sum += vals[j];
            }
        }
        let mean = plane_sum(sum) / f32::cast_from(d);
        let mut sq = 0.0f32;
        #[unroll]
        for j in 0..per_lane {
            if lane + j * step < d {
                let c = vals[j] - mean;
                sq += c * c;
            }
        }
        let inv = (plane_sum(sq) / f32::cast_from(d) + eps).inverse_sqrt();
        #[unroll]
        for j in 0..per_lane {
            let i = lane + j * step;
            if i < d {
                let normed = E::cast_from((vals[j] - mean) * inv);
                out[os + i * oc] = normed * weight[i * wc] + bias[i * bc];
            }
        }
    }
}
