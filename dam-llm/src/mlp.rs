//! LLaMA's SwiGLU MLP: `down(silu(gate(x)) * up(x))`, with gate and up fused into one matmul.

use burn::module::Module;
use burn::tensor::Tensor;
use dam_core::nn::{TorchLinear, silu_mul};
use dam_core::{Loader, WeightError};

/// LLaMA's SwiGLU MLP (`model.layers.{i}.mlp`): `down_proj(silu(gate_proj(x)) · up_proj(x))`.
#[derive(Module, Debug)]
pub struct LlamaMlp {
    /// `gate_proj|up_proj` fused, `[2I, D]`.
    pub gate_up_proj: TorchLinear,
    /// `down_proj`, `[D, I]`.
    pub down_proj: TorchLinear,
}

impl LlamaMlp {
    /// Loads `gate_proj`, `up_proj` (fused into `gate_up_proj`) and `down_proj` under `loader`.
    pub fn load(loader: &Loader, hidden: usize, intermediate: usize) -> Result<Self, WeightError> {
        Ok(Self {
            gate_up_proj: loader.fused_torch_linear(&["gate_proj", "up_proj"], hidden, &[intermediate; 2], false)?,
            down_proj: loader.torch_linear("down_proj", intermediate, hidden, false)?,
        })
    }

    /// `x` `[rows, D]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.down_proj.forward(silu_mul(self.gate_up_proj.forward(x)))
    }
}
