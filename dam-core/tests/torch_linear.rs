//! `TorchLinear` and the fused loader: PyTorch's `[out, in]` layout, row-concatenated fusion,
//! `y = x·Wᵀ + b`, and shape errors naming the tensor.

use burn::tensor::{Device, Tensor, TensorData};
use dam_core::testing::{RawTensor, scratch_dir, write_raw};
use dam_core::weights::SafetensorsWeights;
use dam_core::{Loader, WeightError, Weights};

fn raw(shape: &[usize], values: &[f32]) -> RawTensor {
    RawTensor {
        dtype: safetensors::Dtype::F32,
        shape: shape.to_vec(),
        data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn weights(tag: &str) -> Weights {
    let dir = scratch_dir(tag);
    let path = dir.join("model.safetensors");
    let tensors = [
        ("a.weight".to_string(), raw(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
        ("a.bias".to_string(), raw(&[2], &[0.5, -0.5])),
        ("b.weight".to_string(), raw(&[1, 3], &[-1.0, 0.0, 2.0])),
        ("b.bias".to_string(), raw(&[1], &[10.0])),
    ];
    write_raw(&path, tensors.iter().map(|(n, t)| (n, t)));
    Weights::Safetensors(SafetensorsWeights::open_file(&path).expect("weights"))
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn fused_rows_and_forward() {
    let device = Device::flex();
    let w = weights("torch-linear-forward");
    let loader = Loader::new(&w, &device);
    let fused = loader.fused_torch_linear(&["a", "b"], 3, &[2, 1], true).unwrap();
    assert_eq!((fused.d_in(), fused.d_out()), (3, 3));
    // The stored matrix is [out, in]: a row per output, a's then b's.
    let w_out_in = fused.weight.val().transpose();
    assert_eq!(values(w_out_in), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -1.0, 0.0, 2.0]);

    let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, -1.0, 2.0, 1.0, 0.5], [2, 3]), &device);
    // Row 0: [1-3+0.5, 4-6-0.5, -1-2+10]; row 1: [2+2+1.5+0.5, 8+5+3-0.5, -2+0+1+10].
    assert_eq!(values(fused.forward(x.clone())), [-1.5, -2.5, 7.0, 6.0, 15.5, 9.0]);
    let nd = fused.forward_nd(x.reshape([1, 2, 3]));
    assert_eq!(nd.dims(), [1, 2, 3]);
    assert_eq!(values(nd), [-1.5, -2.5, 7.0, 6.0, 15.5, 9.0]);

    let single = loader.torch_linear("b", 3, 1, false).unwrap();
    assert!(single.bias.is_none());
    assert_eq!((single.d_in(), single.d_out()), (3, 1));
}

#[test]
fn wrong_part_shape_names_the_tensor() {
    let device = Device::flex();
    let w = weights("torch-linear-errors");
    let loader = Loader::new(&w, &device);
    match loader.fused_torch_linear(&["a", "b"], 3, &[3, 1], false) {
        Err(WeightError::Shape { name, expected, found }) => {
            assert_eq!(name, "a.weight");
            assert_eq!((expected, found), (vec![3, 3], vec![2, 3]));
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    match loader.torch_linear("c", 3, 1, false) {
        Err(WeightError::Missing { name, .. }) => assert_eq!(name, "c.weight"),
        other => panic!("expected a missing-tensor error, got {other:?}"),
    }
}

#[test]
fn random_weights_have_the_fused_shape() {
    let device = Device::flex();
    let loader = Loader::new(&Weights::Random, &device);
    let l = loader
        .fused_torch_linear(&["q", "k", "v"], 8, &[4, 2, 2], true)
        .unwrap();
    assert_eq!((l.d_in(), l.d_out()), (8, 8));
    assert_eq!(values(l.bias.unwrap().val()), vec![0.0; 8]);
}
