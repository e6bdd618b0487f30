//! The fused decoder kernels (`dam::llm::fused`, our own cubecl code) run on a real cubecl
//! runtime without a GPU: the `wgpu` backend on Mesa's software Vulkan driver (lavapipe),
//! with the fused ops routed there ([`fused::set_any_runtime`]; by default only CUDA gets
//! them). Same kernels, same launches and the same burn fusion glue as on CUDA; what a CPU
//! driver cannot show is CUDA-only (recorded steps) or speed.
//!
//! Compiled with `--features wgpu` only; `.ci/run` runs it where a Vulkan driver is
//! installed. Without any Vulkan adapter the tests fail (they never pass vacuously).
#![cfg(feature = "wgpu")]

use std::sync::Mutex;

use burn::tensor::Device;
use dam::core::CheckpointConfig;
use dam::llm::fused::{self, check::OpCheck};
use dam::{Backend, DescribeOptions, Describer, FloatType, Mask, Region};
use dam_core::testing::{Reference, assert_close, dam_case_dir, dam_case_json, dam_expected_ids, dam_tiny_checkpoint};

/// The experimental-kernel switches are process-wide: tests that flip them or depend on them
/// run one at a time.
static SWITCHES: Mutex<()> = Mutex::new(());

fn device() -> Device {
    fused::set_any_runtime(true);
    let device = Backend::Wgpu
        .configured_device(FloatType::F32)
        .expect("a Vulkan adapter (lavapipe, Debian's mesa-vulkan-drivers)");
    assert!(fused::available(&device), "the fused ops are routed to the wgpu device");
    device
}

/// Every op within f32 rounding of its plain burn-op equivalent (relative to the larger of 1
/// and the reference's magnitude), and the reference is not trivially zero.
fn assert_checks(what: &str, checks: &[OpCheck], relative: f32) {
    assert!(!checks.is_empty(), "{what}: no checks ran");
    for c in checks {
        assert!(c.max_abs_ref > 0.1, "{what} / {}: reference is {}", c.op, c.max_abs_ref);
        let bound = relative * c.max_abs_ref.max(1.0);
        assert!(
            c.max_abs_diff <= bound,
            "{what} / {}: max abs diff {:e} > {bound:e}",
            c.op,
            c.max_abs_diff
        );
    }
}

/// `bench --check-fused --check-shapes small`'s mid-size config (GQA 5/1, head_dim 64, odd
/// widths); the tiny fixture's own config (MHA) runs end to end in the fixture test below.
fn mid_config() -> dam::core::config::LlmConfig {
    fused::check::mid_size(&CheckpointConfig::load(&dam_tiny_checkpoint()).unwrap().llm)
}

#[test]
fn each_fused_kernel_matches_the_burn_ops_it_replaces() {
    let _guard = SWITCHES.lock().unwrap_or_else(|p| p.into_inner());
    let device = device();
    // (rows, [hidden, heads, kv_heads, head_dim, intermediate]); `self_check` runs the
    // matrix-vector kernel and the one-query attention kernel too, whatever the switches say.
    for (rows, dims) in [
        ([1, 1], [320, 5, 1, 64, 868]),
        ([2, 3], [320, 5, 1, 64, 868]),
        ([2, 5], [64, 8, 2, 8, 96]),
    ] {
        let checks = fused::check::self_check(&device, rows, dims);
        assert_eq!(checks.len(), 11, "every op checked");
        assert_checks(&format!("{rows:?} rows, dims {dims:?}"), &checks, 1e-5);
    }
}

#[test]
fn fused_stack_matches_the_plain_decoder() {
    let _guard = SWITCHES.lock().unwrap_or_else(|p| p.into_inner());
    let device = device();
    let config = mid_config();
    for experimental in [false, true] {
        // Decode steps through burn's matmul/attention, then through our one-row kernels.
        fused::set_gemv(experimental);
        fused::set_decode_attention(experimental);
        let checks = fused::check::stack_check(&config, &device, 2, 5).unwrap();
        assert_checks(&format!("mid GQA 5/1, decode kernels {experimental}"), &checks, 1e-5);
    }
    fused::set_gemv(false);
    fused::set_decode_attention(false);
}

