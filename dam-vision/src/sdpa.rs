//! The scaled dot-product attention of the vision tower and the adapters,
//! `softmax(q·kᵀ/√Dh)·v` over `[B, H, S, Dh]` heads, in one of six equivalent forms.
//!
//! Why more than burn's `attention`: SigLIP's shapes — 729 positions, head_dim 72 — satisfy
//! neither launch constraint of burn-cubecl's tensor-core flash kernel (its stage of 16 × 2–8
//! queries must divide `seq_q`; its 16-wide tile must divide `head_dim`). Measured on an H100
//! (docs/performance.md, 2026-11-26 22:59 UTC, bf16, recorded encodes): every attention then
//! runs burn-cubecl's materialised fallback (two matmuls and a ten-kernel softmax); `auto`
//! and `padded` both take 54.3–54.7 ms per encode, `materialized` 68.4 ms (its f32 softmax
//! costs casts). `fused-softmax` (the softmax as one kernel of ours) measured on 2026-11-27
//! (same card, bf16): 194 µs per attention against `auto`'s 265 µs, an encode 45.9 ms against
//! 53.1 ms (42.3 / 44.6 ms with the LayerNorm kernel too), within 2.9e-3 of burn's attention
//! in f32 (values up to 9: below bf16's resolution; the softmax is where they differ, cause
//! not established — on lavapipe the two agree within 1e-6), the fixtures' ids unchanged.
//! So **the default is `fused-softmax` on CUDA and `auto` everywhere else** (other runtimes
//! are not measured; on the CPU `auto` is burn's fused attention); `bench
//! --vision-attention …`, `DAM_VISION_ATTENTION=…` or [`set_kernel`] choose any form. All six
//! agree on the CPU (tests below; fixtures 24/24).

use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::{AttentionModuleOptions, PadMode};
use burn::tensor::{Bool, Device, FloatDType, Tensor};
use dam_core::matmul_kernel::score_matmul;

/// Which form [`attend`] computes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttentionKernel {
    /// burn's `attention`: the backend picks its kernel (the default off CUDA).
    #[default]
    Auto,
    /// [`materialized`]: two batched matmuls around an f32 softmax.
    Materialized,
    /// [`padded`]: burn's `attention` on shapes the tensor-core flash kernel accepts.
    Padded,
    /// [`fused_softmax`]: two batched matmuls around our one-kernel softmax (the default on
    /// CUDA).
    FusedSoftmax,
    /// [`flash`]: the whole attention as one kernel of ours (`dam_vision::flash`; tensor
    /// cores on CUDA in bf16/f16). Off by default until measured on a GPU.
    Flash,
    /// [`hand`]: the whole attention as our hand-written CUDA C++ kernel
    /// ([`crate::hand_attention`]: bf16, head_dim 72, the `cuda-nvrtc` build; elsewhere
    /// `fused-softmax`). Off by default until measured on a GPU.
    Hand,
}

impl AttentionKernel {
    const ALL: [Self; 6] = [
        Self::Auto,
        Self::Materialized,
        Self::Padded,
        Self::FusedSoftmax,
        Self::Flash,
        Self::Hand,
    ];

    /// The name `bench --vision-attention` and `DAM_VISION_ATTENTION` use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Materialized => "materialized",
            Self::Padded => "padded",
            Self::FusedSoftmax => "fused-softmax",
            Self::Flash => "flash",
            Self::Hand => "hand",
        }
    }
}

impl std::str::FromStr for AttentionKernel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            format!("unknown vision attention `{s}` (auto, materialized, padded, fused-softmax, flash, hand)")
        })
    }
}

/// Set by [`set_kernel`], else `DAM_VISION_ATTENTION`, else `None`: the device's default
/// ([`kernel_for`]).
static KERNEL: dam_core::switch::Switch<Option<AttentionKernel>> =
    dam_core::switch::Switch::new("DAM_VISION_ATTENTION", |v| v.parse().ok().map(Some));

/// Selects the form of every vision attention in this process, on every device (see the
/// module docs). `DAM_VISION_ATTENTION=auto|materialized|padded|fused-softmax|flash|hand` does the same
/// when this is not called.
pub fn set_kernel(kernel: AttentionKernel) {
    KERNEL.set(Some(kernel));
}

/// Back to the per-device default (or `DAM_VISION_ATTENTION`) after [`set_kernel`].
pub fn reset_kernel() {
    KERNEL.reset();
}

/// The form [`attend`] computes on `device`: the one selected ([`set_kernel`],
/// `DAM_VISION_ATTENTION`), else `FusedSoftmax` on CUDA and `Auto` elsewhere.
pub fn kernel_for(device: &Device) -> AttentionKernel {
    KERNEL.get().unwrap_or_else(|| {
        if dam_core::switch::cuda_device(device) {
            AttentionKernel::FusedSoftmax
        } else {
            AttentionKernel::Auto
        }
    })
}

