//! Which matmul kernel the vision tower's (and the LLM prefill's) large products use on the
//! cubecl backends — an experiment switch, `fusion` (burn's own op) by default.
//!
//! Why: on an H100 a DAM-3B vision encode is ≈ 1.9 TFLOP (78 SigLIP-sized blocks of 729
//! tokens) and took 54 ms; its matmuls ran at ≈ 40–50 TFLOP/s (fc1, 729 × 1152 → 4304, ≈ 170 µs
//! profiled) on a card that does ≈ 770 TFLOP/s on large bf16 products
//! (docs/performance.md, "Where a vision encode's time goes" and "Matmul kernels — the vision
//! lever": with launches hidden by the recorded encode, the products are ≈ 37 of its 54 ms).
//! The profile named the kernel
//! burn-cubecl-fusion's tuner settled on — cubek's *simple* routine (one stage, no
//! pipelining) — and that tuner has no TMA candidates and tries double buffering only for
//! some shapes. Which of cubek's routines is fastest at these shapes on Hopper is not known
//! here; this switch lets one process try each (`bench --probe-matmul`) and run the whole
//! model on the winner (`bench --matmul NAME`, `DAM_MATMUL=NAME`).
//!
//! - [`MatmulKernel::Fusion`] (default): burn's op as written (`Linear::forward`,
//!   `Tensor::matmul`): with burn's fusion, burn-cubecl-fusion's matmul with the bias, GELU,
//!   … fused into its epilogue.
//! - [`MatmulKernel::Autotune`]: burn-cubecl's own autotuned matmul below burn's fusion (its
//!   tuner also tries cubek's TMA routines); the bias is added by a separate op.
//! - [`MatmulKernel::Routine`]: one of cubek's routines, fixed ([`ROUTINES`]); a routine
//!   that cannot run a product (no tensor cores, no TMA, a shape it refuses) falls back to
//!   `Autotune` for that product, with a warning the first time.
//! - [`MatmulKernel::Hand`]: our hand-written CUDA C++ product ([`hand`], `gemm_hand.cu`:
//!   `cp.async` ring, `ldmatrix`, `mma.sync`, bias and GELU in its epilogue) for the linears,
//!   on the CUDA build whose compiler is NVRTC (`cuda-nvrtc`) and bf16 only; one of its
//!   variants fixed (`hand-64x128x32-s3`, …) or chosen per product (`hand`). The first use on
//!   a device runs a small product through each variant and compares it with burn's
//!   ([`hand_available`]); a variant that fails (or a build or device that cannot run it)
//!   is left out, with a warning, and its products take burn's op. **Not yet run on a GPU**
//!   (written 2026-11-28 without one; its source is checked on the CPU by
//!   `scripts/gemm-hand-check.cpp`).
//!
//! The linears and the attention's score products each get their kernel ([`MatmulChoice`]:
//! `DAM_MATMUL=tma-mma` or `DAM_MATMUL=linear=tma-mma,scores=simple-mma`).
//!
//! On other backends (and builds without the `cube` feature) every choice is burn's op. The
//! op goes through burn's backend extension (`#[backend_extension]`), like the LayerNorm kernel.

#[cfg(feature = "cube")]
pub mod cube;
pub mod hand;
#[cfg(feature = "cube")]
pub mod hand_launch;

#[cfg(feature = "cube")]
use burn::backend::tensor::FloatTensor;
#[cfg(feature = "cube")]
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

/// cubek's matmul routines this switch can fix, by the name `bench --matmul` and
/// `DAM_MATMUL` take. `cmma` / `mma` name the tile instruction (CUDA's `wmma` API or the PTX
/// `mma` instruction); `tma` routines load their stages with Hopper's tensor memory
/// accelerator; `unit` routines use no tensor cores. The construction of each is in
/// `cube.rs` (`routine`), with the same selection arguments burn-cubecl's tuner uses.
pub const ROUTINES: [&str; 22] = [
    "simple-cmma",
    "simple-mma",
    "simple-multirow-cmma",
    "simple-multirow-mma",
    "ordered-double-cmma",
    "ordered-double-mma",
    "ordered-double8-cmma",
    "ordered-double8-mma",
    "double-cmma",
    "double-mma",
    "double-specialized-cmma",
    "double-specialized-mma",
    "specialized-cmma",
    "specialized-mma",
    "tma-cmma",
    "tma-mma",
    "tma-multirow-cmma",
    "tma-multirow-mma",
    "specialized-tma-cmma",
    "specialized-tma-mma",
    "simple-unit",
    "double-unit",
];

