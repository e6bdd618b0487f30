//! [`crate::hand_attention`]'s kernel launched through cubecl as kernel text
//! ([`dam_core::precompiled`]: the `cuda-nvrtc` build compiles it with NVRTC; the LLVM build
//! and other runtimes refuse it, which [`super::hand_available`]'s probe turns into "not
//! here").

use burn::backend::TensorMetadata;
use burn::tensor::DType;
use burn_cubecl::cubecl::prelude::CubeDim;
use burn_cubecl::tensor::CubeTensor;
use dam_core::precompiled::{PrecompiledKernel, text_hash};
use dam_core::row_kernels::dense_like;

use crate::hand_attention::{BLOCK, ENTRY_POINT, SOURCE, args, grid, unsupported};

const SOURCE_HASH: u64 = text_hash(SOURCE);

/// `softmax(q·kᵀ · scale)·v` for q `[B, H, Sq, 72]`, k/v `[B, H, Skv, 72]` (bf16, any strides)
/// through the kernel; an `Err` says why it did not launch (the caller computes another
/// form). A launch the device refuses shows on the output's buffer.
pub fn flash_hand(q: CubeTensor, k: CubeTensor, v: CubeTensor, scale: f32) -> Result<CubeTensor, String> {
    let (qd, kd) = (q.shape().dims::<4>(), k.shape().dims::<4>());
    if let Some(why) = unsupported(
        qd,
        kd,
        q.dtype == DType::BF16 && k.dtype == DType::BF16 && v.dtype == DType::BF16,
    ) {
        return Err(why);
    }
    if v.shape().dims::<4>() != kd {
        return Err(format!("v {:?} is not shaped as k {kd:?}", v.shape().as_slice()));
    }
    if [&q, &k, &v].iter().any(|t| t.meta.is_tiled()) {
        return Err("a storage-tiled operand".into());
    }
    let out = dense_like(&q);
    let stride = |t: &CubeTensor| -> [usize; 4] {
        let s = t.meta.strides();
        [s[0], s[1], s[2], s[3]]
    };
    let words = args(
        qd[1],
        qd[2],
        kd[2],
        scale,
        [stride(&q), stride(&k), stride(&v), stride(&out)],
    );
    PrecompiledKernel {
        source: |_| SOURCE.to_string(),
        entry_point: ENTRY_POINT,
        cube_dim: CubeDim::new_2d(BLOCK.0, BLOCK.1),
        key: (SOURCE_HASH, 0),
    }
    .launch(
        &q.client,
        grid(qd[0], qd[1], qd[2]),
        &[&q.handle, &k.handle, &v.handle],
        &out.handle,
        words,
    );
    Ok(out)
}
