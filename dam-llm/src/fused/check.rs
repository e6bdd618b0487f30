//! On-device check of the fused kernels against the plain burn-op path they replace (the path
//! the CPU test suite verifies against the original's fixtures). CI has no GPU, so this runs
//! where one is: `bench --check-fused` (and `scripts/gpu-check.sh`).

use burn::module::Param;
use burn::tensor::{Bool, Device, Distribution, Int, Tensor, TensorData};
use dam_core::config::LlmConfig;

use crate::kv_cache::LayerCache;
use crate::model::LlamaModel;
use crate::rms_norm::RmsNorm;
use crate::rope::Rope;

/// One op's largest absolute difference from the reference, and the reference's largest
/// magnitude (for scale).
#[derive(Clone, Debug)]
pub struct OpCheck {
    /// The op's name.
    pub op: &'static str,
    /// Largest `|fused − reference|`.
    pub max_abs_diff: f32,
    /// Largest `|reference|`.
    pub max_abs_ref: f32,
}

fn compare<const D: usize>(op: &'static str, fused: Tensor<D>, reference: Tensor<D>) -> OpCheck {
    let diff =
        (fused.cast(burn::tensor::FloatDType::F32) - reference.clone().cast(burn::tensor::FloatDType::F32)).abs();
    let max = |t: Tensor<D>| t.max().into_scalar::<f32>();
    OpCheck {
        op,
        max_abs_diff: max(diff),
        max_abs_ref: max(reference.cast(burn::tensor::FloatDType::F32).abs()),
    }
}

/// Runs every fused op and its plain equivalent on random inputs of `rows` rows and DAM-3B's
/// LLM widths scaled by `dims` (`hidden`, `heads`, `kv_heads`, `head_dim`, `intermediate`).
pub fn self_check(device: &Device, rows: [usize; 2], dims: [usize; 5]) -> Vec<OpCheck> {
    let [batch, seq] = rows;
    let [hidden, heads, kv_heads, head_dim, inter] = dims;
    let r = batch * seq;
    let normal = Distribution::Normal(0.0, 1.0);
    let mut out = Vec::new();

    let norm = RmsNorm {
        weight: Param::from_tensor(Tensor::<2>::random([1, hidden], normal, device)),
        eps: 1e-6,
    };
    let x = Tensor::<2>::random([r, hidden], normal, device);
    let res = Tensor::<2>::random([r, hidden], normal, device);
    let w = norm.weight.val();
    out.push(compare(
        "rms_norm",
        super::rms_norm(x.clone(), &w, norm.eps),
        norm.forward(x.clone()),
    ));
    let (sum, normed) = super::add_rms_norm(x.clone(), res.clone(), &w, norm.eps);
    let plain_sum = x.clone() + res;
    out.push(compare("add_rms_norm (sum)", sum, plain_sum.clone()));
    out.push(compare("add_rms_norm (norm)", normed, norm.forward(plain_sum)));

    // The one-row products against burn's matmul, with the weight as the layers hold it (the
    // transposed view of `[out, in]`), our matrix-vector kernel switched on for the call.
    let gemv = super::gemv_enabled();
    super::set_gemv(true);
    for (name, k, n) in [
        ("matmul q|k|v", hidden, (heads + 2 * kv_heads) * head_dim),
        ("matmul gate|up", hidden, 2 * inter),
        ("matmul down", inter, hidden),
    ] {
        let x = Tensor::<2>::random([1, k], normal, device);
        let w = Tensor::<2>::random([n, k], normal, device).transpose();
        out.push(compare(name, super::matmul(x.clone(), &w), x.matmul(w)));
    }
    super::set_gemv(gemv);

    // One-position attention over a cache with hidden keys (future slots and a padded start
    // for the second sequence), against burn's attention.
    {
        let len = seq + 9;
        let q = Tensor::<4>::random([batch, heads, 1, head_dim], normal, device);
        let k = Tensor::<4>::random([batch, kv_heads, len, head_dim], normal, device);
        let v = Tensor::<4>::random([batch, kv_heads, len, head_dim], normal, device);
        let pos = len - 3;
        let hidden: Vec<bool> = (0..batch)
            .flat_map(|b| (0..len).map(move |j| j > pos || j < b))
            .collect();
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(hidden, [batch, 1, 1, len]), device);
        let rep = heads / kv_heads;
        let expand = |t: Tensor<4>| {
            t.unsqueeze_dim::<5>(2)
                .expand([batch, kv_heads, rep, len, head_dim])
                .reshape([batch, heads, len, head_dim])
        };
        let reference = burn::tensor::module::attention(
            q.clone(),
            expand(k.clone()),
            expand(v.clone()),
            Some(mask.clone().expand([batch, heads, 1, len])),
            None,
            Default::default(),
        )
        .swap_dims(1, 2)
        .reshape([batch, heads * head_dim]);
        let fused = super::decode_attention(q, k, v, mask.float().reshape([batch, len]));
        out.push(compare("decode attention", fused, reference));
    }

    let gu = Tensor::<2>::random([r, 2 * inter], normal, device);
    let plain = burn::tensor::activation::silu(gu.clone().narrow(1, 0, inter)) * gu.clone().narrow(1, inter, inter);
    out.push(compare("silu_mul", super::silu_mul(gu), plain));

    // RoPE + cache write at positions start..start+seq of a cache of `len`.
    let (start, len) = (3, seq + 8);
    let rope = Rope::new(head_dim, 64, 10_000.0, device);
    let pos: Vec<i64> = (0..batch)
        .flat_map(|b| (0..seq).map(move |s| (start + s + 2 * b) as i64))
        .collect();
    let positions = Tensor::<2, Int>::from_data(TensorData::new(pos, [batch, seq]), device);
    let width = (heads + 2 * kv_heads) * head_dim;
    let qkv = Tensor::<2>::random([r, width], normal, device);
    let cache_shape = [batch, kv_heads, len, head_dim];
    let base_k = Tensor::<4>::random(cache_shape, normal, device);
    let base_v = Tensor::<4>::random(cache_shape, normal, device);
    // Separate buffers for the two paths (the fused op writes in place).
    let mut plain_cache = LayerCache {
        keys: base_k.clone() * 1.0,
        values: base_v.clone() * 1.0,
    };
    let fused_cache = LayerCache {
        keys: base_k * 1.0,
        values: base_v * 1.0,
    };
    let (cos, sin) = rope.tables(positions.clone(), heads + kv_heads, kv_heads);
    let t = Rope::apply(
        qkv.clone().reshape([batch, seq, heads + 2 * kv_heads, head_dim]),
        &cos,
        &sin,
    )
    .swap_dims(1, 2);
    let q_plain = t.clone().narrow(1, 0, heads);
    plain_cache.write(
        start,
        t.clone().narrow(1, heads, kv_heads),
        t.narrow(1, heads + kv_heads, kv_heads),
    );
    let (cos_rows, sin_rows) = rope.rows(positions);
    let q_fused = super::rope_cache(
        qkv,
        &cos_rows,
        &sin_rows,
        &fused_cache.keys,
        &fused_cache.values,
        Tensor::<1, Int>::from_data(TensorData::new(vec![start as i64], [1]), device),
        seq,
        heads,
        kv_heads,
    );
    out.push(compare("rope_cache (q)", q_fused, q_plain));
    out.push(compare("rope_cache (keys)", fused_cache.keys, plain_cache.keys));
    out.push(compare("rope_cache (values)", fused_cache.values, plain_cache.values));
    out
}

