//! [`MatmulOps`] for the cubecl backend: burn-cubecl's autotuned matmul, or one of cubek's
//! routines launched directly (`cubek::matmul::launch::launch_ref`, the call burn-cubecl's
//! own matmul makes once its tuner has picked a routine).

use std::sync::atomic::{AtomicUsize, Ordering};

use burn::backend::TensorMetadata;
use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::DType;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::matmul::{MatmulStrategy, init_matmul_output, matmul};
use burn_cubecl::tensor::CubeTensor;
use cubek::matmul::definition::{MatmulElems, MatmulGlobalElems};
use cubek::matmul::multi_level::Strategy;
use cubek::matmul::multi_level::components::tile::TileMatmulKind;
use cubek::matmul::multi_level::routines::TileSizeSelection;
use cubek::matmul::multi_level::routines::batch::double_buffering::DoubleBufferingArgs;
use cubek::matmul::multi_level::routines::batch::double_unit::DoubleUnitSelectionArgs;
use cubek::matmul::multi_level::routines::batch::ordered_double_buffering::OrderedSelectionArgs;
use cubek::matmul::multi_level::routines::batch::simple::SimpleArgs;
use cubek::matmul::multi_level::routines::batch::simple_unit::SimpleUnitSelectionArgs;
use cubek::matmul::routine::BlueprintStrategy;
use cubek::std::InputBinding;

use super::hand::{HAND_VARIANTS, pick};
use super::hand_launch::gemm_hand;
use super::{MatmulKernel, MatmulOps, ROUTINES};

/// `ROUTINES[i]` as cubek's strategy, with the selection arguments burn-cubecl 0.22.1's matmul
/// tuner gives the same routine (`kernel/matmul/tune/base.rs`).
fn routine(i: usize) -> Option<Strategy> {
    use TileMatmulKind::{Cmma, Mma};
    // A function, not a closure: the simple and the TMA routines are different algorithm
    // types with the same selection arguments.
    fn simple<A>(multi_rows: bool, tile_matmul: TileMatmulKind) -> BlueprintStrategy<(), A>
    where
        A: cubek::matmul::routine::Routine<(), Strategy = SimpleArgs>,
    {
        BlueprintStrategy::Inferred(SimpleArgs {
            multi_rows,
            tile_matmul,
        })
    }
    let ordered = |row_count, tile_matmul| {
        BlueprintStrategy::Inferred(OrderedSelectionArgs {
            partition_k: Some(2),
            row_count: Some(row_count),
            rows_per_plane: Some(2),
            tile_matmul,
        })
    };
    let double = |specialized, tile_matmul| {
        BlueprintStrategy::Inferred(DoubleBufferingArgs {
            specialized,
            tile_matmul,
        })
    };
    let tile_size = TileSizeSelection::MaxTileSize;
    Some(match *ROUTINES.get(i)? {
        "simple-cmma" => Strategy::SimpleCyclicCmma(simple(false, Cmma)),
        "simple-mma" => Strategy::SimpleCyclicMma(simple(false, Mma)),
        "simple-multirow-cmma" => Strategy::SimpleCyclicCmma(simple(true, Cmma)),
        "simple-multirow-mma" => Strategy::SimpleCyclicMma(simple(true, Mma)),
        "ordered-double-cmma" => Strategy::OrderedDoubleCmma(ordered(4, Cmma)),
        "ordered-double-mma" => Strategy::OrderedDoubleMma(ordered(4, Mma)),
        "ordered-double8-cmma" => Strategy::OrderedDoubleCmma(ordered(8, Cmma)),
        "ordered-double8-mma" => Strategy::OrderedDoubleMma(ordered(8, Mma)),
        "double-cmma" => Strategy::DoubleCyclicCmma(double(false, Cmma)),
        "double-mma" => Strategy::DoubleCyclicMma(double(false, Mma)),
        "double-specialized-cmma" => Strategy::DoubleCyclicCmma(double(true, Cmma)),
        "double-specialized-mma" => Strategy::DoubleCyclicMma(double(true, Mma)),
        "specialized-cmma" => Strategy::SpecializedCyclicCmma(BlueprintStrategy::Inferred(().into())),
        "specialized-mma" => Strategy::SpecializedCyclicMma(BlueprintStrategy::Inferred(().into())),
        "tma-cmma" => Strategy::SimpleTmaCmma(simple(false, Cmma)),
        "tma-mma" => Strategy::SimpleTmaMma(simple(false, Mma)),
        "tma-multirow-cmma" => Strategy::SimpleTmaCmma(simple(true, Cmma)),
        "tma-multirow-mma" => Strategy::SimpleTmaMma(simple(true, Mma)),
        "specialized-tma-cmma" => Strategy::SpecializedTmaCmma(BlueprintStrategy::Inferred(().into())),
        "specialized-tma-mma" => Strategy::SpecializedTmaMma(BlueprintStrategy::Inferred(().into())),
        "simple-unit" => Strategy::SimpleUnit(BlueprintStrategy::Inferred(SimpleUnitSelectionArgs { tile_size })),
        "double-unit" => Strategy::DoubleUnit(BlueprintStrategy::Inferred(DoubleUnitSelectionArgs { tile_size })),
        _ => return None,
    })
}

