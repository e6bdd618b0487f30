//! Small layers shared by the vision and language crates, with parameter names equal to the
//! checkpoint's (`weight`, `bias`) so the name map stays the identity.

use burn::module::{Module, Param};
use burn::tensor::{FloatDType, Tensor};

use crate::weights::{Init, Loader, WeightError};

/// `nn.LayerNorm` with affine parameters. Statistics are computed in f32 whatever the
/// activation dtype (PyTorch upcasts half-precision LayerNorm internally too).
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// Scale, `[dim]`.
    pub weight: Param<Tensor<1>>,
    /// Shift, `[dim]`.
    pub bias: Param<Tensor<1>>,
    /// Added to the variance before its square root.
    pub eps: f64,
}

impl LayerNorm {
    /// Loads `{leaf}.weight` and `{leaf}.bias`, both `[dim]`.
    pub fn load(loader: &Loader, leaf: &str, dim: usize, eps: f64) -> Result<Self, WeightError> {
        let at = loader.at(leaf);
        Ok(Self {
            weight: Param::from_tensor(at.tensor("weight", [dim], Init::Ones)?),
            bias: Param::from_tensor(at.tensor("bias", [dim], Init::Zeros)?),
            eps,
        })
    }

    /// Normalises over the last dimension (in one kernel on cubecl devices where
    /// `layer_norm_kernel::enabled`; the same rounding points).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        #[cfg(feature = "cube")]
        if crate::layer_norm_kernel::enabled(&x.device()) {
            let dims = x.dims();
            let c = dims[D - 1];
            let rows = x.reshape([-1, c as i32]);
            let out = crate::layer_norm_kernel::layer_norm(rows, self.weight.val(), self.bias.val(), self.eps);
            return out.reshape(dims);
        }
        self.forward_dim(x, D - 1)
    }

    /// Normalises over dimension `dim` (1 for channels-first `[B, C, H, W]` maps), with the
    /// biased variance.
    pub fn forward_dim<const D: usize>(&self, x: Tensor<D>, dim: usize) -> Tensor<D> {
        let dtype = x.dtype();
        let x = x.cast(FloatDType::F32);
        let (var, mean) = x.clone().var_mean_bias(dim);
        let normed = (x - mean).div(var.add_scalar(self.eps).sqrt()).cast(dtype);
        let mut shape = [1; D];
        shape[dim] = self.weight.dims()[0];
        normed * self.weight.val().reshape(shape) + self.bias.val().reshape(shape)
    }
}

/// `nn.Linear` kept in PyTorch's memory layout: `y = x·Wᵀ + bias` with `W` `[out, in]`
/// row-major, as the checkpoint stores it.
///
/// Why not burn's `Linear` (`[in, out]` row-major): on the cubecl backends a one-row product (a
/// decode step) against a row-major `[in, out]` matrix has no good matrix-vector kernel, while
/// a transposed `[out, in]` view is the layout burn's matrix-vector routines are built for
/// (burn-cubecl's matmul tuner says as much). It also loads without a transpose, and fused
/// projections (q|k|v, gate|up) are plain row concatenations.
#[derive(Module, Debug)]
pub struct TorchLinear {
    /// `W` held through its transposed view: `dims()` reads `[in, out]`, the memory is
    /// `[out, in]` row-major. Taking the view once at load keeps the per-call graph to one
    /// matmul (every op counts in a decode step).
    pub weight: Param<Tensor<2>>,
    /// `[out]`.
    pub bias: Option<Param<Tensor<1>>>,
}

impl TorchLinear {
    /// From `W` `[out, in]` (row-major) and an optional bias `[out]`.
    pub fn new(weight_out_in: Tensor<2>, bias: Option<Tensor<1>>) -> Self {
        Self {
            weight: Param::from_tensor(weight_out_in.transpose()),
            bias: bias.map(Param::from_tensor),
        }
    }

    /// `x` `[rows, in]` → `[rows, out]`: one matmul (in bf16 / f16 on the CPU backend, our
    /// `flex_kernels::half_matmul`, feature `flex`).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let y = half_aware_matmul(x, self.weight.val());
        match &self.bias {
            Some(b) => y + b.val().unsqueeze::<2>(),
            None => y,
        }
    }

    /// `x` `[..., in]` → `[..., out]`. Leading dimensions are folded into rows first, so the
    /// product is always one 2-D matmul over the transposed view (reshaping a strided view
    /// instead could make a backend copy the weight).
    pub fn forward_nd<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dims = x.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        let y = self.forward(x.reshape([rows, dims[D - 1]]));
        let mut out = dims;
        out[D - 1] = self.d_out();
        y.reshape(out)
    }

    /// Input width `in`.
    pub fn d_in(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Output width `out`.
    pub fn d_out(&self) -> usize {
        self.weight.dims()[1]
    }
}

/// Whether [`half_aware_matmul`] takes `x`'s products through our CPU product: half types on
/// the CPU backend (a build with the `flex` feature).
pub fn cpu_half_matmul<const D: usize>(x: &Tensor<D>) -> bool {
    #[cfg(feature = "flex")]
    return crate::flex_kernels::half_matmul_applies(&x.device(), x.dtype());
    #[cfg(not(feature = "flex"))]
    {
        let _ = x;
        false
    }
}

