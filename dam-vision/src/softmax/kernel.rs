//! The cubecl kernel behind [`super::VisionSoftmaxOps::scaled_softmax`].
//!
//! Every tensor is indexed through its strides (cubecl's allocator may pad rows: "pitched"
//! layouts) and sizes come in as arguments, never from a binding's length.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use dam_core::row_kernels::grid_row;

/// `softmax(x · scale)` of one row per cube (one plane per cube: `CUBE_DIM_X == PLANE_DIM`),
/// rounded as transformers' eager SigLIP attention rounds it:
/// `(q·kᵀ) * scale` is a product in the activation dtype `E` (computed in f32, rounded to `E`),
/// `softmax(…, dtype=float32)` works in f32 on those rounded values, and `.to(q.dtype)` rounds
/// the probabilities back to `E`. Rows are laid out over `dam_core::row_kernels::row_grid` (a
/// batch of views has more score rows than one grid axis holds on wgpu).
///
/// `per_lane` (comptime) picks how the row is read: `0`, once per pass (maximum, sum,
/// normalise), each lane walking its scores one after another; `k > 0`, once, a lane's `k`
/// scores loaded together (unrolled) and kept in registers, then their exponentials
/// (`dam_core::row_kernels::cached_per_lane`). The same operations in the same order: the
/// same results, bit for bit.
#[cube(launch_unchecked)]
pub fn scaled_softmax_kernel<E: Float>(
    x: &Tensor<E>,
    out: &mut Tensor<E>,
    rows: u32,
    n: u32,
    scale: f32,
    #[comptime] per_lane: usize,
    #[define(E)] _dtype: ElemType,
) {
    let row = grid_row();
    // Uniform per cube (one plane = one row), so the whole plane leaves together.
    if row >= rows as usize {
        terminate!();
    }
    let n = n as usize;
    let lane = UNIT_POS_X as usize;
    let step = CUBE_DIM_X as usize;
    let (xs, xc) = (row * x.stride(0), x.stride(1));
    let (os, oc) = (row * out.stride(0), out.stride(1));

    if comptime![per_lane == 0] {
        // Pass 1: the row's maximum of the scaled (and rounded) scores.
        let mut m = f32::new(-1.0e30);
        for i in range_stepped(lane, n, step) {
            let s = f32::cast_from(E::cast_from(f32::cast_from(x[xs + i * xc]) * scale));
            m = max(m, s);
        }
        let top = plane_max(m);
        // Pass 2: the sum of exponentials. Pass 3: normalise and round to `E`.
        let mut sum = f32::new(0.0);
        for i in range_stepped(lane, n, step) {
            let s = f32::cast_from(E::cast_from(f32::cast_from(x[xs + i * xc]) * scale));
            sum += (s - top).exp();
        }
        let inv = 1.0f32 / plane_sum(sum);
        for i in range_stepped(lane, n, step) {
            let s = f32::cast_from(E::cast_from(f32::cast_from(x[xs + i * xc]) * scale));
            out[os + i * oc] = E::cast_from((s - top).exp() * inv);
        }
    } else {
        // The scaled (and rounded) scores; past the row's end the maximum's start value, which
        // no step below reads.
        let mut vals = Array::<f32>::new(per_lane);
        #[unroll]
        for j in 0..per_lane {
            let i = lane + j * step;
            vals[j] = f32::new(-1.0e30);
            if i < n {
                vals[j] = f32::cast_from(E::cast_from(f32::cast_from(x[xs + i * xc]) * scale));
            }
        }
        let mut m = f32::new(-1.0e30);
        #[unroll]
        for j in 0..per_lane {
            if lane + j * step < n {
                m = max(m, vals[j]);
            }
        }
        let top = plane_max(m);
        let mut sum = f32::new(0.0);
        #[unroll]
        for j in 0..per_lane {
            if lane + j * step < n {
                vals[j] = (vals[j] - top).exp();
                sum += vals[j];
            }
        }
        let inv = 1.0f32 / plane_sum(sum);
        #[unroll]
        for j in 0..per_lane {
            let i = lane + j * step;
            if i < n {
                out[os + i * oc] = E::cast_from(vals[j] * inv);
            }
        }
    }
}
