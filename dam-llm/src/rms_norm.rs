//! LLaMA's RMSNorm, computed as Hugging Face does: statistics in f32, the normalised value cast
//! back to the activation dtype, then multiplied by the weight.

use burn::module::{Module, Param};
use burn::tensor::{FloatDType, Tensor};
use dam_core::{Init, Loader, WeightError};

/// LLaMA's RMSNorm: `x / sqrt(mean(x²) + eps) · weight`, the statistics in f32.
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// The checkpoint's `[D]` weight, held as `[1, D]` so it broadcasts over rows without a
    /// reshape per call.
    pub weight: Param<Tensor<2>>,
    /// `rms_norm_eps` of the LLM config.
    pub eps: f64,
}

impl RmsNorm {
    /// Loads `{leaf}.weight` `[dim]` under `loader`.
    pub fn load(loader: &Loader, leaf: &str, dim: usize, eps: f64) -> Result<Self, WeightError> {
        Ok(Self {
            weight: Param::from_tensor(loader.at(leaf).tensor("weight", [dim], Init::Ones)?.reshape([1, dim])),
            eps,
        })
    }

    /// `x` `[rows, D]`. `x / sqrt(mean(x²) + eps)` where HF writes `x * rsqrt(…)`: one op
    /// fewer, and within an ulp.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let dtype = x.dtype();
        let x = x.cast(FloatDType::F32);
        let var = x.clone().square().mean_dim(1);
        let normed = (x / var.add_scalar(self.eps).sqrt()).cast(dtype);
        normed * self.weight.val()
    }
}
