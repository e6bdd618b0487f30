//! [`LayerNormOps`] for the cubecl backend: sizes and launches [`super::kernel`].

use burn::backend::TensorMetadata;
use burn::backend::ops::FloatTensorOps;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

use super::{LayerNormOps, kernel};

/// The most cubes along one grid axis every runtime allows (wgpu's limit).
const MAX_CUBES_PER_AXIS: usize = 65_535;

impl LayerNormOps for CubeBackend {
    fn layer_norm(x: CubeTensor, weight: CubeTensor, bias: CubeTensor, eps: f32) -> CubeTensor {
        let dtype = x.dtype;
        // The affine parameters may be stored in another float type than the activations.
        let cast = |t: CubeTensor| {
            if t.dtype != dtype {
                CubeBackend::float_cast(t, dtype.into())
            } else {
                t
            }
        };
        let (weight, bias) = (cast(weight), cast(bias));
        let shape = x.shape();
        let [rows, d] = shape.dims::<2>();
        let client = x.client.clone();
        // A dense row-major output (what the following matmul reads fastest).
        let handle = client.empty(shape.num_elements() * dtype.size());
        let out = CubeTensor::new_contiguous(client.clone(), x.device.clone(), shape, handle, dtype);
        if rows == 0 || d == 0 {
            return out;
        }
        // One plane per cube, so the kernel's plane reductions are the row's.
        let plane = client.properties().hardware.plane_size_max.max(1);
        let (cx, cy) = (rows.min(MAX_CUBES_PER_AXIS), rows.div_ceil(MAX_CUBES_PER_AXIS));
        unsafe {
            kernel::layer_norm_kernel::launch_unchecked(
                &client,
                CubeCount::Static(cx as u32, cy as u32, 1),
                CubeDim::new_1d(plane),
                x.into_tensor_arg(),
                weight.into_tensor_arg(),
                bias.into_tensor_arg(),
                out.clone().into_tensor_arg(),
                rows as u32,
                d as u32,
                eps,
                burn::backend::cubecl::dtype_to_storage_type(dtype),
            )
        };
        out
    }
}
