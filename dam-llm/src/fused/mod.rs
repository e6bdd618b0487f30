//! A decoder layer as one op on CUDA (cubecl), behind the `cube` feature.
//!
//! Why: on a GPU a decode step at batch 1 was bound by the host, not the device. Every burn op
//! costs ≈ 14 µs of host time (dispatch, fusion's graph, launch — measured on an H100, see
//! `docs/performance.md`), and the plain decoder spends ≈ 43 ops per layer, ≈ 1 400 per step.
//! Here a whole decoder layer is **one** burn op ([`FusedLlamaOps::decoder_layer`]),
//! registered once per layer and forward pass (in burn's fusion stream like any op), and its
//! cubecl implementation (`cube`) launches the kernels itself — burn-cubecl's matmul and
//! attention, and three small kernels of ours (`kernels`) that replace the longest op
//! chains:
//!
//! | kernel | replaces |
//! | --- | --- |
//! | RMSNorm, optionally of `x + residual` | the residual add, cast, square, mean, add, sqrt, div, cast, mul |
//! | SiLU·up | 2 narrows, SiLU, mul |
//! | RoPE + KV-cache write | reshape, RoPE (6 ops), swap, 3 narrows, 2 cache writes |
//!
//! so a layer is ≈ 11 launches and one graph node. (One op for the whole stack would be
//! fewer still, but burn's generated fusion glue takes no `Vec` of tensors.) Measured on an
//! H100 this alone took a step from ≈ 20 to ≈ 14–19 ms — the launches themselves, each a round
//! trip through cubecl's device thread, were the rest; recording the step
//! ([`crate::decode_graph`]) removes them (8.1 ms).
//!
//! The arithmetic and its rounding points are the plain path's (which the CPU suite checks
//! against the original's fixtures); [`check::self_check`] and [`check::stack_check`] compare
//! the two on the device (`bench --check-fused`).
//!
//! The op goes through burn's backend extension (`#[backend_extension]`), so it takes and
//! returns ordinary tensors on the runtime `Device`. Only CUDA devices are routed here
//! ([`available`]: the one cubecl runtime it has been validated on); every other backend runs
//! the plain burn-op path.

pub mod check;
mod cube;
mod kernels;
pub mod profile;

use burn::backend::tensor::{BoolTensor, FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, ExtensionType, backend_extension};
use burn::tensor::{Bool, Device, Int, Tensor};

/// The fused ops as a burn backend extension (implemented for the cubecl backend in
/// `cube`; burn generates the `Dispatch` routing and the lazy `Fusion` registration).
#[backend_extension(Cube, Fusion: cfg(feature = "fusion"))]
pub trait FusedLlamaOps: Backend {
    /// `x` `[R, D]`, `weight` `[1, D]` → `[R, D]`.
    #[fusion(dtype = x, shape = x)]
    fn rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> FloatTensor<Self>;

