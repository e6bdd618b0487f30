//! [`VisionSoftmaxOps`] for the cubecl backend: sizes and launches [`super::kernel`].

use burn::backend::TensorMetadata;
use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;

use dam_core::row_kernels::{dense_like, plane_cube_dim, row_grid};

use super::{VisionSoftmaxOps, kernel};

impl VisionSoftmaxOps for CubeBackend {
    fn scaled_softmax(x: CubeTensor, scale: f32) -> CubeTensor {
        let dtype = x.dtype;
        let [rows, n] = x.shape().dims::<2>();
        let out = dense_like(&x);
        if rows == 0 || n == 0 {
            return out;
        }
        let client = x.client.clone();
        unsafe {
            kernel::scaled_softmax_kernel::launch_unchecked(
                &client,
                row_grid(rows),
                plane_cube_dim(&client),
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
