//! The vision attention as **one kernel** on the cubecl backends (`flash` form of
//! [`crate::sdpa`]), behind the `cube` feature: `softmax(q·kᵀ/√Dh)·v` without the scores
//! leaving the chip.
//!
//! Why: the `fused-softmax` form (two burn matmuls around our one-kernel softmax) takes 194 µs
//! per SigLIP attention on an H100 (2026-11-27, bf16) against 29.8 µs for PyTorch's flash
//! SDPA — 78 attentions ≈ 15 ms of a 42 ms encode. Its score products run at 13–20 TFLOP/s
//! and 16 × 729² scores make three trips through memory. burn-cubecl's own tensor-core flash
//! kernel refuses SigLIP's shapes (729 positions, head_dim 72) and, padded to shapes it takes,
//! was no faster (the `padded` form, 2026-11-26). This kernel takes any sequence length and a
//! head_dim up to [`MAX_HEAD_DIM`] (padded to a multiple of 16 in shared memory only), and
//! rounds as the eager attention does (see `kernel.rs`).
//!
//! Two forms, chosen by [`set_online`] (`DAM_FLASH_ONLINE`): two passes over the keys
//! (`kernel.rs`, the default: the softmax's statistics exactly, then the probabilities rounded
//! where the eager attention rounds them) and one pass (`online.rs`: the statistics kept as it
//! goes, half the tile products and key loads, each block's key and value tiles fetched into
//! registers while the block before computes; rounded where PyTorch's flash SDPA rounds).
//!
//! Status: written 2026-11-27 without a GPU (the one-pass form in a later session the same
//! day); the plain-loop variants are tested on lavapipe (`dam/tests/fused_wgpu.rs`: both forms
//! against the materialised form at odd sizes, and the `border` fixture through each); the
//! tensor-core variants (CUDA, bf16/f16) compile only there — to PTX without a device in
//! `flash::ptx`'s tests (feature `ptx`) — and are compared with the plain ones by `bench
//! --check-vision` on the device. First run on an H100 (2026-11-27, docs/performance.md):
//! both forms correct (tensor cores within 3e-2 of the plain loops in bf16, the original's ids
//! through the one-pass form) but **slow** — 1.3 ms (one pass) and 2.5–2.9 ms (two passes) per
//! SigLIP attention against 0.22 ms for `fused-softmax`, for reasons not yet profiled. **Off by
//! default** (`bench --vision-attention flash [--flash-passes 1]`, `DAM_VISION_ATTENTION=flash`).

mod cube;
pub mod hand;
mod kernel;
mod online;
#[cfg(feature = "ptx")]
pub mod ptx;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

/// The largest head_dim the kernel takes (its shared tiles and the plain variant's registers
/// grow with it); larger heads take the `fused-softmax` form.
pub const MAX_HEAD_DIM: usize = 128;

/// The flash attention as a burn backend extension (implemented for the cubecl backend in
/// `cube.rs`).
#[backend_extension(Cube, Fusion: cfg(feature = "fusion"))]
pub trait VisionFlashOps: Backend {
    /// `softmax(q·kᵀ · scale)·v`, q `[B, H, Sq, Dh]`, k/v `[B, H, Skv, Dh]` → `[B, H, Sq, Dh]`;
    /// `tensor_cores`: the tile products on tensor cores where the device has them for the
    /// dtype (else, or when `false`, plain f32 loops); `planes`: planes per cube (16 queries
    /// each; 0 = the most that fit, up to 4); `online`: one pass over the keys (`online.rs`)
    /// instead of two (`kernel.rs`).
    /// `ablate`: parts of the one-pass form left out, for timing experiments only
    /// ([`set_ablation`]; 0 = none).
    #[fusion(dtype = q, shape = q)]
    #[allow(clippy::too_many_arguments)]
    fn flash_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
        tensor_cores: bool,
        planes: usize,
        online: bool,
        ablate: u32,
    ) -> FloatTensor<Self>;

    /// The same attention through the hand-written kernel ([`crate::hand_attention`]: bf16,
    /// head_dim 72, the `cuda-nvrtc` build), or burn's materialised attention where it does
    /// not launch.
    #[fusion(dtype = q, shape = q)]
    fn flash_attention_hand(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self>;
}