fn describer(device: &Device) -> Describer {
    Describer::builder()
        .checkpoint(dam_tiny_checkpoint().display().to_string())
        .device(device.clone())
        .greedy()
        .max_new_tokens(24)
        .build()
        .unwrap()
}

/// The fixture cases end to end through the fused decoder on wgpu: the original's greedy ids,
/// and (traced, one case) the original's step logits within the CPU suite's tolerance.
#[test]
fn fixture_cases_through_the_fused_decoder() {
    let _guard = SWITCHES.lock().unwrap_or_else(|p| p.into_inner());
    let device = device();
    let d = describer(&device);
    for case in ["center", "tiny", "border"] {
        let dir = dam_case_dir(case);
        let json = dam_case_json(case);
        let image = image::open(dir.join("image.png")).unwrap().to_rgb8();
        let region = Region::Mask(Mask::open(dir.join("mask.png")).unwrap());
        let options = DescribeOptions {
            query: Some(json["query"].as_str().unwrap().to_string()),
            trace: case == "border",
            ..Default::default()
        };
        let out = d.describe_with(&image, &region, &options).unwrap();
        assert_eq!(out.token_ids, dam_expected_ids(case), "{case}: generated ids");
        if options.trace {
            let trace = out.trace.expect("a trace was asked for");
            let (logits, shape) = Reference::open(case).f32("step_logits");
            assert_eq!(trace.step_logits.shape, shape, "{case}: step_logits shape");
            assert_close(&format!("{case} step_logits"), &trace.step_logits.data, &logits, 1e-3);
        }
    }
    // The video case: three frames, one of which skips the context provider.
    let dir = dam_case_dir("video");
    let frames: Vec<_> = (0..3)
        .map(|k| image::open(dir.join(format!("image_{k}.png"))).unwrap().to_rgb8())
        .collect();
    let masks: Vec<_> = (0..3)
        .map(|k| Mask::open(dir.join(format!("mask_{k}.png"))).unwrap())
        .collect();
    let out = d.describe_video(&frames, &masks).unwrap();
    assert_eq!(out.token_ids, dam_expected_ids("video"), "video: generated ids");
}

/// A prompt left-padded to a multiple of 16 positions (`SessionOptions::prompt_multiple`, the
/// prefill experiment for burn-cubecl's flash kernel), and a cache longer than needed
/// (`SessionOptions::cache_multiple`), through the fused decoder: a masked prefill, then
/// masked decode steps — the original's ids and the exact run's logits.
#[test]
fn a_padded_prompt_and_a_longer_cache_through_the_fused_decoder() {
    use burn::tensor::{Tensor, TensorData};
    use dam::llm::{LlamaModel, Session, SessionOptions};

    let _guard = SWITCHES.lock().unwrap_or_else(|p| p.into_inner());
    let device = device();
    let checkpoint = dam_tiny_checkpoint();
    let config = CheckpointConfig::load(&checkpoint).unwrap();
    let model = LlamaModel::load(&checkpoint.join("llm"), &config.llm, &device).unwrap();
    assert!(model.fused(), "the fused decoder runs");
    let case = "border";
    let (embeds, shape) = Reference::open(case).f32("llm_inputs_embeds");
    let prompt = Tensor::<2>::from_data(TensorData::new(embeds, [shape[1], shape[2]]), &device);
    let multiple = 16;
    assert!(!shape[1].is_multiple_of(multiple), "the prompt gets padded");
    let run = |prompt_multiple: usize, cache_multiple: usize| {
        let options = SessionOptions {
            max_new_tokens: 24,
            sampling: dam::Sampling::Greedy,
            eos: vec![2],
            suppress_eos: false,
            record_logits: true,
            lookahead: 1,
            prompt_multiple,
            cache_multiple,
        };
        let mut s = Session::new(&model, vec![prompt.clone()], options).unwrap();
        while s.step().unwrap().is_some() {}
        (s.tokens()[0].clone(), s.step_logits()[0].clone())
    };
    let (ids, logits) = run(1, 1);
    assert_eq!(ids, dam_expected_ids(case), "{case}: unpadded ids");
    for (what, prompt_multiple, cache_multiple) in [("padded prompt", multiple, 1), ("longer cache", 1, 64)] {
        let (padded_ids, padded_logits) = run(prompt_multiple, cache_multiple);
        assert_eq!(padded_ids, ids, "{case}: {what} ids");
        for (i, (a, b)) in padded_logits.iter().zip(&logits).enumerate() {
            assert_close(&format!("{case} {what} step_logits[{i}]"), a, b, 1e-4);
        }
    }
}

