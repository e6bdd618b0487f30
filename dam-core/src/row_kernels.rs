//! What the one-row-per-cube kernels share (LayerNorm in [`crate::layer_norm_kernel`], the
//! vision attention's softmax in `dam_vision::softmax`): a grid that holds any number of rows,
//! one plane per cube, and a dense output. Behind the `cube` feature.

use burn::backend::TensorMetadata;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

/// The most cubes along one grid axis every runtime allows (wgpu's limit; a batch of views has
/// more score rows than that).
pub const MAX_CUBES_PER_AXIS: usize = 65_535;

/// The grid for `rows` rows, one cube each: `[min(rows, 65 535), ⌈rows / 65 535⌉, 1]`; a cube
/// finds its row with [`grid_row()`] (the last column of cubes may run past `rows`).
pub fn row_grid(rows: usize) -> CubeCount {
    CubeCount::Static(
        rows.min(MAX_CUBES_PER_AXIS) as u32,
        rows.div_ceil(MAX_CUBES_PER_AXIS) as u32,
        1,
    )
}

/// One plane per cube, so a kernel's plane reductions are its row's.
pub fn plane_cube_dim(client: &cubecl::client::Client) -> CubeDim {
    CubeDim::new_1d(client.properties().hardware.plane_size_max.max(1))
}

/// The most values of its row one lane keeps in registers ([`cached_per_lane`]).
pub const MAX_CACHED_PER_LANE: usize = 64;

/// Set by [`set_cached`], else `DAM_ROW_KERNELS=cached|reread`, else off: whether the row
/// kernels keep a row in registers ([`lane_cache`]). **Off by default** until a GPU run
/// measures it (written 2026-11-27 without a GPU; correct on lavapipe).
static CACHED: crate::switch::Switch<bool> = crate::switch::Switch::new("DAM_ROW_KERNELS", |v| match v {
    "cached" => Some(true),
    "reread" | "" => Some(false),
    _ => None,
});

/// Switches the row kernels (LayerNorm, the vision softmax) to keeping their row in registers
/// where it fits (`true`) or to reading it once per pass (`false`) for this process.
pub fn set_cached(on: bool) {
    CACHED.set(on);
}

/// Back to `DAM_ROW_KERNELS` (or off) after [`set_cached`].
pub fn reset_cached() {
    CACHED.reset();
}

/// Whether the row kernels keep rows in registers now (see [`set_cached`]).
pub fn cached() -> bool {
    CACHED.get()
}

/// The values a lane keeps for an `n`-wide row on `plane` lanes when switched on
/// ([`set_cached`]) and the row fits ([`cached_per_lane`]); `None`: read the row per pass.
pub fn lane_cache(n: usize, plane: usize) -> Option<usize> {
    if cached() { cached_per_lane(n, plane) } else { None }
}

/// How many values of an `n`-wide row each of `plane` lanes holds when a kernel keeps its
/// row in registers — `⌈n / plane⌉` rounded up to a multiple of 8, so a few kernel variants
/// cover every width — or `None` past [`MAX_CACHED_PER_LANE`] (the kernel then re-reads the
/// row on each pass).
///
/// Why: with one plane per row, a lane that walks its row with a runtime-bounded loop waits on
/// each load before issuing the next, so a pass costs one memory latency per value it reads;
/// on an H100 that is what the three-pass kernels' times add up to (a LayerNorm of
/// `[729, 1152]`: 3 × 36 loads in a row per lane ≈ 32 µs measured; the softmax of 16 × 729
/// rows of 729: ≈ 49 µs, docs/performance.md, 2026-11-27). Loaded first in an unrolled loop,
/// a lane's values are in flight together.
pub fn cached_per_lane(n: usize, plane: usize) -> Option<usize> {
    let per_lane = n.div_ceil(plane.max(1)).next_multiple_of(8);
    (per_lane <= MAX_CACHED_PER_LANE).then_some(per_lane)
}

pub use grid::grid_row;

/// cubecl's `#[cube]` puts a public `grid_row` module (the expansion) beside the function and
/// gives it no docs; in here the lint is silenced for that alone.
#[allow(missing_docs)]
mod grid {
    use super::*;

    /// The row a cube of [`row_grid`] handles.
    #[cube]
    pub fn grid_row() -> usize {
        (CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) as usize
    }
}

/// A new dense row-major tensor with `like`'s shape and dtype (what a following matmul reads
/// fastest; cubecl's allocator would otherwise be free to pad rows).
pub fn dense_like(like: &CubeTensor) -> CubeTensor {
    let shape = like.shape();
    let handle = like.client.empty(shape.num_elements() * like.dtype.size());
    CubeTensor::new_contiguous(like.client.clone(), like.device.clone(), shape, handle, like.dtype)
}
