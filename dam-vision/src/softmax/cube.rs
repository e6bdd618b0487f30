//! [`VisionSoftmaxOps`] for the cubecl backend: sizes and launches [`super::kernel`].

use burn::backend::TensorMetadata;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

use super::{VisionSoftmaxOps, kernel};

/// The most cubes along one grid axis every runtime allows (wgpu's limit).
const MAX_CUBES_PER_AXIS: usize = 65_535;

impl VisionSoftmaxOps for CubeBackend {
    fn scaled_softmax(x: CubeTensor, scale: f32) -> CubeTensor {
        let dtype = x.dtype;
        let shape = x.shape();
        let [rows, n] = shape.dims::<2>();
        let client = x.client.clone();
        // A dense row-major output (what the `·v` matmul reads fastest).
        let handle = client.empty(shape.num_elements() * dtype.size());
        let out = CubeTensor::new_contiguous(client.clone(), x.device.clone(), shape, handle, dtype);
        if rows == 0 || n == 0 {
            return out;
        }
        // One plane per cube, so the kernel's plane reductions are the row's.
        let plane = client.properties().hardware.plane_size_max.max(1);
        let (cx, cy) = (rows.min(MAX_CUBES_PER_AXIS), rows.div_ceil(MAX_CUBES_PER_AXIS));
        unsafe {
            kernel::scaled_softmax_kernel::launch_unchecked(
                &client,
                CubeCount::Static(cx as u32, cy as u32, 1),
                CubeDim::new_1d(plane),
                x.into_tensor_arg(),
                out.clone().into_tensor_arg(),
                rows as u32,
                n as u32,
                scale,
                burn::backend::cubecl::dtype_to_storage_type(dtype),
            )
        };
        out
    }
}
