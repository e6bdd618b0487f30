//! LLaMA's SwiGLU MLP: `down(silu(gate(x)) * up(x))`, with gate and up fused into one matmul.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;
use dam_core::nn::TorchLinear;
use dam_core::{Loader, WeightError};

#[derive(Module, Debug)]
pub struct LlamaMlp {
    /// `gate_proj|up_proj` fused, `[2I, D]`.
    pub gate_up_proj: TorchLinear,
    pub down_proj: TorchLinear,
    pub intermediate: usize,
}

impl LlamaMlp {
    pub fn load(loader: &Loader, hidden: usize, intermediate: usize) -> Result<Self, WeightError> {
        Ok(Self {
            gate_up_proj: loader.fused_torch_linear(&["gate_proj", "up_proj"], hidden, &[intermediate; 2], false)?,
            down_proj: loader.torch_linear("down_proj", intermediate, hidden, false)?,
            intermediate,
        })
    }

    /// `x` `[rows, D]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let gu = self.gate_up_proj.forward(x);
        let gate = gu.clone().narrow(1, 0, self.intermediate);
        let up = gu.narrow(1, self.intermediate, self.intermediate);
        self.down_proj.forward(silu(gate) * up)
    }
}