/// The vision tower's kernels against burn's ops: the one-kernel softmax
/// (`dam::vision::softmax`, the `fused-softmax` attention form) and LayerNorm
/// (`dam::core::layer_norm_kernel`), at more rows than one grid axis holds (65 535 on wgpu),
/// rows longer than a plane, and masked (`-inf`) scores; then a fixture case with both
/// switched on — the original's ids and step logits.
#[test]
fn the_vision_kernels_and_a_fixture_through_them() {
    use burn::module::Param;
    use burn::tensor::{Distribution, Int, Tensor};
    use dam::core::{layer_norm_kernel, nn::LayerNorm};
    use dam::vision::sdpa::{self, AttentionKernel};
    use dam::vision::softmax::scaled_softmax;

    let _guard = SWITCHES.lock().unwrap_or_else(|p| p.into_inner());
    let device = device();
    // Both kernels are defaults on CUDA only (measured there); a wgpu device keeps burn's
    // attention and LayerNorm unless they are switched on (`.ci/run` sets neither variable).
    if std::env::var_os("DAM_VISION_ATTENTION").is_none() && std::env::var_os("DAM_LAYER_NORM").is_none() {
        assert_eq!(sdpa::kernel_for(&device), AttentionKernel::Auto);
        assert!(!layer_norm_kernel::enabled(&device));
    }
    // With `row_kernels::set_cached`, rows up to 64 values a lane are kept in registers and
    // longer ones re-read per pass (`cached_per_lane`): on lavapipe's 8-lane (or 4-lane) planes
    // the widths below take both kernels of each op — 13, 200 and 500 (8 lanes: 8, 32 and 64 a
    // lane) the cached one, 729 and 1152 the other; on a GPU's 32 lanes SigLIP's widths are
    // cached. The cached kernels do the re-reading ones' arithmetic in the same order: equal
    // results, bit for bit.
    use dam::core::row_kernels::{self, cached_per_lane};
    assert_eq!(cached_per_lane(1152, 32), Some(40));
    assert_eq!(cached_per_lane(729, 32), Some(24));
    assert_eq!(cached_per_lane(500, 8), Some(64));
    assert_eq!(cached_per_lane(200, 8), Some(32));
    assert_eq!(cached_per_lane(13, 8), Some(8));
    assert_eq!(cached_per_lane(729, 8), None);
    assert_eq!(cached_per_lane(1152, 8), None);
    if std::env::var_os("DAM_ROW_KERNELS").is_none() {
        assert!(!row_kernels::cached(), "off by default until measured on a GPU");
    }
    let both = |run: &dyn Fn() -> Tensor<2>| {
        row_kernels::set_cached(false);
        let reread = run();
        row_kernels::set_cached(true);
        let cached = run();
        row_kernels::reset_cached();
        let diff = (cached.clone() - reread).abs().max().into_scalar::<f32>();
        (cached, diff)
    };
    let normal = Distribution::Normal(0.0, 3.0);
    for (rows, n, scale) in [
        (70_000, 13, 0.7),
        (9, 200, 0.3),
        (11, 500, 1.0 / 72f64.sqrt()),
        (66, 729, 1.0 / 72f64.sqrt()),
    ] {
        let x = Tensor::<2>::random([rows, n], normal, &device);
        // Every 5th column of every 3rd row hidden, as a key mask leaves it.
        let hidden = Tensor::<1, Int>::arange(0..(rows * n) as i64, &device)
            .reshape([rows, n])
            .remainder_scalar(5)
            .equal_elem(0)
            .bool_and(
                Tensor::<1, Int>::arange(0..rows as i64, &device)
                    .reshape([rows, 1])
                    .remainder_scalar(3)
                    .equal_elem(0)
                    .expand([rows, n]),
            );
        let x = x.mask_fill(hidden, f32::NEG_INFINITY);
        let (ours, kernels_apart) = both(&|| scaled_softmax(x.clone(), scale));
        assert_eq!(kernels_apart, 0.0, "softmax [{rows}, {n}]: cached vs re-read");
        let reference = sdpa::scaled_softmax_reference(x, scale);
        let diff = (ours.clone() - reference).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "softmax [{rows}, {n}]: max abs diff {diff:e}");
        let off = (ours.sum_dim(1) - 1.0).abs().max().into_scalar::<f32>();
        assert!(off < 1e-5, "softmax [{rows}, {n}]: rows sum to 1 within {off:e}");
    }
    for (rows, d) in [(70_000, 13), (7, 200), (6, 500), (5, 1152)] {
        let norm = LayerNorm {
            weight: Param::from_tensor(Tensor::random([d], normal, &device)),
            bias: Param::from_tensor(Tensor::random([d], normal, &device)),
            eps: 1e-6,
        };
        // An offset mean, as activations have.
        let x = Tensor::<2>::random([rows, d], normal, &device) + 4.0;
        layer_norm_kernel::set_enabled(true);
        assert!(layer_norm_kernel::enabled(&device));
        let (ours, kernels_apart) = both(&|| norm.forward(x.clone()));
        assert_eq!(kernels_apart, 0.0, "layer norm [{rows}, {d}]: cached vs re-read");
        layer_norm_kernel::set_enabled(false);
        let reference = norm.forward(x);
        let size = reference.clone().abs().max().into_scalar::<f32>();
        let diff = (ours - reference).abs().max().into_scalar::<f32>();
        assert!(
            size > 1.0 && diff < 1e-5 * size,
            "layer norm [{rows}, {d}]: max abs diff {diff:e} of {size}"
        );
    }

    // The fixture through both kernels, the rows in registers (the tiny config's widths are
    // all cached on lavapipe).
    row_kernels::set_cached(true);
    sdpa::set_kernel(AttentionKernel::FusedSoftmax);
    layer_norm_kernel::set_enabled(true);
    assert_eq!(sdpa::kernel_for(&device), AttentionKernel::FusedSoftmax);
    let out = describe_border(&device);
    sdpa::reset_kernel();
    layer_norm_kernel::reset();
    row_kernels::reset_cached();
    assert_border_matches_the_original(out, "vision kernels");
}

