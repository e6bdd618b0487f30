//! [`LayerNormOps`] for the cubecl backend: sizes and launches [`super::kernel`].

use burn::backend::TensorMetadata;
use burn::backend::ops::FloatTensorOps;
use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;

use super::{LayerNormOps, kernel};
use crate::row_kernels::{dense_like, lane_cache, plane_cube_dim, row_grid};

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
        let [rows, d] = x.shape().dims::<2>();
        let out = dense_like(&x);
        if rows == 0 || d == 0 {
            return out;
        }
        let client = x.client.clone();
        let cube_dim = plane_cube_dim(&client);
        // The row in registers where switched on (`row_kernels::set_cached`) and a lane's share
        // fits (SigLIP's 1152 on a 32-lane plane: 40 values a lane), else read once per pass
        // (`per_lane` 0): one kernel, `per_lane` comptime.
        unsafe {
            kernel::layer_norm_kernel::launch_unchecked(
                &client,
                row_grid(rows),
                cube_dim,
                x.into_tensor_arg(),
                weight.into_tensor_arg(),
                bias.into_tensor_arg(),
                out.clone().into_tensor_arg(),
                rows as u32,
                d as u32,
                eps,
                lane_cache(d, cube_dim.x as usize).unwrap_or(0),
                burn::backend::cubecl::dtype_to_storage_type(dtype),
            )
        };
        out
    }
}
