//! The flash kernel compiled to PTX **without a device** (cubecl's LLVM compiler, the one the
//! CUDA runtime uses by default), for an NVIDIA architecture chosen here: what a development
//! machine without a GPU can check of the tensor-core variant — that it expands (the
//! fragments, the shared tiles, the comptime loops), lowers to the tensor-core instructions
//! it is meant to (`wmma.mma.sync … m16n16k16.f32.bf16.bf16.f32`, row·col for `q·kᵀ`, row·row
//! for `p·v`) and fits the shared memory a cube may take. Not whether its numbers are right:
//! `bench --check-vision` on a GPU compares it with the plain-loop variant.
//!
//! The same kernel as **CUDA C++** ([`flash_cpp`]): what cubecl-cuda's other compiler (the
//! facade's `cuda-nvrtc`) hands NVRTC at run time. NVRTC is a host library, so
//! `scripts/nvrtc-compile.py` compiles that text to PTX here too (PyPI's
//! `nvidia-cuda-nvrtc-cu12`): whether NVRTC takes the kernel, how long it takes, and — through
//! `ptxas` — what the two compilers' machine code differs in.
//!
//! Behind the `ptx` feature (on with the facade's `cuda`, which links the same LLVM); `bench
//! --flash-ptx DIR` writes the PTX, the C++ and a summary.

use std::sync::Arc;

use burn::tensor::DType;
use burn_cubecl::cubecl::ir::features::{Features, MmaConfig};
use burn_cubecl::cubecl::ir::nvidia::SmArch;
use burn_cubecl::cubecl::ir::{DeviceIdentity, ElemType, FloatKind, HardwareProperties, MemoryDeviceProperties};
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::{Compiler, CubeKernel};
use cubecl_cuda::compiler::CudaBackend;
use cubecl_cuda::{CudaCompilationOptions, CudaCompiler, CudaRepresentation};
use cubecl_llvm::nvptx::ptx_version::PtxVersion;
use cubecl_llvm::{LlvmTarget, PlironArtifact, PlironCompiler, PlironOptions};

use super::kernel;

/// One compiled form of the kernel.
#[derive(Clone, Debug)]
pub struct FlashPtx {
    /// The PTX assembly.
    pub ptx: String,
    /// Shared memory a cube takes, in bytes (what the compiler reports).
    pub shared_memory_bytes: usize,
    /// Planes per cube it was compiled for.
    pub planes: usize,
}

/// The kernel as CUDA C++ (see the module docs).
#[derive(Clone, Debug)]
pub struct FlashCpp {
    /// The CUDA C++ source, as cubecl-cuda's C++ backend hands it to NVRTC.
    pub source: String,
    /// Planes per cube it was compiled for.
    pub planes: usize,
}

/// Which form of the kernel to compile, as [`super::VisionFlashOps`] would launch it: `dtype`
/// activations (`BF16`, `F16`, `F32`), a `head_dim`, 32-lane planes, the tensor-core variant
/// or not, one pass over the keys (`online`) or two, on a device with `max_shared` bytes of
/// shared memory per cube, and parts of the one-pass form left out (`ablate`: a mask of
/// `flash::ABLATE_*`, the timing experiments of `flash::set_ablation`; 0 for the kernel).
#[derive(Clone, Copy, Debug)]
pub struct FlashForm {
    /// Activation dtype.
    pub dtype: DType,
    /// Width of one head (72 in SigLIP-so400m).
    pub head_dim: usize,
    /// The tile products on tensor cores (else plain loops).
    pub tensor_cores: bool,
    /// One pass over the keys (else two).
    pub online: bool,
    /// Shared memory a cube may take, in bytes.
    pub max_shared: usize,
    /// Ablation mask (`flash::ABLATE_*`), 0 for the full kernel.
    pub ablate: u32,
}

impl FlashForm {
    /// The full kernel (no ablation) in the 48 KiB a cube may take without opting in (every
    /// CUDA part since sm_70).
    pub fn new(dtype: DType, head_dim: usize, tensor_cores: bool, online: bool) -> Self {
        Self {
            dtype,
            head_dim,
            tensor_cores,
            online,
            max_shared: 48 * 1024,
            ablate: 0,
        }
    }
}