/// `softmax(q·kᵀ/√Dh)·v` in the selected form; q `[B, H, Sq, Dh]`, k/v `[B, H, Skv, Dh]`,
/// `mask` `[B, H, Sq, Skv]` (`true` = hidden) → `[B, H, Sq, Dh]`.
pub fn attend(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<4, Bool>>) -> Tensor<4> {
    match kernel_for(&q.device()) {
        // Scale 1/√Dh is burn's default; leaving it unset keeps the flash kernels eligible.
        AttentionKernel::Auto => attention(q, k, v, mask, None, AttentionModuleOptions::default()),
        AttentionKernel::Materialized => materialized(q, k, v, mask),
        AttentionKernel::Padded => padded(q, k, v, mask),
        AttentionKernel::FusedSoftmax => fused_softmax(q, k, v, mask),
        AttentionKernel::Flash => flash(q, k, v, mask),
        AttentionKernel::Hand => hand(q, k, v, mask),
    }
}

/// The scores materialised, as transformers' eager SigLIP attention computes them: the
/// products in the activation dtype, the softmax in f32 and cast back
/// ([`scaled_softmax_reference`]). Holds `B·H·Sq·Skv` f32 scores (16 × 729² = 34 MB per DAM-3B
/// view).
pub fn materialized(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<4, Bool>>) -> Tensor<4> {
    around_scores(q, k, v, mask, scaled_softmax_reference)
}

/// The scores materialised as in [`materialized`] (same rounding points), the scaling and
/// the softmax in **one kernel** per score row on the cubecl backends
/// (`dam_vision::softmax`, feature `cube`; burn ops elsewhere): three launches per attention where burn-cubecl's
/// fallback takes twelve. Holds `B·H·Sq·Skv` scores in the activation dtype.
pub fn fused_softmax(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<4, Bool>>) -> Tensor<4> {
    around_scores(q, k, v, mask, scaled_softmax)
}

/// The whole attention in one kernel (`dam_vision::flash`, feature `cube`) on cubecl devices
/// — the scores never leave the chip; the rounding points of [`materialized`]. With a mask, a
/// head_dim past `flash::MAX_HEAD_DIM` or off cubecl, [`fused_softmax`] (the kernel takes no
/// mask: the vision tower's attentions have none).
pub fn flash(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<4, Bool>>) -> Tensor<4> {
    #[cfg(feature = "cube")]
    if mask.is_none() && crate::flash::supports(&q) {
        return crate::flash::flash_attention(q, k, v);
    }
    fused_softmax(q, k, v, mask)
}

/// The whole attention as the hand-written kernel ([`crate::hand_attention`], feature `cube`)
/// where it runs — bf16, head_dim 72, no mask, the `cuda-nvrtc` build, after its probe on the
/// device passed; PyTorch's flash SDPA's rounding points (bf16 probabilities) — else
/// [`fused_softmax`].
pub fn hand(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<4, Bool>>) -> Tensor<4> {
    #[cfg(feature = "cube")]
    if mask.is_none() {
        return crate::flash::flash_attention_hand(q, k, v);
    }
    fused_softmax(q, k, v, mask)
}

/// `softmax(q·kᵀ · 1/√Dh)·v` with the scores materialised: `q·kᵀ` in the activation dtype,
/// hidden keys set to `-inf` (which stays `-inf` through the scaling), `softmax` over each
/// score row (`[B·H·Sq, Skv]`, with the scale), then `·v`.
fn around_scores(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Option<Tensor<4, Bool>>,
    row_softmax: fn(Tensor<2>, f64) -> Tensor<2>,
) -> Tensor<4> {
    let [b, h, sq, head_dim] = q.dims();
    let skv = k.dims()[2];
    // Both products with the matmul switch's `scores` kernel (`dam_core::matmul_kernel`,
    // burn's op by default).
    let scores = score_matmul(q, k.swap_dims(2, 3));
    let scores = match mask {
        Some(mask) => scores.mask_fill(mask, f32::NEG_INFINITY),
        None => scores,
    };
    let probs = row_softmax(scores.reshape([b * h * sq, skv]), 1.0 / (head_dim as f64).sqrt());
    score_matmul(probs.reshape([b, h, sq, skv]), v)
}

/// `softmax(x · scale)` over the last axis of `x` `[R, N]`: the kernel of [`crate::softmax`]
/// on cubecl devices, [`scaled_softmax_reference`] elsewhere.
fn scaled_softmax(x: Tensor<2>, scale: f64) -> Tensor<2> {
    #[cfg(feature = "cube")]
    {
        crate::softmax::scaled_softmax(x, scale)
    }
    #[cfg(not(feature = "cube"))]
    {
        scaled_softmax_reference(x, scale)
    }
}

/// `softmax(x · scale)` over the last axis with burn ops, rounded as transformers' eager
/// attention: the product in `x`'s dtype, the softmax in f32, the result back in `x`'s dtype.
pub fn scaled_softmax_reference(x: Tensor<2>, scale: f64) -> Tensor<2> {
    let dtype = x.dtype();
    softmax(x.mul_scalar(scale).cast(FloatDType::F32), 1).cast(dtype)
}

