//! Small layers shared by the vision and language crates, with parameter names equal to the
//! checkpoint's (`weight`, `bias`) so the name map stays the identity.

use burn::module::{Module, Param};
use burn::tensor::{FloatDType, Tensor};

use crate::weights::{Init, Loader, WeightError};

/// `nn.LayerNorm` with affine parameters. Statistics are computed in f32 whatever the
/// activation dtype (PyTorch upcasts half-precision LayerNorm internally too).
#[derive(Module, Debug)]
pub struct LayerNorm {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
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

    /// Normalises over the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
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

/// GELU with the tanh approximation (`gelu_pytorch_tanh`), used by SigLIP and the adapters.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    burn::tensor::activation::gelu_approximate(x)
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