    /// `(x + residual, rms_norm(x + residual))`.
    #[fusion(meta = |x, _residual, _weight, _eps| (x.clone(), x.clone()))]
    fn add_rms_norm(
        x: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `x` `[R, K]` · `w` `[K, N]` as the fused layers compute it (see [`set_gemv`]).
    #[fusion(dtype = x, shape = {
        let mut shape = x.clone();
        shape[1] = w[1];
        shape
    })]
    fn matmul(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self>;

    /// One-position attention as the fused layers compute it for a decode step: q
    /// `[B, H, 1, Dh]`, keys/values `[B, KVH, L, Dh]`, `hidden` `[B, L]` (1 = hidden) →
    /// `[B, H·Dh]` (see [`set_decode_attention`]).
    #[fusion(meta = |q, _k, _v, _hidden| {
        let mut spec = q.clone();
        spec.shape = [q.shape[0], q.shape[1] * q.shape[3]].into();
        spec
    })]
    fn decode_attention(
        q: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        hidden: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `gate_up` `[R, 2I]` → `silu(gate) · up` `[R, I]`.
    #[fusion(dtype = gate_up, shape = {
        let mut shape = gate_up.clone();
        shape[1] /= 2;
        shape
    })]
    fn silu_mul(gate_up: FloatTensor<Self>) -> FloatTensor<Self>;

    /// RoPE on the q and k heads of `qkv` `[B·S, (H + 2·KVH)·Dh]` (tables `[B·S, Dh]`), k and
    /// v written into `keys` / `values` `[B, KVH, L, Dh]` at `slot[0]..slot[0] + seq` **in
    /// place** (`slot`: one int on the device); returns q `[B, H, S, Dh]`.
    #[fusion(meta = |qkv, _cos, _sin, keys, _values, _slot, seq, heads, _kv| {
        let mut spec = qkv.clone();
        spec.shape = [qkv.shape[0] / *seq, *heads, *seq, keys.shape[3]].into();
        spec
    })]
    #[allow(clippy::too_many_arguments)]
    fn rope_cache(
        qkv: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin_signed: FloatTensor<Self>,
        keys: &FloatTensor<Self>,
        values: &FloatTensor<Self>,
        slot: IntTensor<Self>,
        seq: usize,
        heads: usize,
        kv_heads: usize,
    ) -> FloatTensor<Self>;

    /// One LLaMA decoder layer over `h` `[B·S, D]`, with the previous layer's MLP output
    /// `pending` added first when `has_pending` (the residual add is folded into this layer's
    /// first RMSNorm); returns `(h, mlp_out)` — the residual stream after attention, and the
    /// MLP output for the next layer (or the final norm) to add.
    ///
    /// RoPE rows `[B·S, Dh]`. `keys` / `values` `[B, KVH, L, Dh]` are written at
    /// `slot[0]..slot[0] + seq` **in place** (`slot` is read on the device, so a recorded step
    /// replays at any position); keys `0..key_len` are attended to as `attend` says.
    #[fusion(meta = |h, _pending, _weights, _cos, _sin, _keys, _values, _slot, _attend, _has_pending, _seq, _key_len, _heads, _kv_heads, _eps| (h.clone(), h.clone()))]
    #[allow(clippy::too_many_arguments)]
    fn decoder_layer(
        h: FloatTensor<Self>,
        pending: FloatTensor<Self>,
        #[extension_type] weights: FusedWeights<Self>,
        cos: FloatTensor<Self>,
        sin_signed: FloatTensor<Self>,
        keys: &FloatTensor<Self>,
        values: &FloatTensor<Self>,
        slot: IntTensor<Self>,
        #[extension_type] attend: Attend<Self>,
        has_pending: bool,
        seq: usize,
        key_len: usize,
        heads: usize,
        kv_heads: usize,
        eps: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// One layer's weights as [`FusedLlamaOps::decoder_layer`] takes them: the products'
/// `[in, out]` views — q|k|v `[D, (H + 2·KVH)·Dh]`, o `[H·Dh, D]`, gate|up `[D, 2I]`, down
/// `[I, D]` — and the norms `[1, D]`.
#[derive(ExtensionType)]
#[extension_type(fusion: cfg(feature = "fusion"))]
pub struct FusedWeights<B: Backend> {
    /// `input_layernorm.weight`, `[1, D]`.
    pub input_norm: FloatTensor<B>,
    /// q|k|v projection, `[D, (H + 2·KVH)·Dh]`.
    pub qkv: FloatTensor<B>,
    /// Output projection, `[H·Dh, D]`.
    pub o: FloatTensor<B>,
    /// `post_attention_layernorm.weight`, `[1, D]`.
    pub post_norm: FloatTensor<B>,
    /// gate|up projection, `[D, 2I]`.
    pub gate_up: FloatTensor<B>,
    /// Down projection, `[I, D]`.
    pub down: FloatTensor<B>,
}

/// Which keys a layer's queries see.
#[derive(ExtensionType)]
#[extension_type(fusion: cfg(feature = "fusion"))]
pub enum Attend<B: Backend> {
    /// Causally (bottom-right aligned: the new positions after the cached ones).
    Causal,
    /// Through `mask` `[B, H, S, key_len]` (`true` = hidden); `hidden` is the same mask as
    /// floats `[B, S·key_len]` (1 = hidden), which the one-query decode-attention kernel reads.
    Masked {
        /// `[B, H, S, key_len]`, `true` = hidden.
        mask: BoolTensor<B>,
        /// The same as floats `[B, S·key_len]`, 1 = hidden.
        hidden: FloatTensor<B>,
    },
}

/// Whether the environment variable `name` is `1`, read once per process (these switches are
/// asked on every product of every layer).
fn env_on(name: &str, cell: &'static std::sync::OnceLock<bool>) -> bool {
    *cell.get_or_init(|| std::env::var(name).is_ok_and(|v| v == "1"))
}

static GEMV_ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
static DECODE_ATTENTION_ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

static GEMV: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Switches the fused layers' one-row products to our matrix-vector kernel
/// (`kernels::gemv_kernel`) instead of burn-cubecl's matmul. **Off by default**: written to
/// stream the weights at full bandwidth (the products are ≈ 97 % of a decode step's bytes), but
/// not yet run on a GPU — `bench --check-fused` compares it with the matmul, and `bench --gemv
/// on` measures it. `DAM_FUSED_GEMV=1` switches it on too.
pub fn set_gemv(on: bool) {
    GEMV.store(on, std::sync::atomic::Ordering::Relaxed);
}

static DECODE_ATTENTION: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Switches one-position steps (decode) of the fused layers to our attention kernel
/// (`kernels::decode_attention_kernel`, one plane per head, online softmax over the cache)
/// instead of burn-cubecl's attention, which is built for tiles of many queries. **Off by
/// default**: not yet run on a GPU — `bench --check-fused` compares it with burn's attention,
/// `bench --decode-attention on` measures it. `DAM_FUSED_ATTENTION=1` switches it on too.
pub fn set_decode_attention(on: bool) {
    DECODE_ATTENTION.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether decode steps use our attention kernel (see [`set_decode_attention`]).
pub fn decode_attention_enabled() -> bool {
    DECODE_ATTENTION.load(std::sync::atomic::Ordering::Relaxed) || env_on("DAM_FUSED_ATTENTION", &DECODE_ATTENTION_ENV)
}

/// Whether the one-row products use our kernel (see [`set_gemv`]).
pub fn gemv_enabled() -> bool {
    GEMV.load(std::sync::atomic::Ordering::Relaxed) || env_on("DAM_FUSED_GEMV", &GEMV_ENV)
}

static ANY_RUNTIME: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Routes the fused ops to every cubecl device (wgpu too), not only CUDA; `DAM_FUSED_OPS=any`
/// does the same. For testing: this is how the kernels run without a GPU, on Mesa's software
/// Vulkan driver (lavapipe) — `dam/tests/fused_wgpu.rs` and `bench --check-fused
/// --check-shapes small --backend wgpu`.
pub fn set_any_runtime(on: bool) {
    ANY_RUNTIME.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the fused ops run on `device`: a CUDA device, unless `DAM_FUSED_OPS=0` is set (to
/// compare with, or fall back to, the plain burn-op path). The kernels are cubecl and compile
/// for every cubecl runtime, but they are measured on CUDA only and need plane (subgroup)
/// operations, which not every wgpu adapter has, so by default other runtimes keep the plain
/// path; [`set_any_runtime`] or `DAM_FUSED_OPS=any` routes them here too.
pub fn available(device: &Device) -> bool {
    let env = std::env::var("DAM_FUSED_OPS");
    if env.as_deref() == Ok("0") {
        return false;
    }
    if dam_core::switch::cuda_device(device) {
        return true;
    }
    dam_core::switch::cubecl_device(device)
        && (ANY_RUNTIME.load(std::sync::atomic::Ordering::Relaxed) || env.as_deref() == Ok("any"))
}

/// [`FusedLlamaOps::rms_norm`] on tensors.
pub fn rms_norm(x: Tensor<2>, weight: &Tensor<2>, eps: f64) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FusedLlamaOps>::rms_norm(
        x.into_dispatch(),
        weight.clone().into_dispatch(),
        eps as f32,
    ))
}

/// [`FusedLlamaOps::add_rms_norm`] on tensors: `(x + residual, rms_norm(x + residual))`.
pub fn add_rms_norm(x: Tensor<2>, residual: Tensor<2>, weight: &Tensor<2>, eps: f64) -> (Tensor<2>, Tensor<2>) {
    let (sum, normed) = <Dispatch as FusedLlamaOps>::add_rms_norm(
        x.into_dispatch(),
        residual.into_dispatch(),
        weight.clone().into_dispatch(),
        eps as f32,
    );
    (Tensor::from_dispatch(sum), Tensor::from_dispatch(normed))
}

/// [`FusedLlamaOps::matmul`] on tensors.
pub fn matmul(x: Tensor<2>, w: &Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FusedLlamaOps>::matmul(
        x.into_dispatch(),
        w.clone().into_dispatch(),
    ))
}

/// [`FusedLlamaOps::decode_attention`] on tensors.
pub fn decode_attention(q: Tensor<4>, keys: Tensor<4>, values: Tensor<4>, hidden: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FusedLlamaOps>::decode_attention(
        q.into_dispatch(),
        keys.into_dispatch(),
        values.into_dispatch(),
        hidden.into_dispatch(),
    ))
}

