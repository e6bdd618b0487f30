//! Bad checkpoint configs are errors naming the key, the value found and what is supported.

use std::path::Path;

use dam_core::{CheckpointConfig, CoreError};

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else if entry.path().extension().is_some_and(|e| e == "json") {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

fn checkpoint() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/dam-tiny/checkpoint")
}

/// Copies the fixture's configs, edits one key of one file, and loads.
fn load_with(file: &str, key: &str, value: serde_json::Value) -> Result<CheckpointConfig, CoreError> {
    let dir = std::env::temp_dir().join(format!("dam-config-{}-{}", std::process::id(), key));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&checkpoint(), &dir);
    let path = dir.join(file);
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v[key] = value;
    std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    let r = CheckpointConfig::load(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    r
}

#[test]
fn unsupported_values_name_key_value_and_support() {
    let cases = [
        ("config.json", "mm_vision_select_feature", serde_json::json!("patch")),
        ("config.json", "image_aspect_ratio", serde_json::json!("pad")),
        ("config.json", "mm_vision_select_layer", serde_json::json!(-9)),
        ("config.json", "mask_encoder_cfg", serde_json::json!({"x": 1})),
        ("vision_tower/config.json", "num_mask_channels", serde_json::json!(0)),
        (
            "context_provider/config.json",
            "context_provider_layer_indices",
            serde_json::json!([0, 1]),
        ),
        (
            "context_provider/config.json",
            "context_provider_type",
            serde_json::json!("cross_attn"),
        ),
        (
            "mm_projector/config.json",
            "mm_projector_type",
            serde_json::json!("mlp2x_gelu"),
        ),
        (
            "llm/config.json",
            "rope_scaling",
            serde_json::json!({"type": "linear", "factor": 2.0}),
        ),
        ("llm/config.json", "hidden_act", serde_json::json!("gelu")),
        (
            "vision_tower/preprocessor_config.json",
            "resample",
            serde_json::json!(1),
        ),
    ];
    for (file, key, value) in cases {
        match load_with(file, key, value.clone()) {
            Err(CoreError::UnsupportedConfig {
                file: f,
                key: k,
                found,
                supported,
            }) => {
                assert_eq!((f.as_str(), k.as_str()), (file, key));
                assert!(!found.is_empty() && !supported.is_empty());
            }
            other => panic!("{file} {key}={value}: expected UnsupportedConfig, got {other:?}"),
        }
    }
}

#[test]
fn missing_folder_and_bad_json_are_errors() {
    assert!(matches!(
        CheckpointConfig::load(Path::new("/nonexistent/dam")),
        Err(CoreError::MissingCheckpointFile { .. })
    ));
    assert!(matches!(
        load_with("llm/config.json", "hidden_size", serde_json::json!("wide")),
        Err(CoreError::ConfigFile { .. })
    ));
}
