//! `bench --probe`: times the LLM's matrix products alone, with the weight stored in burn's
//! `Linear` layout (`[in, out]`, row-major) and in PyTorch's (`[out, in]`, used through a
//! transposed view). On cubecl backends the choice of matmul kernel depends on that layout,
//! and decode (one row per region) is where it matters.

use std::time::Instant;

use anyhow::Result;
use burn::tensor::{Distribution, Tensor};
use dam::Device;
use dam::core::CheckpointConfig;
use serde_json::{Value, json};

use super::bench::{summarise, sync};

/// Median seconds of `iters` timed calls of `f` (each synced), after `warmup` untimed ones.
fn time(device: &Device, warmup: usize, iters: usize, mut f: impl FnMut() -> Tensor<2>) -> Result<f64> {
    for _ in 0..warmup {
        let _ = f();
        sync(device)?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let _ = f();
        sync(device)?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(summarise(&times).median)
}

/// Rows × (name, d_in, d_out) of DAM-3B's LLM, both layouts; prints a table, returns JSON.
pub fn matmul_probe(device: &Device, config: &CheckpointConfig, rows: &[usize], iters: usize) -> Result<Value> {
    let c = &config.llm;
    let (d, i, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
    let qkv = (c.num_attention_heads + 2 * c.num_kv_heads()) * c.head_dim();
    let shapes = [
        ("qkv_proj", d, qkv),
        ("o_proj", d, d),
        ("gate_up_proj", d, 2 * i),
        ("down_proj", i, d),
        ("lm_head", d, v),
    ];
    let bytes_per = match device.settings().float_dtype {
        burn::tensor::FloatDType::F32 => 4.0,
        _ => 2.0,
    };
    println!("| product | rows | [in,out] row-major µs | [out,in]ᵀ view µs | GB/s (best) |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let mut out = Vec::new();
    for &m in rows {
        for &(name, k, n) in &shapes {
            let x = Tensor::<2>::random([m, k], Distribution::Normal(0.0, 1.0), device);
            let w_in_out = Tensor::<2>::random([k, n], Distribution::Normal(0.0, 0.02), device);
            let w_out_in = Tensor::<2>::random([n, k], Distribution::Normal(0.0, 0.02), device);
            sync(device)?;
            let a = time(device, 3, iters, || {
                burn::tensor::module::linear(x.clone(), w_in_out.clone(), None)
            })?;
            let b = time(device, 3, iters, || x.clone().matmul(w_out_in.clone().transpose()))?;
            let gbs = (k * n) as f64 * bytes_per / a.min(b) / 1e9;
            println!("| {name} {k}→{n} | {m} | {:.1} | {:.1} | {gbs:.0} |", a * 1e6, b * 1e6);
            out.push(json!({"name": name, "rows": m, "d_in": k, "d_out": n,
                "in_out_us": a * 1e6, "out_in_transposed_us": b * 1e6, "best_gb_per_s": gbs}));
        }
    }
    Ok(Value::Array(out))
}
