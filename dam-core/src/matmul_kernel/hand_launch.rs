//! [`super::hand`]'s kernel launched through cubecl as kernel text
//! ([`crate::precompiled`]: the `cuda-nvrtc` build compiles it with NVRTC; the LLVM build and
//! other runtimes refuse it, which the availability probe in `super` turns into "not here").

use burn::backend::TensorMetadata;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::{DType, Shape};
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl::prelude::CubeDim;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

use super::hand::{ENTRY_POINT, HAND_VARIANTS, SOURCE, THREADS, args};
use crate::precompiled::{PrecompiledKernel, text_hash};

const SOURCE_HASH: u64 = text_hash(SOURCE);

/// `t` with rows the kernel can read: unit column stride, a row stride that keeps 16-byte
/// rows, a 16-byte aligned start, not storage-tiled — as it is, or copied into rows (a copy
/// `into_contiguous` skips for a tensor already contiguous: `gemm_hand` checks the start
/// again).
fn readable_rows(t: CubeTensor) -> CubeTensor {
    let ok = |t: &CubeTensor| {
        let strides = t.meta.strides();
        let rank = strides.len();
        !t.meta.is_tiled()
            && strides[rank - 1] == 1
            && (rank < 2 || strides[rank - 2].is_multiple_of(8))
            && t.handle.offset_start.unwrap_or(0).is_multiple_of(16)
    };
    if ok(&t) { t } else { into_contiguous(t) }
}

/// `x [m, k] · w [k, n] (+ bias [n]) (then GELU)` through `HAND_VARIANTS[variant]`; bf16 only.
/// An `Err` says why it did not launch (the caller runs burn's product instead). A launch
/// the device refuses (the LLVM build, another runtime) shows on the output's buffer, as
/// any failed launch does in cubecl.
pub fn gemm_hand(
    x: CubeTensor,
    w: CubeTensor,
    bias: Option<CubeTensor>,
    gelu: bool,
    variant: usize,
) -> Result<CubeTensor, String> {
    let dtype = x.dtype;
    if dtype != DType::BF16 {
        return Err(format!("the kernel is bf16 only, not {dtype:?}"));
    }
    if variant >= HAND_VARIANTS.len() {
        return Err(format!("no variant {variant}"));
    }
    let (xs, ws) = (x.shape(), w.shape());
    if xs.num_dims() != 2 || ws.num_dims() != 2 || xs[1] != ws[0] {
        return Err(format!(
            "not a product of two matrices: {:?} · {:?}",
            xs.as_slice(),
            ws.as_slice()
        ));
    }
    let (m, k, n) = (xs[0], xs[1], ws[1]);
    if let Some(why) = super::hand::unsupported(m, n, k) {
        return Err(why);
    }
    // The weight (and bias) may be stored in another float type than the activations.
    let cast = |t: CubeTensor| {
        if t.dtype != dtype {
            CubeBackend::float_cast(t, dtype.into())
        } else {
            t
        }
    };
    let x = readable_rows(x);
    let w = readable_rows(cast(w));
    let bias = bias.map(|b| readable_rows(cast(b)));
    if let Some(b) = &bias
        && b.shape().as_slice() != [n]
    {
        return Err(format!("bias {:?} for {n} columns", b.shape().as_slice()));
    }
    let (sx, sw) = (x.meta.strides()[0], w.meta.strides()[0]);
    for (name, t, stride, cols) in [("x", &x, sx, k), ("w", &w, sw, n)] {
        if stride < cols || !stride.is_multiple_of(8) {
            return Err(format!("{name}'s rows are {stride} elements apart for {cols} columns"));
        }
        // A contiguous view at an odd offset comes out of `readable_rows` as it went in; the
        // kernel's 16-byte copies need the start aligned.
        let offset = t.handle.offset_start.unwrap_or(0);
        if !offset.is_multiple_of(16) {
            return Err(format!(
                "{name} starts {offset} bytes into its buffer (not 16-byte aligned)"
            ));
        }
    }

    let client = x.client.clone();
    let out_handle = client.empty(m * n * dtype.size());
    let out = CubeTensor::new_contiguous(client.clone(), x.device.clone(), Shape::new([m, n]), out_handle, dtype);
    let words = args(m, n, k, sx, sw, n, bias.is_some(), gelu);
    // Without bias the flag is off and x stands in for the buffer, never read.
    let bias_handle = bias.as_ref().map_or(&x.handle, |b| &b.handle);
    PrecompiledKernel {
        source: |variant| HAND_VARIANTS[variant].source(),
        entry_point: ENTRY_POINT,
        cube_dim: CubeDim::new_1d(THREADS),
        key: (SOURCE_HASH, variant),
    }
    .launch(
        &client,
        HAND_VARIANTS[variant].grid(m, n),
        &[&x.handle, &w.handle, bias_handle],
        &out.handle,
        words,
    );
    Ok(out)
}