/// See the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MatmulKernel {
    /// burn's op (default).
    #[default]
    Fusion,
    /// burn-cubecl's autotuned matmul, below burn's fusion.
    Autotune,
    /// `ROUTINES[i]`, fixed.
    Routine(u8),
    /// The hand-written product: 0 = its variant chosen per product ([`hand::pick`]),
    /// i + 1 = `hand::HAND_VARIANTS[i]`, fixed ([`HAND_NAMES`]).
    Hand(u8),
}

/// The names of [`MatmulKernel::Hand`]`(0..=4)`: `hand` (a variant per product), then
/// `hand-` and each of `hand::HAND_VARIANTS`' names.
pub const HAND_NAMES: [&str; 5] = [
    "hand",
    "hand-64x128x32-s3",
    "hand-128x128x32-s2",
    "hand-128x64x32-s3",
    "hand-64x64x32-s4",
];

impl MatmulKernel {
    /// Every choice, in the order `bench --probe-matmul` tries them.
    pub fn all() -> impl Iterator<Item = Self> {
        [Self::Fusion, Self::Autotune]
            .into_iter()
            .chain((0..ROUTINES.len() as u8).map(Self::Routine))
            .chain((0..HAND_NAMES.len() as u8).map(Self::Hand))
    }

    /// The name `bench --matmul` and `DAM_MATMUL` use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fusion => "fusion",
            Self::Autotune => "autotune",
            Self::Routine(i) => ROUTINES.get(i as usize).copied().unwrap_or("?"),
            Self::Hand(i) => HAND_NAMES.get(i as usize).copied().unwrap_or("?"),
        }
    }

    /// The code the backend extension's `matmul_with` takes: 0 = autotune, i + 1 =
    /// `ROUTINES[i]`, then the hand-written kernels (`Fusion` never reaches the extension).
    pub fn code(self) -> u32 {
        match self {
            Self::Fusion | Self::Autotune => 0,
            Self::Routine(i) => i as u32 + 1,
            Self::Hand(i) => ROUTINES.len() as u32 + 1 + i as u32,
        }
    }

    /// The kernel [`code`](Self::code) names.
    pub fn from_code(code: u32) -> Self {
        let routines = ROUTINES.len() as u32;
        match code {
            0 => Self::Autotune,
            c if c <= routines => Self::Routine((c - 1) as u8),
            c => Self::Hand((c - routines - 1).min(u8::MAX as u32) as u8),
        }
    }
}

impl std::str::FromStr for MatmulKernel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::all().find(|k| k.name() == s).ok_or_else(|| {
            format!(
                "unknown matmul kernel `{s}` (fusion, autotune, {}, {})",
                ROUTINES.join(", "),
                HAND_NAMES.join(", ")
            )
        })
    }
}

/// A matrix product with a chosen kernel, as a burn backend extension (implemented for the
/// cubecl backend in `cube.rs`).
#[cfg(feature = "cube")]
#[backend_extension(Cube, Fusion: cfg(feature = "fusion"))]
pub trait MatmulOps: Backend {
    /// `lhs` `[.., M, K]` · `rhs` `[.., K, N]` (same rank, same batch dims; either may be a
    /// strided view such as a transpose) → `[.., M, N]`, with kernel `code` (see
    /// [`MatmulKernel::code`]).
    #[fusion(dtype = lhs, shape = {
        let mut shape = lhs.clone();
        let last = shape.num_dims() - 1;
        shape[last] = rhs[rhs.num_dims() - 1];
        shape
    })]
    fn matmul_with(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>, code: u32) -> FloatTensor<Self>;

    /// A linear layer's `x` `[M, K]` · `w` `[K, N]` + `bias` `[N]` (then GELU, tanh form, if
    /// `gelu`) in one kernel where `code` names a [`MatmulKernel::Hand`] that takes it, else
    /// as `matmul_with` + bias (+ GELU) with burn's ops.
    #[fusion(dtype = x, shape = {
        let mut shape = x.clone();
        shape[1] = w[1];
        shape
    })]
    fn linear_with(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        code: u32,
        gelu: bool,
    ) -> FloatTensor<Self>;
}

