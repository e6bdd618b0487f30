//! The `mlp_downsample` projector (spec §5): 2×2 space-to-channel merge in column-major token
//! order, LayerNorm (eps 1e-5), Linear, exact GELU, Linear.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use dam_core::matmul_kernel::linear;
use dam_core::nn::{LayerNorm, gelu_erf};
use dam_core::{Loader, WeightError};

/// `mm_projector/model.safetensors`: `layers.{1,2,4}` of the upstream Sequential
/// `[DownSampleBlock, LayerNorm, Linear, GELU, Linear]`.
#[derive(Module, Debug)]
pub struct Projector {
    /// `layers.1`, over the merged 4C features (eps 1e-5).
    pub layer_norm: LayerNorm,
    /// `layers.2`, 4C → LLM hidden size.
    pub linear1: Linear,
    /// `layers.4`, LLM hidden size → LLM hidden size (after an erf GELU).
    pub linear2: Linear,
}

impl Projector {
    /// `vision_dim` is the tower's hidden size C (the merge gives 4C), `llm_dim` the LLM's.
    pub fn load(loader: &Loader, vision_dim: usize, llm_dim: usize) -> Result<Self, WeightError> {
        let merged = 4 * vision_dim;
        Ok(Self {
            // PyTorch's nn.LayerNorm default eps, not SigLIP's 1e-6.
            layer_norm: LayerNorm::load(loader, "layers.1", merged, 1e-5)?,
            linear1: loader.linear("layers.2", merged, llm_dim, true)?,
            linear2: loader.linear("layers.4", llm_dim, llm_dim, true)?,
        })
    }

    /// `[N, g², C]` → `[N, ⌈g/2⌉², H]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let merged = downsample(x);
        let h = linear(&self.linear1, self.layer_norm.forward(merged));
        linear(&self.linear2, gelu_erf(h))
    }
}

/// Upstream's `DownSampleBlock`: `[N, g², C]` (row-major g×g grid) → `[N, (g'/2)², 4C]`.
///
/// * An odd grid is zero-padded by one row at the bottom and one column at the right
///   (27 → 28). The padding happens before the LayerNorm, so padded positions are
///   normalised with the real ones. (Upstream crashes on even grids; here they simply need
///   no padding.)
/// * Output token `(i, j)` (row pair i, column pair j) holds the channels of
///   `[G[2i][2j], G[2i][2j+1], G[2i+1][2j], G[2i+1][2j+1]]` (TL, TR, BL, BR).
/// * Tokens come out **column-major**: index `j · (g'/2) + i`. This transposition is a quirk
///   of the upstream view/permute chain that the LLM was trained with.
pub fn downsample(x: Tensor<3>) -> Tensor<3> {
    let [n, t, c] = x.dims();
    let g = (t as f64).sqrt().round() as usize;
    assert_eq!(g * g, t, "projector input must be a square grid of tokens");
    let mut grid = x.reshape([n, g, g, c]);
    let gp = g + g % 2;
    if gp != g {
        let device = grid.device();
        let dtype = grid.dtype();
        let zeros_row = Tensor::<4>::zeros([n, 1, g, c], (&device, dtype));
        grid = Tensor::cat(vec![grid, zeros_row], 1);
        let zeros_col = Tensor::<4>::zeros([n, gp, 1, c], (&device, dtype));
        grid = Tensor::cat(vec![grid, zeros_col], 2);
    }
    let h = gp / 2;
    // (n, i, a, j, b, c) with row = 2i + a, column = 2j + b.
    let six: Tensor<6> = grid.reshape([n, h, 2, h, 2, c]);
    // → (n, j, i, a, b, c): column-major tokens, channel blocks TL, TR, BL, BR.
    six.permute([0, 3, 1, 2, 4, 5]).reshape([n, h * h, 4 * c])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// Token 1 must hold rows 2–3 × columns 0–1; token 13 of a 27-grid is half padding.
    #[test]
    fn merge_order_is_column_major_with_tl_tr_bl_br_blocks() {
        let device = Device::flex();
        let g = 27;
        // Channel value = row * 100 + col, C = 1.
        let vals: Vec<f32> = (0..g * g).map(|i| ((i / g) * 100 + i % g) as f32).collect();
        let x = Tensor::<3>::from_data(TensorData::new(vals, [1, g * g, 1]), &device);
        let out = downsample(x).try_into_vec_as::<f32>().unwrap();
        assert_eq!(out.len(), 196 * 4);
        let token = |t: usize| &out[t * 4..t * 4 + 4];
        assert_eq!(token(0), &[0.0, 1.0, 100.0, 101.0]);
        assert_eq!(token(1), &[200.0, 201.0, 300.0, 301.0]);
        assert_eq!(token(14), &[2.0, 3.0, 102.0, 103.0]);
        // Rows 26-27 x cols 0-1: the bottom half is padding.
        assert_eq!(token(13), &[2600.0, 2601.0, 0.0, 0.0]);
        // Rows 26-27 x cols 26-27: three quarters padding.
        assert_eq!(token(195), &[2626.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn even_grids_need_no_padding() {
        let device = Device::flex();
        let x = Tensor::<3>::ones([2, 16, 3], &device);
        assert_eq!(downsample(x).dims(), [2, 4, 12]);
    }
}
