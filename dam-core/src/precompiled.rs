//! Kernels written as CUDA C++ text and launched through cubecl (feature `cube`): the
//! library's hand-written matrix product (`matmul_kernel::hand`) and flash attention
//! (`dam_vision::hand_attention`).
//!
//! What cubecl 0.11.3 does with such a kernel (read in `cubecl-server` `kernel.rs`,
//! `cubecl-cuda` `compute/context.rs` and `server.rs`): a [`CubeKernel`] whose
//! [`source`](CubeKernel::source) returns text skips compilation — its definition is read only
//! for the block size — and the text goes to NVRTC, on the CUDA build whose compiler is CUDA
//! C++ only (the facade's `cuda-nvrtc`; the LLVM build and the other runtimes refuse text, a
//! compilation error that shows on the launch's output). The module loads with **no dynamic
//! shared memory** (a kernel declares its shared memory statically), and the launch's
//! parameters are the bound buffers in order, then — on every device with grid constants,
//! each CUDA device from sm_70 — the info words by value as one parameter when none of them
//! is "dynamic". So a kernel here takes its buffers and then one struct of u64 words.

use burn::tensor::{FloatDType, Tensor};
use burn_cubecl::cubecl::client::Client;
use burn_cubecl::cubecl::ir::attributes::BufferIOAttr;
use burn_cubecl::cubecl::ir::metadata::Info;
use burn_cubecl::cubecl::ir::{AddressType, ElemType, Scope, UIntKind};
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::server::{Handle, KernelArguments, MetadataBindingInfo};
use burn_cubecl::cubecl::{CubeKernel, PrecompiledSource};

/// FNV-1a of a kernel's text (`const`): part of the kernel's id, so a compiled artifact that
/// cubecl caches (in memory and on disk, keyed by the id alone) never outlives an edit.
pub const fn text_hash(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// One kernel's CUDA C++ as a cubecl kernel.
pub struct PrecompiledKernel {
    /// The whole text NVRTC compiles, made from `key.1` (the variant) — only when cubecl
    /// compiles it, once per process, not at every launch.
    pub source: fn(usize) -> String,
    /// Its entry point.
    pub entry_point: &'static str,
    /// Threads of a block.
    pub cube_dim: CubeDim,
    /// What tells this kernel's compiled artifact apart from every other's: a hash of the text
    /// it was built from ([`text_hash`]) and, for texts compiled several ways, which way.
    pub key: (u64, usize),
}

impl KernelMetadata for PrecompiledKernel {
    fn name(&self) -> &'static str {
        self.entry_point
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>()
            .info((self.entry_point, self.key))
            .cube_dim(self.cube_dim.0)
    }

    fn address_type(&self) -> ElemType {
        UIntKind::U32.into()
    }
}

impl CubeKernel for PrecompiledKernel {
    /// Settings only (the block size): a precompiled kernel's definition is never compiled.
    fn define(&self) -> KernelDefinition {
        let settings = KernelSettings::new(self.cube_dim.0, ExecutionMode::Checked, AddressType::U32);
        KernelDefinition {
            body: Scope::root(settings.clone()),
            settings,
            info: Info::default(),
        }
    }

    fn source(&self) -> Option<PrecompiledSource> {
        Some(PrecompiledSource {
            source: (self.source)(self.key.1),
            entrypoint_name: self.entry_point.to_string(),
            lang: "cuda",
        })
    }
}

impl PrecompiledKernel {
    /// Launches the kernel over `grid` blocks on `client`: `inputs` (read only) then `output`
    /// (written) bound in that order, then `words` as the one by-value parameter after them.
    pub fn launch(self, client: &Client, grid: (u32, u32), inputs: &[&Handle], output: &Handle, words: Vec<u64>) {
        let mut bindings = KernelArguments::new();
        for input in inputs {
            bindings = bindings.with_buffer_io((*input).clone().binding(), BufferIOAttr::ReadOnly);
        }
        let bindings = bindings
            .with_buffer_io(output.clone().binding(), BufferIOAttr::WriteOnly)
            .with_info(MetadataBindingInfo {
                // Nothing dynamic: the words go by value, not through a buffer.
                dynamic_metadata_offset: words.len(),
                data: words,
            });
        client.launch(Box::new(self), CubeCount::Static(grid.0, grid.1, 1), bindings);
    }
}

/// How far a hand-written kernel's result `got` is from burn's `want` on the same device: the
/// largest difference (divided by `1 + |want|` when `relative`), infinite for any NaN or a
/// missing value; `Err` with the first lines of the error when reading `got` failed (a kernel
/// the build or the device refused: the compiler's log comes first, the whole source after).
pub fn difference<const D: usize>(got: Tensor<D>, want: Tensor<D>, relative: bool) -> Result<f32, String> {
    let got = match got.cast(FloatDType::F32).try_into_data() {
        Ok(data) => data.try_to_vec::<f32>().unwrap_or_default(),
        Err(err) => {
            let why: Vec<String> = err.to_string().lines().take(4).map(str::to_string).collect();
            return Err(why.join(" / "));
        }
    };
    let want = want
        .cast(FloatDType::F32)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let start = if got.len() == want.len() && !got.is_empty() {
        0.0f32
    } else {
        f32::INFINITY
    };
    Ok(got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs() / if relative { 1.0 + w.abs() } else { 1.0 })
        .map(|d| if d.is_nan() { f32::INFINITY } else { d })
        .fold(start, f32::max))
}
