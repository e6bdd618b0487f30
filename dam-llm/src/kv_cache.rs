//! The KV cache, kept outside the model so the model stays immutable. Preallocated to the
//! length a generation needs and written in place; decode steps read the whole buffer with a
//! mask, so tensor shapes do not change from step to step (on GPU backends every new shape
//! compiles and autotunes kernels).

use burn::tensor::{Device, Tensor};

/// Keys and values of one layer, `[B, KVH, max_len, Dh]` each.
#[derive(Clone, Debug)]
pub struct LayerCache {
    /// Rotated keys.
    pub keys: Tensor<4>,
    /// Values.
    pub values: Tensor<4>,
}

/// One [`LayerCache`] per decoder layer.
#[derive(Clone, Debug)]
pub struct KvCache {
    /// One cache per decoder layer, in order.
    pub layers: Vec<LayerCache>,
    /// Key slots per sequence (the caches' third axis).
    pub max_len: usize,
}

impl KvCache {
    /// Zeroed cache for `batch` sequences of up to `max_len` positions.
    pub fn new(layers: usize, batch: usize, kv_heads: usize, max_len: usize, head_dim: usize, device: &Device) -> Self {
        let shape = [batch, kv_heads, max_len, head_dim];
        Self {
            layers: (0..layers)
                .map(|_| LayerCache {
                    keys: Tensor::zeros(shape, device),
                    values: Tensor::zeros(shape, device),
                })
                .collect(),
            max_len,
        }
    }
}

impl LayerCache {
    /// Writes `k`, `v` (`[B, KVH, S, Dh]`) at positions `start..start + S`, in place when the
    /// buffer is not shared.
    pub fn write(&mut self, start: usize, k: Tensor<4>, v: Tensor<4>) {
        let [b, h, s, d] = k.dims();
        let range = [0..b, 0..h, start..start + s, 0..d];
        self.keys.inplace(|c| c.slice_assign(range.clone(), k));
        self.values.inplace(|c| c.slice_assign(range, v));
    }
}
