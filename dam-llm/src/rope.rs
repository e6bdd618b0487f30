//! Rotary position embedding in Hugging Face's rotate-half layout (spec pitfall 14): the
//! first and second halves of each head are rotated together, which is what the checkpoint's
//! permuted q/k projections expect. (burn's `RotaryEncoding` rotates interleaved pairs.)
//!
//! `rotate_half(x) = cat(−x₂, x₁)` is computed as `swap_halves(x) · sign`, with the sign folded
//! into the sine table (`sin_signed = cat(−sin, sin)`): the same products, one op fewer per
//! call. And the tables can cover the value heads with `cos = 1, sin = 0`, so q, k and v go
//! through one call on the fused projection (`v·1 + swap(v)·0 = v` exactly).

use burn::tensor::{Device, Int, Tensor, TensorData};

/// `cos` and `sin_signed` tables `[max_positions, head_dim]` in the `cat(freqs, freqs)` layout.
#[derive(Clone, Debug)]
pub struct Rope {
    /// `cat(cos(freqs), cos(freqs))`.
    pub cos: Tensor<2>,
    /// `cat(−sin(freqs), sin(freqs))`.
    pub sin_signed: Tensor<2>,
    /// Width of one head (the tables' second axis).
    pub head_dim: usize,
}

impl Rope {
    /// `inv_freq_k = theta^(-2k/d)`, computed in f32 like `LlamaRotaryEmbedding`.
    pub fn new(head_dim: usize, max_positions: usize, theta: f64, device: &Device) -> Self {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|k| 1.0f32 / (theta as f32).powf((2 * k) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(max_positions * head_dim);
        let mut sin = Vec::with_capacity(max_positions * head_dim);
        for p in 0..max_positions {
            // cat(freqs, freqs): both halves use the same frequencies; the first half's sine
            // carries rotate_half's minus sign.
            for sign in [-1.0f32, 1.0] {
                for f in &inv_freq {
                    let angle = p as f32 * f;
                    cos.push(angle.cos());
                    sin.push(sign * angle.sin());
                }
            }
        }
        let shape = [max_positions, head_dim];
        Self {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin_signed: Tensor::from_data(TensorData::new(sin, shape), device),
            head_dim,
        }
    }

    /// Tables for `positions` `[B, S]`, shaped `[B, S, rotated + plain, Dh]` for
    /// `[B, S, heads, Dh]` activations: the first `rotated` heads get the position's rotation,
    /// the last `plain` heads pass through unchanged (`cos = 1`, `sin = 0`).
    pub fn tables(&self, positions: Tensor<2, Int>, rotated: usize, plain: usize) -> (Tensor<4>, Tensor<4>) {
        let [b, s] = positions.dims();
        let dh = self.head_dim;
        let flat = positions.reshape([b * s]);
        let device = flat.device();
        let pick = |t: &Tensor<2>, pad: f32| {
            let rows = t
                .clone()
                .select(0, flat.clone())
                .reshape([b, s, 1, dh])
                .expand([b, s, rotated, dh]);
            if plain == 0 {
                rows
            } else {
                let pass = Tensor::full([b, s, plain, dh], pad, (&device, rows.dtype()));
                Tensor::cat(vec![rows, pass], 2)
            }
        };
        (pick(&self.cos, 1.0), pick(&self.sin_signed, 0.0))
    }

    /// Table rows `[B·S, Dh]` for `positions` `[B, S]` (the fused kernel's form).
    pub fn rows(&self, positions: Tensor<2, Int>) -> (Tensor<2>, Tensor<2>) {
        let [b, s] = positions.dims();
        let flat = positions.reshape([b * s]);
        (
            self.cos.clone().select(0, flat.clone()),
            self.sin_signed.clone().select(0, flat),
        )
    }

    /// `x * cos + rotate_half(x) * sin` for `x` `[B, S, heads, Dh]` (tables from
    /// [`Rope::tables`]).
    pub fn apply(x: Tensor<4>, cos: &Tensor<4>, sin_signed: &Tensor<4>) -> Tensor<4> {
        let [b, s, h, d] = x.dims();
        let swapped = x.clone().reshape([b, s, h, 2, d / 2]).flip([3]).reshape([b, s, h, d]);
        x * cos.clone() + swapped * sin_signed.clone()
    }
}
