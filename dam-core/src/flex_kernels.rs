//! GELU-tanh and SiLU·up as one parallel pass over the elements on burn's CPU backend
//! (`flex`), behind the `flex` feature; [`crate::nn::gelu_tanh`] and [`crate::nn::silu_mul`]
//! route here on a flex device.
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

/// Elements per rayon task: large enough that the split costs nothing, small enough that
/// both halves of a 729-row activation land on different threads.
const CHUNK: usize = 1 << 14;

/// The one-pass activations as a burn backend extension, implemented for burn-flex only (the
/// cubecl backends have their own fused kernels; elsewhere [`crate::nn`] uses burn's ops).
#[backend_extension(Flex)]
pub trait FlexActivationOps: Backend {
    /// GELU with the tanh approximation of every element of `x` (any rank).
    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `gate_up` `[R, 2I]` → `silu(gate) · up` `[R, I]` (gate = the first `I` columns).
    fn silu_mul(gate_up: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// Whether `device` is burn-flex's (the CPU backend), where these passes apply.
pub fn flex_device(device: &burn::tensor::Device) -> bool {
    matches!(device.as_dispatch(), burn::backend::DispatchDevice::Flex(_))
}

/// [`FlexActivationOps::gelu_tanh`] on a tensor of a flex device.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FlexActivationOps>::gelu_tanh(x.into_dispatch()))
}

/// [`FlexActivationOps::silu_mul`] on a tensor of a flex device.
pub fn silu_mul(gate_up: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FlexActivationOps>::silu_mul(gate_up.into_dispatch()))
}

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

/// The same in f64 (an f64 device).
#[inline]
fn gelu_tanh_f64(x: f64) -> f64 {
    const K_BETA: f64 = core::f64::consts::SQRT_2 * core::f64::consts::FRAC_2_SQRT_PI * 0.5;
    let inner = K_BETA * (x + 0.044715 * (x * x * x));
    0.5 * x * (1.0 + inner.tanh())
}

/// PyTorch's SiLU, `x / (1 + exp(-x))`, in f32 (as the CUDA decoder's fused kernel computes it).
#[inline]
pub fn silu_f32(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// A float element of a flex tensor with its f32 round trip.
trait Elem: burn::tensor::Element + bytemuck::Pod + Default + Send + Sync {
    fn f32(self) -> f32;
    fn round(v: f32) -> Self;
}

impl Elem for f32 {
    fn f32(self) -> f32 {
        self
    }
    fn round(v: f32) -> Self {
        v
    }
}

impl Elem for f16 {
    fn f32(self) -> f32 {
        self.to_f32()
    }
    fn round(v: f32) -> Self {
        f16::from_f32(v)
    }
}

impl Elem for bf16 {
    fn f32(self) -> f32 {
        self.to_f32()
    }
    fn round(v: f32) -> Self {
        bf16::from_f32(v)
    }
}

/// `op` applied to every element, in place when `x` is contiguous from offset 0 and not
/// shared, into a new contiguous tensor otherwise.
fn map<E: burn::tensor::Element + bytemuck::Pod + Default + Send + Sync>(
    mut x: FlexTensor,
    op: impl Fn(E) -> E + Sync,
) -> FlexTensor {
    let n = x.layout().num_elements();
    let whole = x.layout().contiguous_offsets() == Some((0, n));
    if whole && let Some(values) = x.try_storage_mut::<E>() {
        values[..n]
            .par_chunks_mut(CHUNK)
            .for_each(|c| c.iter_mut().for_each(|v| *v = op(*v)));
        return x;
    }
    let x = if x.layout().contiguous_offsets().is_some() {
        x
    } else {
        x.to_contiguous()
    };
    let src = x.as_slice::<E>().expect("contiguous after to_contiguous");
    let mut out = vec![E::default(); n];
    out.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(o, s)| o.iter_mut().zip(s).for_each(|(o, &s)| *o = op(s)));
    FlexTensor::from_data(TensorData::new(out, x.layout().shape().clone()))
}

/// `silu(gate) · up` row by row: `silu` in f32 rounded to `E`, then the product in `E`
/// (PyTorch: `F.silu(gate) * up`, two ops, each rounded).
fn silu_mul_typed<E: Elem>(gate_up: FlexTensor) -> FlexTensor {
    let shape = gate_up.layout().shape().clone();
    let (rows, width) = (shape[0], shape[1]);
    let inter = width / 2;
    let x = if gate_up.layout().contiguous_offsets().is_some() {
        gate_up
    } else {
        gate_up.to_contiguous()
    };
    let src = x.as_slice::<E>().expect("contiguous after to_contiguous");
    let mut out = vec![E::default(); rows * inter];
    if inter > 0 {
        out.par_chunks_mut(inter)
            .zip(src.par_chunks(width))
            .for_each(|(o, row)| {
                let (gate, up) = row.split_at(inter);
                for ((o, &g), &u) in o.iter_mut().zip(gate).zip(up) {
                    let s = E::round(silu_f32(g.f32()));
                    *o = E::round(s.f32() * u.f32());
                }
            });
    }
    FlexTensor::from_data(TensorData::new(out, [rows, inter]))
}

impl FlexActivationOps for Flex {
    fn gelu_tanh(x: FlexTensor) -> FlexTensor {
        match x.dtype() {
            DType::F32 => map::<f32>(x, gelu_tanh_f32),
            DType::F16 => map::<f16>(x, |v| f16::round(gelu_tanh_f32(v.f32()))),
            DType::BF16 => map::<bf16>(x, |v| bf16::round(gelu_tanh_f32(v.f32()))),
            DType::F64 => map::<f64>(x, gelu_tanh_f64),
            other => unreachable!("a float tensor of dtype {other:?}"),
        }
    }

    fn silu_mul(gate_up: FlexTensor) -> FlexTensor {
        match gate_up.dtype() {
            DType::F32 => silu_mul_typed::<f32>(gate_up),
            DType::F16 => silu_mul_typed::<f16>(gate_up),
            DType::BF16 => silu_mul_typed::<bf16>(gate_up),
            // No f64 in DAM; burn's ops keep it exact there (routed by `crate::nn`).
            other => unreachable!("silu_mul on {other:?} is routed to burn's ops"),
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
}
