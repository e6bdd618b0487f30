//! [`super::hand`]'s kernel launched through cubecl: a [`CubeKernel`] whose
//! [`source`](CubeKernel::source) is the variant's CUDA C++ (cubecl-cuda hands it to NVRTC on
//! the build whose compiler is CUDA C++, and refuses it on the LLVM build and on other
//! runtimes — a compilation error the availability probe in `super` turns into "not here").
//!
//! What cubecl does with a precompiled kernel, read in cubecl 0.11.3 (`cubecl-server`
//! `kernel.rs`, `cubecl-cuda` `compute/context.rs` and `server.rs`): the definition is never
//! compiled, only its settings read (the block size); the module loads with **no dynamic
//! shared memory** (hence the variants' static rings); the launch's parameters are the
//! buffers in the order bound, then — the info words having no dynamic part — those words
//! by value as one parameter (a device with grid constants, every CUDA device from sm_70).

use burn::backend::TensorMetadata;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::{DType, Shape};
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl::ir::attributes::BufferIOAttr;
use burn_cubecl::cubecl::ir::metadata::Info;
use burn_cubecl::cubecl::ir::{AddressType, ElemType, Scope, UIntKind};
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::server::{KernelArguments, MetadataBindingInfo};
use burn_cubecl::cubecl::{CubeKernel, PrecompiledSource};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

use super::hand::{ENTRY_POINT, HAND_VARIANTS, THREADS, args};

/// FNV-1a of the kernel's text: part of the kernel's id, so a compiled artifact cached on
/// disk never outlives an edit of the `.cu` (cubecl keys every cache by the id alone).
const fn source_hash() -> u64 {
    let bytes = super::hand::SOURCE.as_bytes();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

const SOURCE_HASH: u64 = source_hash();

/// `HAND_VARIANTS[variant]` as a cubecl kernel.
struct GemmHand {
    variant: usize,
}

impl KernelMetadata for GemmHand {
    fn id(&self) -> KernelId {
        KernelId::new::<Self>()
            .info((self.variant, SOURCE_HASH))
            .cube_dim(CubeDim::new_1d(THREADS).0)
    }

    fn address_type(&self) -> ElemType {
        UIntKind::U32.into()
    }
}

impl CubeKernel for GemmHand {
    /// Settings only (the block size): a precompiled kernel's definition is never compiled.
    fn define(&self) -> KernelDefinition {
        let settings = KernelSettings::new(CubeDim::new_1d(THREADS).0, ExecutionMode::Checked, AddressType::U32);
        KernelDefinition {
            body: Scope::root(settings.clone()),
            settings,
            info: Info::default(),
        }
    }

    fn source(&self) -> Option<PrecompiledSource> {
        Some(PrecompiledSource {
            source: HAND_VARIANTS[self.variant].source(),
            entrypoint_name: ENTRY_POINT.to_string(),
            lang: "cuda",
        })
    }
}

/// `t` with rows the kernel can read: unit column stride, a row stride that keeps 16-byte
/// rows, a 16-byte aligned start, not storage-tiled — as it is, or copied into rows.
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
    for (name, stride, cols) in [("x", sx, k), ("w", sw, n)] {
        if stride < cols || !stride.is_multiple_of(8) {
            return Err(format!("{name}'s rows are {stride} elements apart for {cols} columns"));
        }
    }

    let client = x.client.clone();
    let out_handle = client.empty(m * n * dtype.size());
    let out = CubeTensor::new_contiguous(client.clone(), x.device.clone(), Shape::new([m, n]), out_handle, dtype);
    let words = args(m, n, k, sx, sw, n, bias.is_some(), gelu);
    let (gx, gy) = HAND_VARIANTS[variant].grid(m, n);
    let bias_binding = match &bias {
        Some(b) => b.handle.clone().binding(),
        // Not read (the flag is off); x stands in so the parameter list keeps its shape.
        None => x.handle.clone().binding(),
    };
    let read = BufferIOAttr::ReadOnly;
    let bindings = KernelArguments::new()
        .with_buffer_io(x.handle.clone().binding(), read)
        .with_buffer_io(w.handle.clone().binding(), read)
        .with_buffer_io(bias_binding, read)
        .with_buffer_io(out.handle.clone().binding(), BufferIOAttr::WriteOnly)
        .with_info(MetadataBindingInfo {
            dynamic_metadata_offset: words.len(),
            data: words,
        });
    client.launch(Box::new(GemmHand { variant }), CubeCount::Static(gx, gy, 1), bindings);
    Ok(out)
}
