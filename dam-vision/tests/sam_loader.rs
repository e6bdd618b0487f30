//! Loading SAM checkpoints: f16 copies, the tied Fourier matrix name, missing / misshapen /
//! truncated tensors, config defaults; and typed errors for bad prompts and inputs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use dam_core::WeightError;
use dam_core::testing::{fixtures_dir, max_abs_diff};
use dam_vision::sam::{Sam, SamConfig, SamError, SamModel, SamProcessor, SamProcessorConfig, SamPrompt};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

fn checkpoint() -> PathBuf {
    fixtures_dir().join("sam-tiny/checkpoint")
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 data")
}

/// A fresh scratch folder holding the fixture's config files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dam-sam-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    for f in ["config.json", "preprocessor_config.json"] {
        std::fs::copy(checkpoint().join(f), dir.join(f)).expect("copy config");
    }
    dir
}

/// f32 → IEEE half bits, round to nearest even.
fn f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// Rewrites the fixture's weights into `dir/model.safetensors` through `edit`, which gets
/// (name, dtype, shape, bytes) and returns the tensors to write.
fn rewrite(dir: &Path, edit: impl Fn(String, Vec<usize>, Vec<u8>) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)>) {
    let bytes = std::fs::read(checkpoint().join("model.safetensors")).expect("weights");
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        assert_eq!(view.dtype(), Dtype::F32);
        out.extend(edit(name, view.shape().to_vec(), view.data().to_vec()));
    }
    let views: Vec<(String, TensorView)> = out
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).expect("view")))
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), &dir.join("model.safetensors")).expect("write");
}

fn keep(name: String, shape: Vec<usize>, data: Vec<u8>) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    vec![(name, Dtype::F32, shape, data)]
}

fn point1_embeddings(model: &SamModel, device: &Device) -> Vec<f32> {
    let image = image::open(fixtures_dir().join("sam-tiny/cases/point1/image.png"))
        .expect("image")
        .to_rgb8();
    let processor = SamProcessor::new(SamProcessorConfig::for_image_size(model.image_size())).expect("processor");
    let pixels = processor.preprocess(&image).expect("preprocess");
    values(model.image_embeddings(pixels.to_tensor(device)).expect("embeddings"))
}

