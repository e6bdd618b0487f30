//! [`FusedLlamaOps`] for the cubecl backend: host code that sizes and launches the kernels of
//! [`super::kernels`], and the decoder layer built from them and burn-cubecl's own matmul and
//! attention (called on the backend directly, below burn's op graph).

use burn::backend::TensorMetadata;
use burn::backend::ops::{FloatTensorOps, ModuleOps};
use burn::tensor::DType;
use burn::tensor::ops::AttentionModuleOptions;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl::calculate_cube_count_elemwise;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

use super::{Attend, FusedLlamaOps, FusedWeights};
use super::{kernels, profile};

type B = CubeBackend;

/// `$e`, bracketed by a device profiling window recorded as `$name` while
/// [`profile::begin`] is on.
macro_rules! stage {
    ($client:expr, $name:expr, $e:expr) => {{
        if profile::on() {
            let window = $client.profile_start();
            let out = $e;
            if let Ok(Ok(duration)) = window.map(|w| $client.profile_end(w)) {
                if let Some(ticks) = burn_cubecl::cubecl::future::block_on(duration.resolve()) {
                    profile::record($name, ticks.duration());
                }
            }
            out
        } else {
            $e
        }
    }};
}

fn storage(dtype: DType) -> ElemType {
    burn::backend::cubecl::dtype_to_storage_type(dtype)
}

/// A new dense row-major tensor (the kernels index every tensor through its strides; dense
/// outputs keep what follows — matmul, attention, reshapes — on their fastest paths).
fn empty(like: &CubeTensor, shape: burn::tensor::Shape, dtype: DType) -> CubeTensor {
    let handle = like.client.empty(shape.num_elements() * dtype.size());
    CubeTensor::new_contiguous(like.client.clone(), like.device.clone(), shape, handle, dtype)
}

/// `t` in `dtype` (RoPE tables and norm weights may be stored in another float type than the
/// activations).
fn as_dtype(t: CubeTensor, dtype: DType) -> CubeTensor {
    if t.dtype != dtype {
        B::float_cast(t, dtype.into())
    } else {
        t
    }
}

/// RMSNorm of `x` (or of `x + residual`, returned first) — one plane per row.
fn rms(x: CubeTensor, residual: Option<CubeTensor>, weight: CubeTensor, eps: f32) -> (CubeTensor, CubeTensor) {
    let dtype = x.dtype;
    let weight = as_dtype(weight, dtype);
    let shape = x.shape();
    let (rows, d) = (shape[0], shape[1]);
    let client = x.client.clone();
    let out = empty(&x, shape.clone(), dtype);
    let with_residual = residual.is_some();
    let (residual, sum) = match residual {
        Some(r) => (as_dtype(r, dtype), empty(&x, shape, dtype)),
        // Not read or written (`with_residual` is a compile-time flag): any valid handles.
        None => (x.clone(), out.clone()),
    };
    // One plane per cube, so the kernel's `plane_sum` is the row's sum.
    let plane = client.properties().hardware.plane_size_max.max(1);
    unsafe {
        kernels::rms_norm_kernel::launch_unchecked(
            &client,
            CubeCount::Static(rows as u32, 1, 1),
            CubeDim::new_1d(plane),
            x.clone().into_tensor_arg(),
            residual.into_tensor_arg(),
            weight.into_tensor_arg(),
            sum.clone().into_tensor_arg(),
            out.clone().into_tensor_arg(),
            d as u32,
            eps,
            with_residual,
            storage(dtype),
        )
    };
    (if with_residual { sum } else { x }, out)
}

fn silu_mul(gate_up: CubeTensor) -> CubeTensor {
    let dtype = gate_up.dtype;
    let mut shape = gate_up.shape();
    shape[1] /= 2;
    let inter = shape[1];
    let n = shape.num_elements();
    let client = gate_up.client.clone();
    let out = empty(&gate_up, shape, dtype);
    let cube_dim = CubeDim::new(&client, n);
    let cube_count = calculate_cube_count_elemwise(&client, n, cube_dim);
    unsafe {
        kernels::silu_mul_kernel::launch_unchecked(
            &client,
            cube_count,
            cube_dim,
            gate_up.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            n as u32,
            inter as u32,
            storage(dtype),
        )
    };
    out
}

#[allow(clippy::too_many_arguments)]
fn rope_cache(
    qkv: CubeTensor,
    cos: &CubeTensor,
    sin_signed: &CubeTensor,
    keys: &CubeTensor,
    values: &CubeTensor,
    slot: &CubeTensor,
    seq: usize,
    heads: usize,
    kv_heads: usize,
) -> CubeTensor {
    let dtype = qkv.dtype;
    let [rows, width] = qkv.shape().dims::<2>();
    let dh = keys.shape()[3];
    let client = qkv.client.clone();
    let q = empty(&qkv, [rows / seq, heads, seq, dh].into(), dtype);
    let n = qkv.shape().num_elements();
    let cube_dim = CubeDim::new(&client, n);
    let cube_count = calculate_cube_count_elemwise(&client, n, cube_dim);
    unsafe {
        kernels::rope_cache_kernel::launch_unchecked(
            &client,
            cube_count,
            cube_dim,
            qkv.into_tensor_arg(),
            cos.clone().into_tensor_arg(),
            sin_signed.clone().into_tensor_arg(),
            slot.clone().into_tensor_arg(),
            q.clone().into_tensor_arg(),
            keys.clone().into_tensor_arg(),
            values.clone().into_tensor_arg(),
            n as u32,
            width as u32,
            dh as u32,
            seq as u32,
            heads as u32,
            kv_heads as u32,
            [storage(dtype), storage(slot.dtype)],
        )
    };
    q
}

