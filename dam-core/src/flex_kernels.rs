//! Loops of our own on burn's CPU backend (`flex`), behind the `flex` feature: GELU-tanh and
//! SiLU·up as one parallel pass over the elements ([`crate::nn::gelu_tanh`],
//! [`crate::nn::silu_mul`] route here on a flex device), and the product of half-precision
//! tensors ([`half_matmul`], routed from [`crate::nn::half_aware_matmul`]).
//!
//! Why: burn-flex runs a unary op such as `tanh` on one thread, one scalar libm call per
//! element, and each of GELU's seven other steps as a pass of its own. At DAM-3B's size a
//! GELU over fc1's `729 × 4304` output took ≈ 47 ms on the 2-core test machine, ≈ 3 s of an
//! 11.4 s encode (78 MLPs). Here the whole formula is one pass split over rayon's threads,
//! in place when the input is not shared (docs/performance.md, "One-pass activations").
//!
//! Rounding: each element follows PyTorch's own formula step by step in f32 (GELU: `x*x*x`,
//! `kBeta * (x + kKappa * x_cube)`, `0.5 * x * (1 + tanh(inner))`; SiLU: `x / (1 + exp(-x))`),
//! with libm's `tanhf` / `expf` — bit for bit what the burn-op path gives for GELU in f32.
//! Half-precision inputs are computed in f32 and rounded once, as PyTorch's `opmath` does
//! (the burn-op path rounds after every step). Only the hand-written part is the loop; the
//! threads are rayon's.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::{DType, Tensor, TensorData, bf16, f16};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use crate::weights::HostFloat;

/// Elements per rayon task: large enough that the split costs nothing, small enough that
/// both halves of a 729-row activation land on different threads.
const CHUNK: usize = 1 << 14;

/// These loops as a burn backend extension, implemented for burn-flex only (the cubecl
/// backends have their own fused kernels; elsewhere [`crate::nn`] uses burn's ops).
#[backend_extension(Flex)]
pub trait FlexKernelOps: Backend {
    /// GELU with the tanh approximation of every element of `x` (any rank).
    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `gate_up` `[R, 2I]` → `silu(gate) · up` `[R, I]` (gate = the first `I` columns).
    fn silu_mul(gate_up: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `lhs` `[M, K]` · `rhs` `[K, N]` for bf16 / f16 tensors (any strides): f32 products and
    /// sums, rounded once (see [`half_matmul`]).
    fn half_matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// Whether these loops take tensors of `dtype` on `device`: burn-flex's device (the CPU
/// backend) and one of DAM's float types, f32, f16 or bf16 (anything else stays with burn's
/// ops).
pub fn takes(device: &burn::tensor::Device, dtype: DType) -> bool {
    matches!(device.as_dispatch(), burn::backend::DispatchDevice::Flex(_))
        && matches!(dtype, DType::F32 | DType::F16 | DType::BF16)
}

/// [`FlexKernelOps::gelu_tanh`] on a tensor of a flex device.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FlexKernelOps>::gelu_tanh(x.into_dispatch()))
}

/// [`FlexKernelOps::silu_mul`] on a tensor of a flex device.
pub fn silu_mul(gate_up: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FlexKernelOps>::silu_mul(gate_up.into_dispatch()))
}

/// A 2-D product of bf16 / f16 tensors on a flex device — what a half-precision linear layer
/// does on the CPU — as f32 multiply-adds rounded once to the half type, like burn-flex's own
/// half product and PyTorch's, but without its costs: burn-flex converts both operands to f32
/// on one thread per call (and first copies a transposed weight view into a new contiguous
/// buffer), which made a DAM-3B decode step in bf16 take 6.7 s. Here:
///
/// * up to [`GEMV_ROWS`] rows against a weight held as the transposed view of its stored
///   `[out, in]` rows ([`crate::nn::TorchLinear`], the LLM) — decode steps: each weight row is
///   read once, converted on the fly and dotted with every input row, rows of the weight split
///   over rayon's threads (the step reads half the bytes of f32 weights);
/// * anything else — prefill, vision: both operands converted to f32 in parallel (strides
///   kept), burn-flex's f32 product (gemm), the result rounded in parallel.
///
/// The f32 sums run in another order than gemm's, so a result may differ from burn-flex's by
/// a rounding of the half type; both are PyTorch's semantics.
pub fn half_matmul(lhs: Tensor<2>, rhs: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FlexKernelOps>::half_matmul(
        lhs.into_dispatch(),
        rhs.into_dispatch(),
    ))
}

