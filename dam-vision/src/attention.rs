//! Multi-head attention with `q_proj`, `k_proj`, `v_proj`, `out_proj` (all with bias), as
//! SigLIP's self-attention and the context provider's cross-attention use it.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Bool, Tensor};
use dam_core::matmul_kernel::linear;
use dam_core::{Loader, WeightError};

use crate::sdpa;

/// Attention whose queries come from one sequence and keys/values from another (the same
/// one for self-attention). q, k and v are loaded from their own tensors and kept as one
/// fused `[d, 3d]` projection for self-attention, or `q` + fused `[d, 2d]` k/v for
/// cross-attention: fewer, bigger matmuls.
#[derive(Module, Debug)]
pub struct MultiHeadAttention {
    /// `q_proj` alone (cross-attention) or `q_proj|k_proj|v_proj` fused (self-attention).
    pub q_proj: Linear,
    /// `k_proj|v_proj` fused; `None` for self-attention, where q_proj holds all three.
    pub kv_proj: Option<Linear>,
    /// `out_proj`.
    pub out_proj: Linear,
    /// Attention heads (16 in SigLIP-so400m).
    pub num_heads: usize,
    /// Width of one head (hidden size / heads: 72 in SigLIP-so400m).
    pub head_dim: usize,
}

impl MultiHeadAttention {
    /// Loads a self-attention block (`q_proj`, `k_proj`, `v_proj` fused).
    pub fn load_self(loader: &Loader, dim: usize, num_heads: usize) -> Result<Self, WeightError> {
        Ok(Self {
            q_proj: loader.fused_linear(&["q_proj", "k_proj", "v_proj"], dim, &[dim; 3], true)?,
            kv_proj: None,
            out_proj: loader.linear("out_proj", dim, dim, true)?,
            num_heads,
            head_dim: dim / num_heads,
        })
    }

    /// Loads a cross-attention block (`q_proj` alone, `k_proj`/`v_proj` fused).
    pub fn load_cross(loader: &Loader, dim: usize, num_heads: usize) -> Result<Self, WeightError> {
        Ok(Self {
            q_proj: loader.linear("q_proj", dim, dim, true)?,
            kv_proj: Some(loader.fused_linear(&["k_proj", "v_proj"], dim, &[dim; 2], true)?),
            out_proj: loader.linear("out_proj", dim, dim, true)?,
            num_heads,
            head_dim: dim / num_heads,
        })
    }

    /// `[B, S, N·D]` (N projections side by side: q|k|v, k|v or q alone) → N tensors
    /// `[B, H, S, Dh]`, each contiguous, from **one** copy: `[B, S, N, H, Dh]` permuted to
    /// `[N, B, H, S, Dh]` and merged to `[N·B, H, S, Dh]` (the dims are no longer adjacent in
    /// memory, so that reshape moves the data once), then narrowed per projection (free).
    /// Narrowing each projection and permuting its heads instead costs a slice and a copy per
    /// projection on the cubecl backends (an encode's 656 copy and slice kernels, H100
    /// profile, docs/performance.md).
    fn split_heads<const N: usize>(&self, x: Tensor<3>) -> [Tensor<4>; N] {
        let [b, s, _] = x.dims();
        let (h, dh) = (self.num_heads, self.head_dim);
        let all = x
            .reshape([b, s, N, h, dh])
            .permute([2, 0, 3, 1, 4])
            .reshape([N * b, h, s, dh]);
        std::array::from_fn(|i| all.clone().narrow(0, i * b, b))
    }

    /// Self-attention over `x` (`[B, S, D]`).
    pub fn forward_self(&self, x: Tensor<3>) -> Tensor<3> {
        let [q, k, v] = self.split_heads(linear(&self.q_proj, x));
        self.attend(q, k, v, None)
    }

    /// Cross-attention from `x` (`[B, Sq, D]`) to `context` (`[B, Skv, D]`); `key_mask`
    /// (`[B, Skv]`, `true` = masked) hides context tokens.
    pub fn forward_cross(&self, x: Tensor<3>, context: Tensor<3>, key_mask: Option<Tensor<2, Bool>>) -> Tensor<3> {
        let [q] = self.split_heads(linear(&self.q_proj, x));
        let kv = linear(self.kv_proj.as_ref().expect("cross-attention has kv_proj"), context);
        let [k, v] = self.split_heads(kv);
        let mask = key_mask.map(|m| {
            let [b, s_kv] = m.dims();
            let [_, h, s_q, _] = q.dims();
            m.reshape([b, 1, 1, s_kv]).expand([b, h, s_q, s_kv])
        });
        self.attend(q, k, v, mask)
    }

    fn attend(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<4, Bool>>) -> Tensor<3> {
        let [b, _, s, _] = q.dims();
        let o = sdpa::attend(q, k, v, mask);
        let o = o.swap_dims(1, 2).reshape([b, s, self.num_heads * self.head_dim]);
        linear(&self.out_proj, o)
    }
}
