//! Loading `llm/`: the fixture's single f32 file, the same weights as 2 shards with
//! `model.safetensors.index.json`, and as bf16 / f16 files agree; a removed tensor, a wrong
//! shape and a broken index each give their error.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Tensor};
use dam_core::testing::{RawTensor, dam_tiny_checkpoint, max_abs_diff, read_raw, scratch_dir, write_raw};
use dam_core::{CheckpointConfig, WeightError};
use dam_llm::session::{Session, SessionOptions};
use dam_llm::{LlamaModel, LlmError, Sampling};
use safetensors::Dtype;

fn llm_config() -> dam_core::config::LlmConfig {
    CheckpointConfig::load(&dam_tiny_checkpoint()).unwrap().llm
}

fn fixture_tensors() -> BTreeMap<String, RawTensor> {
    read_raw(&dam_tiny_checkpoint().join("llm/model.safetensors"))
}

/// Writes `tensors` into `dir` as `n` shards plus an index, as transformers' `save_pretrained`.
fn write_sharded(dir: &Path, tensors: &BTreeMap<String, RawTensor>, n: usize) {
    let names: Vec<&String> = tensors.keys().collect();
    let per = names.len().div_ceil(n);
    let mut weight_map = serde_json::Map::new();
    for (k, chunk) in names.chunks(per).enumerate() {
        let file = format!("model-{:05}-of-{n:05}.safetensors", k + 1);
        let part: Vec<(&String, &RawTensor)> = chunk.iter().map(|&name| (name, &tensors[name])).collect();
        write_raw(&dir.join(&file), part);
        for name in chunk {
            weight_map.insert((*name).clone(), serde_json::Value::String(file.clone()));
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

/// Logits of the first decode step for a fixed embedding prompt.
fn first_logits(model: &LlamaModel) -> Vec<f32> {
    let ids: Vec<u32> = (1..40).collect();
    let prompt: Tensor<2> = model.embed(&ids).unwrap();
    let options = SessionOptions {
        max_new_tokens: 1,
        sampling: Sampling::Greedy,
        eos: vec![2],
        suppress_eos: false,
        record_logits: true,
        lookahead: dam_llm::session::DEFAULT_LOOKAHEAD,
        prompt_multiple: dam_llm::session::DEFAULT_PROMPT_MULTIPLE,
        cache_multiple: dam_llm::session::DEFAULT_CACHE_MULTIPLE,
    };
    let mut s = Session::new(model, vec![prompt], options).unwrap();
    s.step().unwrap();
    s.step_logits()[0][0].clone()
}

#[test]
fn sharded_and_half_precision_files_agree() {
    let device = Device::flex();
    let config = llm_config();
    let reference = first_logits(&LlamaModel::load(&dam_tiny_checkpoint().join("llm"), &config, &device).unwrap());
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (dtype, tag, rel_tol) in [
        (Dtype::F32, "f32", 0.0),
        (Dtype::F16, "f16", 2e-3),
        (Dtype::BF16, "bf16", 5e-2),
    ] {
        let dir = scratch_dir(&format!("llm-shards-{tag}"));
        let tensors: BTreeMap<String, RawTensor> = fixture_tensors()
            .into_iter()
            .map(|(k, v)| (k, v.to_dtype(dtype)))
            .collect();
        write_sharded(&dir, &tensors, 2);
        assert!(!dir.join("model.safetensors").exists());
        let model = LlamaModel::load(&dir, &config, &device).unwrap();
        let logits = first_logits(&model);
        let d = max_abs_diff(&logits, &reference);
        assert!(d <= rel_tol * scale, "{tag}: max |Δ| {d} > {rel_tol} x {scale}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn missing_wrong_shape_and_bad_index_are_errors() {
    let device = Device::flex();
    let config = llm_config();
    let name = "model.layers.1.mlp.down_proj.weight";

    let dir = scratch_dir("llm-missing");
    let mut tensors = fixture_tensors();
    tensors.remove(name);
    write_raw(&dir.join("model.safetensors"), &tensors);
    match LlamaModel::load(&dir, &config, &device) {
        Err(LlmError::Weights(WeightError::Missing { name: n, .. })) => assert_eq!(n, name),
        other => panic!("expected a missing-tensor error, got {other:?}"),
    }

    let mut tensors = fixture_tensors();
    let raw = tensors.get_mut(name).unwrap();
    raw.shape = vec![32, 172];
    raw.data.truncate(32 * 172 * 4);
    write_raw(&dir.join("model.safetensors"), &tensors);
    match LlamaModel::load(&dir, &config, &device) {
        Err(LlmError::Weights(WeightError::Shape {
            name: n,
            expected,
            found,
        })) => {
            assert_eq!(n, name);
            assert_eq!(expected, vec![64, 172]);
            assert_eq!(found, vec![32, 172]);
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();

    // An index naming a shard that does not hold the tensor.
    let dir = scratch_dir("llm-index");
    write_sharded(&dir, &fixture_tensors(), 2);
    let index_path = dir.join("model.safetensors.index.json");
    let mut index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
    // `lm_head.weight` sorts first, so it is in shard 1.
    index["weight_map"]["lm_head.weight"] = serde_json::json!("model-00002-of-00002.safetensors");
    std::fs::write(&index_path, index.to_string()).unwrap();
    let err = LlamaModel::load(&dir, &config, &device).unwrap_err();
    assert!(matches!(err, LlmError::Weights(WeightError::Index { .. })), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();

    assert!(matches!(
        LlamaModel::load(Path::new("/nonexistent/llm"), &config, &device),
        Err(LlmError::Weights(WeightError::NoWeights { .. }))
    ));
}

#[test]
fn random_weights_build_from_a_config() {
    let device = Device::flex();
    let model = LlamaModel::random(&llm_config(), &device).unwrap();
    let logits = first_logits(&model);
    assert_eq!(logits.len(), 512);
    assert!(logits.iter().all(|v| v.is_finite()));
}