/// burn-cubecl's autotuned matmul (its tuner's choice for this shape and layout).
fn autotuned(lhs: CubeTensor, rhs: CubeTensor, dtype: DType) -> CubeTensor {
    let out = init_matmul_output(&lhs, &rhs, dtype);
    // The autotuned path only fails for problems no kernel accepts (not ours: float inputs
    // of one dtype); keep the output so the caller's shapes stay right either way.
    if let Err(err) = matmul(lhs, rhs, Some(out.clone()), MatmulStrategy::default(), dtype) {
        tracing::error!("burn-cubecl's matmul refused a product: {err:?}");
    }
    out
}

/// Products a fixed routine refused in this process (the first one is reported).
static REFUSED: AtomicUsize = AtomicUsize::new(0);

/// Counts a product kernel `k` refused, for `why` (reported the first time).
pub(super) fn count_refusal(k: MatmulKernel, lhs: &[usize], rhs: &[usize], why: &str) {
    if REFUSED.fetch_add(1, Ordering::Relaxed) == 0 {
        tracing::warn!(
            "matmul kernel `{}` cannot run a {lhs:?} · {rhs:?} product here ({why}); such \
             products use burn's",
            k.name()
        );
    }
}

/// The variant `MatmulKernel::Hand(i)` means for an `[m, k] · [k, n]` product on `tensor`'s
/// device: `HAND_VARIANTS[i - 1]`, or for `hand` (0) the one [`pick`] models fastest — in
/// either case only among the variants that passed the device's probe (`super::hand_available`;
/// `None` before it has run, and for a variant that failed it), so a kernel that did not
/// compile or agree never runs a product.
fn hand_variant(i: u8, m: usize, n: usize, tensor: &CubeTensor) -> Option<usize> {
    let working = if super::HAND_PROBING.load(Ordering::Relaxed) {
        (1 << HAND_VARIANTS.len()) - 1
    } else {
        *super::HAND_WORKING.get()?
    };
    if i > 0 {
        let v = i as usize - 1;
        return (working & (1 << v) != 0).then_some(v);
    }
    let sms = tensor
        .client
        .properties()
        .hardware
        .num_streaming_multiprocessors
        .unwrap_or(132) as usize;
    pick(m, n, sms, working)
}

/// `lhs · rhs` through the hand-written kernel `Hand(i)`, or `None` where it does not run.
fn hand_product(
    lhs: &CubeTensor,
    rhs: &CubeTensor,
    bias: Option<&CubeTensor>,
    gelu: bool,
    i: u8,
) -> Option<CubeTensor> {
    let (ls, rs) = (lhs.shape(), rhs.shape());
    let refused = |why: &str| count_refusal(MatmulKernel::Hand(i), ls.as_slice(), rs.as_slice(), why);
    if ls.num_dims() != 2 || rs.num_dims() != 2 {
        refused("not two matrices");
        return None;
    }
    let Some(variant) = hand_variant(i, ls[0], rs[1], lhs) else {
        refused("no variant that passed the device's check");
        return None;
    };
    gemm_hand(lhs.clone(), rhs.clone(), bias.cloned(), gelu, variant)
        .map_err(|why| refused(&why))
        .ok()
}

