//! The cubecl kernels behind [`super::FusedLlamaOps`]. Each replaces a chain of burn ops whose
//! per-op host cost (graph, fusion, launch) dominated a decode step; the arithmetic is the
//! Hugging Face module's, step for step, with the rounding points kept where PyTorch has them.
//!
//! Every tensor is indexed through its own strides: cubecl's allocator pads rows to an
//! alignment ("pitched" layouts, e.g. a 96-wide f32 row takes 128 slots), so nothing may be
//! assumed dense. Sizes come in as arguments, never from a binding's `len()` (its buffer's,
//! which the allocator may round up). Kernels are generic over the activation dtype `E`, chosen
//! at launch.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

/// RMSNorm of one row per cube (one plane per cube: `CUBE_DIM_X == PLANE_DIM`), optionally of
/// `x + residual` (then the sum is written to `sum` too, rounded to `E` as PyTorch's `h + a`).
///
/// `LlamaRMSNorm`: statistics in f32, `x · rsqrt(mean(x²) + eps)` cast back to `E`, then times
/// the weight in `E`.
#[cube(launch_unchecked)]
pub fn rms_norm_kernel<E: Float>(
    x: &Tensor<E>,
    residual: &Tensor<E>,
    weight: &Tensor<E>,
    sum: &mut Tensor<E>,
    out: &mut Tensor<E>,
    d: u32,
    eps: f32,
    #[comptime] with_residual: bool,
    #[define(E)] _dtype: ElemType,
) {
    let row = CUBE_POS_X as usize;
    let d = d as usize;
    let lane = UNIT_POS_X as usize;
    let step = CUBE_DIM_X as usize;
    let (xs, xc) = (row * x.stride(0), x.stride(1));
    let (rs, rc) = (row * residual.stride(0), residual.stride(1));
    let (ss, sc) = (row * sum.stride(0), sum.stride(1));
    let (os, oc) = (row * out.stride(0), out.stride(1));
    let wc = weight.stride(1);

    let mut acc = 0.0f32;
    for i in range_stepped(lane, d, step) {
        let mut v = x[xs + i * xc];
        if with_residual {
            v += residual[rs + i * rc];
            sum[ss + i * sc] = v;
        }
        let f = f32::cast_from(v);
        acc += f * f;
    }
    let total = plane_sum(acc);
    let inv = (total / f32::cast_from(d) + eps).inverse_sqrt();
    for i in range_stepped(lane, d, step) {
        let mut v = x[xs + i * xc];
        if with_residual {
            v += residual[rs + i * rc];
        }
        let normed = E::cast_from(f32::cast_from(v) * inv);
        out[os + i * oc] = normed * weight[i * wc];
    }
}

/// `silu(gate) · up` for `gate_up` `[R, 2I]` (gate columns first) → `[R, I]`: PyTorch's
/// `act_fn(gate_proj(x)) * up_proj(x)` — SiLU computed in f32 and rounded to `E`, the product
/// rounded to `E`.
#[cube(launch_unchecked)]
pub fn silu_mul_kernel<E: Float>(
    gate_up: &Tensor<E>,
    out: &mut Tensor<E>,
    n: u32,
    inter: u32,
    #[define(E)] _dtype: ElemType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= n as usize {
        terminate!();
    }
    let inter = inter as usize;
    let row = pos / inter;
    let col = pos % inter;
    let (gs, gc) = (row * gate_up.stride(0), gate_up.stride(1));
    let g = f32::cast_from(gate_up[gs + col * gc]);
    let up = gate_up[gs + (inter + col) * gc];
    let silu = E::cast_from(g / (1.0f32 + (-g).exp()));
    let at = row * out.stride(0) + col * out.stride(1);
    out[at] = silu * up;
}

/// Rotate-half RoPE on q and k and the KV-cache write, for `qkv` `[B·S, (H + 2·KVH)·Dh]`
/// (the fused projection's output, rows = batch-major positions):
/// q heads → `q` `[B, H, S, Dh]`; k heads, rotated, and v heads, as they are → `keys` /
/// `values` `[B, KVH, L, Dh]` at positions `slot[0]..slot[0] + S`, in place. The write
/// position is read from the device (`slot`), not passed as a launch argument, so a recorded
/// (CUDA-graph) decode step can replay at every position.
///
/// `q·cos + rotate_half(q)·sin` in `E` as PyTorch computes it (each product rounded, then the
/// sum); `sin_signed` carries rotate_half's sign (`cat(−sin, sin)`), so the partner element
/// (the other half) is multiplied by it directly.
#[cube(launch_unchecked)]
pub fn rope_cache_kernel<E: Float, I: Int>(
    qkv: &Tensor<E>,
    cos: &Tensor<E>,
    sin_signed: &Tensor<E>,
    slot: &Tensor<I>,
    q: &mut Tensor<E>,
    keys: &mut Tensor<E>,
    values: &mut Tensor<E>,
    n: u32,
    width: u32,
    dh: u32,
    seq: u32,
    heads: u32,
    kv_heads: u32,
    #[define(E, I)] _dtypes: [ElemType; 2],
) {
    let pos = ABSOLUTE_POS;
    if pos >= n as usize {
        terminate!();
    }
    let width = width as usize;
    let dh = dh as usize;
    let seq = seq as usize;
    let heads = heads as usize;
    let kv_heads = kv_heads as usize;
    let start = usize::cast_from(slot[0]);

    let row = pos / width;
    let col = pos % width;
    let head = col / dh;
    let d = col % dh;
    let b = row / seq;
    let s = row % seq;
    let (qs, qc) = (row * qkv.stride(0), qkv.stride(1));
    let x = qkv[qs + col * qc];

    if head < heads + kv_heads {
        let half = dh / 2;
        let partner = if d < half { d + half } else { d - half };
        let xp = qkv[qs + (head * dh + partner) * qc];
        let c = cos[row * cos.stride(0) + d * cos.stride(1)];
        let sn = sin_signed[row * sin_signed.stride(0) + d * sin_signed.stride(1)];
        let y = x * c + xp * sn;
        if head < heads {
            let at = b * q.stride(0) + head * q.stride(1) + s * q.stride(2) + d * q.stride(3);
            q[at] = y;
        } else {
            let kh = head - heads;
            let at = b * keys.stride(0) + kh * keys.stride(1) + (start + s) * keys.stride(2) + d * keys.stride(3);
            keys[at] = y;
        }
    } else {
        let vh = head - heads - kv_heads;
        let at = b * values.stride(0) + vh * values.stride(1) + (start + s) * values.stride(2) + d * values.stride(3);
        values[at] = x;
    }
}

