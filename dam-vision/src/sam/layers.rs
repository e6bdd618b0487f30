//! Small layers of SAM with checkpoint-named parameters: convolutions called through burn's
//! functional ops, the channels-first LayerNorm, the two MLP kinds and the activations.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Tensor, activation};
use dam_core::nn::{gelu_erf, gelu_tanh};
use dam_core::{Init, Loader, WeightError};

/// An activation named by a `hidden_act` config value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: exact (erf) GELU, `nn.GELU()`.
    Gelu,
    /// `gelu_new` / `gelu_pytorch_tanh`: tanh-approximated GELU.
    GeluTanh,
    /// `relu`.
    Relu,
}

impl Activation {
    /// The names [`Activation::from_name`] accepts.
    pub const SUPPORTED: &'static str = "gelu, gelu_new, gelu_pytorch_tanh, relu";

    /// Parses a transformers `ACT2FN` name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Some(Self::GeluTanh),
            "relu" => Some(Self::Relu),
            _ => None,
        }
    }

    /// Applies the activation.
    pub fn forward<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Gelu => gelu_erf(x),
            Self::GeluTanh => gelu_tanh(x),
            Self::Relu => activation::relu(x),
        }
    }
}

/// `nn.Conv2d` with square kernel, stride and padding (weights `[out, in, k, k]`).
#[derive(Module, Debug)]
pub struct Conv2d {
    /// `weight` `[out, in, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// `bias` `[out]`, when the convolution has one.
    pub bias: Option<Param<Tensor<1>>>,
    /// Stride on both axes.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl Conv2d {
    /// Loads `{leaf}.weight` (and `{leaf}.bias` when `bias`).
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        loader: &Loader,
        leaf: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> Result<Self, WeightError> {
        let at = loader.at(leaf);
        let fan_in = (c_in * kernel * kernel) as f64;
        let weight = at.tensor(
            "weight",
            [c_out, c_in, kernel, kernel],
            Init::Normal(fan_in.sqrt().recip()),
        )?;
        let bias = if bias {
            Some(Param::from_tensor(at.tensor("bias", [c_out], Init::Zeros)?))
        } else {
            None
        };
        Ok(Self {
            weight: Param::from_tensor(weight),
            bias,
            stride,
            padding,
        })
    }

    /// `[B, C_in, H, W]` → `[B, C_out, H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(
            x,
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
            ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], 1),
        )
    }
}

/// `nn.ConvTranspose2d` with square kernel = stride and no padding (weights
/// `[in, out, k, k]`, PyTorch's and burn's layout).
#[derive(Module, Debug)]
pub struct ConvTranspose2d {
    /// `weight` `[in, out, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// `bias` `[out]`.
    pub bias: Param<Tensor<1>>,
    /// Stride on both axes (equal to the kernel size).
    pub stride: usize,
}

impl ConvTranspose2d {
    /// Loads `{leaf}.weight` `[c_in, c_out, k, k]` and `{leaf}.bias` `[c_out]`.
    pub fn load(loader: &Loader, leaf: &str, c_in: usize, c_out: usize, kernel: usize) -> Result<Self, WeightError> {
        let at = loader.at(leaf);
        let std = ((c_out * kernel * kernel) as f64).sqrt().recip();
        Ok(Self {
            weight: Param::from_tensor(at.tensor("weight", [c_in, c_out, kernel, kernel], Init::Normal(std))?),
            bias: Param::from_tensor(at.tensor("bias", [c_out], Init::Zeros)?),
            stride: kernel,
        })
    }

    /// `[B, C_in, H, W]` → `[B, C_out, sH, sW]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv_transpose2d(
            x,
            self.weight.val(),
            Some(self.bias.val()),
            ConvTransposeOptions::new([self.stride; 2], [0, 0], [0, 0], [1, 1], 1),
        )
    }
}

/// transformers' `SamLayerNorm(data_format="channels_first")`: normalises `[B, C, H, W]`
/// over C (statistics in f32, biased variance), parameters `weight` / `bias`.
#[derive(Module, Debug)]
pub struct LayerNorm2d {
    /// The LayerNorm holding `weight` and `bias` `[C]`, applied over axis 1.
    pub norm: dam_core::nn::LayerNorm,
}