/// The kernels of the two kinds of product routed here: the **linears** ([`linear`]: the
/// vision tower's, the adapters' and the projector's; with a fixed routine also the LLM
/// prefill's) and the attention's **score** products ([`score_matmul`]: q·kᵀ and p·v, K = 72
/// and K = 729 at DAM-3B's size). Written `NAME` (both) or `linear=NAME,scores=NAME` (a part
/// left out is `fusion`), as `bench --matmul` and `DAM_MATMUL` take it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatmulChoice {
    /// Kernel of the linears.
    pub linear: MatmulKernel,
    /// Kernel of the attention's score products.
    pub scores: MatmulKernel,
}

impl MatmulChoice {
    /// The same kernel for both kinds.
    pub fn uniform(kernel: MatmulKernel) -> Self {
        Self {
            linear: kernel,
            scores: kernel,
        }
    }

    /// The written form ([`std::str::FromStr`] reads it back).
    pub fn name(&self) -> String {
        if self.linear == self.scores {
            self.linear.name().to_string()
        } else {
            format!("linear={},scores={}", self.linear.name(), self.scores.name())
        }
    }
}

impl std::str::FromStr for MatmulChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if !s.contains('=') {
            return s.parse().map(Self::uniform);
        }
        let mut choice = Self::default();
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("linear", k)) => choice.linear = k.parse()?,
                Some(("scores", k)) => choice.scores = k.parse()?,
                _ => return Err(format!("`{part}`: expected linear=NAME or scores=NAME")),
            }
        }
        Ok(choice)
    }
}

/// Set by [`set_choice`], else `DAM_MATMUL`, else `fusion` for both.
static CHOICE: crate::switch::Switch<MatmulChoice> = crate::switch::Switch::new("DAM_MATMUL", |v| v.parse().ok());

/// Selects the kernels of every product routed through this module in this process.
/// `DAM_MATMUL=…` does the same when this is not called.
pub fn set_choice(choice: MatmulChoice) {
    CHOICE.set(choice);
}

/// The kernels selected now (whatever the device).
pub fn choice() -> MatmulChoice {
    CHOICE.get()
}

/// The kernels products on `device` use: the selected ones on a cubecl device
/// ([`crate::switch::cubecl_device`]), `fusion` (burn's op) elsewhere.
pub fn choice_on(device: &Device) -> MatmulChoice {
    if crate::switch::cubecl_device(device) {
        choice()
    } else {
        MatmulChoice::default()
    }
}

/// An attention score product `lhs · rhs` (batched over the leading dims, which must be
/// equal) with the selected `scores` kernel.
pub fn score_matmul<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>) -> Tensor<D> {
    let k = choice_on(&lhs.device()).scores;
    matmul_with(lhs, rhs, k)
}