/// [`FusedLlamaOps::silu_mul`] on tensors.
pub fn silu_mul(gate_up: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FusedLlamaOps>::silu_mul(gate_up.into_dispatch()))
}

/// [`FusedLlamaOps::rope_cache`] on tensors; returns q `[B, H, S, Dh]`.
#[allow(clippy::too_many_arguments)]
pub fn rope_cache(
    qkv: Tensor<2>,
    cos: &Tensor<2>,
    sin_signed: &Tensor<2>,
    keys: &Tensor<4>,
    values: &Tensor<4>,
    slot: Tensor<1, Int>,
    seq: usize,
    heads: usize,
    kv_heads: usize,
) -> Tensor<4> {
    let keys = keys.clone().into_dispatch();
    let values = values.clone().into_dispatch();
    Tensor::from_dispatch(<Dispatch as FusedLlamaOps>::rope_cache(
        qkv.into_dispatch(),
        cos.clone().into_dispatch(),
        sin_signed.clone().into_dispatch(),
        &keys,
        &values,
        slot.into_dispatch(),
        seq,
        heads,
        kv_heads,
    ))
}

/// One layer's weights for [`decoder_layer`], in the extension's order: input norm, q|k|v,
/// o, post-attention norm, gate|up, down.
pub type LayerWeights = [Tensor<2>; 6];

