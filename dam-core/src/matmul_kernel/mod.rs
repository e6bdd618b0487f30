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
//!
//! The linears and the attention's score products each get their kernel ([`MatmulChoice`]:
//! `DAM_MATMUL=tma-mma` or `DAM_MATMUL=linear=tma-mma,scores=simple-mma`).
//!
//! On other backends (and builds without the `cube` feature) every choice is burn's op. The
//! op goes through burn's backend extension (`#[backend_extension]`), like the LayerNorm kernel.

#[cfg(feature = "cube")]
pub mod cube;

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
}

impl MatmulKernel {
    /// Every choice, in the order `bench --probe-matmul` tries them.
    pub fn all() -> impl Iterator<Item = Self> {
        [Self::Fusion, Self::Autotune]
            .into_iter()
            .chain((0..ROUTINES.len() as u8).map(Self::Routine))
    }

    /// The name `bench --matmul` and `DAM_MATMUL` use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fusion => "fusion",
            Self::Autotune => "autotune",
            Self::Routine(i) => ROUTINES.get(i as usize).copied().unwrap_or("?"),
        }
    }

    /// The code the backend extension's `matmul_with` takes: 0 = autotune, i + 1 =
    /// `ROUTINES[i]` (`Fusion` never reaches the extension).
    pub fn code(self) -> u32 {
        match self {
            Self::Fusion | Self::Autotune => 0,
            Self::Routine(i) => i as u32 + 1,
        }
    }
}

impl std::str::FromStr for MatmulKernel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::all().find(|k| k.name() == s).ok_or_else(|| {
            format!(
                "unknown matmul kernel `{s}` (fusion, autotune, {})",
                ROUTINES.join(", ")
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
/// added.
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let k = choice_on(&x.device()).linear;
    // Half types on the CPU backend: our product (burn-flex's converts on one thread).
    let half_cpu = crate::nn::cpu_half_matmul(&x);
    if k == MatmulKernel::Fusion && !half_cpu {
        return layer.forward(x);
    }
    let dims = x.dims();
    let weight = layer.weight.val();
    let [d_in, d_out] = weight.dims();
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
    let mut out = dims;
    out[D - 1] = d_out;
    y.reshape(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_name_parses_back_and_unknown_names_list_the_choices() {
        let all: Vec<_> = MatmulKernel::all().collect();
        assert_eq!(all.len(), ROUTINES.len() + 2);
        for k in &all {
            assert_eq!(k.name().parse::<MatmulKernel>(), Ok(*k));
        }
        // Codes are distinct below the extension: 0 = autotune, then one per routine.
        let codes: std::collections::BTreeSet<_> = all.iter().skip(1).map(|k| k.code()).collect();
        assert_eq!(codes.len(), ROUTINES.len() + 1);
        let err = "tma".parse::<MatmulKernel>().unwrap_err();
        assert!(err.contains("tma-cmma") && err.contains("fusion"), "{err}");
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
        set_choice(MatmulChoice::uniform(MatmulKernel::Routine(0)));
        assert!(!crate::switch::cubecl_device(&device));
        assert_eq!(choice_on(&device), MatmulChoice::default());
        let y = linear(&layer, x).into_data().try_into_vec::<f32>().unwrap();
        set_choice(MatmulChoice::default());
        let want = [5.1, -1.3, 2.3, 11.1, -2.3, 4.3];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
    }
}
