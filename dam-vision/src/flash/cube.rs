//! [`VisionFlashOps`] for the cubecl backend: sizes and launches [`super::kernel`].

use burn::backend::TensorMetadata;
use burn::backend::ops::attention::attention_fallback;
use burn::tensor::DType;
use burn::tensor::ops::AttentionModuleOptions;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl::ir::{ElemType, FloatKind};
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

use dam_core::row_kernels::dense_like;

use super::{VisionFlashOps, kernel, online};

impl VisionFlashOps for CubeBackend {
    fn flash_attention(
        q: CubeTensor,
        k: CubeTensor,
        v: CubeTensor,
        scale: f32,
        tensor_cores: bool,
        planes: usize,
        online: bool,
        ablate: u32,
    ) -> CubeTensor {
        let dtype = q.dtype;
        let [batch, heads, seq_q, head_dim] = q.shape().dims::<4>();
        let seq_kv = k.shape().dims::<4>()[2];
        let out = dense_like(&q);
        if batch * heads * seq_q * head_dim == 0 || seq_kv == 0 {
            return out;
        }
        let client = q.client.clone();
        let hardware = &client.properties().hardware;
        let (plane, max_shared) = (hardware.plane_size_max.max(1), hardware.max_shared_memory_size);
        let tensor_cores = tensor_cores && plane == 32 && has_tensor_cores(&client, dtype);
        let most = if planes == 0 { kernel::MAX_PLANES } else { planes };
        // The one-pass form's lanes split rows and columns evenly: planes a power of two.
        let online = online && online::takes_plane(plane as usize);
        let fits = kernel::planes_for(most, max_shared, head_dim, dtype.size(), tensor_cores, online);
        let takes = tensor_cores || online || kernel::two_passes_plain_takes(head_dim, plane as usize);
        let (Some(planes), true) = (fits, takes) else {
            // Not even one plane's tiles fit this device's shared memory (f32 at head_dim 72
            // takes 19 KiB; every native runtime has ≥ 32), or the two-pass plain variant
            // would hold more accumulators a lane than it was seen right with (narrow planes,
            // `kernel::two_passes_plain_takes`): burn's materialised attention, with the scale
            // given so that no flash kernel is tried.
            let options = AttentionModuleOptions {
                scale: Some(scale as f64),
                ..Default::default()
            };
            return attention_fallback::<CubeBackend>(q, k, v, None, None, options);
        };
        let block_q = kernel::ROWS * planes;
        unsafe {
            kernel::flash_attention_kernel::launch_unchecked(
                &client,
                CubeCount::Static(seq_q.div_ceil(block_q) as u32, (batch * heads) as u32, 1),
                CubeDim::new_2d(plane, planes as u32),
                q.into_tensor_arg(),
                k.into_tensor_arg(),
                v.into_tensor_arg(),
                out.clone().into_tensor_arg(),
                heads as u32,
                seq_q as u32,
                seq_kv as u32,
                scale,
                head_dim,
                plane as usize,
                planes,
                tensor_cores,
                online,
                // (Only the one-pass form reads it: a distinct kernel per mask there alone.)
                if online { ablate } else { 0 },
                burn::backend::cubecl::dtype_to_storage_type(dtype),
            )
        };
        out
    }

    fn flash_attention_hand(q: CubeTensor, k: CubeTensor, v: CubeTensor, scale: f32) -> CubeTensor {
        match super::hand::flash_hand(q.clone(), k.clone(), v.clone(), scale) {
            Ok(out) => out,
            Err(why) => {
                tracing::warn!("the hand-written flash attention refused an attention ({why}); burn's ran");
                let options = AttentionModuleOptions {
                    scale: Some(scale as f64),
                    ..Default::default()
                };
                attention_fallback::<CubeBackend>(q, k, v, None, None, options)
            }
        }
    }
}

/// Whether the device has 16 × 16 × 16 tensor-core fragments of `dtype` (bf16 or f16) with
/// f32 accumulators.
fn has_tensor_cores(client: &burn_cubecl::cubecl::client::Client, dtype: DType) -> bool {
    let elem = match dtype {
        DType::BF16 => ElemType::Float(FloatKind::BF16),
        DType::F16 => ElemType::Float(FloatKind::F16),
        _ => return false,
    };
    let f32 = ElemType::Float(FloatKind::F32);
    client
        .properties()
        .features
        .matmul
        .cmma
        .iter()
        .any(|c| c.a_type == elem && c.b_type == elem && c.cd_type == f32 && (c.m, c.n, c.k) == (16, 16, 16))
}
