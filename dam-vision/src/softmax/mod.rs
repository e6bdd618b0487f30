//! A row softmax as one kernel on the cubecl backends, behind the `cube` feature: the core of
//! the [`crate::sdpa::AttentionKernel::FusedSoftmax`] form of the vision attention.
//!
//! Why: on an H100 every vision attention ran burn-cubecl's materialised fallback, whose
//! softmax is ten kernels (scale, max, two NaN guards, subtract, exp, sum, two more guards,
//! divide) over 16 × 729 × 729 scores per view — 780 of an encode's 2 988 kernels and ≈ 20 % of
//! its profiled time (docs/performance.md, "Where a vision encode's time goes"). Here it is one
//! pass per score row: 49 µs instead of 177 µs per attention's softmax on an H100 (2026-11-27),
//! which makes the `fused-softmax` form the vision attention's default on CUDA (see
//! [`crate::sdpa`]).
//!
//! The op goes through burn's backend extension (`#[backend_extension]`): ordinary tensors on
//! the runtime `Device`, registered in burn's fusion stream like any op. [`scaled_softmax`]
//! routes cubecl devices to the kernel and computes the same with burn ops elsewhere.

mod cube;
mod kernel;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

/// The vision tower's own ops as a burn backend extension (implemented for the cubecl backend
/// in `cube.rs`).
#[backend_extension(Cube, Fusion: cfg(feature = "fusion"))]
pub trait VisionSoftmaxOps: Backend {
    /// `softmax(x · scale)` over the last axis of `x` `[R, N]`, rounded as transformers' eager
    /// attention rounds it (see the kernel).
    #[fusion(dtype = x, shape = x)]
    fn scaled_softmax(x: FloatTensor<Self>, scale: f32) -> FloatTensor<Self>;
}

/// `softmax(x · scale)` over the last axis of `x` `[R, N]`: the product rounded to `x`'s dtype,
/// the softmax in f32, the result rounded back — in one kernel on cubecl devices, with burn ops
/// (the same rounding points) elsewhere.
pub fn scaled_softmax(x: Tensor<2>, scale: f64) -> Tensor<2> {
    if dam_core::switch::cubecl_device(&x.device()) {
        return Tensor::from_dispatch(<Dispatch as VisionSoftmaxOps>::scaled_softmax(
            x.into_dispatch(),
            scale as f32,
        ));
    }
    crate::sdpa::scaled_softmax_reference(x, scale)
}