/// Whether [`half_matmul`] takes products of `dtype` on `device` (f16 / bf16 only).
pub fn half_matmul_applies(device: &burn::tensor::Device, dtype: DType) -> bool {
    dtype != DType::F32 && takes(device, dtype)
}

/// Most input rows [`half_matmul`] takes through its matrix-vector path (one per region in a
/// batched decode step; above it, converting the weight once and gemm win).
pub const GEMV_ROWS: usize = 16;

/// Weight rows per rayon task of the matrix-vector path.
const GEMV_BLOCK: usize = 32;

/// PyTorch's f32 GELU-tanh, step by step (`aten/src/ATen/native/cpu/Activation.cpp`'s scalar
/// path; its CUDA kernel is the same expression).
#[inline]
pub fn gelu_tanh_f32(x: f32) -> f32 {
    // sqrt(2/π) as PyTorch spells it, `M_SQRT2 * M_2_SQRTPI * 0.5`, rounded to f32 once.
    const K_BETA: f32 = (core::f64::consts::SQRT_2 * core::f64::consts::FRAC_2_SQRT_PI * 0.5) as f32;
    const K_KAPPA: f32 = 0.044715;
    let x_cube = x * x * x;
    let inner = K_BETA * (x + K_KAPPA * x_cube);
    0.5 * x * (1.0 + inner.tanh())
}

/// PyTorch's SiLU, `x / (1 + exp(-x))`, in f32 (as the CUDA decoder's fused kernel computes it).
#[inline]
pub fn silu_f32(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `t` as a contiguous tensor, copied only when it is strided: a contiguous slice at an
/// offset (a narrowed batch, the second half of a buffer) is read in place through
/// `as_slice`, where burn-flex's `to_contiguous` would copy it.
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.layout().contiguous_offsets().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

/// `op` applied to every element, in place when `x` is contiguous from offset 0 and not
/// shared, into a new contiguous tensor otherwise.
fn map<E: HostFloat>(mut x: FlexTensor, op: impl Fn(E) -> E + Sync) -> FlexTensor {
    let n = x.layout().num_elements();
    let whole = x.layout().contiguous_offsets() == Some((0, n));
    if whole && let Some(values) = x.try_storage_mut::<E>() {
        values[..n]
            .par_chunks_mut(CHUNK)
            .for_each(|c| c.iter_mut().for_each(|v| *v = op(*v)));
        return x;
    }
    let x = contiguous(x);
    let src = x.as_slice::<E>().expect("contiguous");
    let mut out = vec![E::default(); n];
    out.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(o, s)| o.iter_mut().zip(s).for_each(|(o, &s)| *o = op(s)));
    FlexTensor::from_data(TensorData::new(out, x.layout().shape().clone()))
}

/// `silu(gate) · up` row by row: `silu` in f32 rounded to `E`, then the product in `E`
/// (PyTorch: `F.silu(gate) * up`, two ops, each rounded).
fn silu_mul_typed<E: HostFloat>(gate_up: FlexTensor) -> FlexTensor {
    let shape = gate_up.layout().shape().clone();
    let (rows, width) = (shape[0], shape[1]);
    let inter = width / 2;
    let x = contiguous(gate_up);
    let src = x.as_slice::<E>().expect("contiguous");
    let mut out = vec![E::default(); rows * inter];
    if inter > 0 {
        out.par_chunks_mut(inter)
            .zip(src.par_chunks(width))
            .for_each(|(o, row)| {
                let (gate, up) = row.split_at(inter);
                for ((o, &g), &u) in o.iter_mut().zip(gate).zip(up) {
                    let s = E::from_f32(silu_f32(g.widen()));
                    *o = E::from_f32(s.widen() * u.widen());
                }
            });
    }
    FlexTensor::from_data(TensorData::new(out, [rows, inter]))
}