/// `lhs · rhs` with kernel `k` whatever the switch says on a cubecl device; burn's op
/// elsewhere and for `Fusion`.
pub fn matmul_with<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>, k: MatmulKernel) -> Tensor<D> {
    #[cfg(feature = "cube")]
    if let MatmulKernel::Hand(_) = k {
        // One matrix product (leading dims all 1), where the kernel runs; else burn's op,
        // counted as a refusal.
        let (ld, rd) = (lhs.dims(), rhs.dims());
        let single = D >= 2 && ld[..D - 2].iter().chain(&rd[..D - 2]).all(|&d| d == 1);
        let (m, kk, n) = (ld[D.max(2) - 2], ld[D - 1], rd[D - 1]);
        if !single || !hand_takes(&lhs, m, n, kk, k) {
            cube::count_refusal(
                k,
                &ld,
                &rd,
                "not one bf16 matrix product it takes, or not available here",
            );
            return lhs.matmul(rhs);
        }
        let y = Tensor::<2>::from_dispatch(<Dispatch as MatmulOps>::matmul_with(
            lhs.reshape([m, kk]).into_dispatch(),
            rhs.reshape([kk, n]).into_dispatch(),
            k.code(),
        ));
        let mut out = ld;
        out[D - 1] = n;
        return y.reshape(out);
    }
    #[cfg(feature = "cube")]
    if k != MatmulKernel::Fusion && crate::switch::cubecl_device(&lhs.device()) {
        return Tensor::from_dispatch(<Dispatch as MatmulOps>::matmul_with(
            lhs.into_dispatch(),
            rhs.into_dispatch(),
            k.code(),
        ));
    }
    let _ = k;
    lhs.matmul(rhs)
}

/// burn `Linear` (`[in, out]` weight) on `x` `[.., in]` with the selected `linear` kernel: its
/// own `forward` for `Fusion`, else the rows flattened through [`matmul_with`] and the bias
/// added (or, for [`MatmulKernel::Hand`] where it runs, one kernel with the bias).
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    linear_then(layer, x, false)
}

/// `gelu_tanh(linear(layer, x))` ([`crate::nn::gelu_tanh`]): the GELU in the product's
/// epilogue where [`MatmulKernel::Hand`] runs (the sum rounded first, as the separate op
/// would see it), else the two ops.
pub fn linear_gelu_tanh<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    linear_then(layer, x, true)
}

fn linear_then<const D: usize>(layer: &Linear, x: Tensor<D>, gelu: bool) -> Tensor<D> {
    let mut k = choice_on(&x.device()).linear;
    let dims = x.dims();
    let weight = layer.weight.val();
    let [d_in, d_out] = weight.dims();
    let mut out = dims;
    out[D - 1] = d_out;
    if let MatmulKernel::Hand(_) = k {
        #[cfg(feature = "cube")]
        if let Some(bias) = &layer.bias
            && hand_takes(&x, dims[..D - 1].iter().product(), d_out, d_in, k)
        {
            let rows = x.reshape([-1, d_in as i32]);
            let y = Tensor::<2>::from_dispatch(<Dispatch as MatmulOps>::linear_with(
                rows.into_dispatch(),
                weight.into_dispatch(),
                bias.val().into_dispatch(),
                k.code(),
                gelu,
            ));
            return y.reshape(out);
        }
        // Where the hand-written product does not run: burn's op.
        k = MatmulKernel::Fusion;
    }
    // Half types on the CPU backend: our product (burn-flex's converts on one thread).
    let half_cpu = crate::nn::cpu_half_matmul(&x);
    let y = if k == MatmulKernel::Fusion && !half_cpu {
        layer.forward(x)
    } else {
        let rows = x.reshape([-1, d_in as i32]);
        let y = if half_cpu {
            crate::nn::half_aware_matmul(rows, weight)
        } else {
            matmul_with(rows, weight, k)
        };
        let y = match &layer.bias {
            Some(b) => y + b.val().unsqueeze::<2>(),
            None => y,
        };
        y.reshape(out)
    };
    if gelu { crate::nn::gelu_tanh(y) } else { y }
}

/// Whether the hand-written product `kernel` takes `x` (`rows` × `k`, bf16) times a `[k, n]`
/// weight on `x`'s device: sizes it takes ([`hand::unsupported`]), and — by
/// [`hand_available`] there — the variant it fixes passed, or for `hand` any did.
#[cfg(feature = "cube")]
fn hand_takes<const D: usize>(x: &Tensor<D>, rows: usize, n: usize, k: usize, kernel: MatmulKernel) -> bool {
    let MatmulKernel::Hand(i) = kernel else {
        return false;
    };
    let wanted = if i == 0 { u8::MAX } else { 1 << (i - 1) };
    x.dtype() == burn::tensor::DType::BF16
        && hand::unsupported(rows, n, k).is_none()
        && hand_available(&x.device()) & wanted != 0
}