/// `lhs · rhs` with `ROUTINES[code - 1]` (or the autotuned matmul for code 0, and for a
/// product the routine refuses), or the hand-written kernel a [`MatmulKernel::Hand`] code
/// names. Public for the LLM's fused layers, which call it below burn's op graph.
pub fn matmul_cube(lhs: CubeTensor, rhs: CubeTensor, code: u32) -> CubeTensor {
    let dtype = lhs.dtype;
    if let MatmulKernel::Hand(i) = MatmulKernel::from_code(code)
        && let Some(out) = hand_product(&lhs, &rhs, None, false, i)
    {
        return out;
    }
    // Both operands in the activation dtype (weights may be stored in another float type).
    let rhs = if rhs.dtype != dtype {
        <CubeBackend as burn::backend::ops::FloatTensorOps<CubeBackend>>::float_cast(rhs, dtype.into())
    } else {
        rhs
    };
    let Some(strategy) = code.checked_sub(1).and_then(|i| routine(i as usize)) else {
        return autotuned(lhs, rhs, dtype);
    };
    let out = init_matmul_output(&lhs, &rhs, dtype);
    let storage = dtype_to_storage_type(dtype);
    let mut dtypes = MatmulElems::from_globals(&MatmulGlobalElems {
        lhs: storage,
        rhs: storage,
        out: storage,
    });
    let client = out.client.clone();
    let launched = cubek::matmul::launch::launch_ref(
        &strategy.into(),
        &client,
        InputBinding::new(lhs.clone().binding(), storage),
        InputBinding::new(rhs.clone().binding(), storage),
        out.clone().binding(),
        &mut dtypes,
    );
    match launched {
        Ok(()) => out,
        Err(err) => {
            if REFUSED.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    "matmul routine `{}` refused a {:?} · {:?} product ({err:?}); such products \
                     use burn-cubecl's autotuned matmul",
                    ROUTINES[code as usize - 1],
                    lhs.shape(),
                    rhs.shape(),
                );
            }
            autotuned(lhs, rhs, dtype)
        }
    }
}

/// How many products fixed routines have refused in this process (each then ran
/// burn-cubecl's autotuned matmul; `bench --probe-matmul` marks those rows).
pub fn refusals() -> usize {
    REFUSED.load(Ordering::Relaxed)
}

impl MatmulOps for CubeBackend {
    fn matmul_with(lhs: CubeTensor, rhs: CubeTensor, code: u32) -> CubeTensor {
        matmul_cube(lhs, rhs, code)
    }

    fn linear_with(x: CubeTensor, w: CubeTensor, bias: CubeTensor, code: u32, gelu: bool) -> CubeTensor {
        if let MatmulKernel::Hand(i) = MatmulKernel::from_code(code)
            && let Some(out) = hand_product(&x, &w, Some(&bias), gelu, i)
        {
            return out;
        }
        // Burn's ops: the product, + bias, then GELU of the rounded sum computed in f32.
        use burn::backend::ops::FloatTensorOps;
        type B = CubeBackend;
        let dtype = x.dtype;
        let y = matmul_cube(x, w, if code > ROUTINES.len() as u32 { 0 } else { code });
        let n = bias.shape()[0];
        let bias = if bias.dtype != dtype {
            B::float_cast(bias, dtype.into())
        } else {
            bias
        };
        let y = B::float_add(y, B::float_reshape(bias, burn::tensor::Shape::new([1, n])));
        if !gelu {
            return y;
        }
        // gelu_pytorch_tanh: 0.5 v (1 + tanh(√(2/π) (v + 0.044715 v³))).
        let v = B::float_cast(y, burn::tensor::FloatDType::F32);
        let cube = B::float_mul(B::float_mul(v.clone(), v.clone()), v.clone());
        let inner = B::float_mul_scalar(
            B::float_add(v.clone(), B::float_mul_scalar(cube, 0.044715.into())),
            0.797_884_6.into(),
        );
        let g = B::float_mul(
            B::float_mul_scalar(v, 0.5.into()),
            B::float_add_scalar(B::float_tanh(inner), 1.0.into()),
        );
        B::float_cast(g, dtype.into())
    }
}