/// [`set_ablation`]: the one-pass form fetches no key or value tile after the first block
/// (every block computes on the first block's tiles).
pub const ABLATE_LOADS: u32 = 1;
/// [`set_ablation`]: the one-pass form's two cube barriers a block left out (tiles race).
pub const ABLATE_BARRIERS: u32 = 2;
/// [`set_ablation`]: the one-pass form's tile products (`q·kᵀ` and `p·v`) left out.
pub const ABLATE_PRODUCTS: u32 = 4;
/// [`set_ablation`]: the one-pass form's softmax (row maxima, exponentials, sums, the vote
/// and any rescaling) left out: the probabilities are the raw scores.
pub const ABLATE_SOFTMAX: u32 = 8;

/// Set by [`set_ablation`], else `DAM_FLASH_ABLATE` (comma-separated: `loads`, `barriers`,
/// `products`, `softmax`), else none.
static ABLATE: dam_core::switch::Switch<u32> = dam_core::switch::Switch::new("DAM_FLASH_ABLATE", |v| {
    v.split(',').filter(|p| !p.is_empty()).try_fold(0, |mask, part| {
        Some(
            mask | match part.trim() {
                "loads" => ABLATE_LOADS,
                "barriers" => ABLATE_BARRIERS,
                "products" => ABLATE_PRODUCTS,
                "softmax" => ABLATE_SOFTMAX,
                _ => return None,
            },
        )
    })
});

/// **For timing experiments only — the output is wrong while set.** Leaves parts of the
/// one-pass form's key-block loop out (a mask of `ABLATE_*`), so that `bench --probe-vision`
/// can time each part by difference: on an H100 (2026-11-27) every key block of either flash
/// form took 55–78 µs whatever it held (docs/performance.md), an order of magnitude more than
/// its instructions account for. 0 (the default) leaves nothing out; the two-pass form
/// ignores it.
pub fn set_ablation(mask: u32) {
    ABLATE.set(mask);
}

/// Back to `DAM_FLASH_ABLATE` (or none) after [`set_ablation`].
pub fn reset_ablation() {
    ABLATE.reset();
}

/// Set by [`set_planes`], else `DAM_FLASH_PLANES=1|2|4`, else 0 (the most that fit, 4).
static PLANES: dam_core::switch::Switch<usize> = dam_core::switch::Switch::new("DAM_FLASH_PLANES", |v| match v {
    "" | "0" => Some(0),
    "1" => Some(1),
    "2" => Some(2),
    "4" => Some(4),
    _ => None,
});

/// Planes per cube of the flash kernel (1, 2 or 4; 0 = the most that fit): fewer planes make
/// more, smaller cubes — SigLIP's attention is 16 heads × ⌈729 / 64⌉ = 192 cubes of 4 planes
/// per view, under two per SM of an H100 — at the cost of reading each key and value tile for
/// fewer queries. Which is faster is a GPU measurement (`bench --probe-vision` times all three).
pub fn set_planes(planes: usize) {
    PLANES.set(planes);
}

/// Back to `DAM_FLASH_PLANES` (or the most that fit) after [`set_planes`].
pub fn reset_planes() {
    PLANES.reset();
}

/// Set by [`set_tensor_cores`], else `DAM_FLASH_TENSOR_CORES=on|off`, else on.
static TENSOR_CORES: dam_core::switch::Switch<bool> =
    dam_core::switch::Switch::new("DAM_FLASH_TENSOR_CORES", |v| match v {
        "on" | "" => Some(true),
        "off" => Some(false),
        _ => None,
    });

/// Whether the flash kernel may use tensor cores (`true`, the default: where the device has
/// them for the dtype) or must run its plain-loop variant (`false`: what `bench
/// --check-fused` compares the tensor-core variant with on a GPU).
pub fn set_tensor_cores(on: bool) {
    TENSOR_CORES.set(on);
}

/// Back to `DAM_FLASH_TENSOR_CORES` (or on) after [`set_tensor_cores`].
pub fn reset_tensor_cores() {
    TENSOR_CORES.reset();
}

/// Set by [`set_online`], else `DAM_FLASH_ONLINE=on|off`, else off.
static ONLINE: dam_core::switch::Switch<bool> = dam_core::switch::Switch::new("DAM_FLASH_ONLINE", |v| match v {
    "on" => Some(true),
    "off" | "" => Some(false),
    _ => None,
});

/// Whether the flash kernel walks the keys once, keeping the softmax's statistics as it goes
/// (`true`: `online.rs`, half the tile products and key loads, the dtype rounding where
/// PyTorch's flash SDPA has it) or twice (`false`, the default until a GPU measures both:
/// `kernel.rs`, the eager attention's rounding points). `bench --probe-vision` times both.
pub fn set_online(on: bool) {
    ONLINE.set(on);
}

