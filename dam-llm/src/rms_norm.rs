//! LLaMA's RMSNorm, computed as Hugging Face does: statistics in f32, the normalised value cast
//! back to the activation dtype, then multiplied by the weight.

use burn::module::{Module, Param};
use burn::tensor::{FloatDType, Tensor};
use dam_core::{Init, Loader, WeightError};

#[derive(Module, Debug)]
pub struct RmsNorm {
    pub weight: Param<Tensor<1>>,
    pub eps: f64,
}

impl RmsNorm {
    pub fn load(loader: &Loader, leaf: &str, dim: usize, eps: f64) -> Result<Self, WeightError> {
        Ok(Self {
            weight: Param::from_tensor(loader.at(leaf).tensor("weight", [dim], Init::Ones)?),
            eps,
        })
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dtype = x.dtype();
        let x = x.cast(FloatDType::F32);
        let var = x.clone().square().mean_dim(D - 1);
        let normed = (x * var.add_scalar(self.eps).sqrt().recip()).cast(dtype);
        normed * self.weight.val().unsqueeze()
    }
}