impl LayerNorm2d {
    /// Loads `{leaf}.weight` and `{leaf}.bias`, both `[dim]`.
    pub fn load(loader: &Loader, leaf: &str, dim: usize, eps: f64) -> Result<Self, WeightError> {
        Ok(Self {
            norm: dam_core::nn::LayerNorm::load(loader, leaf, dim, eps)?,
        })
    }

    /// `[B, C, H, W]` → `[B, C, H, W]`, normalised over C.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.norm.forward_dim(x, 1)
    }
}

/// transformers' `SamMLPBlock`: `lin2(act(lin1(x)))`.
#[derive(Module, Debug)]
pub struct MlpBlock {
    /// `lin1`: dim → mlp_dim.
    pub lin1: Linear,
    /// `lin2`: mlp_dim → dim.
    pub lin2: Linear,
    /// The activation between `lin1` and `lin2` (not a parameter).
    #[module(skip)]
    pub act: Activation,
}

impl MlpBlock {
    /// Loads `lin1` `[mlp_dim, dim]` and `lin2` `[dim, mlp_dim]`, both with bias.
    pub fn load(loader: &Loader, dim: usize, mlp_dim: usize, act: Activation) -> Result<Self, WeightError> {
        Ok(Self {
            lin1: loader.linear("lin1", dim, mlp_dim, true)?,
            lin2: loader.linear("lin2", mlp_dim, dim, true)?,
            act,
        })
    }

    /// `lin2(act(lin1(x)))` over the last axis.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.lin2.forward(self.act.forward(self.lin1.forward(x)))
    }
}

/// transformers' `SamFeedForward`: `proj_in`, ReLU, (`layers.i`, ReLU) × (depth − 2),
/// `proj_out`; no sigmoid (SAM never sets `sigmoid_output`).
#[derive(Module, Debug)]
pub struct FeedForward {
    /// `proj_in`: input → hidden width.
    pub proj_in: Linear,
    /// `layers.i`: the hidden → hidden layers (depth − 2 of them).
    pub layers: Vec<Linear>,
    /// `proj_out`: hidden → output width.
    pub proj_out: Linear,
}

impl FeedForward {
    /// Loads a head of `num_layers` linear layers in all (`proj_in`, `layers.*`, `proj_out`).
    pub fn load(
        loader: &Loader,
        input_dim: usize,
        hidden_dim: usize,
        output_dim: usize,
        num_layers: usize,
    ) -> Result<Self, WeightError> {
        let layers = (0..num_layers.saturating_sub(2))
            .map(|i| loader.at("layers").linear(&i.to_string(), hidden_dim, hidden_dim, true))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            proj_in: loader.linear("proj_in", input_dim, hidden_dim, true)?,
            layers,
            proj_out: loader.linear("proj_out", hidden_dim, output_dim, true)?,
        })
    }

    /// Applies the layers over the last axis, with ReLU after all but `proj_out`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mut x = activation::relu(self.proj_in.forward(x));
        for layer in &self.layers {
            x = activation::relu(layer.forward(x));
        }
        self.proj_out.forward(x)
    }
}

/// An `nn.Embedding` used as a table of learned vectors (`{leaf}.weight`, `[n, dim]`).
#[derive(Module, Debug)]
pub struct EmbeddingTable {
    /// `weight` `[n, dim]`.
    pub weight: Param<Tensor<2>>,
}

impl EmbeddingTable {
    /// Loads `{leaf}.weight` `[n, dim]`.
    pub fn load(loader: &Loader, leaf: &str, n: usize, dim: usize) -> Result<Self, WeightError> {
        Ok(Self {
            weight: Param::from_tensor(loader.at(leaf).tensor("weight", [n, dim], Init::Normal(1.0))?),
        })
    }

    /// Row `i` as `[1, dim]`.
    pub fn row(&self, i: usize) -> Tensor<2> {
        self.weight.val().narrow(0, i, 1)
    }
}