/// `x · w` for the layer's products: our matrix-vector kernel for one row when it is switched
/// on ([`super::set_gemv`]) and the weight is a `[out, in]` buffer seen transposed (the
/// contiguous axis is `k`); in a `prefill` (several positions per sequence; not a batched
/// decode step) the cubek routine fixed for the linears by `dam_core::matmul_kernel` if one
/// is; burn-cubecl's
/// autotuned matmul otherwise (which is what that switch's `fusion` and `autotune` both mean
/// here).
fn matmul(x: CubeTensor, w: CubeTensor, prefill: bool) -> CubeTensor {
    let [rows, k_in] = x.shape().dims::<2>();
    let n_out = w.shape()[1];
    let fixed = dam_core::matmul_kernel::choice().linear;
    if prefill && let dam_core::matmul_kernel::MatmulKernel::Routine(_) = fixed {
        // A prefill's products with the fixed cubek routine of the linears (`bench --matmul`).
        return dam_core::matmul_kernel::cube::matmul_cube(x, w, fixed.code());
    }
    if !super::gemv_enabled() || rows != 1 || w.meta.strides()[0] != 1 || x.dtype != w.dtype {
        return B::float_matmul(x, w);
    }
    let dtype = x.dtype;
    let out = empty(&x, [1, n_out].into(), dtype);
    let plane = x.client.properties().hardware.plane_size_max.max(1);
    let per_cube = 8u32;
    let client = x.client.clone();
    unsafe {
        kernels::gemv_kernel::launch_unchecked(
            &client,
            CubeCount::Static((n_out as u32).div_ceil(per_cube), 1, 1),
            CubeDim::new_2d(plane, per_cube),
            x.into_tensor_arg(),
            w.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            n_out as u32,
            k_in as u32,
            storage(dtype),
        )
    };
    out
}

/// One-position attention (see [`kernels::decode_attention_kernel`]): q `[B, H, 1, Dh]`, the
/// caches `[B, KVH, L, Dh]`, `hidden` `[B, ≥ key_len]` → `[B, H·Dh]`.
fn decode_attention(
    q: CubeTensor,
    keys: &CubeTensor,
    values: &CubeTensor,
    hidden: CubeTensor,
    key_len: usize,
    heads: usize,
    kv_heads: usize,
) -> CubeTensor {
    let dtype = q.dtype;
    let [b, _, _, dh] = q.shape().dims::<4>();
    let hidden = as_dtype(hidden, dtype);
    let out = empty(&q, [b, heads * dh].into(), dtype);
    let plane = q.client.properties().hardware.plane_size_max.max(1);
    let client = q.client.clone();
    unsafe {
        kernels::decode_attention_kernel::launch_unchecked(
            &client,
            CubeCount::Static((b * heads) as u32, 1, 1),
            CubeDim::new_1d(plane),
            q.into_tensor_arg(),
            keys.clone().into_tensor_arg(),
            values.clone().into_tensor_arg(),
            hidden.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            key_len as u32,
            heads as u32,
            kv_heads as u32,
            1.0 / (dh as f32).sqrt(),
            dh,
            storage(dtype),
        )
    };
    out
}

/// Keys or values `0..key_len` of a cache, repeated per query-head group under GQA:
/// `[B, KVH, L, Dh]` → `[B, H, key_len, Dh]`.
fn attended(cache: &CubeTensor, key_len: usize, heads: usize) -> CubeTensor {
    let [b, kv, len, dh] = cache.shape().dims::<4>();
    let mut t = cache.clone();
    if key_len != len {
        let all = |n: usize| burn::tensor::Slice::new(0, Some(n as isize), 1);
        t = B::float_slice(t, &[all(b), all(kv), all(key_len), all(dh)]);
    }
    if kv != heads {
        let rep = heads / kv;
        t = B::float_reshape(t, [b, kv, 1, key_len, dh].into());
        t = B::float_expand(t, [b, kv, rep, key_len, dh].into());
        t = B::float_reshape(t, [b, heads, key_len, dh].into());
    }
    t
}

impl FusedLlamaOps for CubeBackend {
    fn rms_norm(x: CubeTensor, weight: CubeTensor, eps: f32) -> CubeTensor {
        rms(x, None, weight, eps).1
    }