/// One-row matrix-vector product `out[0, n] = Σ_k x[0, k] · w[k, n]` for a weight held as the
/// transposed view of PyTorch's `[out, in]` (so `k` is the contiguous axis): one plane per
/// output, each lane reading 8 consecutive weights per step, f32 accumulation, one rounding to
/// `E` (as a bf16 GEMM with f32 accumulators). `CUBE_DIM_Y` outputs per cube.
#[cube(launch_unchecked)]
pub fn gemv_kernel<E: Float>(
    x: &Tensor<E>,
    w: &Tensor<E>,
    out: &mut Tensor<E>,
    n_out: u32,
    k_in: u32,
    #[define(E)] _dtype: ElemType,
) {
    let n = (CUBE_POS_X * CUBE_DIM_Y + UNIT_POS_Y) as usize;
    let lane = UNIT_POS_X as usize;
    let valid = n < n_out as usize;
    let k_in = k_in as usize;
    let (xs, wk) = (x.stride(1), w.stride(0));
    let mut acc = 0.0f32;
    if valid {
        let base = n * w.stride(1);
        for k0 in range_stepped(lane * 8, k_in, CUBE_DIM_X as usize * 8) {
            #[unroll]
            for j in 0..8 {
                let k = k0 + j;
                if k < k_in {
                    acc += f32::cast_from(w[base + k * wk]) * f32::cast_from(x[k * xs]);
                }
            }
        }
    }
    // Every lane takes part in the plane reduction (an early return would leave it short).
    let total = plane_sum(acc);
    if valid && lane == 0 {
        let at = n * out.stride(1);
        out[at] = E::cast_from(total);
    }
}

/// Attention of one new position per sequence (a decode step) over the cache: one plane per
/// (sequence, head), each lane an online softmax over keys `lane, lane + 32, …` below
/// `key_len` that `hidden` (`[B, key_len]`, 1 = hidden) leaves visible, then the lanes' partial
/// maxima, sums and weighted values combined by plane reductions. f32 throughout, one rounding
/// to `E` per output; scale `1/√Dh` as burn's and PyTorch's default. Writes `out` `[B, H·Dh]`
/// directly in the layout the output projection reads (no head transpose).
#[cube(launch_unchecked)]
pub fn decode_attention_kernel<E: Float>(
    q: &Tensor<E>,
    keys: &Tensor<E>,
    values: &Tensor<E>,
    hidden: &Tensor<E>,
    out: &mut Tensor<E>,
    key_len: u32,
    heads: u32,
    kv_heads: u32,
    scale: f32,
    #[comptime] dh: usize,
    #[define(E)] _dtype: ElemType,
) {
    let heads = heads as usize;
    let bh = CUBE_POS_X as usize;
    let b = bh / heads;
    let h = bh % heads;
    let kh = h / (heads / kv_heads as usize);
    let lane = UNIT_POS_X as usize;
    let key_len = key_len as usize;

    let qb = b * q.stride(0) + h * q.stride(1);
    let mut qv = Array::<f32>::new(dh);
    let mut acc = Array::<f32>::new(dh);
    #[unroll]
    for d in 0..dh {
        qv[d] = f32::cast_from(q[qb + d * q.stride(3)]);
        acc[d] = f32::new(0.0);
    }
    // A finite start: exp(m − m_new) must stay 0 (not NaN) until a key is seen.
    let mut m = f32::new(-1.0e30);
    let mut sum = f32::new(0.0);
    let kb = b * keys.stride(0) + kh * keys.stride(1);
    let vb = b * values.stride(0) + kh * values.stride(1);
    let hb = b * hidden.stride(0);
    for j in range_stepped(lane, key_len, CUBE_DIM_X as usize) {
        if f32::cast_from(hidden[hb + j * hidden.stride(1)]) < 0.5f32 {
            let kr = kb + j * keys.stride(2);
            let mut s = f32::new(0.0);
            #[unroll]
            for d in 0..dh {
                s += qv[d] * f32::cast_from(keys[kr + d * keys.stride(3)]);
            }
            s *= scale;
            let m_new = select(s > m, s, m);
            let corr = (m - m_new).exp();
            let p = (s - m_new).exp();
            sum = sum * corr + p;
            let vr = vb + j * values.stride(2);
            #[unroll]
            for d in 0..dh {
                acc[d] = acc[d] * corr + p * f32::cast_from(values[vr + d * values.stride(3)]);
            }
            m = m_new;
        }
    }
    // Every lane takes part in the reductions (lanes that saw no key add zeros).
    let top = plane_max(m);
    let e = (m - top).exp();
    let total = plane_sum(sum * e);
    let ob = b * out.stride(0) + h * dh * out.stride(1);
    #[unroll]
    for d in 0..dh {
        let o = plane_sum(acc[d] * e);
        if lane == 0 {
            let at = ob + d * out.stride(1);
            out[at] = E::cast_from(o / total);
        }
    }
}