/// `lhs · rhs` for 2-D tensors: burn's matmul, except for half types on the CPU backend,
/// where burn-flex converts both operands to f32 on one thread per call and
/// `flex_kernels::half_matmul` (feature `flex`) does the same product in parallel.
pub fn half_aware_matmul(lhs: Tensor<2>, rhs: Tensor<2>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if cpu_half_matmul(&lhs) && rhs.dtype() == lhs.dtype() {
        return crate::flex_kernels::half_matmul(lhs, rhs);
    }
    lhs.matmul(rhs)
}

/// GELU with the tanh approximation (`gelu_pytorch_tanh`), used by SigLIP and the adapters:
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
///
/// Written out rather than burn's `gelu_approximate`, which takes the cube with `powf(3)`:
/// PyTorch's kernels (CPU and CUDA) multiply, `x * x * x`, and so do we — the same rounding,
/// and on burn's CPU backend a scalar `powf` per element was ≈ 7 % of a DAM-3B encode.
/// On burn's CPU backend the whole formula is one parallel pass
/// (`flex_kernels`, feature `flex`; the same values in f32).
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if crate::flex_kernels::takes(&x.device(), x.dtype()) {
        return crate::flex_kernels::gelu_tanh(x);
    }
    gelu_tanh_ops(x)
}

/// [`gelu_tanh`] as burn's ops (every backend; what the CPU pass is tested against).
pub(crate) fn gelu_tanh_ops<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    // sqrt(2/π), as PyTorch's `M_SQRT2 * M_2_SQRTPI * 0.5`.
    const SQRT_2_OVER_PI: f64 = core::f64::consts::SQRT_2 * core::f64::consts::FRAC_2_SQRT_PI * 0.5;
    let cube = x.clone() * x.clone() * x.clone();
    let inner = (x.clone() + cube * 0.044715) * SQRT_2_OVER_PI;
    (x * (inner.tanh() + 1.0)) * 0.5
}

/// LLaMA's `silu(gate) · up` for `gate_up` `[R, 2I]` (gate = the first `I` columns, an even
/// width) → `[R, I]`.
///
/// On burn's CPU backend one parallel pass computing PyTorch's `x / (1 + exp(-x))` in f32
/// (`flex_kernels`, feature `flex`); elsewhere burn's `silu` and a product (the CUDA and wgpu
/// decoders have their own fused kernel, `dam_llm::fused`).
pub fn silu_mul(gate_up: Tensor<2>) -> Tensor<2> {
    let [_, width] = gate_up.dims();
    #[cfg(feature = "flex")]
    if width % 2 == 0 && crate::flex_kernels::takes(&gate_up.device(), gate_up.dtype()) {
        return crate::flex_kernels::silu_mul(gate_up);
    }
    let inter = width / 2;
    let gate = gate_up.clone().narrow(1, 0, inter);
    let up = gate_up.narrow(1, inter, width - inter);
    burn::tensor::activation::silu(gate) * up
}

/// Exact (erf) GELU, `nn.GELU()`'s default, used by the projector and SAM.
pub fn gelu_erf<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    burn::tensor::activation::gelu(x)
}

/// GELU as named by a `hidden_act` config value.
pub fn gelu_by_name<const D: usize>(act: &str, x: Tensor<D>) -> Tensor<D> {
    if crate::config::is_tanh_gelu(act) {
        gelu_tanh(x)
    } else {
        gelu_erf(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// PyTorch's f32 formula, step by step in f32: `x*x*x`, `kBeta * (x + kKappa * x_cube)`,
    /// `0.5 * x * (1 + tanh(inner))`.
    fn torch_gelu_tanh(x: f32) -> f32 {
        let k_beta = (std::f64::consts::SQRT_2 * std::f64::consts::FRAC_2_SQRT_PI * 0.5) as f32;
        let k_kappa = 0.044715f32;
        let inner = k_beta * (x + k_kappa * (x * x * x));
        0.5 * x * (1.0 + inner.tanh())
    }

    #[test]
    fn gelu_tanh_follows_pytorch_and_saturates() {
        let device = Device::flex();
        let xs: Vec<f32> = (-400..=400)
            .map(|i| i as f32 * 0.0275)
            .chain([-60.0, -9.5, 9.5, 60.0])
            .collect();
        let n = xs.len();
        let y = gelu_tanh(Tensor::<1>::from_data(TensorData::new(xs.clone(), [n]), &device));
        let y: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
        for (x, y) in xs.iter().zip(&y) {
            let want = torch_gelu_tanh(*x);
            // One or two ulps apart at most: only the tanh implementation may differ.
            assert!(
                (y - want).abs() <= 2.0 * f32::EPSILON * want.abs().max(1e-6),
                "gelu_tanh({x}) = {y}, want {want}"
            );
        }
        // Far out: the identity for large positive x, zero for large negative x.
        assert_eq!(y[n - 1], 60.0);
        assert_eq!(y[n - 4], 0.0);
    }
}