    fn add_rms_norm(x: CubeTensor, residual: CubeTensor, weight: CubeTensor, eps: f32) -> (CubeTensor, CubeTensor) {
        rms(x, Some(residual), weight, eps)
    }

    fn silu_mul(gate_up: CubeTensor) -> CubeTensor {
        silu_mul(gate_up)
    }

    fn matmul(x: CubeTensor, w: CubeTensor) -> CubeTensor {
        matmul(x, w, false)
    }

    fn decode_attention(q: CubeTensor, keys: CubeTensor, values: CubeTensor, hidden: CubeTensor) -> CubeTensor {
        let [_, heads, _, _] = q.shape().dims::<4>();
        let [_, kv_heads, key_len, _] = keys.shape().dims::<4>();
        decode_attention(q, &keys, &values, hidden, key_len, heads, kv_heads)
    }

    fn rope_cache(
        qkv: CubeTensor,
        cos: CubeTensor,
        sin_signed: CubeTensor,
        keys: &CubeTensor,
        values: &CubeTensor,
        slot: CubeTensor,
        seq: usize,
        heads: usize,
        kv_heads: usize,
    ) -> CubeTensor {
        let dtype = qkv.dtype;
        let cos = as_dtype(cos, dtype);
        let sin_signed = as_dtype(sin_signed, dtype);
        rope_cache(qkv, &cos, &sin_signed, keys, values, &slot, seq, heads, kv_heads)
    }

    fn decoder_layer(
        h: CubeTensor,
        pending: CubeTensor,
        weights: FusedWeights<Self>,
        cos: CubeTensor,
        sin_signed: CubeTensor,
        keys: &CubeTensor,
        values: &CubeTensor,
        slot: CubeTensor,
        attend: Attend<Self>,
        has_pending: bool,
        seq: usize,
        key_len: usize,
        heads: usize,
        kv_heads: usize,
        eps: f32,
    ) -> (CubeTensor, CubeTensor) {
        let mask = match attend {
            Attend::Causal => None,
            Attend::Masked { mask, hidden } => Some((mask, hidden)),
        };
        let shape = Shape {
            seq,
            key_len,
            heads,
            kv_heads,
            eps,
        };
        let pending = has_pending.then_some(pending);
        decoder_layer(h, pending, weights, cos, sin_signed, keys, values, &slot, mask, shape)
    }
}

/// Positions, head counts and the norm epsilon of one forward pass.
struct Shape {
    seq: usize,
    key_len: usize,
    heads: usize,
    kv_heads: usize,
    eps: f32,
}

/// `h += Attn(RMSNorm(h + pending))` — returns `(h, MLP(RMSNorm(h)))`; the MLP output is
/// left for the next layer's first norm to add.
#[allow(clippy::too_many_arguments)]
fn decoder_layer(
    h: CubeTensor,
    pending: Option<CubeTensor>,
    w: FusedWeights<B>,
    cos: CubeTensor,
    sin_signed: CubeTensor,
    keys: &CubeTensor,
    values: &CubeTensor,
    slot: &CubeTensor,
    mask: Option<(CubeTensor, CubeTensor)>,
    s: Shape,
) -> (CubeTensor, CubeTensor) {
    let dtype = h.dtype;
    let rows = h.shape()[0];
    let cos = as_dtype(cos, dtype);
    let sin_signed = as_dtype(sin_signed, dtype);
    let options = AttentionModuleOptions {
        is_causal: mask.is_none(),
        ..Default::default()
    };
    let c = h.client.clone();
    let (h, normed) = stage!(c, "input RMSNorm (+ residual)", rms(h, pending, w.input_norm, s.eps));
    let prefill = s.seq > 1;
    let qkv = stage!(c, "q|k|v matmul", matmul(normed, w.qkv, prefill));
    let q = stage!(
        c,
        "RoPE + KV-cache write",
        rope_cache(qkv, &cos, &sin_signed, keys, values, slot, s.seq, s.heads, s.kv_heads)
    );
    let o = stage!(c, "attention", {
        match mask {
            // A decode step: our one-query kernel when switched on.
            Some((_, hidden)) if s.seq == 1 && super::decode_attention_enabled() => {
                decode_attention(q, keys, values, hidden, s.key_len, s.heads, s.kv_heads)
            }
            mask => {
                let k = attended(keys, s.key_len, s.heads);
                let v = attended(values, s.key_len, s.heads);
                let o = B::attention(q, k, v, mask.map(|(m, _)| m), None, options);
                let dh = o.shape()[3];
                B::float_reshape(B::float_swap_dims(o, 1, 2), [rows, s.heads * dh].into())
            }
        }
    });
    let a = stage!(c, "o matmul", matmul(o, w.o, prefill));
    let (h, normed) = stage!(
        c,
        "post-attention RMSNorm + residual",
        rms(h, Some(a), w.post_norm, s.eps)
    );
    let gate_up = stage!(c, "gate|up matmul", matmul(normed, w.gate_up, prefill));
    let m = stage!(c, "SiLU·up", silu_mul(gate_up));
    (h, stage!(c, "down matmul", matmul(m, w.down, prefill)))
}
