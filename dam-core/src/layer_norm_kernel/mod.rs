//! LayerNorm over the last axis as one kernel on the cubecl backends, behind the `cube`
//! feature; [`crate::nn::LayerNorm`] routes here when [`enabled`].
//!
//! Why: written with burn ops (f32 statistics, cast back, affine), a LayerNorm is four to six
//! kernels even after burn's fusion; on an H100 a DAM-3B vision encode ran ≈ 130 LayerNorms
//! (two per SigLIP layer and pass, two per adapter, the projector's), ≈ 600 of its 2 988
//! kernels (docs/performance.md, "Where a vision encode's time goes"). Here it is one pass
//! per row. **Off by default** until a GPU run measures it: [`set_enabled`],
//! `DAM_LAYER_NORM=kernel`, `bench --layer-norm kernel`.
//!
//! The op goes through burn's backend extension (`#[backend_extension]`): ordinary tensors on
//! the runtime `Device`, registered in burn's fusion stream like any op.

mod cube;
mod kernel;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::{Device, Tensor};

/// LayerNorm as a burn backend extension (implemented for the cubecl backend in `cube.rs`).
#[backend_extension(Cube, Fusion: cfg(feature = "fusion"))]
pub trait LayerNormOps: Backend {
    /// LayerNorm of every row of `x` `[R, D]` with `weight` and `bias` `[D]`, rounded as
    /// [`crate::nn::LayerNorm::forward`] rounds it (see the kernel).
    #[fusion(dtype = x, shape = x)]
    fn layer_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self>;
}

/// Set by [`set_enabled`], else `DAM_LAYER_NORM=kernel` (or `ops`, the default), else off.
static ENABLED: crate::switch::Switch<bool> = crate::switch::Switch::new("DAM_LAYER_NORM", |v| match v {
    "kernel" => Some(true),
    "ops" | "" => Some(false),
    _ => None,
});

/// Switches every [`crate::nn::LayerNorm`] in this process to the kernel on cubecl devices
/// (an experiment until measured on a GPU; `DAM_LAYER_NORM=kernel` does the same when this is
/// not called).
pub fn set_enabled(on: bool) {
    ENABLED.set(on);
}

/// Whether LayerNorms on `device` run the kernel: a cubecl device, and switched on.
pub fn enabled(device: &Device) -> bool {
    ENABLED.get() && crate::switch::cubecl_device(device)
}

/// [`LayerNormOps::layer_norm`] on tensors: `x` `[R, D]`, `weight` / `bias` `[D]`.
pub fn layer_norm(x: Tensor<2>, weight: Tensor<1>, bias: Tensor<1>, eps: f64) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as LayerNormOps>::layer_norm(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        eps as f32,
    ))
}