/// The one-kernel attention (`dam::vision::flash`, its plain-loop variants: lavapipe has no
/// tensor cores), two passes over the keys and one (`flash::set_online`), against the
/// materialised form — odd query and key counts over several blocks of 64 queries and 32
/// keys, SigLIP's head_dim 72 (zero-padded to 80 in the tiles), the tiny config's 16, strided
/// inputs, and keys growing along the sequence so that the one-pass kernel's running maximum
/// moves by more than its threshold (rescaling what it has accumulated) — then the `border`
/// fixture with every vision attention through each.
#[test]
fn the_flash_attention_kernel_and_a_fixture_through_it() {
    use burn::tensor::{Distribution, Tensor};
    use dam::vision::flash::{self, flash_attention};
    use dam::vision::sdpa::{self, AttentionKernel};

    let _guard = SWITCHES.lock().unwrap_or_else(|p| p.into_inner());
    let device = device();
    let normal = Distribution::Normal(0.0, 1.5);
    for ([b, h, sq, skv, d], strided, growing) in [
        ([2, 3, 11, 13, 9], false, false),
        ([1, 2, 49, 49, 16], false, false),
        ([1, 2, 40, 100, 16], false, true),
        ([1, 2, 150, 70, 72], false, false),
        ([2, 2, 65, 97, 72], true, false),
    ] {
        let make = |s: usize| {
            if strided {
                // [B, S, H, D] in memory, viewed as [B, H, S, D]: as the heads' split leaves
                // them before a copy.
                Tensor::<4>::random([b, s, h, d], normal, &device).swap_dims(1, 2)
            } else {
                Tensor::<4>::random([b, h, s, d], normal, &device)
            }
        };
        let (q, mut k, v) = (make(sq), make(skv), make(skv));
        if growing {
            // Key j scaled by 1 + 4j / skv: each block's scores reach further than the last's.
            let ramp = Tensor::<1, burn::tensor::Int>::arange(0..skv as i64, &device)
                .float()
                .mul_scalar(4.0 / skv as f64)
                .add_scalar(1.0)
                .reshape([1, 1, skv, 1]);
            k = k * ramp;
        }
        let reference = sdpa::materialized(q.clone(), k.clone(), v.clone(), None);
        let size = reference.clone().abs().max().into_scalar::<f32>();
        assert!(size > 0.1, "reference {size}");
        if growing {
            // The scores' row maxima of the first block and of the whole row are > 8 apart for
            // some row (what makes the one-pass kernel rescale).
            let scores = q
                .clone()
                .matmul(k.clone().swap_dims(2, 3))
                .div_scalar((d as f64).sqrt());
            let first = scores.clone().narrow(3, 0, 32).max_dim(3);
            let gap = (scores.max_dim(3) - first).max().into_scalar::<f32>();
            assert!(gap > 8.0, "the growing keys' largest rise of a row maximum: {gap}");
        }
        for online in [false, true] {
            flash::set_online(online);
            // 0: the most planes per cube that fit in lavapipe's 32 KiB (f32: 4 at head_dim 9
            // and 16, 2 (two passes) or 1 (one pass) at 72); then fewer.
            for planes in [0, 2, 1] {
                flash::set_planes(planes);
                let ours = flash_attention(q.clone(), k.clone(), v.clone());
                flash::reset_planes();
                assert_eq!(ours.dims(), [b, h, sq, d]);
                let diff = (ours - reference.clone()).abs().max().into_scalar::<f32>();
                assert!(
                    diff < 1e-5,
                    "flash (online: {online}) [{b}, {h}, {sq}, {skv}, {d}] (strided: {strided}, planes {planes}): max abs diff {diff:e} of {size}"
                );
            }
        }
        flash::reset_online();
        // The hand-written kernel is CUDA's (and bf16's): here its form is `fused-softmax`.
        assert!(!flash::hand_available(&device));
        let hand = sdpa::hand(q.clone(), k.clone(), v.clone(), None);
        let fused = sdpa::fused_softmax(q.clone(), k.clone(), v.clone(), None);
        assert_eq!((hand - fused).abs().max().into_scalar::<f32>(), 0.0, "hand off CUDA");
    }

    sdpa::set_kernel(AttentionKernel::Flash);
    assert_eq!(sdpa::kernel_for(&device), AttentionKernel::Flash);
    for online in [false, true] {
        flash::set_online(online);
        let out = describe_border(&device);
        flash::reset_online();
        assert_border_matches_the_original(out, &format!("flash attention (online: {online})"));
    }
    sdpa::reset_kernel();
}