/// What every layer of one forward pass shares.
#[derive(Clone, Debug)]
pub struct LayerStep {
    /// RoPE table rows of the new positions, `[B·S, Dh]`.
    pub cos: Tensor<2>,
    /// The matching `cat(−sin, sin)` rows, `[B·S, Dh]`.
    pub sin_signed: Tensor<2>,
    /// `[B, H, S, key_len]`, `true` = hidden, and the same as floats `[B, S·key_len]`, 1 =
    /// hidden (see [`Attend::Masked`]); `None` = causal.
    pub mask: Option<(Tensor<4, Bool>, Tensor<2>)>,
    /// Cache position of the first new token, one int on the device.
    pub slot: Tensor<1, Int>,
    /// New positions per sequence (S).
    pub seq: usize,
    /// Cache keys attended to.
    pub key_len: usize,
    /// Query heads (H).
    pub heads: usize,
    /// Key/value heads (KVH).
    pub kv_heads: usize,
    /// The RMSNorms' epsilon.
    pub eps: f64,
}

/// [`FusedLlamaOps::decoder_layer`] on tensors: `(h, pending)` → `(h, mlp_out)`.
pub fn decoder_layer(
    h: Tensor<2>,
    pending: Option<Tensor<2>>,
    weights: &LayerWeights,
    keys: &Tensor<4>,
    values: &Tensor<4>,
    step: &LayerStep,
) -> (Tensor<2>, Tensor<2>) {
    let has_pending = pending.is_some();
    // Without a pending MLP output the kernel ignores the operand: pass `h` again.
    let pending = pending.unwrap_or_else(|| h.clone()).into_dispatch();
    let [input_norm, qkv, o, post_norm, gate_up, down] = weights.clone().map(Tensor::into_dispatch);
    let weights = FusedWeights {
        input_norm,
        qkv,
        o,
        post_norm,
        gate_up,
        down,
    };
    let attend = match &step.mask {
        Some((mask, hidden)) => Attend::Masked {
            mask: mask.clone().into_dispatch(),
            hidden: hidden.clone().into_dispatch(),
        },
        None => Attend::Causal,
    };
    let (h, m) = <Dispatch as FusedLlamaOps>::decoder_layer(
        h.into_dispatch(),
        pending,
        weights,
        step.cos.clone().into_dispatch(),
        step.sin_signed.clone().into_dispatch(),
        &keys.clone().into_dispatch(),
        &values.clone().into_dispatch(),
        step.slot.clone().into_dispatch(),
        attend,
        has_pending,
        step.seq,
        step.key_len,
        step.heads,
        step.kv_heads,
        step.eps as f32,
    );
    (Tensor::from_dispatch(h), Tensor::from_dispatch(m))
}
