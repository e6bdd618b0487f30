//! Multi-head attention with `q_proj`, `k_proj`, `v_proj`, `out_proj` (all with bias), as
//! SigLIP's self-attention and the context provider's cross-attention use it.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, FloatDType, Tensor};
use dam_core::{Loader, WeightError};

static MATERIALIZED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs the vision attention as materialised scores ([`materialized`]: two batched matmuls
/// around an f32 softmax, as transformers' eager SigLIP attention) instead of burn's
/// `attention`, whose kernel the backend picks. **Off by default; an experiment for the cubecl backends**: SigLIP's shapes
/// (729 positions, head_dim 72) satisfy neither constraint of burn-cubecl's tensor-core flash
/// kernel (its stage of 32–128 queries must divide `seq_q`; its 16-wide tile must divide
/// `head_dim`), so its autotuner runs either the scalar flash kernel ("unit") or that
/// fallback, and which one — and at what cost — is not measured yet (`bench
/// --vision-attention materialized` does, docs/performance.md). Same arithmetic on the CPU.
/// `DAM_VISION_ATTENTION=materialized` switches it on too.
pub fn set_materialized_attention(on: bool) {
    MATERIALIZED.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the vision attention runs materialised (see [`set_materialized_attention`]).
pub fn materialized_attention() -> bool {
    static ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    MATERIALIZED.load(std::sync::atomic::Ordering::Relaxed)
        || *ENV.get_or_init(|| std::env::var("DAM_VISION_ATTENTION").is_ok_and(|v| v == "materialized"))
}

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
    pub out_proj: Linear,
    pub num_heads: usize,
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

    /// `[B, S, D]` → `[B, H, S, Dh]`.
    fn heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, s, _] = x.dims();
        x.reshape([b, s, self.num_heads, self.head_dim]).swap_dims(1, 2)
    }

    /// Self-attention over `x` (`[B, S, D]`).
    pub fn forward_self(&self, x: Tensor<3>) -> Tensor<3> {
        let d = self.num_heads * self.head_dim;
        let qkv = self.q_proj.forward(x);
        let q = self.heads(qkv.clone().narrow(2, 0, d));
        let k = self.heads(qkv.clone().narrow(2, d, d));
        let v = self.heads(qkv.narrow(2, 2 * d, d));
        self.attend(q, k, v, None)
    }

    /// Cross-attention from `x` (`[B, Sq, D]`) to `context` (`[B, Skv, D]`); `key_mask`
    /// (`[B, Skv]`, `true` = masked) hides context tokens.
    pub fn forward_cross(&self, x: Tensor<3>, context: Tensor<3>, key_mask: Option<Tensor<2, Bool>>) -> Tensor<3> {
        let d = self.num_heads * self.head_dim;
        let q = self.heads(self.q_proj.forward(x));
        let kv = self
            .kv_proj
            .as_ref()
            .expect("cross-attention has kv_proj")
            .forward(context);
        let k = self.heads(kv.clone().narrow(2, 0, d));
        let v = self.heads(kv.narrow(2, d, d));
        let mask = key_mask.map(|m| {
            let [b, s_kv] = m.dims();
            let [_, h, s_q, _] = q.dims();
            m.reshape([b, 1, 1, s_kv]).expand([b, h, s_q, s_kv])
        });
        self.attend(q, k, v, mask)
    }

    fn attend(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<4, Bool>>) -> Tensor<3> {
        let [b, _, s, _] = q.dims();
        let o = if materialized_attention() {
            materialized(q, k, v, mask)
        } else {
            // Scale 1/sqrt(head_dim) (burn's default); softmax accumulates in f32.
            attention(q, k, v, mask, None, AttentionModuleOptions::default())
        };
        let o = o.swap_dims(1, 2).reshape([b, s, self.num_heads * self.head_dim]);
        self.out_proj.forward(o)
    }
}

/// `softmax(q·kᵀ/√Dh)·v` with the scores materialised, as transformers' eager SigLIP
/// attention computes it: the products in the activation dtype, the softmax in f32 and cast
/// back (see [`set_materialized_attention`]). `mask` `true` = hidden.
pub fn materialized(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<4, Bool>>) -> Tensor<4> {
    let dtype = q.dtype();
    let head_dim = q.dims()[3];
    let scores = q
        .matmul(k.swap_dims(2, 3))
        .mul_scalar(1.0 / (head_dim as f64).sqrt())
        .cast(FloatDType::F32);
    let scores = match mask {
        Some(mask) => scores.mask_fill(mask, f32::NEG_INFINITY),
        None => scores,
    };
    softmax(scores, 3).cast(dtype).matmul(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    #[test]
    fn materialized_equals_the_backend_attention() {
        let device = burn::tensor::Device::flex();
        let normal = Distribution::Normal(0.0, 1.0);
        // SigLIP's odd head_dim (72 in DAM-3B) and an odd sequence, with and without a key mask.
        let shape = [2, 3, 11, 9];
        let q = Tensor::<4>::random(shape, normal, &device);
        let k = Tensor::<4>::random([2, 3, 13, 9], normal, &device);
        let v = Tensor::<4>::random([2, 3, 13, 9], normal, &device);
        let hidden: Vec<bool> = (0..2 * 13).map(|i| i % 5 == 1).collect();
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(hidden, [2, 1, 1, 13]), &device).expand([2, 3, 11, 13]);
        for mask in [None, Some(mask)] {
            let ours = materialized(q.clone(), k.clone(), v.clone(), mask.clone());
            let reference = attention(
                q.clone(),
                k.clone(),
                v.clone(),
                mask,
                None,
                AttentionModuleOptions::default(),
            );
            let diff = (ours - reference.clone()).abs().max().into_scalar::<f32>();
            let size = reference.abs().max().into_scalar::<f32>();
            assert!(size > 0.1, "reference {size}");
            assert!(diff < 1e-5, "max abs diff {diff}");
        }
    }
}