/// The `border` fixture case (its crop differs: both vision passes and the adapters run),
/// greedy, traced.
fn describe_border(device: &Device) -> dam::Result<dam::Description> {
    let dir = dam_case_dir("border");
    let image = image::open(dir.join("image.png")).unwrap().to_rgb8();
    let region = Region::Mask(Mask::open(dir.join("mask.png")).unwrap());
    let options = DescribeOptions {
        query: Some(dam_case_json("border")["query"].as_str().unwrap().to_string()),
        trace: true,
        ..Default::default()
    };
    describer(device).describe_with(&image, &region, &options)
}

/// The original's ids, and its step logits within the CPU suite's tolerance.
fn assert_border_matches_the_original(out: dam::Result<dam::Description>, what: &str) {
    let out = out.unwrap();
    assert_eq!(
        out.token_ids,
        dam_expected_ids("border"),
        "border, {what}: generated ids"
    );
    let trace = out.trace.expect("a trace was asked for");
    let (logits, _) = Reference::open("border").f32("step_logits");
    assert_close(
        &format!("border step_logits, {what}"),
        &trace.step_logits.data,
        &logits,
        1e-3,
    );
}

/// The matmul switch (`dam::core::matmul_kernel`): products through burn-cubecl's autotuned
/// matmul and through fixed cubek routines — a plain and a transposed (strided) right operand,
/// batched heads, odd sizes, a tensor-core routine that lavapipe cannot run (refused, so
/// the autotuned matmul runs instead) and the hand-written CUDA kernel (refused off CUDA:
/// burn's op runs, and no variant is available) — equal burn's op; then a fixture case with the vision
/// tower's and the prefill's products on a fixed routine gives the original's ids and step
/// logits.
#[test]
fn the_matmul_kernels_and_a_fixture_through_them() {
    use burn::tensor::{Distribution, Tensor};
    use dam::core::matmul_kernel::{self as mk, MatmulKernel};

    let _guard = SWITCHES.lock().unwrap_or_else(|p| p.into_inner());
    let device = device();
    let normal = Distribution::Normal(0.0, 1.0);
    let lhs = Tensor::<4>::random([2, 3, 37, 21], normal, &device);
    let rhs = Tensor::<4>::random([2, 3, 21, 45], normal, &device);
    let rhs_t = Tensor::<4>::random([2, 3, 45, 21], normal, &device).swap_dims(2, 3);
    let kernels: Vec<MatmulKernel> = [
        "autotune",
        "simple-unit",
        "double-unit",
        "simple-cmma",
        "hand",
        "hand-64x64x32-s4",
    ]
    .iter()
    .map(|k| k.parse().unwrap())
    .collect();
    for rhs in [rhs, rhs_t] {
        let reference = lhs.clone().matmul(rhs.clone());
        let size = reference.clone().abs().max().into_scalar::<f32>();
        for &k in &kernels {
            let refused = mk::cube::refusals();
            let ours = mk::matmul_with(lhs.clone(), rhs.clone(), k);
            assert_eq!(ours.dims(), [2, 3, 37, 45], "{}", k.name());
            let diff = (ours - reference.clone()).abs().max().into_scalar::<f32>();
            assert!(
                size > 1.0 && diff < 1e-5 * size,
                "{}: max abs diff {diff:e} of {size}",
                k.name()
            );
            // lavapipe has no tensor cores and is not CUDA: the cmma routine and the
            // hand-written kernel are refused.
            let was_refused = mk::cube::refusals() > refused;
            assert_eq!(
                was_refused,
                k.name().ends_with("cmma") || k.name().starts_with("hand"),
                "{}: refused {was_refused}",
                k.name()
            );
        }
    }

    assert_eq!(mk::hand_available(&device), 0, "the hand-written kernel is CUDA's");
    // With it selected, a linear (and one with its GELU) is burn's.
    let layer = burn::nn::LinearConfig::new(16, 24).init(&device);
    let x = Tensor::<3>::random([2, 5, 16], normal, &device);
    let reference = layer.forward(x.clone());
    mk::set_choice("linear=hand".parse().unwrap());
    let ours = mk::linear(&layer, x.clone());
    let ours_gelu = mk::linear_gelu_tanh(&layer, x);
    mk::set_choice(mk::MatmulChoice::default());
    let diff = (ours - reference.clone()).abs().max().into_scalar::<f32>();
    let diff_gelu = (ours_gelu - dam::core::nn::gelu_tanh(reference))
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(
        diff < 1e-6 && diff_gelu < 1e-6,
        "hand off CUDA: {diff:e}, with GELU {diff_gelu:e}"
    );

    // One fixed routine end to end (the vision tower's products and the prefill's); the
    // autotuned path is the products' check above.
    for &k in &kernels[1..2] {
        mk::set_choice(mk::MatmulChoice::uniform(k));
        assert_eq!(mk::choice_on(&device).linear, k);
        let out = describe_border(&device);
        mk::set_choice(mk::MatmulChoice::default());
        assert_border_matches_the_original(out, k.name());
    }
}
