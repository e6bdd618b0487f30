//! Architecture variants the config allows: grouped-query attention and tied embeddings,
//! each checked against an equivalent plain model built from the same weights.

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor};
use dam_core::CheckpointConfig;
use dam_core::testing::{RawTensor, dam_tiny_checkpoint, max_abs_diff, read_raw, scratch_dir, write_raw};
use dam_llm::session::{Session, SessionOptions};
use dam_llm::{LlamaModel, Sampling};

fn f32s(raw: &RawTensor) -> Vec<f32> {
    raw.data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn raw(shape: Vec<usize>, values: &[f32]) -> RawTensor {
    RawTensor {
        dtype: safetensors::Dtype::F32,
        shape,
        data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// Logits of 6 greedy steps after a fixed prompt.
fn logits(model: &LlamaModel) -> Vec<f32> {
    let ids: Vec<u32> = (3..30).collect();
    let prompt: Tensor<2> = model.embed(&ids).unwrap();
    let options = SessionOptions {
        max_new_tokens: 6,
        sampling: Sampling::Greedy,
        eos: vec![2],
        suppress_eos: true,
        record_logits: true,
        lookahead: dam_llm::session::DEFAULT_LOOKAHEAD,
        prompt_multiple: dam_llm::session::DEFAULT_PROMPT_MULTIPLE,
        cache_multiple: dam_llm::session::DEFAULT_CACHE_MULTIPLE,
    };
    let mut s = Session::new(model, vec![prompt], options).unwrap();
    while s.step().unwrap().is_some() {}
    s.step_logits()[0]
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect()
}

#[test]
fn grouped_query_attention_equals_mha_with_repeated_heads() {
    let device = Device::flex();
    let mut config = CheckpointConfig::load(&dam_tiny_checkpoint()).unwrap().llm;
    let (heads, dh, kv) = (config.num_attention_heads, config.head_dim(), 2);
    let tensors = read_raw(&dam_tiny_checkpoint().join("llm/model.safetensors"));
    // GQA checkpoint: keep the first `kv` heads of k_proj / v_proj.
    let mut gqa: BTreeMap<String, RawTensor> = BTreeMap::new();
    let mut mha: BTreeMap<String, RawTensor> = BTreeMap::new();
    for (name, t) in &tensors {
        if name.ends_with("k_proj.weight") || name.ends_with("v_proj.weight") {
            let d_in = t.shape[1];
            let v = f32s(t);
            let kept = &v[..kv * dh * d_in];
            gqa.insert(name.clone(), raw(vec![kv * dh, d_in], kept));
            // The equivalent MHA weights: query head h reads kv head h / (heads / kv).
            let rep = heads / kv;
            let mut full = Vec::with_capacity(v.len());
            for h in 0..heads {
                let g = h / rep;
                full.extend_from_slice(&kept[g * dh * d_in..(g + 1) * dh * d_in]);
            }
            mha.insert(name.clone(), raw(vec![heads * dh, d_in], &full));
        } else {
            gqa.insert(name.clone(), t.clone());
            mha.insert(name.clone(), t.clone());
        }
    }
    let (dg, dm) = (scratch_dir("llm-gqa"), scratch_dir("llm-mha"));
    write_raw(&dg.join("model.safetensors"), &gqa);
    write_raw(&dm.join("model.safetensors"), &mha);
    let mha_model = LlamaModel::load(&dm, &config, &device).unwrap();
    config.num_key_value_heads = Some(kv);
    let gqa_model = LlamaModel::load(&dg, &config, &device).unwrap();
    let (a, b) = (logits(&gqa_model), logits(&mha_model));
    assert_eq!(a.len(), b.len());
    assert!(max_abs_diff(&a, &b) <= 1e-4, "GQA vs MHA: {}", max_abs_diff(&a, &b));
    std::fs::remove_dir_all(dg).unwrap();
    std::fs::remove_dir_all(dm).unwrap();
}

#[test]
fn tied_embeddings_use_the_embedding_matrix_as_head() {
    let device = Device::flex();
    let mut config = CheckpointConfig::load(&dam_tiny_checkpoint()).unwrap().llm;
    let mut tensors = read_raw(&dam_tiny_checkpoint().join("llm/model.safetensors"));
    // Untied checkpoint whose head equals the embeddings...
    let embed = tensors["model.embed_tokens.weight"].clone();
    tensors.insert("lm_head.weight".into(), embed);
    let untied = scratch_dir("llm-untied");
    write_raw(&untied.join("model.safetensors"), &tensors);
    let reference = logits(&LlamaModel::load(&untied, &config, &device).unwrap());
    // ...and the tied one without `lm_head.weight`.
    tensors.remove("lm_head.weight");
    let tied = scratch_dir("llm-tied");
    write_raw(&tied.join("model.safetensors"), &tensors);
    config.tie_word_embeddings = true;
    let out = logits(&LlamaModel::load(&tied, &config, &device).unwrap());
    assert!(max_abs_diff(&out, &reference) <= 1e-5);
    std::fs::remove_dir_all(untied).unwrap();
    std::fs::remove_dir_all(tied).unwrap();
}
