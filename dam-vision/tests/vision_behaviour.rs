//! Behaviour beyond the fixtures: masked cross-attention, batching, random weights.

use burn::tensor::{Device, Tensor, TensorData};
use dam_core::CheckpointConfig;
use dam_core::testing::{Reference, assert_close, dam_tiny_checkpoint};
use dam_vision::{VisionError, VisionModel};

fn pixels(case: &str, device: &Device) -> Tensor<4> {
    let (v, shape) = Reference::open(case).f32("pixel_values");
    Tensor::from_data(TensorData::new(v, shape), device)
}

#[test]
fn masked_cross_attention_without_key_is_an_error_not_nan() {
    let device = Device::flex();
    let config = CheckpointConfig::load(&dam_tiny_checkpoint()).unwrap();
    let mut model = VisionModel::load(&dam_tiny_checkpoint(), &config, &device).unwrap();
    model.masked_cross_attn = true;

    // A real mask leaves keys to attend to: finite output that differs from the unmasked one.
    let x = pixels("center", &device);
    let masked = model
        .encode(x.clone(), &[true])
        .unwrap()
        .try_into_vec_as::<f32>()
        .unwrap();
    assert!(masked.iter().all(|v| v.is_finite()));
    model.masked_cross_attn = false;
    let open = model
        .encode(x.clone(), &[true])
        .unwrap()
        .try_into_vec_as::<f32>()
        .unwrap();
    assert_ne!(masked, open);

    // Full-view mask channel all background (-1): no key left.
    model.masked_cross_attn = true;
    let [n, _, s, _] = x.dims();
    let empty = x.slice_assign([0..n, 3..4, 0..s, 0..s], Tensor::full([n, 1, s, s], -1.0, &device));
    match model.encode(empty, &[true]) {
        Err(VisionError::EmptyKeyMask { view: 0 }) => {}
        other => panic!("expected EmptyKeyMask, got {other:?}"),
    }
}

#[test]
fn a_batch_equals_views_one_by_one() {
    let device = Device::flex();
    let config = CheckpointConfig::load(&dam_tiny_checkpoint()).unwrap();
    let model = VisionModel::load(&dam_tiny_checkpoint(), &config, &device).unwrap();
    let cases = ["center", "tiny", "border"];
    let batch = Tensor::cat(cases.iter().map(|c| pixels(c, &device)).collect(), 0);
    // Mixed flags: the middle view takes the degenerate branch.
    let flags = [true, false, true];
    let together = model.encode(batch, &flags).unwrap();
    for (i, case) in cases.iter().enumerate() {
        let alone = model.encode(pixels(case, &device), &flags[i..i + 1]).unwrap();
        let row = together.clone().narrow(0, i, 1);
        assert_close(
            &format!("view {i}"),
            &row.try_into_vec_as::<f32>().unwrap(),
            &alone.try_into_vec_as::<f32>().unwrap(),
            1e-5,
        );
    }
}

#[test]
fn bad_input_shape_is_an_error() {
    let device = Device::flex();
    let config = CheckpointConfig::load(&dam_tiny_checkpoint()).unwrap();
    let model = VisionModel::load(&dam_tiny_checkpoint(), &config, &device).unwrap();
    let x = Tensor::<4>::zeros([1, 4, 98, 98], &device);
    assert!(matches!(model.encode(x, &[true]), Err(VisionError::Shape { .. })));
    let x = Tensor::<4>::zeros([2, 8, 98, 98], &device);
    assert!(matches!(model.encode(x, &[true]), Err(VisionError::Shape { .. })));
}

#[test]
fn random_weights_build_from_a_config_alone() {
    let device = Device::flex();
    let config = CheckpointConfig::load(&dam_tiny_checkpoint()).unwrap();
    let model = VisionModel::random(&config, &device).unwrap();
    let out = model.encode(pixels("center", &device), &[true]).unwrap();
    assert_eq!(out.dims(), [1, 16, 64]);
    assert!(out.try_into_vec_as::<f32>().unwrap().iter().all(|v| v.is_finite()));
}

/// On a backend without recorded replays (the CPU), the recorder is the model: every call,
/// including the second and third of one shape (where a GPU records and replays), returns
/// exactly what `encode` does, and nothing is recorded.
#[test]
fn the_recorder_passes_through_where_nothing_can_be_recorded() {
    let device = Device::flex();
    let config = CheckpointConfig::load(&dam_tiny_checkpoint()).unwrap();
    let model = VisionModel::load(&dam_tiny_checkpoint(), &config, &device).unwrap();
    let recorder = dam_vision::VisionRecorder::new();
    for case in ["center", "center", "tiny"] {
        let direct = model.encode(pixels(case, &device), &[true]).unwrap();
        let via = recorder.encode(&model, pixels(case, &device), &[true]).unwrap();
        assert_eq!(
            via.try_into_vec_as::<f32>().unwrap(),
            direct.try_into_vec_as::<f32>().unwrap(),
            "{case}"
        );
    }
    assert!(!recorder.has_recordings());
}
