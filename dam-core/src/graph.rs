//! Recorded replays (CUDA graphs) for CUDA (feature `cube`; burn's capture on the cubecl backends).
//!
//! Why: on a GPU our per-call work — a decode step, a vision encode — is hundreds of kernel
//! launches, and each launch is a round trip through cubecl's device thread; measured on an
//! H100 that host path, not the device, sets the time (see `docs/performance.md`). burn 0.22
//! can record a stream's launches into a graph and replay them as one dispatch, against the
//! buffers they were recorded with. So a recorded computation reads everything that varies
//! from fixed input buffers, refreshed **in place** before each replay ([`write_ints`],
//! [`write_floats`]: a small copy kernel into the existing buffer), and writes to fixed output
//! buffers.
//!
//! [`record`] warms the computation up three times (kernel compilation, autotuning and every
//! allocation must happen before the capture window, where allocating is refused), records it
//! once, replays it once (a capture records launches without running them) and checks that the
//! replay gives what the last ordinary run gave. Everything here fails soft: `None` / `false`
//! and the caller runs the ordinary path.
//!
//! Only CUDA devices record ([`supported`]); `DAM_CUDA_GRAPH=0` turns recording off.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, BackendGraph, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::{Device, Int, Tensor};
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl::calculate_cube_count_elemwise;
use burn_cubecl::cubecl::prelude::CubeDim;
use burn_cubecl::tensor::CubeTensor;

/// A recorded computation, replayed with [`replay`].
pub type Recording = BackendGraph<Dispatch>;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether computations may be recorded: on unless [`set_enabled`]`(false)` or
/// `DAM_CUDA_GRAPH=0`.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed) && !std::env::var("DAM_CUDA_GRAPH").is_ok_and(|v| v == "0")
}

/// Turns recording on or off for the process (benchmarks compare both).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether `device` records: CUDA, where a recording replays as one hardware graph (the
/// runtime it has been validated on; wgpu would re-encode the recorded dispatches in software).
pub fn supported(device: &Device) -> bool {
    crate::switch::cuda_device(device)
}

/// Runs `run` three times, then records it; returns the recording and the recorded run's
/// output, already computed by one replay. `None` when the backend refuses (the stream is left
/// out of capture mode) or when the replay disagrees with the last ordinary run.
///
/// The self-check: the last warm-up's output is read back (`read`, before the capture window
/// opens), and so is the replay's; `same` must accept the pair — the same inputs through the
/// same kernels, so a recording that replays anything else (a launch the capture missed, a
/// buffer it did not pin) is refused instead of handed out.
pub fn record<T, H>(
    device: &Device,
    mut run: impl FnMut() -> T,
    read: impl Fn(&T) -> Option<H>,
    same: impl Fn(&H, &H) -> bool,
) -> Option<(Recording, T)> {
    if !enabled() || !supported(device) {
        return None;
    }
    let dispatch = device.as_dispatch();
    Dispatch::graph_prepare(dispatch).ok()?;
    // From here a failure must end the capture (prepared or open).
    let abandon = || {
        let _ = Dispatch::graph_stop_capture(dispatch);
    };
    let mut expected = None;
    for i in 0..3 {
        let out = run();
        // Hold the output across the sync so a lazy backend really runs it.
        let synced = Dispatch::sync(dispatch);
        if i == 2 {
            expected = read(&out);
        }
        drop(out);
        if synced.is_err() {
            abandon();
            return None;
        }
    }
    let Some(expected) = expected else {
        abandon();
        return None;
    };
    if Dispatch::graph_start_capture(dispatch).is_err() {
        abandon();
        return None;
    }
    let output = run();
    let graph = Dispatch::graph_stop_capture(dispatch).ok()?;
    // Safety: the caller holds every buffer `run` touched (that is this module's contract).
    if !unsafe { replay(device, &graph) } {
        return None;
    }
    let replayed = read(&output)?;
    same(&expected, &replayed).then_some((graph, output))
}

/// Replays `recording`; `false` if the backend refused (nothing ran).
///
/// # Safety
///
/// Every buffer the recorded computation read or wrote must still be alive and not in use
/// elsewhere, and the input refreshes must have been queued on this thread (same stream).
pub unsafe fn replay(device: &Device, recording: &Recording) -> bool {
    unsafe { Dispatch::graph_replay(device.as_dispatch(), recording) }.is_ok()
}