/// Whether the flash kernel walks the keys once (see [`set_online`]).
pub fn online() -> bool {
    ONLINE.get()
}

/// Back to `DAM_FLASH_ONLINE` (or off) after [`set_online`].
pub fn reset_online() {
    ONLINE.reset();
}

/// Whether the kernel takes this attention: a cubecl device and `head_dim ≤ MAX_HEAD_DIM`.
pub fn supports(q: &Tensor<4>) -> bool {
    dam_core::switch::cubecl_device(&q.device()) && q.dims()[3] <= MAX_HEAD_DIM
}

/// `softmax(q·kᵀ/√Dh)·v` for q `[B, H, Sq, Dh]`, k/v `[B, H, Skv, Dh]` in one kernel where
/// [`supports`] says so, else the materialised form ([`crate::sdpa::materialized`], the same
/// rounding points).
pub fn flash_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    if !supports(&q) {
        return crate::sdpa::materialized(q, k, v, None);
    }
    let scale = 1.0 / (q.dims()[3] as f32).sqrt();
    Tensor::from_dispatch(<Dispatch as VisionFlashOps>::flash_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        scale,
        TENSOR_CORES.get(),
        PLANES.get(),
        ONLINE.get(),
        ABLATE.get(),
    ))
}

/// Whether the hand-written kernel ([`crate::hand_attention`]) takes this attention: bf16,
/// head_dim 72, and the kernel passed its probe on this CUDA device ([`hand_available`]).
pub fn hand_takes(q: &Tensor<4>, k: &Tensor<4>) -> bool {
    crate::hand_attention::unsupported(q.dims(), k.dims(), q.dtype() == burn::tensor::DType::BF16).is_none()
        && hand_available(&q.device())
}

/// `softmax(q·kᵀ/√Dh)·v` through the hand-written kernel where [`hand_takes`] says so, else
/// the `fused-softmax` form ([`crate::sdpa::fused_softmax`]).
pub fn flash_attention_hand(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    if !hand_takes(&q, &k) {
        return crate::sdpa::fused_softmax(q, k, v, None);
    }
    let scale = 1.0 / (q.dims()[3] as f32).sqrt();
    Tensor::from_dispatch(<Dispatch as VisionFlashOps>::flash_attention_hand(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        scale,
    ))
}

/// Whether the hand-written kernel runs correctly on `device`: never off CUDA; on CUDA,
/// decided once per process at the first call by one bf16 attention through it (two heads,
/// 100 queries and 150 keys: partial blocks of both) compared with the materialised
/// attention in f32. If it fails to compile or load (the LLVM build refuses kernel text) or
/// disagrees by more than 2e-2, a warning says why and `hand` is `fused-softmax` from then on.
pub fn hand_available(device: &burn::tensor::Device) -> bool {
    static WORKING: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    dam_core::switch::cuda_device(device) && *WORKING.get_or_init(|| probe_hand(device))
}

fn probe_hand(device: &burn::tensor::Device) -> bool {
    use burn::tensor::{FloatDType, TensorData};
    let (heads, sq, skv, d) = (2, 100, 150, crate::hand_attention::HEAD_DIM);
    let values = |count: usize, seed: usize| -> Vec<f32> {
        (0..count)
            .map(|i| ((i * 7919 + seed) % 257) as f32 / 128.0 - 1.0)
            .collect()
    };
    let tensor = |seq: usize, seed: usize| {
        Tensor::<4>::from_data(
            TensorData::new(values(heads * seq * d, seed), [1, heads, seq, d]),
            device,
        )
        .cast(FloatDType::BF16)
    };
    let (q, k, v) = (tensor(sq, 1), tensor(skv, 2), tensor(skv, 3));
    let f32s = |t: &Tensor<4>| t.clone().cast(FloatDType::F32);
    let want = crate::sdpa::materialized(f32s(&q), f32s(&k), f32s(&v), None);
    let scale = 1.0 / (d as f32).sqrt();
    let got = Tensor::<4>::from_dispatch(<Dispatch as VisionFlashOps>::flash_attention_hand(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        scale,
    ));
    let failure = match dam_core::precompiled::difference(got, want, false) {
        Ok(worst) if worst <= 2e-2 => None,
        Ok(worst) => Some(format!("off by {worst:e} from the materialised attention")),
        Err(why) => Some(why),
    };
    match failure {
        None => {
            tracing::info!("the hand-written flash attention runs on this device");
            true
        }
        Some(why) => {
            tracing::warn!("the hand-written flash attention does not run here ({why}); `hand` is `fused-softmax`");
            false
        }
    }
}
