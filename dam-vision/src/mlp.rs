//! The two-layer MLP of SigLIP layers and adapters: `fc1` → GELU → `fc2`.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use dam_core::matmul_kernel::{linear, linear_gelu_tanh};
use dam_core::nn::gelu_erf;
use dam_core::{Loader, WeightError};

/// The two-layer GELU MLP of SigLIP's layers and of the adapters: `fc2(gelu(fc1(x)))`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// `fc1`, C → intermediate size.
    pub fc1: Linear,
    /// `fc2`, intermediate size → C.
    pub fc2: Linear,
    /// `gelu_pytorch_tanh` (SigLIP and the adapters) or exact erf GELU.
    pub tanh_gelu: bool,
}

impl Mlp {
    /// Loads `fc1` and `fc2` under `loader`; `act` is the config's `hidden_act`.
    pub fn load(loader: &Loader, dim: usize, hidden: usize, act: &str) -> Result<Self, WeightError> {
        Ok(Self {
            fc1: loader.linear("fc1", dim, hidden, true)?,
            fc2: loader.linear("fc2", hidden, dim, true)?,
            tanh_gelu: dam_core::config::is_tanh_gelu(act),
        })
    }

    /// `x` `[B, T, C]` → `[B, T, C]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        // fc1 and the tanh GELU in one kernel where the hand-written matmul runs.
        let h = if self.tanh_gelu {
            linear_gelu_tanh(&self.fc1, x)
        } else {
            gelu_erf(linear(&self.fc1, x))
        };
        linear(&self.fc2, h)
    }
}
