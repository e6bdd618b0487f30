//! Loading the vision folders: f32 / f16 / bf16 files agree; a removed tensor, a wrong shape
//! and a truncated file each give their error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use dam_core::testing::{
    RawTensor as Raw, Reference, copy_dir, dam_tiny_checkpoint, max_abs_diff, read_raw, scratch_dir, write_raw,
};
use dam_core::{CheckpointConfig, WeightError};
use dam_vision::{VisionError, VisionModel};
use safetensors::Dtype;

/// A scratch copy of the fixture checkpoint; `edit` rewrites each vision-side weight file.
fn scratch(tag: &str, edit: impl Fn(&str, BTreeMap<String, Raw>) -> BTreeMap<String, Raw>) -> PathBuf {
    let dir = scratch_dir(&format!("vision-{tag}"));
    copy_dir(&dam_tiny_checkpoint(), &dir);
    for folder in ["vision_tower", "context_provider", "mm_projector"] {
        let path = dir.join(folder).join("model.safetensors");
        let tensors = edit(folder, read_raw(&path));
        write_raw(&path, &tensors);
    }
    dir
}

fn projector_output(dir: &Path, device: &Device) -> Result<Vec<f32>, VisionError> {
    let config = CheckpointConfig::load(dir).unwrap();
    let model = VisionModel::load(dir, &config, device)?;
    let reference = Reference::open("center");
    let (pixels, shape) = reference.f32("pixel_values");
    let pixels = Tensor::<4>::from_data(TensorData::new(pixels, shape), device);
    Ok(model.encode(pixels, &[true])?.try_into_vec_as::<f32>().unwrap())
}

#[test]
fn f16_and_bf16_files_agree_with_f32() {
    let device = Device::flex();
    let reference = projector_output(&dam_tiny_checkpoint(), &device).unwrap();
    let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (dtype, tag, rel_tol) in [(Dtype::F16, "f16", 1e-5), (Dtype::BF16, "bf16", 5e-2)] {
        let dir = scratch(tag, |_, t| t.into_iter().map(|(k, v)| (k, v.to_dtype(dtype))).collect());
        let out = projector_output(&dir, &device).unwrap();
        let d = max_abs_diff(&out, &reference);
        // The fixture weights are exactly representable in f16; bf16 rounds them (8-bit mantissa).
        assert!(d <= rel_tol * scale, "{tag}: max |Δ| {d} > {rel_tol} x {scale}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn missing_wrong_shape_and_truncated_tensors_are_errors() {
    let device = Device::flex();
    let name = "context_provider_module.layers.1.cross_attn.k_proj.weight";

    let dir = scratch("missing", |folder, mut t| {
        if folder == "context_provider" {
            t.remove(name);
        }
        t
    });
    match projector_output(&dir, &device) {
        Err(VisionError::Weights(WeightError::Missing { name: n, .. })) => assert_eq!(n, name),
        other => panic!("expected a missing-tensor error, got {other:?}"),
    }
    std::fs::remove_dir_all(dir).unwrap();

    let dir = scratch("shape", |folder, mut t| {
        if folder == "context_provider" {
            let raw = t.remove(name).unwrap();
            let data = raw.data[..raw.data.len() / 2].to_vec();
            t.insert(
                name.to_string(),
                Raw {
                    dtype: raw.dtype,
                    shape: vec![32, 64],
                    data,
                },
            );
        }
        t
    });
    match projector_output(&dir, &device) {
        Err(VisionError::Weights(WeightError::Shape {
            name: n,
            expected,
            found,
        })) => {
            assert_eq!(n, name);
            assert_eq!(expected, vec![64, 64]);
            assert_eq!(found, vec![32, 64]);
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    std::fs::remove_dir_all(dir).unwrap();

    let dir = scratch("truncated", |_, t| t);
    let path = dir.join("vision_tower/model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    match projector_output(&dir, &device) {
        Err(VisionError::Weights(WeightError::Corrupt { path: p, .. })) => assert_eq!(p, path),
        other => panic!("expected a corrupt-file error, got {other:?}"),
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unused_head_and_post_layernorm_are_not_needed() {
    // The fixture stores post_layernorm and head.*; removing them changes nothing.
    let device = Device::flex();
    let reference = projector_output(&dam_tiny_checkpoint(), &device).unwrap();
    let dir = scratch("nohead", |folder, t| {
        if folder != "vision_tower" {
            return t;
        }
        let before = t.len();
        let kept: BTreeMap<_, _> = t
            .into_iter()
            .filter(|(k, _)| !k.contains(".head.") && !k.contains("post_layernorm"))
            .collect();
        assert!(kept.len() < before, "fixture has unused tensors");
        kept
    });
    assert_eq!(projector_output(&dir, &device).unwrap(), reference);
    std::fs::remove_dir_all(dir).unwrap();
}