/// `x` `[M, K]` (f32, row-major) times `w` stored as `[N, K]` rows (half type): `[M, N]` in
/// `E`, blocks of weight rows split over rayon's threads; with AVX2 + FMA when the CPU has
/// them (checked at run time), baseline SIMD otherwise.
fn gemv_rows<E: HostFloat>(x: &[f32], m: usize, k: usize, w: &[E], n: usize) -> Vec<E> {
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    let mut out_t = vec![E::default(); n * m]; // [N, M], transposed at the end
    out_t
        .par_chunks_mut(GEMV_BLOCK * m)
        .enumerate()
        .for_each(|(block, out)| {
            let w = &w[block * GEMV_BLOCK * k..];
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                unsafe { gemv_block_avx2(x, k, w, out, m) };
                return;
            }
            gemv_block::<E, false>(x, k, w, out, m);
        });
    let mut out = vec![E::default(); m * n];
    for (j, col) in out_t.chunks(m).enumerate() {
        for (i, v) in col.iter().enumerate() {
            out[i * n + j] = *v;
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gemv_block_avx2<E: HostFloat>(x: &[f32], k: usize, w: &[E], out: &mut [E], m: usize) {
    gemv_block::<E, true>(x, k, w, out, m)
}

/// One block of output rows: for each weight row (converted once to f32), its dot product with
/// every input row. Sixteen lanes of partial sums, so the compiler vectorises the loop without
/// reordering any lane's additions; `FMA` fuses each multiply-add (only where the CPU has it —
/// elsewhere `mul_add` would be a libm call).
#[inline(always)]
fn gemv_block<E: HostFloat, const FMA: bool>(x: &[f32], k: usize, w: &[E], out: &mut [E], m: usize) {
    const LANES: usize = 16;
    let mut row = vec![0f32; k];
    let split = k - k % LANES;
    for (j, out) in out.chunks_mut(m).enumerate() {
        for (r, v) in row.iter_mut().zip(&w[j * k..(j + 1) * k]) {
            *r = v.widen();
        }
        let (wc, wt) = row.split_at(split);
        for (i, o) in out.iter_mut().enumerate() {
            let (xc, xt) = x[i * k..(i + 1) * k].split_at(split);
            let mut acc = [0f32; LANES];
            for (wl, xl) in wc.chunks_exact(LANES).zip(xc.chunks_exact(LANES)) {
                for l in 0..LANES {
                    acc[l] = if FMA {
                        wl[l].mul_add(xl[l], acc[l])
                    } else {
                        acc[l] + wl[l] * xl[l]
                    };
                }
            }
            let mut sum = acc.iter().sum::<f32>();
            for (a, b) in wt.iter().zip(xt) {
                sum += a * b;
            }
            *o = E::from_f32(sum);
        }
    }
}

/// Every stored value of `t` converted to f32 in parallel, the layout (shape, strides,
/// offset) kept.
fn storage_to_f32<E: HostFloat>(t: &FlexTensor) -> FlexTensor {
    let src: &[E] = t.storage();
    // Collected, not zeroed first and then written (a memset of every weight in f32 was
    // ≈ 2 % of a bf16 prefill).
    let out: Vec<f32> = src.par_iter().with_min_len(CHUNK).map(|s| s.widen()).collect();
    FlexTensor::new(burn::tensor::Bytes::from_elems(out), t.layout().clone(), DType::F32)
}

fn half_matmul_typed<E: HostFloat>(lhs: FlexTensor, rhs: FlexTensor) -> FlexTensor {
    use burn::backend::ops::FloatTensorOps;
    let [m, k] = [lhs.layout().shape()[0], lhs.layout().shape()[1]];
    let n = rhs.layout().shape()[1];
    // As burn's own matmul, a caller's shape error is a panic (the layers here never make one).
    assert_eq!(k, rhs.layout().shape()[0], "half_matmul: inner dimensions differ");
    // The transposed view of contiguous `[N, K]` rows: strides (1, K) from its start.
    let stored_rows = rhs.layout().strides() == [1, k as isize] || n == 1 && rhs.is_contiguous();
    if (1..=GEMV_ROWS).contains(&m) && k > 0 && stored_rows {
        let start = rhs.layout().start_offset();
        let w = &rhs.storage::<E>()[start..start + n * k];
        let lhs = contiguous(lhs);
        let x: Vec<f32> = lhs
            .as_slice::<E>()
            .expect("contiguous")
            .iter()
            .map(|v| v.widen())
            .collect();
        let out = gemv_rows(&x, m, k, w, n);
        return FlexTensor::from_data(TensorData::new(out, [m, n]));
    }
    let product = Flex::float_matmul(storage_to_f32::<E>(&lhs), storage_to_f32::<E>(&rhs));
    map_to::<E>(product)
}

/// An f32 tensor rounded to `E` in parallel.
fn map_to<E: HostFloat>(t: FlexTensor) -> FlexTensor {
    let t = contiguous(t);
    let src = t.as_slice::<f32>().expect("contiguous");
    let out: Vec<E> = src.par_iter().with_min_len(CHUNK).map(|&s| E::from_f32(s)).collect();
    FlexTensor::from_data(TensorData::new(out, t.layout().shape().clone()))
}

impl FlexKernelOps for Flex {
    fn gelu_tanh(x: FlexTensor) -> FlexTensor {
        match x.dtype() {
            DType::F32 => map::<f32>(x, gelu_tanh_f32),
            DType::F16 => map::<f16>(x, |v| HostFloat::from_f32(gelu_tanh_f32(v.widen()))),
            DType::BF16 => map::<bf16>(x, |v| HostFloat::from_f32(gelu_tanh_f32(v.widen()))),
            other => unreachable!("gelu_tanh on {other:?} is routed to burn's ops ([`takes`])"),
        }
    }

    fn silu_mul(gate_up: FlexTensor) -> FlexTensor {
        match gate_up.dtype() {
            DType::F32 => silu_mul_typed::<f32>(gate_up),
            DType::F16 => silu_mul_typed::<f16>(gate_up),
            DType::BF16 => silu_mul_typed::<bf16>(gate_up),
            other => unreachable!("silu_mul on {other:?} is routed to burn's ops ([`takes`])"),
        }
    }

    fn half_matmul(lhs: FlexTensor, rhs: FlexTensor) -> FlexTensor {
        match lhs.dtype() {
            DType::BF16 => half_matmul_typed::<bf16>(lhs, rhs),
            DType::F16 => half_matmul_typed::<f16>(lhs, rhs),
            other => unreachable!("half_matmul on {other:?} is routed to burn's ops"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// Values from −12 to 12 with awkward fractions, plus zeros and far tails.
    fn values(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| match i % 97 {
                0 => 0.0,
                1 => -40.0,
                2 => 40.0,
                _ => ((i as f32 * 0.618_034).fract() - 0.5) * 24.0,
            })
            .collect()
    }

    fn tensor(values: Vec<f32>, shape: [usize; 2]) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values, shape), &Device::flex())
    }

    fn vec_f32(t: Tensor<2>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn gelu_pass_equals_the_burn_ops_bit_for_bit_in_f32() {
        // More than one rayon chunk, an odd row width.
        let x = tensor(values(37 * 1001), [37, 1001]);
        let ops = vec_f32(crate::nn::gelu_tanh_ops(x.clone()));
        // `x` is shared here (the clone above kept it alive): the pass must not write into it.
        let pass = vec_f32(gelu_tanh(x.clone()));
        assert_eq!(pass, ops);
        assert_eq!(vec_f32(x.clone()), values(37 * 1001), "input changed");
        // Unshared and contiguous: the in-place path.
        let unique = tensor(values(37 * 1001), [37, 1001]);
        assert_eq!(vec_f32(gelu_tanh(unique)), ops);
        // A transposed view and an offset slice.
        let t = vec_f32(gelu_tanh(x.clone().transpose()));
        assert_eq!(t, vec_f32(crate::nn::gelu_tanh_ops(x.clone().transpose())));
        let s = vec_f32(gelu_tanh(x.clone().narrow(0, 5, 3)));
        assert_eq!(s, ops[5 * 1001..8 * 1001]);
        assert_eq!(vec_f32(gelu_tanh(tensor(vec![], [0, 4]))), Vec::<f32>::new());
    }

    #[test]
    fn gelu_pass_rounds_half_types_once() {
        let xs = values(4096);
        for dtype in [burn::tensor::FloatDType::BF16, burn::tensor::FloatDType::F16] {
            let x = tensor(xs.clone(), [64, 64]).cast(dtype);
            let inputs = vec_f32(x.clone());
            let got = vec_f32(gelu_tanh(x));
            for (x, y) in inputs.iter().zip(&got) {
                let want = match dtype {
                    burn::tensor::FloatDType::BF16 => bf16::from_f32(gelu_tanh_f32(*x)).to_f32(),
                    _ => f16::from_f32(gelu_tanh_f32(*x)).to_f32(),
                };
                assert_eq!(*y, want, "{dtype:?} gelu({x})");
            }
        }
    }

    #[test]
    fn silu_mul_pass_follows_pytorch_and_the_burn_ops() {
        let (rows, inter) = (19, 700);
        let v = values(rows * 2 * inter);
        let gate_up = tensor(v.clone(), [rows, 2 * inter]);
        let got = vec_f32(crate::nn::silu_mul(gate_up.clone()));
        let ops = vec_f32(
            burn::tensor::activation::silu(gate_up.clone().narrow(1, 0, inter))
                * gate_up.clone().narrow(1, inter, inter),
        );
        for r in 0..rows {
            for j in 0..inter {
                let (g, u) = (v[r * 2 * inter + j], v[r * 2 * inter + inter + j]);
                let y = got[r * inter + j];
                assert_eq!(y, silu_f32(g) * u, "row {r} col {j}");
                // burn's `x · sigmoid(x)` rounds differently, by an ulp or two.
                let o = ops[r * inter + j];
                assert!((y - o).abs() <= 4.0 * f32::EPSILON * o.abs().max(1e-30), "{y} vs {o}");
            }
        }
        // A non-contiguous input (the transpose of a transpose's copy) gives the same.
        let t = tensor(v.clone(), [rows, 2 * inter]).transpose().transpose();
        assert_eq!(vec_f32(silu_mul(t)), got);
        // bf16: silu rounded, then the product rounded.
        let b = gate_up.cast(burn::tensor::FloatDType::BF16);
        let bv = vec_f32(b.clone());
        let got = vec_f32(silu_mul(b));
        for r in 0..rows {
            for j in 0..inter {
                let (g, u) = (bv[r * 2 * inter + j], bv[r * 2 * inter + inter + j]);
                let s = bf16::from_f32(silu_f32(g)).to_f32();
                assert_eq!(got[r * inter + j], bf16::from_f32(s * u).to_f32());
            }
        }
        assert_eq!(vec_f32(silu_mul(tensor(vec![], [0, 8]))), Vec::<f32>::new());
    }

    /// `[M, K] · [K, N]` in f64 from the operands' (already rounded) values.
    fn exact(x: &[f32], w_kn: &[f32], [m, k, n]: [usize; 3]) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for kk in 0..k {
                for j in 0..n {
                    out[i * n + j] += x[i * k + kk] as f64 * w_kn[kk * n + j] as f64;
                }
            }
        }
        out
    }

    /// Within one rounding of the half type (and the f32 sums' own error) of the exact product.
    fn assert_close(got: &[f32], want: &[f64], half_eps: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let tol = half_eps * w.abs() + 1e-4;
            assert!((*g as f64 - w).abs() <= tol, "{what}[{i}]: {g} vs {w}");
        }
    }

    #[test]
    fn half_matmul_matches_the_exact_product_on_both_paths() {
        use burn::tensor::FloatDType;
        let (k, n) = (203, 77); // not multiples of the lanes or of a block of weight rows
        for (dtype, half_eps) in [(FloatDType::BF16, 2f64.powi(-8)), (FloatDType::F16, 2f64.powi(-11))] {
            // The weight as the LLM holds it: stored `[N, K]`, used through its transposed view.
            let w_nk = tensor(values(n * k).iter().map(|v| v / 12.0).collect(), [n, k]).cast(dtype);
            let w_nk_values = vec_f32(w_nk.clone());
            let w_kn_values: Vec<f32> = (0..k)
                .flat_map(|kk| (0..n).map(move |j| (kk, j)))
                .map(|(kk, j)| w_nk_values[j * k + kk])
                .collect();
            let w_view = w_nk.transpose();
            let w_contiguous = tensor(w_kn_values.clone(), [k, n]).cast(dtype);
            for m in [1, 3, GEMV_ROWS, GEMV_ROWS + 1, 40] {
                let x = tensor(values(m * k + 5)[5..].iter().map(|v| v / 12.0).collect(), [m, k]).cast(dtype);
                let x_values = vec_f32(x.clone());
                let want = exact(&x_values, &w_kn_values, [m, k, n]);
                let got = half_matmul(x.clone(), w_view.clone());
                assert_eq!(got.dims(), [m, n]);
                assert_eq!(got.dtype(), DType::from(dtype));
                let got = vec_f32(got);
                assert_close(&got, &want, half_eps, &format!("{dtype:?} m={m}, transposed view"));
                let general = vec_f32(half_matmul(x.clone(), w_contiguous.clone()));
                assert_close(&general, &want, half_eps, &format!("{dtype:?} m={m}, contiguous"));
                // burn-flex's own bf16 product (f32 inside): the same up to one rounding. (Its
                // f16 product is gemm's native f16 one, several f16 ulps off the exact value.)
                if dtype == FloatDType::BF16 {
                    let burn = vec_f32(x.clone().matmul(w_contiguous.clone()));
                    assert_close(
                        &got,
                        &burn.iter().map(|&v| v as f64).collect::<Vec<_>>(),
                        2.0 * half_eps,
                        "vs burn",
                    );
                }
                // A transposed input view goes through the general path.
                let xt = tensor(x_values.clone(), [m, k]).cast(dtype).transpose().transpose();
                assert_close(&vec_f32(half_matmul(xt, w_view.clone())), &want, half_eps, "input view");
            }
        }
        // Larger, both weight layouts, and a weight view of another layout (a column slice).
        let (m, k, n) = (20, 2048, 1100);
        let x = tensor(values(m * k).iter().map(|v| v / 40.0).collect(), [m, k]).cast(FloatDType::BF16);
        let w_nk = tensor(values(n * k + 9)[9..].iter().map(|v| v / 40.0).collect(), [n, k]).cast(FloatDType::BF16);
        let (xv, w_nk_v) = (vec_f32(x.clone()), vec_f32(w_nk.clone()));
        let w_kn_v: Vec<f32> = (0..k * n).map(|i| w_nk_v[(i % n) * k + i / n]).collect();
        let want = exact(&xv, &w_kn_v, [m, k, n]);
        let eps = 2f64.powi(-8);
        assert_close(
            &vec_f32(half_matmul(x.clone(), w_nk.transpose())),
            &want,
            eps,
            "stored rows",
        );
        let w_kn = tensor(w_kn_v.clone(), [k, n]).cast(FloatDType::BF16);
        assert_close(&vec_f32(half_matmul(x.clone(), w_kn)), &want, eps, "row-major");
        let wide: Vec<f32> = (0..k)
            .flat_map(|r| w_kn_v[r * n..(r + 1) * n].iter().copied().chain([7.0, -7.0]))
            .collect();
        let sliced = tensor(wide, [k, n + 2]).cast(FloatDType::BF16).narrow(1, 0, n);
        assert_close(&vec_f32(half_matmul(x, sliced)), &want, eps, "column slice");
        // No rows at all.
        let w = tensor(values(6 * 10), [6, 10]).cast(FloatDType::BF16).transpose();
        let none = half_matmul(tensor(vec![], [0, 10]).cast(FloatDType::BF16), w);
        assert_eq!(none.dims(), [0, 6]);
        // Through the layer that routes it.
        let layer = crate::nn::TorchLinear::new(tensor(values(6 * 10), [6, 10]).cast(FloatDType::BF16), None);
        let x = tensor(values(10), [1, 10]).cast(FloatDType::BF16);
        let (xv, wv) = (vec_f32(x.clone()), vec_f32(layer.weight.val()));
        assert_close(
            &vec_f32(layer.forward(x)),
            &exact(&xv, &wv, [1, 10, 6]),
            2f64.powi(-8),
            "TorchLinear",
        );
    }
}
