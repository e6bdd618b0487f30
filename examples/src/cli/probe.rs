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

/// Median seconds per call of `f` over `iters` timings, each covering `reps` calls between two
/// syncs (so a small kernel's time is not its launch and sync), after `warmup` untimed calls.
fn time_each<T>(device: &Device, warmup: usize, reps: usize, iters: usize, mut f: impl FnMut() -> T) -> Result<f64> {
    for _ in 0..warmup {
        let _ = f();
    }
    sync(device)?;
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        for _ in 0..reps {
            let _ = f();
        }
        sync(device)?;
        times.push(t.elapsed().as_secs_f64() / reps as f64);
    }
    Ok(summarise(&times).median)
}

/// A call's time both ways: `eager` as [`time_each`] gives it (launched from the host, so
/// for small operations the host's launch path through burn's fusion can set it), and
/// `recorded` — `reps` calls recorded once as a graph (`dam::core::graph`, CUDA) and replayed
/// `iters` times — the device's own time, as a recorded vision encode spends it. `None` where
/// the device does not record or the backend refused.
struct Timing {
    eager: f64,
    recorded: Option<f64>,
}

/// [`Timing`] of `f`, `reps` calls per timing, median of `iters`.
fn time_both<T>(device: &Device, reps: usize, iters: usize, mut f: impl FnMut() -> T) -> Result<Timing> {
    let eager = time_each(device, reps, reps, iters, &mut f)?;
    Ok(Timing {
        eager,
        recorded: time_recorded(device, reps, iters, f)?,
    })
}

/// Median seconds per call of `f` replayed from a recording of `reps` calls (see [`Timing`]).
/// For timing only: the recording's self-check (its replay against an ordinary run) is
/// skipped — the outputs are not read.
fn time_recorded<T>(device: &Device, reps: usize, iters: usize, mut f: impl FnMut() -> T) -> Result<Option<f64>> {
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    {
        // No recording without a cubecl backend.
        let _ = (device, reps, iters, &mut f);
        Ok(None)
    }
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    {
        use dam::core::graph;
        let recorded = graph::record(
            device,
            || (0..reps).map(|_| f()).collect::<Vec<_>>(),
            |_| Some(()),
            |_, _| true,
        );
        let Some((recording, outputs)) = recorded else {
            return Ok(None);
        };
        sync(device)?;
        let mut times = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t = Instant::now();
            // Safety: the recorded calls read what `f` holds (alive until this function
            // returns) and wrote `outputs`, held below until after the last replay.
            if !unsafe { graph::replay(device, &recording) } {
                return Ok(None);
            }
            sync(device)?;
            times.push(t.elapsed().as_secs_f64() / reps as f64);
        }
        drop(recording);
        drop(outputs);
        Ok(Some(summarise(&times).median))
    }
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
            let a = time_each(device, 3, 1, iters, || {
                burn::tensor::module::linear(x.clone(), w_in_out.clone(), None)
            })?;
            let b = time_each(device, 3, 1, iters, || x.clone().matmul(w_out_in.clone().transpose()))?;
            let gbs = (k * n) as f64 * bytes_per / a.min(b) / 1e9;
            println!("| {name} {k}→{n} | {m} | {:.1} | {:.1} | {gbs:.0} |", a * 1e6, b * 1e6);
            out.push(json!({"name": name, "rows": m, "d_in": k, "d_out": n,
                "in_out_us": a * 1e6, "out_in_transposed_us": b * 1e6, "best_gb_per_s": gbs}));
        }
    }
    Ok(Value::Array(out))
}

/// Whether `--probe-vision` times the row `name` at `tokens` tokens: every row when `only` is
/// empty, else those whose text `"<name>, <tokens> tokens"` contains one of `only`.
fn row_wanted(only: &[String], name: &str, tokens: usize) -> bool {
    let text = format!("{name}, {tokens} tokens");
    only.is_empty() || only.iter().any(|o| text.contains(o.as_str()))
}