/// Compiles `form` for `sm` (e.g. 90 for an H100) to PTX with cubecl's LLVM compiler and the
/// options its runtime uses. An error names what failed (expansion or lowering).
pub fn flash_ptx(sm: u32, form: FlashForm) -> Result<FlashPtx, String> {
    let (definition, planes) = definition(form)?;
    let options = PlironOptions {
        sm_arch: Some(SmArch::new(sm, false)),
        ptx_version: PtxVersion::for_driver(12080),
        // As cubecl-cuda's runtime compiles on sm_70 and newer: the launch's scalars and
        // static metadata in the kernel's parameter block, not in a buffer.
        grid_constants: sm >= 70,
        ..Default::default()
    };
    let mut compiler = PlironCompiler {
        target: LlvmTarget::Nvptx,
    };
    match compiler.compile(definition, &options) {
        Ok(PlironArtifact::NvptxCode(module)) => {
            // SAFETY: the module's PTX is NUL-terminated (cubecl-llvm's contract).
            let ptx = unsafe { std::ffi::CStr::from_ptr(module.ptx.as_ptr()) }
                .to_string_lossy()
                .into_owned();
            Ok(FlashPtx {
                ptx,
                shared_memory_bytes: module.shared_memory_size,
                planes,
            })
        }
        Ok(_) => Err("the NVPTX target produced no PTX".into()),
        Err(e) => Err(format!("lowering to PTX failed: {e:?}")),
    }
}

/// `form` as CUDA C++: cubecl-cuda's C++ backend with the options its runtime sets for `sm`
/// (grid constants from sm_70, fast `tanh` on CUDA 12.8+ from sm_75; a 32-lane warp).
pub fn flash_cpp(sm: u32, form: FlashForm) -> Result<FlashCpp, String> {
    let (definition, planes) = definition(form)?;
    let mut options = CudaCompilationOptions {
        arch: Some(SmArch::new(sm, false)),
        ..Default::default()
    };
    options.cpp.warp_size = 32;
    options.cpp.supports_features.grid_constants = sm >= 70;
    options.cpp.supports_features.fast_tanh = sm >= 75;
    match CudaCompiler::new(CudaBackend::Cpp).compile(definition, &options) {
        Ok(CudaRepresentation::Cpp(kernel)) => Ok(FlashCpp {
            source: kernel.to_string(),
            planes,
        }),
        Ok(_) => Err("the C++ backend produced no C++".into()),
        Err(e) => Err(format!("transpiling to CUDA C++ failed: {e:?}")),
    }
}

/// `form`'s kernel definition and the planes per cube it takes.
fn definition(form: FlashForm) -> Result<(KernelDefinition, usize), String> {
    let FlashForm {
        dtype,
        head_dim,
        tensor_cores,
        online,
        max_shared,
        ablate,
    } = form;
    let elem = match dtype {
        DType::BF16 => ElemType::Float(FloatKind::BF16),
        DType::F16 => ElemType::Float(FloatKind::F16),
        DType::F32 => ElemType::Float(FloatKind::F32),
        other => return Err(format!("flash_ptx: no kernel for {other:?}")),
    };
    let plane = 32;
    let planes = kernel::planes_for(
        kernel::MAX_PLANES,
        max_shared,
        head_dim,
        dtype.size(),
        tensor_cores,
        online,
    )
    .ok_or_else(|| format!("no cube fits {max_shared} bytes of shared memory"))?;
    let mut features = Features::default();
    if tensor_cores {
        features.matmul.cmma.insert(MmaConfig {
            a_type: elem,
            b_type: elem,
            cd_type: ElemType::Float(FloatKind::F32),
            m: 16,
            n: 16,
            k: 16,
        });
    }
    let hardware = HardwareProperties {
        load_width: 128,
        vector_register_count: None,
        plane_size_min: plane,
        plane_size_max: plane,
        max_bindings: 32,
        max_shared_memory_size: max_shared,
        max_cube_count: (u32::MAX, u16::MAX as u32, u16::MAX as u32),
        max_units_per_cube: 1024,
        max_cube_dim: (1024, 1024, 1024),
        num_streaming_multiprocessors: None,
        num_tensor_cores: None,
        min_tensor_cores_dim: None,
        num_cpu_cores: None,
        last_level_cache_size: None,
        max_vector_size: VectorSize::MAX,
        cube_mma_reserved_shared_memory: 0,
    };
    let properties = Arc::new(DeviceProperties::new(
        features,
        MemoryDeviceProperties::new(u64::MAX, 256),
        hardware,
        burn_cubecl::cubecl::profile::TimingMethod::Device,
        DeviceIdentity {
            name: "offline".to_string(),
            fingerprint: "offline".to_string(),
            physical: None,
        },
    ));
    let settings = KernelSettings::new(
        *CubeDim::new_2d(plane, planes as u32),
        ExecutionMode::Unchecked,
        AddressType::U32,
    );
    let tensor = || TensorCompilationArg {
        meta: TensorMetaCompilationArg { len: (), rank: () },
        buffer: BufferCompilationArg { inplace: None },
    };
    let kernel = kernel::flash_attention_kernel::FlashAttentionKernel::new(
        settings,
        properties,
        Arc::new(TargetProperties::default()),
        tensor(),
        tensor(),
        tensor(),
        tensor(),
        (),
        (),
        (),
        (),
        head_dim,
        plane as usize,
        planes,
        tensor_cores,
        online,
        if online { ablate } else { 0 },
        elem,
    );
    let definition = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kernel.define()))
        .map_err(|p| format!("expanding the kernel panicked: {}", panic_text(&p)))?;
    Ok((definition, planes))
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