#[test]
fn f16_weights_load_and_match_f32_within_half_precision() {
    let device = Device::flex();
    let dir = scratch("f16");
    rewrite(&dir, |name, shape, data| {
        let half: Vec<u8> = data
            .chunks_exact(4)
            .flat_map(|c| f16_bits(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes())
            .collect();
        vec![(name, Dtype::F16, shape, half)]
    });
    let f32_model = SamModel::load(&checkpoint(), &device).expect("f32");
    let f16_model = SamModel::load(&dir, &device).expect("f16");
    let a = point1_embeddings(&f32_model, &device);
    let b = point1_embeddings(&f16_model, &device);
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = max_abs_diff(&a, &b);
    println!("f16 weights: image_embeddings max |Δ| = {d:.3e} (max |x| = {scale:.2})");
    assert!(d > 0.0, "the f16 copy should differ somewhat");
    assert!(d <= 5e-3 * scale.max(1.0), "max |Δ| {d} too large for f16 weights");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fourier_matrix_under_the_prompt_encoder_name_is_accepted() {
    let device = Device::flex();
    let dir = scratch("tied");
    rewrite(&dir, |name, shape, data| {
        let name = if name == "shared_image_embedding.positional_embedding" {
            "prompt_encoder.shared_embedding.positional_embedding".to_string()
        } else {
            name
        };
        keep(name, shape, data)
    });
    let reference = SamModel::load(&checkpoint(), &device).expect("reference");
    let tied = SamModel::load(&dir, &device).expect("tied name");
    let a = values(reference.image_positional_embeddings());
    let b = values(tied.image_positional_embeddings());
    assert_eq!(a, b);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_tensor_is_named() {
    let device = Device::flex();
    let dir = scratch("missing");
    let gone = "mask_decoder.transformer.layers.1.layer_norm3.bias";
    rewrite(
        &dir,
        |name, shape, data| {
            if name == gone { vec![] } else { keep(name, shape, data) }
        },
    );
    match SamModel::load(&dir, &device) {
        Err(SamError::Weights(WeightError::Missing { name, .. })) => assert_eq!(name, gone),
        other => panic!("expected Missing, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_shape_names_both_shapes() {
    let device = Device::flex();
    let dir = scratch("shape");
    let bad = "vision_encoder.layers.0.attn.rel_pos_h";
    rewrite(&dir, |name, shape, data| {
        if name == bad {
            assert_eq!(shape, vec![7, 12]);
            keep(name, vec![6, 12], data[..6 * 12 * 4].to_vec())
        } else {
            keep(name, shape, data)
        }
    });
    let err = SamModel::load(&dir, &device).expect_err("shape error");
    match &err {
        SamError::Weights(WeightError::Shape { name, expected, found }) => {
            assert_eq!(name, bad);
            assert_eq!(expected, &vec![7, 12]);
            assert_eq!(found, &vec![6, 12]);
        }
        other => panic!("expected Shape, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(bad) && msg.contains("[6, 12]") && msg.contains("[7, 12]"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truncated_file_is_corrupt() {
    let device = Device::flex();
    let dir = scratch("truncated");
    let bytes = std::fs::read(checkpoint().join("model.safetensors")).expect("weights");
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).expect("write");
    match SamModel::load(&dir, &device) {
        Err(SamError::Weights(WeightError::Corrupt { .. })) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_fills_transformers_defaults() {
    let config = SamConfig::from_file(&checkpoint().join("config.json")).expect("config");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join("sam-tiny/manifest.json")).expect("manifest"),
    )
    .expect("json");
    let mut ours = serde_json::to_value(&config).expect("serialize");
    ours["vision_config"]["mlp_dim"] = config.vision_config.mlp_dim().into();
    ours["prompt_encoder_config"]["image_embedding_size"] = config.prompt_encoder_config.image_embedding_size().into();
    let effective = &manifest["effective_config"];
    let mut checked = 0;
    for section in ["vision_config", "prompt_encoder_config", "mask_decoder_config"] {
        for (key, want) in effective[section].as_object().expect("section") {
            let got = &ours[section][key];
            let same = match (got.as_f64(), want.as_f64()) {
                (Some(a), Some(b)) => a == b,
                _ => got == want,
            };
            assert!(same, "{section}.{key}: {got} vs transformers {want}");
            checked += 1;
        }
    }
    assert!(checked >= 35, "{checked} keys");
    // The fixture's file omits these; they come from the defaults.
    assert_eq!(config.mask_decoder_config.num_hidden_layers, 2);
    assert_eq!(config.prompt_encoder_config.patch_size, 16);
    assert_eq!(config.vision_config.layer_window_size(2), 0);
    assert_eq!(config.vision_config.layer_window_size(1), 4);

    // An empty config is sam-vit-base; `null` sub-configs too; mlp_dim follows mlp_ratio.
    let base = SamConfig::from_json_str("{}").expect("empty config");
    assert_eq!(base.vision_config.hidden_size, 768);
    assert_eq!(base.vision_config.mlp_dim(), 3072);
    assert_eq!(base.vision_config.global_attn_indexes, vec![2, 5, 8, 11]);
    assert_eq!(base.prompt_encoder_config.image_embedding_size(), 64);
    assert_eq!(base.mask_decoder_config.iou_head_hidden_dim, 256);
    let nulls = SamConfig::from_json_str(r#"{"vision_config": null, "mask_decoder_config": null}"#).expect("nulls");
    assert_eq!(nulls, base);
    let huge = SamConfig::from_json_str(
        r#"{"vision_config": {"hidden_size": 1280, "num_attention_heads": 16, "mlp_dim": null}}"#,
    )
    .expect("huge");
    assert_eq!(huge.vision_config.mlp_dim(), 5120);
}

#[test]
fn invalid_configs_are_typed_errors() {
    let bad = [
        (
            r#"{"vision_config": {"num_attention_heads": 5}}"#,
            "vision_config.num_attention_heads",
        ),
        (
            r#"{"mask_decoder_config": {"hidden_size": 128}}"#,
            "prompt_encoder_config.hidden_size",
        ),
        (
            r#"{"vision_config": {"hidden_act": "swish"}}"#,
            "vision_config.hidden_act",
        ),
        (
            r#"{"vision_config": {"num_pos_feats": 64}}"#,
            "vision_config.num_pos_feats",
        ),
    ];
    for (text, key) in bad {
        match SamConfig::from_json_str(text) {
            Err(SamError::Config { key: k, .. }) => assert_eq!(k, key, "{text}"),
            other => panic!("{text}: expected a config error, got {other:?}"),
        }
    }
    assert!(matches!(
        SamConfig::from_json_str("{not json"),
        Err(SamError::Config { .. })
    ));
    let mut p = SamProcessorConfig::for_image_size(160);
    p.resample = 1;
    assert!(matches!(SamProcessor::new(p), Err(SamError::Config { .. })));
}

#[test]
fn random_weights_run_end_to_end() {
    let device = Device::flex();
    let config = SamConfig::from_file(&checkpoint().join("config.json")).expect("config");
    let model = SamModel::random(&config, &device).expect("random");
    let processor = SamProcessor::new(SamProcessorConfig::for_image_size(160)).expect("processor");
    let sam = Sam::new(model, processor, &device).expect("sam");
    let image = image::RgbImage::from_fn(50, 30, |x, y| image::Rgb([x as u8 * 5, y as u8 * 8, 100]));
    let emb = sam.embed_image(&image).expect("embed");
    let out = sam.segment(&emb, &SamPrompt::points(&[(10.0, 10.0)])).expect("segment");
    assert_eq!((out.mask.width(), out.mask.height()), (50, 30));
    assert_eq!(out.iou_scores.len(), 3);
    assert_eq!(out.low_res_masks.len(), 3 * 40 * 40);
}

#[test]
fn bad_prompts_and_inputs_are_typed_errors() {
    let device = Device::flex();
    let sam = Sam::load(&checkpoint(), &device).expect("load");
    let image = image::RgbImage::from_pixel(40, 30, image::Rgb([10, 200, 30]));
    let emb = sam.embed_image(&image).expect("embed");
    let bad_prompt = |p: SamPrompt| match sam.segment(&emb, &p) {
        Err(SamError::BadPrompt(_)) => {}
        other => panic!("{p:?}: expected BadPrompt, got {other:?}"),
    };
    bad_prompt(SamPrompt::default());
    bad_prompt(SamPrompt::points(&[(40.0, 5.0)]));
    bad_prompt(SamPrompt::points(&[(-1.0, 5.0)]));
    bad_prompt(SamPrompt::points(&[(f64::NAN, 5.0)]));
    bad_prompt(SamPrompt {
        points: vec![(1.0, 1.0)],
        labels: Some(vec![1, 1]),
        bbox: None,
    });
    bad_prompt(SamPrompt {
        points: vec![(1.0, 1.0)],
        labels: Some(vec![7]),
        bbox: None,
    });
    bad_prompt(SamPrompt::bbox([20.0, 5.0, 10.0, 25.0]));
    bad_prompt(SamPrompt::bbox([50.0, 5.0, 60.0, 25.0]));
    let empty = dam_core::Mask::from_vec(40, 30, vec![false; 1200]).unwrap();
    assert!(matches!(
        sam.segment_scribble(&emb, &empty, 0),
        Err(SamError::BadPrompt(_))
    ));
    let wrong_size = dam_core::Mask::from_vec(4, 3, vec![true; 12]).unwrap();
    assert!(matches!(
        sam.segment_scribble(&emb, &wrong_size, 0),
        Err(SamError::BadPrompt(_))
    ));

    // Valid prompts: negative clicks, a box partly outside the image.
    let ok = SamPrompt {
        points: vec![(5.0, 5.0), (30.0, 20.0)],
        labels: Some(vec![1, 0]),
        bbox: Some([-5.0, 2.0, 35.0, 45.0]),
    };
    sam.segment(&emb, &ok).expect("negative point + box");

    // An image too elongated to resize, embeddings of the wrong size, wrong pixel values.
    let thin = image::RgbImage::new(2000, 1);
    assert!(matches!(sam.embed_image(&thin), Err(SamError::BadInput(_))));
    let mut wrong = emb.clone();
    wrong.image_embeddings = Tensor::zeros([1, 32, 5, 5], &device);
    assert!(matches!(
        sam.segment(&wrong, &SamPrompt::points(&[(1.0, 1.0)])),
        Err(SamError::BadInput(_))
    ));
    assert!(matches!(
        sam.model.image_embeddings(Tensor::zeros([1, 3, 64, 64], &device)),
        Err(SamError::BadInput(_))
    ));
    let mut odd = emb.clone();
    odd.reshaped_size = (0, 160);
    assert!(matches!(
        sam.segment(&odd, &SamPrompt::points(&[(1.0, 1.0)])),
        Err(SamError::BadInput(_))
    ));
    let zero = image::RgbImage::new(0, 5);
    assert!(matches!(sam.embed_image(&zero), Err(SamError::Core(_))));
}
