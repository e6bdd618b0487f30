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