/// Which of `hand::HAND_VARIANTS` run correctly on `device` (bit i = variant i): 0 off CUDA;
/// on CUDA, decided once per process at the first call (the first device asked) by a small
/// bf16 product through each variant — with and without GELU, at sizes that cut every tile
/// edge — compared with burn's product in f32. A variant that fails to compile or load (the
/// LLVM build refuses kernel text; NVRTC may be missing) or disagrees is left out with a
/// warning naming why; the rest are used.
pub fn hand_available(device: &Device) -> u8 {
    #[cfg(feature = "cube")]
    if crate::switch::cuda_device(device) {
        return *HAND_WORKING.get_or_init(|| probe_hand(device));
    }
    let _ = device;
    0
}

/// [`hand_available`]'s answer on CUDA, once the probe has run.
#[cfg(feature = "cube")]
static HAND_WORKING: std::sync::OnceLock<u8> = std::sync::OnceLock::new();

/// While the probe runs: every variant may launch (it is what is being tried).
#[cfg(feature = "cube")]
static HAND_PROBING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(feature = "cube")]
fn probe_hand(device: &Device) -> u8 {
    use burn::tensor::{FloatDType, TensorData};
    let (m, k, n) = (100, 72, 136);
    let values = |count: usize, seed: usize, scale: f32| -> Vec<f32> {
        (0..count)
            .map(|i| (((i * 7919 + seed) % 257) as f32 / 128.0 - 1.0) * scale)
            .collect()
    };
    let bf16 = |v: Vec<f32>, shape: Vec<usize>| {
        Tensor::<2>::from_data(TensorData::new(v, shape), device).cast(FloatDType::BF16)
    };
    let x = bf16(values(m * k, 1, 1.0), vec![m, k]);
    let w = bf16(values(k * n, 2, 1.0 / (k as f32).sqrt()), vec![k, n]);
    let b = bf16(values(n, 3, 0.5), vec![1, n]);
    let f32s = |t: &Tensor<2>| t.clone().cast(FloatDType::F32);
    let sum = f32s(&x).matmul(f32s(&w)) + f32s(&b);
    let mut working = 0u8;
    HAND_PROBING.store(true, std::sync::atomic::Ordering::Relaxed);
    for (i, variant) in hand::HAND_VARIANTS.iter().enumerate() {
        let code = MatmulKernel::Hand(i as u8 + 1).code();
        let mut failure = None;
        for gelu in [false, true] {
            let got = Tensor::<2>::from_dispatch(<Dispatch as MatmulOps>::linear_with(
                x.clone().into_dispatch(),
                w.clone().into_dispatch(),
                b.clone().reshape([n as i32]).into_dispatch(),
                code,
                gelu,
            ));
            // The reference rounds the sum to bf16 before GELU, as the kernel does.
            let want = if gelu {
                crate::nn::gelu_tanh(sum.clone().cast(FloatDType::BF16))
            } else {
                sum.clone()
            };
            match crate::precompiled::difference(got, want, true) {
                Ok(worst) if worst <= 1e-2 => {}
                Ok(worst) => {
                    failure = Some(format!("off by {worst:e} (relative) from burn's product (gelu {gelu})"));
                    break;
                }
                Err(why) => {
                    failure = Some(why);
                    break;
                }
            }
        }
        match failure {
            None => working |= 1 << i,
            Some(why) => tracing::warn!(
                "the hand-written matmul `hand-{}` does not run here ({why}); its products use burn's op",
                variant.name()
            ),
        }
    }
    HAND_PROBING.store(false, std::sync::atomic::Ordering::Relaxed);
    tracing::info!("hand-written matmul variants working on this device: {working:#06b}");
    working
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_name_parses_back_and_unknown_names_list_the_choices() {
        let all: Vec<_> = MatmulKernel::all().collect();
        assert_eq!(all.len(), ROUTINES.len() + 2 + HAND_NAMES.len());
        for k in &all {
            assert_eq!(k.name().parse::<MatmulKernel>(), Ok(*k));
        }
        // Codes are distinct below the extension: 0 = autotune, then one per routine, then
        // the hand-written kernel's; each names its kernel back.
        let codes: std::collections::BTreeSet<_> = all.iter().skip(1).map(|k| k.code()).collect();
        assert_eq!(codes.len(), ROUTINES.len() + 1 + HAND_NAMES.len());
        for k in all.iter().skip(1) {
            assert_eq!(MatmulKernel::from_code(k.code()), *k);
        }
        let err = "tma".parse::<MatmulKernel>().unwrap_err();
        assert!(
            err.contains("tma-cmma") && err.contains("fusion") && err.contains("hand-64x64x32-s4"),
            "{err}"
        );
        // `hand-NAME` is `hand-` and the variant's own name.
        for (i, v) in hand::HAND_VARIANTS.iter().enumerate() {
            assert_eq!(HAND_NAMES[i + 1], format!("hand-{}", v.name()));
        }
    }

    #[test]
    fn a_choice_is_one_name_or_one_per_kind_of_product() {
        let tma: MatmulKernel = "tma-mma".parse().unwrap();
        assert_eq!("tma-mma".parse(), Ok(MatmulChoice::uniform(tma)));
        let both: MatmulChoice = "linear=tma-mma,scores=autotune".parse().unwrap();
        assert_eq!((both.linear, both.scores), (tma, MatmulKernel::Autotune));
        assert_eq!(both.name().parse(), Ok(both));
        assert_eq!(MatmulChoice::uniform(tma).name(), "tma-mma");
        // A part left out is burn's op.
        let linear_only: MatmulChoice = "linear=tma-mma".parse().unwrap();
        assert_eq!(linear_only.scores, MatmulKernel::Fusion);
        assert!("linear=tma".parse::<MatmulChoice>().is_err());
        assert!("lin=tma-mma".parse::<MatmulChoice>().is_err());
        assert_eq!(MatmulChoice::default(), MatmulChoice::uniform(MatmulKernel::Fusion));
    }

    #[test]
    fn off_cubecl_every_choice_is_burns_op() {
        let device = Device::default();
        let x = Tensor::<3>::from_floats([[[1.0, 2.0], [3.0, 4.0]]], &device);
        let layer = Linear {
            weight: burn::module::Param::from_tensor(Tensor::from_floats([[1.0, 0.5, 0.0], [2.0, -1.0, 1.0]], &device)),
            bias: Some(burn::module::Param::from_tensor(Tensor::from_floats(
                [0.1, 0.2, 0.3],
                &device,
            ))),
        };
        let want = [5.1, -1.3, 2.3, 11.1, -2.3, 4.3];
        for kernel in [MatmulKernel::Routine(0), MatmulKernel::Hand(0), MatmulKernel::Hand(2)] {
            set_choice(MatmulChoice::uniform(kernel));
            assert!(!crate::switch::cubecl_device(&device));
            assert_eq!(choice_on(&device), MatmulChoice::default());
            assert_eq!(hand_available(&device), 0);
            let y = linear(&layer, x.clone()).into_data().try_into_vec::<f32>().unwrap();
            let g = linear_gelu_tanh(&layer, x.clone())
                .into_data()
                .try_into_vec::<f32>()
                .unwrap();
            set_choice(MatmulChoice::default());
            for ((a, b), g) in y.iter().zip(want).zip(&g) {
                assert!((a - b).abs() < 1e-6, "{}: {y:?}", kernel.name());
                let gelu = 0.5 * b * (1.0 + (0.797_884_6 * (b + 0.044_715 * b * b * b)).tanh());
                assert!((g - gelu).abs() < 1e-5, "{}: gelu {g} against {gelu}", kernel.name());
            }
        }
    }
}
