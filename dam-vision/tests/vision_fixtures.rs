//! The localized backbone and projector against the original implementation's tensors
//! (`tests/fixtures/dam-tiny`), on the CPU backend in f32.

use burn::tensor::{Device, Tensor, TensorData};
use dam_core::CheckpointConfig;
use dam_core::testing::{Reference, assert_close, dam_case_json, dam_cases, dam_tiny_checkpoint};
use dam_vision::VisionModel;

fn values(t: Tensor<3>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap()
}

fn inputs(name: &str, device: &Device) -> (Reference, Tensor<4>, Vec<bool>) {
    let reference = Reference::open(name);
    let (pixels, shape) = reference.f32("pixel_values");
    let pixels = Tensor::<4>::from_data(TensorData::new(pixels, shape), device);
    let case = dam_case_json(name);
    let flags = case["cimage_mask"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_bool().unwrap())
        .collect();
    (reference, pixels, flags)
}

#[test]
fn features_and_projector_match_every_case() {
    let device = Device::flex();
    let config = CheckpointConfig::load(&dam_tiny_checkpoint()).unwrap();
    let model = VisionModel::load(&dam_tiny_checkpoint(), &config, &device).unwrap();
    for name in dam_cases() {
        let (reference, pixels, flags) = inputs(&name, &device);
        let out = model.forward(pixels, &flags, false).unwrap();
        let tol = 1e-4;
        assert_close(
            &format!("{name} vision_full_features"),
            &values(out.full_features),
            &reference.f32("vision_full_features").0,
            tol,
        );
        let expected_crop = reference.f32("vision_crop_features");
        match out.crop_features {
            Some(c) => {
                assert_eq!(c.dims()[0], expected_crop.1[0], "{name}: number of focal-pass views");
                assert_close(
                    &format!("{name} vision_crop_features"),
                    &values(c),
                    &expected_crop.0,
                    tol,
                );
            }
            None => assert_eq!(expected_crop.1[0], 0, "{name}: focal pass expected"),
        }
        assert_close(
            &format!("{name} projector_input"),
            &values(out.projector_input),
            &reference.f32("projector_input").0,
            tol,
        );
        let (expected, shape) = reference.f32("projector_output");
        assert_eq!(
            out.projector_output.dims().to_vec(),
            shape,
            "{name} projector_output shape"
        );
        assert_close(
            &format!("{name} projector_output"),
            &values(out.projector_output),
            &expected,
            tol,
        );
    }
}

/// Every hidden state of both passes, so a drift is located to its layer. This loads all
/// layers (the model normally stops at the selected one).
#[test]
fn every_hidden_state_matches() {
    let device = Device::flex();
    let config = CheckpointConfig::load(&dam_tiny_checkpoint()).unwrap();
    let all = config.vision.num_hidden_layers;
    let model = VisionModel::load_layers(&dam_tiny_checkpoint(), &config, &device, all).unwrap();
    for name in dam_cases() {
        let (reference, pixels, flags) = inputs(&name, &device);
        let out = model.forward(pixels, &flags, true).unwrap();
        for (pass, states) in [("full", out.full_hidden_states), ("crop", out.crop_hidden_states)] {
            let (expected, shape) = reference.f32(&format!("vision_{pass}_hidden_states"));
            assert_eq!(shape[0], all + 1);
            let per_layer = expected.len() / shape[0];
            if per_layer == 0 {
                assert!(states.is_empty(), "{name}: no {pass} pass expected");
                continue;
            }
            assert_eq!(states.len(), all + 1, "{name} {pass}: number of states");
            for (k, state) in states.into_iter().enumerate() {
                let what = format!("{name} {pass} hidden state {k}");
                assert_close(
                    &what,
                    &values(state),
                    &expected[k * per_layer..(k + 1) * per_layer],
                    1e-4,
                );
            }
        }
    }
}