/// Run where cubecl's LLVM builds (`eval "$(../shared/tools/cuda-build-env.sh)"`) and
/// libdevice is found (`CUDA_PATH`: a CUDA toolkit, or PyPI's `nvidia-cuda-nvcc-cu12` wheel's
/// `nvidia/cuda_nvcc`):
/// `cargo test -p dam-vision --features fusion,ptx,burn/cuda flash::ptx`. Not in `.ci/run` (no
/// LLVM bundle there); `bench --flash-ptx DIR` prints the same counts. `CUDA_PATH` is read only
/// when the tests run, but cudarc's build script watches it: build with `cargo test --no-run`
/// without it and run the printed test binary with it, or every CUDA build after rebuilds the
/// burn stack.
#[cfg(test)]
mod tests {
    use super::*;

    fn count(ptx: &str, needle: &str) -> usize {
        ptx.matches(needle).count()
    }

    /// SigLIP's attention in bf16 on an H100: both products on tensor cores with the layouts
    /// and strides the kernel's shared tiles have, four planes in the 48 KiB a cube may take.
    #[test]
    fn the_tensor_core_variant_lowers_to_wmma() {
        let out = flash_ptx(90, FlashForm::new(DType::BF16, 72, true, false)).unwrap();
        let ptx = &out.ptx;
        assert_eq!(out.planes, 4);
        assert_eq!(out.shared_memory_bytes, kernel::shared_bytes(4, 72, 2, true, false));
        // q·kᵀ: 2 key tiles × 5 head tiles, in each pass; p·v: 5 output tiles × 2 key tiles.
        assert_eq!(
            count(ptx, "wmma.mma.sync.aligned.row.col.m16n16k16.f32.bf16.bf16.f32"),
            20,
            "{ptx}"
        );
        assert_eq!(
            count(ptx, "wmma.mma.sync.aligned.row.row.m16n16k16.f32.bf16.bf16.f32"),
            10,
            "{ptx}"
        );
        // K read column-major (its rows are kᵀ's columns) with the padded head stride 80.
        assert!(
            ptx.contains("wmma.load.b.sync.aligned.col.m16n16k16.shared.bf16"),
            "{ptx}"
        );
        assert!(
            ptx.contains("wmma.load.b.sync.aligned.row.m16n16k16.shared.bf16"),
            "{ptx}"
        );
        assert!(
            ptx.contains("wmma.store.d.sync.aligned.row.m16n16k16.shared.f32"),
            "{ptx}"
        );
    }

    /// f32 has no 16×16×16 fragments: the plain variant, no tensor-core instruction.
    #[test]
    fn the_plain_variant_has_no_tensor_core_instruction() {
        let out = flash_ptx(90, FlashForm::new(DType::F32, 72, false, false)).unwrap();
        assert_eq!(count(&out.ptx, "wmma."), 0);
        assert_eq!(
            out.shared_memory_bytes,
            kernel::shared_bytes(out.planes, 72, 4, false, false)
        );
        let out = flash_ptx(90, FlashForm::new(DType::F32, 72, false, true)).unwrap();
        assert_eq!(count(&out.ptx, "wmma."), 0);
        assert_eq!(
            out.shared_memory_bytes,
            kernel::shared_bytes(out.planes, 72, 4, false, true)
        );
    }

