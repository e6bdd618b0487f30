//! LLaMA's SwiGLU MLP: `down(silu(gate(x)) * up(x))`, with gate and up fused into one matmul.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;
use dam_core::{Loader, WeightError};

#[derive(Module, Debug)]
pub struct LlamaMlp {
    /// `gate_proj|up_proj` fused, `[D, 2I]`.
    pub gate_up_proj: Linear,
    pub down_proj: Linear,
    pub intermediate: usize,
}

impl LlamaMlp {
    pub fn load(loader: &Loader, hidden: usize, intermediate: usize) -> Result<Self, WeightError> {
        Ok(Self {
            gate_up_proj: loader.fused_linear(&["gate_proj", "up_proj"], hidden, &[intermediate; 2], false)?,
            down_proj: loader.linear("down_proj", intermediate, hidden, false)?,
            intermediate,
        })
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gu = self.gate_up_proj.forward(x);
        let gate = gu.clone().narrow(2, 0, self.intermediate);
        let up = gu.narrow(2, self.intermediate, self.intermediate);
        self.down_proj.forward(silu(gate) * up)
    }
}