/// A mid-size LLaMA config for checks on small devices (`bench --check-fused --check-shapes
/// small`, the wgpu tests): `base` (the tiny fixture's) with DAM-3B's head_dim (64), widths
/// that are not multiples of the kernels' vector width (hidden 320, intermediate 868), GQA
/// (5 query heads, 1 kv head) and 3 layers.
pub fn mid_size(base: &LlmConfig) -> LlmConfig {
    let mut mid = base.clone();
    mid.hidden_size = 320;
    mid.num_attention_heads = 5;
    mid.num_key_value_heads = Some(1);
    mid.head_dim = Some(64);
    mid.intermediate_size = 868;
    mid.num_hidden_layers = 3;
    mid
}

/// The whole fused decoder stack against the plain path, on a random model of `config`:
/// a causal prefill of `prompt` positions for `batch` sequences, then one static-shape decode
/// step over the whole cache with a mask — final hidden states and the first and last layers'
/// caches.
pub fn stack_check(config: &LlmConfig, device: &Device, batch: usize, prompt: usize) -> crate::Result<Vec<OpCheck>> {
    let mut model = LlamaModel::random(config, device)?;
    let d = config.hidden_size;
    let len = prompt + 4;
    let normal = Distribution::Normal(0.0, 1.0);
    let embeds = Tensor::<3>::random([batch, prompt, d], normal, device);
    let step = Tensor::<3>::random([batch, 1, d], normal, device);
    let ids = |range: std::ops::Range<usize>| {
        let n = range.len();
        let v: Vec<i64> = (0..batch).flat_map(|_| range.clone().map(|p| p as i64)).collect();
        Tensor::<2, Int>::from_data(TensorData::new(v, [batch, n]), device)
    };
    let hidden: Vec<bool> = (0..batch).flat_map(|_| (0..len).map(|j| j > prompt)).collect();
    let mask = Tensor::<4, Bool>::from_data(TensorData::new(hidden, [batch, 1, 1, len]), device);

    let mut run = |fused: bool| {
        model.set_fused(fused);
        let mut cache = model.new_cache(batch, len);
        let pre = model.forward(embeds.clone(), ids(0..prompt), &mut cache, 0, prompt, None);
        let dec = model.forward(
            step.clone(),
            ids(prompt..prompt + 1),
            &mut cache,
            prompt,
            len,
            Some(mask.clone()),
        );
        (pre, dec, cache)
    };
    let (pre_f, dec_f, cache_f) = run(true);
    let (pre_p, dec_p, cache_p) = run(false);
    let last = config.num_hidden_layers - 1;
    Ok(vec![
        compare("stack: prefill hidden", pre_f, pre_p),
        compare("stack: decode hidden", dec_f, dec_p),
        compare(
            "stack: keys, layer 0",
            cache_f.layers[0].keys.clone(),
            cache_p.layers[0].keys.clone(),
        ),
        compare(
            "stack: values, last layer",
            cache_f.layers[last].values.clone(),
            cache_p.layers[last].values.clone(),
        ),
    ])
}
