//! [`crate::hand_attention`]'s kernel launched through cubecl: a [`CubeKernel`] whose
//! [`source`](CubeKernel::source) is `flash_hand.cu` — NVRTC compiles it on the build whose
//! compiler is CUDA C++ (`cuda-nvrtc`); the LLVM build and other runtimes refuse it, which
//! [`super::hand_available`]'s probe turns into "not here". The launch layout is the one
//! `dam_core::matmul_kernel::hand_launch` documents: the buffers in order, then the info
//! words by value (no dynamic part), no dynamic shared memory (this kernel's is static).

use burn::backend::TensorMetadata;
use burn::tensor::DType;
use burn_cubecl::cubecl::ir::attributes::BufferIOAttr;
use burn_cubecl::cubecl::ir::metadata::Info;
use burn_cubecl::cubecl::ir::{AddressType, ElemType, Scope, UIntKind};
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::server::{KernelArguments, MetadataBindingInfo};
use burn_cubecl::cubecl::{CubeKernel, PrecompiledSource};
use burn_cubecl::tensor::CubeTensor;

use dam_core::row_kernels::dense_like;

use crate::hand_attention::{BLOCK, ENTRY_POINT, SOURCE, args, grid, unsupported};

/// FNV-1a of the kernel's text: part of the kernel's id, so a compiled artifact cached on
/// disk never outlives an edit of the `.cu`.
const SOURCE_HASH: u64 = {
    let bytes = SOURCE.as_bytes();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
};

/// `flash_hand.cu` as a cubecl kernel.
struct FlashHand;

impl KernelMetadata for FlashHand {
    fn id(&self) -> KernelId {
        KernelId::new::<Self>()
            .info(SOURCE_HASH)
            .cube_dim(CubeDim::new_2d(BLOCK.0, BLOCK.1).0)
    }

    fn address_type(&self) -> ElemType {
        UIntKind::U32.into()
    }
}

impl CubeKernel for FlashHand {
    /// Settings only (the block size): a precompiled kernel's definition is never compiled.
    fn define(&self) -> KernelDefinition {
        let settings = KernelSettings::new(
            CubeDim::new_2d(BLOCK.0, BLOCK.1).0,
            ExecutionMode::Checked,
            AddressType::U32,
        );
        KernelDefinition {
            body: Scope::root(settings.clone()),
            settings,
            info: Info::default(),
        }
    }

    fn source(&self) -> Option<PrecompiledSource> {
        Some(PrecompiledSource {
            source: SOURCE.to_string(),
            entrypoint_name: ENTRY_POINT.to_string(),
            lang: "cuda",
        })
    }
}

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
    let (gx, gy) = grid(qd[0], qd[1], qd[2]);
    let read = BufferIOAttr::ReadOnly;
    let bindings = KernelArguments::new()
        .with_buffer_io(q.handle.clone().binding(), read)
        .with_buffer_io(k.handle.clone().binding(), read)
        .with_buffer_io(v.handle.clone().binding(), read)
        .with_buffer_io(out.handle.clone().binding(), BufferIOAttr::WriteOnly)
        .with_info(MetadataBindingInfo {
            dynamic_metadata_offset: words.len(),
            data: words,
        });
    q.client
        .launch(Box::new(FlashHand), CubeCount::Static(gx, gy, 1), bindings);
    Ok(out)
}
