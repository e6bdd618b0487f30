//! Rotary position embedding in Hugging Face's rotate-half layout (spec pitfall 14): the
//! first and second halves of each head are rotated together, which is what the checkpoint's
//! permuted q/k projections expect. (burn's `RotaryEncoding` rotates interleaved pairs.)

use burn::tensor::{Device, Int, Tensor, TensorData};

/// `cos` and `sin` tables `[max_positions, head_dim]` in the `cat(freqs, freqs)` layout.
#[derive(Clone, Debug)]
pub struct Rope {
    pub cos: Tensor<2>,
    pub sin: Tensor<2>,
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
            // cat(freqs, freqs): both halves use the same frequencies.
            for _half in 0..2 {
                for f in &inv_freq {
                    let angle = p as f32 * f;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
        let shape = [max_positions, head_dim];
        Self {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin: Tensor::from_data(TensorData::new(sin, shape), device),
            head_dim,
        }
    }

    /// Rows of the tables for `positions` `[B, S]`, shaped `[B, 1, S, Dh]` to broadcast over heads.
    pub fn tables(&self, positions: Tensor<2, Int>) -> (Tensor<4>, Tensor<4>) {
        let [b, s] = positions.dims();
        let flat = positions.reshape([b * s]);
        let pick = |t: &Tensor<2>| t.clone().select(0, flat.clone()).reshape([b, 1, s, self.head_dim]);
        (pick(&self.cos), pick(&self.sin))
    }

    /// `x * cos + rotate_half(x) * sin` for `x` `[B, H, S, Dh]`.
    pub fn apply(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
        let d = x.dims()[3];
        let x1 = x.clone().narrow(3, 0, d / 2);
        let x2 = x.clone().narrow(3, d / 2, d / 2);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos.clone() + rotated * sin.clone()
    }
}