/// In-place buffer writes as a burn backend extension.
#[backend_extension(Cube, Fusion: cfg(feature = "fusion"))]
pub trait BufferOps: Backend {
    /// Copies `src` (same shape and int type) into `dst`'s buffer **in place**, returns `dst`.
    /// (`dst` by value — a clone, so the buffer stays shared: burn 0.22's generated glue does
    /// not compile for a borrowed int tensor.)
    #[fusion(dtype = dst, shape = dst)]
    fn write_ints(dst: IntTensor<Self>, src: IntTensor<Self>) -> IntTensor<Self>;

    /// The same for floats (`src` is cast to `dst`'s float type first).
    #[fusion(dtype = dst, shape = dst)]
    fn write_floats(dst: FloatTensor<Self>, src: FloatTensor<Self>) -> FloatTensor<Self>;
}

mod kernel {
    use burn_cubecl::cubecl;
    use burn_cubecl::cubecl::prelude::*;

    /// `dst[c] = src[c]` for every coordinate `c` of `src` (rank `rank`, shapes equal),
    /// through both tensors' strides (cubecl's allocator may pad rows).
    #[cube(launch_unchecked)]
    pub fn copy_kernel<T: Numeric>(
        src: &Tensor<T>,
        dst: &mut Tensor<T>,
        n: u32,
        #[comptime] rank: usize,
        #[define(T)] _dtype: ElemType,
    ) {
        let pos = ABSOLUTE_POS;
        if pos >= n as usize {
            terminate!();
        }
        let mut rem = pos;
        let mut from = 0;
        let mut to = 0;
        #[unroll]
        for i in 0..rank {
            let dim = rank - 1 - i;
            let size = src.shape(dim);
            let c = rem % size;
            rem /= size;
            from += c * src.stride(dim);
            to += c * dst.stride(dim);
        }
        dst[to] = src[from];
    }
}

fn copy_into(dst: CubeTensor, src: CubeTensor) -> CubeTensor {
    let n = src.shape().num_elements();
    let rank = src.shape().num_dims();
    let client = dst.client.clone();
    let cube_dim = CubeDim::new(&client, n);
    let cube_count = calculate_cube_count_elemwise(&client, n, cube_dim);
    debug_assert_eq!(src.shape(), dst.shape());
    unsafe {
        kernel::copy_kernel::launch_unchecked(
            &client,
            cube_count,
            cube_dim,
            src.into_tensor_arg(),
            dst.clone().into_tensor_arg(),
            n as u32,
            rank,
            burn::backend::cubecl::dtype_to_storage_type(dst.dtype),
        )
    };
    dst
}

impl BufferOps for CubeBackend {
    fn write_ints(dst: CubeTensor, src: CubeTensor) -> CubeTensor {
        // Both come from `Tensor::from_data` on the same device, so they share the int type.
        debug_assert_eq!(src.dtype, dst.dtype);
        copy_into(dst, src)
    }

    fn write_floats(dst: CubeTensor, src: CubeTensor) -> CubeTensor {
        use burn::backend::ops::FloatTensorOps;
        let src = if src.dtype != dst.dtype {
            CubeBackend::float_cast(src, dst.dtype.into())
        } else {
            src
        };
        copy_into(dst, src)
    }
}

/// [`BufferOps::write_ints`] on tensors. Keep the result until the device is next drained (a
/// sync, a read or a replay): a lazy backend skips an op whose result is dropped unread.
#[must_use = "a lazy backend skips the write when its result is dropped before a sync"]
pub fn write_ints<const D: usize>(dst: &Tensor<D, Int>, src: Tensor<D, Int>) -> Tensor<D, Int> {
    Tensor::from_dispatch(<Dispatch as BufferOps>::write_ints(
        dst.clone().into_dispatch(),
        src.into_dispatch(),
    ))
}

/// [`BufferOps::write_floats`] on tensors (see [`write_ints`]).
#[must_use = "a lazy backend skips the write when its result is dropped before a sync"]
pub fn write_floats<const D: usize>(dst: &Tensor<D>, src: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as BufferOps>::write_floats(
        dst.clone().into_dispatch(),
        src.into_dispatch(),
    ))
}