/// `bench --probe-vision`: the vision tower's operations alone, for one view, at SigLIP's 729
/// tokens and padded to 768 (a multiple of the matmul and flash-attention tiles), and with
/// head_dim 72 and padded to 80 — what padding the whole tower would buy. Times each op as
/// burn's ops and, where we have one, as our kernel (`fused-softmax`, `flash`, the LayerNorm
/// kernel).
/// Prints a table (µs per call and TFLOP/s for the products), returns JSON. `only`: time just
/// the rows whose text `"<op>, <tokens> tokens"` contains one of these strings (every row when
/// empty) — e.g. a GPU stage that must reach the flash rows before its time is up, or a build
/// whose other kernels are slow to compile (NVRTC).
pub fn vision_probe(device: &Device, config: &CheckpointConfig, iters: usize, only: &[String]) -> Result<Value> {
    use burn::tensor::activation::softmax;
    use dam::vision::sdpa;

    let c = &config.vision;
    let (d, inter, heads) = (c.hidden_size, c.intermediate_size, c.num_attention_heads);
    let head_dim = d / heads;
    let normal = Distribution::Normal(0.0, 1.0);
    let reps = 10;
    let mut out = Vec::new();
    let wanted = |name: &str, tokens: usize| row_wanted(only, name, tokens);
    // A row that fails (a kernel that does not compile or launch on this build) is printed as
    // such and the probe goes on: it is a diagnostic, and the next rows may still run.
    let mut row = |name: String, tokens: usize, flops: f64, t: Result<Timing>| {
        let t = match t {
            Ok(t) => t,
            Err(e) => {
                let e = format!("{e:#}").replace('\n', " ");
                println!("| {name} | {tokens} | failed: {e} | — | — | — |");
                out.push(json!({"op": name, "tokens": tokens, "error": e}));
                return;
            }
        };
        let tflops = |s: f64| {
            if flops > 0.0 {
                format!("{:.1}", flops / s / 1e12)
            } else {
                "—".into()
            }
        };
        let (recorded, recorded_tflops) = match t.recorded {
            Some(r) => (format!("{:.1}", r * 1e6), tflops(r)),
            None => ("—".into(), "—".into()),
        };
        println!(
            "| {name} | {tokens} | {:.1} | {} | {recorded} | {recorded_tflops} |",
            t.eager * 1e6,
            tflops(t.eager)
        );
        out.push(json!({"op": name, "tokens": tokens, "us": t.eager * 1e6,
            "us_recorded": t.recorded.map(|r| r * 1e6), "flops": flops}));
    };
    println!("| op (one view) | tokens | µs per call | TFLOP/s | µs per call, recorded | TFLOP/s, recorded |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    // SigLIP's token count and the next multiple of 128 (729 → 768 at DAM-3B's size).
    let tokens = c.num_patches_per_side().pow(2);
    for s in [tokens, tokens.next_multiple_of(128)] {
        let x = Tensor::<2>::random([s, d], normal, device);
        let h = Tensor::<2>::random([s, inter], normal, device);
        for (name, input, k, n) in [
            ("linear q|k|v", &x, d, 3 * d),
            ("linear o", &x, d, d),
            ("linear fc1", &x, d, inter),
            ("linear fc2", &h, inter, d),
        ] {
            // burn `Linear`'s `[in, out]` layout, as the vision tower keeps its weights.
            let name = format!("{name} {k}→{n}");
            if !wanted(&name, s) {
                continue;
            }
            let w = Tensor::<2>::random([k, n], Distribution::Normal(0.0, 0.02), device);
            let t = time_both(device, reps, iters, || {
                burn::tensor::module::linear(input.clone(), w.clone(), None)
            });
            row(name, s, 2.0 * (s * k * n) as f64, t);
        }
        let mut head_dims = vec![head_dim];
        if !head_dim.is_multiple_of(16) {
            head_dims.push(head_dim.next_multiple_of(16));
        }
        for dh in head_dims {
            let q = Tensor::<4>::random([1, heads, s, dh], normal, device);
            let k = Tensor::<4>::random([1, heads, s, dh], normal, device);
            let v = Tensor::<4>::random([1, heads, s, dh], normal, device);
            let flops = 2.0 * (heads * s * s * dh) as f64;
            let name = format!("attention q·kᵀ, head_dim {dh}");
            if wanted(&name, s) {
                let t = time_both(device, reps, iters, || q.clone().matmul(k.clone().swap_dims(2, 3)));
                row(name, s, flops, t);
            }
            let name = format!("attention p·v, head_dim {dh}");
            if wanted(&name, s) {
                let p = Tensor::<4>::random([1, heads, s, s], normal, device);
                let t = time_both(device, reps, iters, || p.clone().matmul(v.clone()));
                row(name, s, flops, t);
            }
            for form in [
                sdpa::AttentionKernel::Auto,
                sdpa::AttentionKernel::FusedSoftmax,
                sdpa::AttentionKernel::Flash,
                sdpa::AttentionKernel::Hand,
            ] {
                #[allow(unused_mut)]
                let mut name = format!("attention `{}`, head_dim {dh}", form.name());
                if !wanted(&name, s) {
                    continue;
                }
                // Where the hand-written kernel does not run (or not at this head_dim), its
                // form is `fused-softmax`: the row says so.
                #[cfg(any(feature = "cuda", feature = "wgpu"))]
                if form == sdpa::AttentionKernel::Hand
                    && !(dh == dam::vision::hand_attention::HEAD_DIM && dam::vision::flash::hand_available(device))
                {
                    name.push_str(" (not available: fused-softmax ran)");
                }
                sdpa::set_kernel(form);
                let t = time_both(device, reps, iters, || {
                    sdpa::attend(q.clone(), k.clone(), v.clone(), None)
                });
                row(name, s, 2.0 * flops, t);
            }
            // The flash kernel's variants: fewer planes per cube (more, smaller cubes), two
            // passes over the keys and one (`flash::set_online`), and each form's plain-loop
            // variant (if it takes about as long as the tensor-core one, the tile products are
            // not what sets the time). Then, at SigLIP's own shape only (each mask is a kernel
            // to compile), the one-pass form with parts of its key-block loop left out
            // (`flash::set_ablation`; outputs wrong, timing only): what each part costs, by
            // difference — on 2026-11-27 every key block took 55–78 µs whatever it held.
            #[cfg(any(feature = "cuda", feature = "wgpu"))]
            {
                use dam::vision::flash;
                let variants = [
                    (false, 2, true),
                    (false, 1, true),
                    (false, 4, false),
                    (true, 4, true),
                    (true, 2, true),
                    (true, 1, true),
                    (true, 4, false),
                ]
                .map(|(online, planes, cores)| (online, planes, cores, 0, ""));
                let every =
                    flash::ABLATE_LOADS | flash::ABLATE_BARRIERS | flash::ABLATE_PRODUCTS | flash::ABLATE_SOFTMAX;
                let ablations = [
                    (flash::ABLATE_LOADS, "tile loads"),
                    (flash::ABLATE_BARRIERS, "cube barriers"),
                    (flash::ABLATE_PRODUCTS, "tile products"),
                    (flash::ABLATE_SOFTMAX, "softmax"),
                    (flash::ABLATE_PRODUCTS | flash::ABLATE_SOFTMAX, "products and softmax"),
                    (every, "all four"),
                ]
                .map(|(mask, without)| (true, 4, true, mask, without));
                let own_shape = s == tokens && dh == head_dim;
                for (online, planes, cores, mask, without) in
                    variants.into_iter().chain(ablations.into_iter().filter(|_| own_shape))
                {
                    let passes = if online { "one pass" } else { "two passes" };
                    let (name, work) = if mask == 0 {
                        let variant = if cores { "" } else { ", plain loops" };
                        let name =
                            format!("attention `flash`, {passes}, {planes} planes a cube{variant}, head_dim {dh}");
                        (name, 2.0 * flops)
                    } else {
                        let name =
                            format!("attention `flash`, {passes}, without {without} (timing only), head_dim {dh}");
                        (name, 0.0)
                    };
                    if !wanted(&name, s) {
                        continue;
                    }
                    sdpa::set_kernel(sdpa::AttentionKernel::Flash);
                    flash::set_planes(planes);
                    flash::set_online(online);
                    flash::set_tensor_cores(cores);
                    flash::set_ablation(mask);
                    let t = time_both(device, reps, iters, || {
                        sdpa::attend(q.clone(), k.clone(), v.clone(), None)
                    });
                    flash::reset_ablation();
                    flash::reset_tensor_cores();
                    flash::reset_online();
                    flash::reset_planes();
                    row(name, s, work, t);
                }
            }
            sdpa::reset_kernel();
        }
        let scores = Tensor::<2>::random([heads * s, s], normal, device);
        let scale = 1.0 / (head_dim as f64).sqrt();
        if wanted("softmax, burn ops", s) {
            let t = time_both(device, reps, iters, || softmax(scores.clone().mul_scalar(scale), 1));
            row("softmax, burn ops".into(), s, 0.0, t);
        }
        if wanted("softmax, burn ops, f32 inside", s) {
            let t = time_both(device, reps, iters, || {
                sdpa::scaled_softmax_reference(scores.clone(), scale)
            });
            row("softmax, burn ops, f32 inside".into(), s, 0.0, t);
        }
        // Our kernel re-reading the row per pass, then with the row kept in registers
        // (`dam::core::row_kernels::set_cached`): the per-call side of the `--row-kernels
        // cached` bench lines.
        #[cfg(any(feature = "cuda", feature = "wgpu"))]
        for (cached, name) in [
            (false, "softmax, our kernel"),
            (true, "softmax, our kernel, rows cached"),
        ] {
            if !wanted(name, s) {
                continue;
            }
            dam::core::row_kernels::set_cached(cached);
            let t = time_both(device, reps, iters, || {
                dam::vision::softmax::scaled_softmax(scores.clone(), scale)
            });
            dam::core::row_kernels::reset_cached();
            row(name.into(), s, 0.0, t);
        }
        let norm = dam::core::nn::LayerNorm {
            weight: burn::module::Param::from_tensor(Tensor::random([d], normal, device)),
            bias: burn::module::Param::from_tensor(Tensor::random([d], normal, device)),
            eps: 1e-6,
        };
        if wanted("layer norm, burn ops", s) {
            let t = time_both(device, reps, iters, || norm.forward_dim(x.clone(), 1));
            row("layer norm, burn ops".into(), s, 0.0, t);
        }
        #[cfg(any(feature = "cuda", feature = "wgpu"))]
        for (cached, name) in [
            (false, "layer norm, our kernel"),
            (true, "layer norm, our kernel, rows cached"),
        ] {
            if !wanted(name, s) {
                continue;
            }
            dam::core::layer_norm_kernel::set_enabled(true);
            dam::core::row_kernels::set_cached(cached);
            let t = time_both(device, reps, iters, || norm.forward(x.clone()));
            dam::core::row_kernels::reset_cached();
            dam::core::layer_norm_kernel::reset();
            row(name.into(), s, 0.0, t);
        }
    }
    Ok(Value::Array(out))
}

/// One product of `bench --probe-matmul`: `lhs` · `rhs` as the model computes it.
struct Product {
    name: String,
    lhs: Tensor<4>,
    rhs: Tensor<4>,
    flops: f64,
}

/// The vision tower's products for one view (`[tokens, in]` · burn `Linear`'s `[in, out]`,
/// and the attention's two score products per head), and the LLM prefill's for `rows` rows
/// (weights `[out, in]` seen transposed, as the fused decoder layers keep them).
fn probe_products(device: &Device, config: &CheckpointConfig, rows: usize, which: &str) -> Vec<Product> {
    let normal = Distribution::Normal(0.0, 1.0);
    let weight = Distribution::Normal(0.0, 0.02);
    let mut out = Vec::new();
    let mut linear = |name: &str, m: usize, k: usize, n: usize, transposed: bool| {
        let lhs = Tensor::<2>::random([m, k], normal, device).reshape([1, 1, m, k]);
        let rhs = if transposed {
            Tensor::<2>::random([n, k], weight, device).transpose()
        } else {
            Tensor::<2>::random([k, n], weight, device)
        };
        out.push(Product {
            name: format!("{name} {m}×{k}→{n}"),
            lhs,
            rhs: rhs.reshape([1, 1, k, n]),
            flops: 2.0 * (m * k * n) as f64,
        });
    };
    if which != "prefill" {
        let v = &config.vision;
        let t = v.num_patches_per_side().pow(2);
        let (d, i) = (v.hidden_size, v.intermediate_size);
        linear("vision q|k|v", t, d, 3 * d, false);
        linear("vision k|v (adapter)", t, d, 2 * d, false);
        linear("vision o", t, d, d, false);
        linear("vision fc1", t, d, i, false);
        linear("vision fc2", t, i, d, false);
    }
    if which != "vision" {
        let c = &config.llm;
        let (d, i) = (c.hidden_size, c.intermediate_size);
        let qkv = (c.num_attention_heads + 2 * c.num_kv_heads()) * c.head_dim();
        linear("prefill q|k|v", rows, d, qkv, true);
        linear("prefill o", rows, d, d, true);
        linear("prefill gate|up", rows, d, 2 * i, true);
        linear("prefill down", rows, i, d, true);
    }
    if which != "prefill" {
        let v = &config.vision;
        let t = v.num_patches_per_side().pow(2);
        let (h, dh) = (v.num_attention_heads, v.hidden_size / v.num_attention_heads);
        let q = Tensor::<4>::random([1, h, t, dh], normal, device);
        let k = Tensor::<4>::random([1, h, t, dh], normal, device);
        let p = burn::tensor::activation::softmax(Tensor::<4>::random([1, h, t, t], normal, device), 3);
        let flops = 2.0 * (h * t * t * dh) as f64;
        out.push(Product {
            name: format!("vision q·kᵀ {h}×{t}×{dh}"),
            lhs: q,
            rhs: k.clone().swap_dims(2, 3),
            flops,
        });
        out.push(Product {
            name: format!("vision p·v {h}×{t}×{t}"),
            lhs: p,
            rhs: k,
            flops,
        });
    }
    out
}

/// `bench --probe-matmul`: each of `kernels` on every product of `probe_products` (`which`:
/// `vision`, `prefill` or `both`): µs per call, TFLOP/s, and the largest difference from
/// burn's op relative to its largest value. A routine that refused the product (and fell back
/// to the autotuned matmul) is marked. Prints a table row by row, returns JSON.
pub fn matmul_kernel_probe(
    device: &Device,
    config: &CheckpointConfig,
    kernels: &[dam::core::matmul_kernel::MatmulKernel],
    which: &str,
    batch: usize,
    iters: usize,
    reference_kernel: dam::core::matmul_kernel::MatmulKernel,
) -> Result<Value> {
    use dam::core::matmul_kernel as mk;
    // The bench prompt's 247 positions per region (DAM-3B, one view pair).
    let rows = batch * 247;
    let reps = 10;
    let against = match reference_kernel {
        mk::MatmulKernel::Fusion => "burn's op".to_string(),
        k => format!("`{}`", k.name()),
    };
    println!("| product | kernel | µs per call | TFLOP/s | max rel. diff vs {against} |");
    println!("| --- | --- | ---: | ---: | ---: |");
    let mut out = Vec::new();
    for p in probe_products(device, config, rows, which) {
        // burn's op by default; under NVRTC a fixed routine (`--probe-reference`) spares each
        // product the autotune of burn's op, which compiles every candidate first.
        let reference = mk::matmul_with(p.lhs.clone(), p.rhs.clone(), reference_kernel);
        let size = reference
            .clone()
            .abs()
            .max()
            .into_scalar::<f32>()
            .max(f32::MIN_POSITIVE);
        for &k in kernels {
            #[cfg(any(feature = "cuda", feature = "wgpu"))]
            let refused_before = mk::cube::refusals();
            let ours = mk::matmul_with(p.lhs.clone(), p.rhs.clone(), k);
            let diff = (ours - reference.clone()).abs().max().into_scalar::<f32>() / size;
            #[cfg(any(feature = "cuda", feature = "wgpu"))]
            let refused = mk::cube::refusals() > refused_before;
            #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
            let refused = false;
            let s = time_each(device, 3, reps, iters, || {
                mk::matmul_with(p.lhs.clone(), p.rhs.clone(), k)
            })?;
            let mark = if refused {
                " (refused: autotune ran)"
            } else if k != mk::MatmulKernel::Fusion && !dam::core::switch::cubecl_device(device) {
                " (not a cubecl device: burn's op ran)"
            } else {
                ""
            };
            let wrong = if diff > 5e-2 { " **WRONG**" } else { "" };
            println!(
                "| {} | {}{mark} | {:.1} | {:.1} | {diff:.1e}{wrong} |",
                p.name,
                k.name(),
                s * 1e6,
                p.flops / s / 1e12
            );
            out.push(
                json!({"product": p.name, "kernel": k.name(), "refused": refused, "us": s * 1e6,
                "tflops": p.flops / s / 1e12, "max_rel_diff": diff}),
            );
        }
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::row_wanted;

    #[test]
    fn probe_only_picks_rows_by_name_and_token_count() {
        let only = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let one_pass = "attention `flash`, one pass, 4 planes a cube, head_dim 72";
        let two_passes = "attention `flash`, two passes, 4 planes a cube, head_dim 72";
        // No filter: every row.
        assert!(row_wanted(&[], one_pass, 768));
        // A name with commas in it, at one token count only.
        let f = only(&["one pass, 4 planes a cube, head_dim 72, 729 tokens"]);
        assert!(row_wanted(&f, one_pass, 729));
        assert!(!row_wanted(&f, one_pass, 768));
        assert!(!row_wanted(&f, two_passes, 729));
        // Several filters: any of them.
        let f = only(&["fused-softmax", "linear fc1"]);
        assert!(row_wanted(&f, "attention `fused-softmax`, head_dim 72", 729));
        assert!(row_wanted(&f, "linear fc1 1152→4304", 768));
        assert!(!row_wanted(&f, "linear fc2 4304→1152", 729));
    }
}