/// Queries per flash stage that `seq_q` is padded to a multiple of (16-row tiles × 8 planes,
/// the largest stage burn-cubecl tries).
const QUERY_MULTIPLE: usize = 128;
/// The tensor-core tile width `head_dim` is padded to a multiple of.
const HEAD_MULTIPLE: usize = 16;

/// burn's `attention` on padded shapes: queries padded with zero rows to a multiple of 128
/// (their outputs are dropped), and q, k, v padded with zero columns to a head_dim multiple of
/// 16 (zeros add nothing to a dot product, and v's zero columns are dropped). q is scaled by
/// √(Dp/Dh) so burn's default scale 1/√Dp amounts to 1/√Dh (one extra rounding of q in half
/// precision). Keys are not padded — the kernel bounds-checks them — so no mask is added.
pub fn padded(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<4, Bool>>) -> Tensor<4> {
    let [_, _, s, d] = q.dims();
    let (sp, dp) = (s.next_multiple_of(QUERY_MULTIPLE), d.next_multiple_of(HEAD_MULTIPLE));
    let options = AttentionModuleOptions::default();
    if (sp, dp) == (s, d) {
        return attention(q, k, v, mask, None, options);
    }
    let zero = || PadMode::Constant(0.0);
    let q = q
        .mul_scalar((dp as f64 / d as f64).sqrt())
        .pad([(0, sp - s), (0, dp - d)], zero());
    let k = k.pad([(0, 0), (0, dp - d)], zero());
    let v = v.pad([(0, 0), (0, dp - d)], zero());
    // Padded query rows see every key (their output is dropped).
    let mask = mask.map(|m| m.int().pad([(0, sp - s), (0, 0)], zero()).greater_elem(0));
    attention(q, k, v, mask, None, options).narrow(2, 0, s).narrow(3, 0, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    /// Off CUDA the vision attention is burn's own unless a form is chosen (the kernels'
    /// default is CUDA's, where it was measured). Nothing in this crate's tests selects one.
    #[test]
    fn the_cpu_default_is_burns_attention() {
        if std::env::var_os("DAM_VISION_ATTENTION").is_none() {
            assert_eq!(kernel_for(&burn::tensor::Device::flex()), AttentionKernel::Auto);
        }
    }

    /// Every form against burn's attention, at SigLIP-like odd sizes (head_dim 9 pads to 16,
    /// 11 queries to 128), with and without a key mask.
    #[test]
    fn every_form_equals_the_backend_attention() {
        let device = burn::tensor::Device::flex();
        let normal = Distribution::Normal(0.0, 1.0);
        let q = Tensor::<4>::random([2, 3, 11, 9], normal, &device);
        let k = Tensor::<4>::random([2, 3, 13, 9], normal, &device);
        let v = Tensor::<4>::random([2, 3, 13, 9], normal, &device);
        let hidden: Vec<bool> = (0..2 * 13).map(|i| i % 5 == 1).collect();
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(hidden, [2, 1, 1, 13]), &device).expand([2, 3, 11, 13]);
        for mask in [None, Some(mask)] {
            let reference = attention(q.clone(), k.clone(), v.clone(), mask.clone(), None, Default::default());
            let size = reference.clone().abs().max().into_scalar::<f32>();
            assert!(size > 0.1, "reference {size}");
            for (name, ours) in [
                (
                    "materialized",
                    materialized(q.clone(), k.clone(), v.clone(), mask.clone()),
                ),
                ("padded", padded(q.clone(), k.clone(), v.clone(), mask.clone())),
                (
                    "fused-softmax",
                    fused_softmax(q.clone(), k.clone(), v.clone(), mask.clone()),
                ),
                // Off cubecl devices the `fused-softmax` form (the kernel: dam/tests/fused_wgpu.rs).
                ("flash", flash(q.clone(), k.clone(), v.clone(), mask.clone())),
                // Off CUDA (and in f32) the `fused-softmax` form too.
                ("hand", hand(q.clone(), k.clone(), v.clone(), mask.clone())),
            ] {
                assert_eq!(ours.dims(), reference.dims(), "{name}");
                let diff = (ours - reference.clone()).abs().max().into_scalar::<f32>();
                assert!(diff < 1e-5, "{name}: max abs diff {diff}");
            }
        }
    }

    #[test]
    fn kernel_names_parse() {
        for k in AttentionKernel::ALL {
            assert_eq!(k.name().parse(), Ok(k));
        }
        assert_eq!("padded".parse(), Ok(AttentionKernel::Padded));
        assert_eq!("materialized".parse(), Ok(AttentionKernel::Materialized));
        assert_eq!("auto".parse(), Ok(AttentionKernel::Auto));
        assert_eq!("fused-softmax".parse(), Ok(AttentionKernel::FusedSoftmax));
        assert_eq!("flash".parse(), Ok(AttentionKernel::Flash));
        assert_eq!("hand".parse(), Ok(AttentionKernel::Hand));
        assert!("flash-attention".parse::<AttentionKernel>().is_err());
    }
}
