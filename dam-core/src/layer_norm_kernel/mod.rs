//! LayerNorm over the last axis as one kernel on the cubecl backends, behind the `cube`
//! feature; [`crate::nn::LayerNorm`] routes here when [`enabled`].
//!
//! Why: written with burn ops (f32 statistics, cast back, affine), a LayerNorm is four to six
//! kernels even after burn's fusion; on an H100 a DAM-3B vision encode ran ≈ 130 LayerNorms
//! (two per SigLIP layer and pass, two per adapter, the projector's), ≈ 600 of its 2 988
//! kernels (docs/performance.md, "Where a vision encode's time goes"). Here it is one pass
//! per row. **On by default on CUDA**, off elsewhere: measured on an H100 (2026-11-27,
//! docs/performance.md, "GPU: NVIDIA H100 80GB HBM3 (2026-11-27)") one LayerNorm
//! at SigLIP's shape takes 32 µs instead of 138 µs, the kernel agrees with the burn ops within
//! 5.7e-6 (f32, values up to 24) and the fixtures keep the original's ids through it; other
//! cubecl runtimes are not measured (and need plane operations). [`set_enabled`],
//! `DAM_LAYER_NORM=kernel|ops` and `bench --layer-norm kernel|ops` choose either way.
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

/// Set by [`set_enabled`], else `DAM_LAYER_NORM=kernel|ops`, else `None`: the device's
/// default ([`enabled`]).
static ENABLED: crate::switch::Switch<Option<bool>> = crate::switch::Switch::new("DAM_LAYER_NORM", |v| match v {
    "kernel" => Some(Some(true)),
    "ops" => Some(Some(false)),
    "" => Some(None),
    _ => None,
});

/// Switches every [`crate::nn::LayerNorm`] in this process to the kernel (`true`) or to burn's
/// ops (`false`) on cubecl devices, whatever their default; `DAM_LAYER_NORM=kernel|ops` does
/// the same when this is not called.
pub fn set_enabled(on: bool) {
    ENABLED.set(Some(on));
}

/// Back to the default (or `DAM_LAYER_NORM`) after [`set_enabled`].
pub fn reset() {
    ENABLED.reset();
}

/// Whether LayerNorms on `device` run the kernel: a cubecl device, switched on — by
/// [`set_enabled`] or `DAM_LAYER_NORM`, else by default on CUDA only (where it was measured).
pub fn enabled(device: &Device) -> bool {
    crate::switch::cubecl_device(device) && ENABLED.get().unwrap_or_else(|| crate::switch::cuda_device(device))
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