    /// The one-pass kernel in bf16 on an H100: each product once per key block on tensor
    /// cores, the accumulators stored and loaded back for rescaling (and stored at the end),
    /// the row statistics across a row's two lanes by butterfly shuffles, the rescale decided
    /// by a vote, four planes in 48 KiB.
    #[test]
    fn the_one_pass_kernel_lowers_to_wmma_shuffles_and_a_vote() {
        let out = flash_ptx(90, FlashForm::new(DType::BF16, 72, true, true)).unwrap();
        let ptx = &out.ptx;
        assert_eq!(out.planes, 4);
        assert_eq!(out.shared_memory_bytes, kernel::shared_bytes(4, 72, 2, true, true));
        // q·kᵀ: 2 key tiles × 5 head tiles; p·v: 5 output tiles × 2 key tiles — once each.
        assert_eq!(
            count(ptx, "wmma.mma.sync.aligned.row.col.m16n16k16.f32.bf16.bf16.f32"),
            10,
            "{ptx}"
        );
        assert_eq!(
            count(ptx, "wmma.mma.sync.aligned.row.row.m16n16k16.f32.bf16.bf16.f32"),
            10,
            "{ptx}"
        );
        // The accumulator tiles back from shared memory after rescaling (5 tiles).
        assert_eq!(
            count(ptx, "wmma.load.c.sync.aligned.row.m16n16k16.shared.f32"),
            5,
            "{ptx}"
        );
        assert!(ptx.contains("shfl.sync.bfly"), "{ptx}");
        assert!(ptx.contains("vote.sync.any"), "{ptx}");
        assert!(ptx.contains("bar.warp.sync"), "{ptx}");
    }

    /// The one-pass kernel as CUDA C++ for an H100, as the NVRTC build compiles it: the tile
    /// products as `wmma` calls (each product once per key block, as in the PTX), the shuffles
    /// and the vote, the launch's scalars as a grid constant, the shared tiles in one dynamic
    /// buffer.
    #[test]
    fn the_one_pass_kernel_transpiles_to_cuda_cpp() {
        let form = FlashForm::new(DType::BF16, 72, true, true);
        let out = flash_cpp(90, form).unwrap();
        let src = &out.source;
        assert_eq!(out.planes, 4);
        assert!(src.contains("__global__"), "{src}");
        assert!(src.contains("__grid_constant__"), "{src}");
        assert!(src.contains("extern __shared__"), "{src}");
        assert_eq!(count(src, "wmma::mma_sync"), 20, "{src}");
        assert!(src.contains("__shfl_xor_sync"), "{src}");
        assert!(src.contains("__any_sync"), "{src}");
        // Without products (an ablation): no tile product left.
        let bare = FlashForm {
            ablate: crate::flash::ABLATE_PRODUCTS,
            ..form
        };
        let bare = flash_cpp(90, bare).unwrap();
        assert_eq!(count(&bare.source, "wmma::mma_sync"), 0);
    }

    /// The timing experiments (`flash::set_ablation`) take out what they name and nothing
    /// else: no products → no `wmma.mma`; no softmax → no `ex2` in the loop (the final
    /// division stays), no vote; no barriers → no `bar.sync` at all; no loads → fewer global
    /// loads (the first block's remain).
    #[test]
    fn each_ablation_leaves_out_what_it_names() {
        use crate::flash::{ABLATE_BARRIERS, ABLATE_LOADS, ABLATE_PRODUCTS, ABLATE_SOFTMAX};
        let ptx = |mask| {
            let form = FlashForm {
                ablate: mask,
                ..FlashForm::new(DType::BF16, 72, true, true)
            };
            flash_ptx(90, form).unwrap().ptx
        };
        let full = ptx(0);
        let mma = |p: &str| count(p, "wmma.mma.sync");
        let global = |p: &str| count(p, "ld.global");
        assert_eq!(mma(&full), 20);

        let no_products = ptx(ABLATE_PRODUCTS);
        assert_eq!(mma(&no_products), 0);
        assert_eq!(count(&no_products, "bar.sync"), count(&full, "bar.sync"));

        let no_softmax = ptx(ABLATE_SOFTMAX);
        assert_eq!(mma(&no_softmax), 20);
        assert!(!no_softmax.contains("vote.sync"), "{no_softmax}");
        assert!(count(&no_softmax, "ex2.approx") < count(&full, "ex2.approx"));

        let no_barriers = ptx(ABLATE_BARRIERS);
        assert_eq!(count(&no_barriers, "bar.sync"), 0);
        assert_eq!(mma(&no_barriers), 20);

        let no_loads = ptx(ABLATE_LOADS);
        assert!(
            global(&no_loads) < global(&full),
            "{} vs {}",
            global(&no_loads),
            global(&full)
        );
        assert_eq!(mma(&no_loads), 20);
        // The two-pass form ignores the mask.
        let two = |mask| {
            let form = FlashForm {
                ablate: mask,
                ..FlashForm::new(DType::BF16, 72, true, false)
            };
            flash_ptx(90, form).unwrap().ptx
        };
        assert_eq!(two(ABLATE_PRODUCTS), two(0));
    }
}
