//! `bench`: times DAM's phases with random weights, no checkpoint needed (issue 7).
//!
//! ```text
//! bench [--backend cpu|cuda|wgpu] [--dtype f32|f16|bf16] [--config full|tiny] [--new-tokens 256]
//!       [--runs 3] [--warmup 1] [--batch N] [--json OUT]
//! ```
//! The protocol follows the original's anchor measurement (bf16 on an H100, one 384² view pair,
//! 256 forced new tokens, median of 3 runs after 1 warm-up):
//! * preprocessing — `focal_prompt` (focal crop, bicubic resizes, normalisation) of a synthetic
//!   1280×960 image with an elliptical mask (N masks with `--batch N`);
//! * vision — stacking the views, both SigLIP passes, the context provider and the projector;
//! * prefill — splicing the DAM-3B prompt (51 text ids + the visual tokens) and the LLM forward
//!   up to the first logits;
//! * decode — greedy steps with EOS suppressed, exactly `--new-tokens` tokens per region
//!   (tok/s = generated tokens / decode time; the first token comes from the prefill's logits,
//!   so N tokens take N − 1 decode forwards);
//! * peak memory — the device allocator's peak where the backend reports one, else the
//!   process's peak resident set (`VmHWM`).
//!
//! The table goes to stdout, progress to stderr; `--json OUT` writes every phase as well.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::{parse_backend, parse_dtype};
use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, ValueEnum};
use dam::core::{CheckpointConfig, FocalPrompt, ImageProcessor, Mask, focal_prompts};
use dam::llm::LlamaModel;
use dam::llm::session::{Session, SessionOptions};
use dam::llm::splice::splice;
use dam::vision::{VisionModel, VisionRecorder, split_views, stack_focal_prompts};
use dam::{Backend, Device, FloatType, Sampling};
use image::RgbImage;
use serde_json::{Value, json};

/// Synthetic image size (a typical 4:3 photo, larger than the 384² views).
const IMAGE_W: u32 = 1280;
const IMAGE_H: u32 = 960;

/// DAM-3B's prompt for one image, as LLaMA-2 ids (spec §6.4): the system prompt and `USER: `,
/// the image sentinel, then `\nDescribe the masked region in detail. ASSISTANT:`.
const PROMPT_PREFIX: [i64; 35] = [
    1, 319, 13563, 1546, 263, 12758, 1404, 322, 385, 23116, 21082, 20255, 29889, 450, 20255, 4076, 8444, 29892, 13173,
    29892, 322, 1248, 568, 6089, 304, 278, 1404, 29915, 29879, 5155, 29889, 3148, 1001, 29901, 29871,
];
const PROMPT_SUFFIX: [i64; 16] = [
    29871, 13, 4002, 29581, 278, 11105, 287, 5120, 297, 9493, 29889, 319, 1799, 9047, 13566, 29901,
];
/// LLaMA-2's end-of-sequence id (suppressed: every run generates `--new-tokens` tokens).
const EOS: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ConfigArg {
    /// DAM-3B sizes (SigLIP-so400m at 384/14 with the context provider, 32-layer 2.7B LLaMA).
    Full,
    /// The test fixture `tests/fixtures/dam-tiny` (seconds on a CPU).
    Tiny,
}

impl ConfigArg {
    fn name(self) -> &'static str {
        match self {
            ConfigArg::Full => "full",
            ConfigArg::Tiny => "tiny",
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    version,
    about = "Time DAM's phases (preprocessing, vision, prefill, decode) with random weights"
)]
struct Args {
    /// cpu, wgpu, cuda or cuda:N (as compiled in).
    #[arg(long, default_value = "cpu", value_parser = parse_backend)]
    backend: Backend,
    /// f32, f16 or bf16.
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    dtype: FloatType,
    /// Model sizes: DAM-3B (`full`) or the tiny test fixture.
    #[arg(long, value_enum, default_value = "full")]
    config: ConfigArg,
    /// Tokens generated per region (EOS suppressed).
    #[arg(long, default_value_t = 256)]
    new_tokens: usize,
    /// Timed runs (median, min and max are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Untimed runs first (kernel compilation, autotune, allocator warm-up).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Regions of the same image described together (batched vision and decode).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Greedy tokens chosen on the device before the host reads them back (1 = every step);
    /// see `dam::llm::session::SessionOptions::lookahead`.
    #[arg(long, default_value_t = dam::llm::session::DEFAULT_LOOKAHEAD)]
    lookahead: usize,
    /// Left-pad each prompt (masked) to a multiple of this many positions, so the prefill's
    /// attention shapes suit burn-cubecl's tensor-core flash kernel (experimental, 1 = off;
    /// see `dam::llm::session::SessionOptions::prompt_multiple`).
    #[arg(long, default_value_t = dam::llm::session::DEFAULT_PROMPT_MULTIPLE)]
    prompt_multiple: usize,
    /// Round the KV cache's length up to a multiple of this many (masked) slots (1 = exact;
    /// see `dam::llm::session::SessionOptions::cache_multiple`).
    #[arg(long, default_value_t = dam::llm::session::DEFAULT_CACHE_MULTIPLE)]
    cache_multiple: usize,
    /// Instead of the pipeline: time the LLM's matrix products alone (rows 1 and `--batch`),
    /// with the weight in burn's `[in, out]` layout and in PyTorch's `[out, in]` (see
    /// `cli::probe`).
    #[arg(long)]
    probe: bool,
    /// Instead of the pipeline: time the vision tower's operations alone for one view (`--config`
    /// sizes; DAM-3B: 729 tokens, and padded to 768), as burn's ops and as our kernels (see
    /// `cli::probe`).
    #[arg(long)]
    probe_vision: bool,
    /// `--probe-vision`'s rows to time, separated by `;` (row names hold commas): a row runs
    /// when its text `"<op>, <tokens> tokens"` contains one of these (default: every row).
    /// E.g. `--probe-only "one pass, 4 planes;fused-softmax"` (the one-pass flash kernel with
    /// 4 planes a cube, and the CUDA default attention).
    #[arg(long, value_delimiter = ';')]
    probe_only: Vec<String>,
    /// Instead of the pipeline: time every `--matmul` choice on the vision tower's products
    /// (729 tokens at DAM-3B's size) and the LLM prefill's (`--batch` × 247 rows), and check
    /// each against burn's op (see `cli::probe`).
    #[arg(long)]
    probe_matmul: bool,
    /// `--probe-matmul`'s kernels, comma-separated (default: all of them).
    #[arg(long, value_delimiter = ',')]
    probe_kernels: Vec<dam::core::matmul_kernel::MatmulKernel>,
    /// `--probe-matmul`'s products: the vision tower's, the LLM prefill's, or both.
    #[arg(long, default_value = "both", value_parser = ["vision", "prefill", "both"])]
    probe_shapes: String,
    /// `--probe-matmul`'s reference, the product each kernel is checked against: `fusion`
    /// (burn's op, autotuned) or a fixed routine (e.g. `simple-unit`, one kernel to compile per
    /// product — for builds where compiling every autotune candidate is slow, as NVRTC's).
    #[arg(long, default_value = "fusion")]
    probe_reference: dam::core::matmul_kernel::MatmulKernel,
    /// Instead of the pipeline: run each fused decoder kernel (CUDA) and the plain
    /// burn ops it replaces on random inputs, and print their largest difference.
    #[arg(long)]
    check_fused: bool,
    /// Only `--check-fused`'s vision part: each form of the vision attention (and, on CUDA,
    /// the `flash` kernel's tensor-core variant in bf16 against its plain loops) and the
    /// LayerNorm kernel at SigLIP-so400m's shapes; seconds instead of minutes.
    #[arg(long)]
    check_vision: bool,
    /// cuda builds: compile the `flash` vision attention kernel to PTX **without a device**
    /// (sm_80 and sm_90; bf16/f16 on tensor cores, f32/bf16 plain; SigLIP's head_dim 72) into
    /// this folder, and print each form's tensor-core instructions and shared memory; beside
    /// each `.ptx` the same kernel as CUDA C++ (`.cu`, what the NVRTC build compiles).
    #[arg(long, value_name = "DIR")]
    flash_ptx: Option<PathBuf>,
    /// Shapes `--check-fused` uses: `full` adds DAM-3B's LLM widths (needs a GPU's memory);
    /// `small` replaces them by a mid-size config with head_dim 64 and odd widths, for a
    /// software device (Mesa's lavapipe through `--backend wgpu` and `DAM_FUSED_OPS=any`).
    #[arg(long, default_value = "full", value_parser = ["full", "small"])]
    check_shapes: String,
    /// Run the LLM's fused decoder layers where the backend has them (cuda, wgpu); `off` runs
    /// the plain burn-op path (see `dam::llm::fused`).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    fused_ops: String,
    /// Replay recorded decode steps and vision encodes (CUDA graphs) where the backend can;
    /// `off` launches every kernel each time (see `dam::core::graph`).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    cuda_graph: String,
    /// One-row products of the fused layers through our matrix-vector kernel instead of
    /// burn-cubecl's matmul (experimental, off by default; see `dam::llm::fused::set_gemv`).
    #[arg(long, default_value = "off", value_parser = ["on", "off"])]
    gemv: String,
    /// Decode steps of the fused layers through our one-query attention kernel instead of
    /// burn-cubecl's attention (experimental, off by default; see
    /// `dam::llm::fused::set_decode_attention`).
    #[arg(long, default_value = "off", value_parser = ["on", "off"])]
    decode_attention: String,
    /// The vision attention: `auto` is burn's `attention` (the backend picks its kernel);
    /// `materialized` computes the scores with two matmuls and an f32 softmax; `padded` runs
    /// burn's `attention` on shapes its tensor-core flash kernel accepts; `fused-softmax` runs
    /// two matmuls around our one-kernel softmax; `flash` runs the whole attention as one
    /// kernel of ours (experimental); `hand` as our hand-written CUDA kernel (experimental:
    /// the `cuda-nvrtc` build, bf16; elsewhere `fused-softmax`). Default: the library's, `fused-softmax` on
    /// cuda and `auto` elsewhere (see `dam::vision::sdpa`).
    #[arg(long)]
    vision_attention: Option<dam::vision::sdpa::AttentionKernel>,
    /// LayerNorms as burn ops (`ops`) or as our one kernel per row on the cubecl backends
    /// (`kernel`). Default: the library's, `kernel` on cuda and `ops` elsewhere (see
    /// `dam::core::layer_norm_kernel`).
    #[arg(long, value_parser = ["ops", "kernel"])]
    layer_norm: Option<String>,
    /// The row kernels (our LayerNorm and vision softmax): `cached` keeps each row in
    /// registers where it fits, `reread` (default) reads it once per pass (experimental; see
    /// `dam::core::row_kernels::set_cached`).
    #[arg(long, value_parser = ["cached", "reread"])]
    row_kernels: Option<String>,
    /// The `flash` vision attention's passes over the keys: `2` (default) takes the softmax's
    /// statistics first, `1` keeps them as it goes (experimental; see
    /// `dam::vision::flash::set_online`).
    #[arg(long, value_parser = ["1", "2"])]
    flash_passes: Option<String>,
    /// The kernel of the vision tower's products (and, for a cubek routine, the LLM
    /// prefill's) on the cubecl backends: `fusion` (burn's op, default), `autotune`
    /// (burn-cubecl's tuner below burn's fusion), one of cubek's routines by name, or our
    /// hand-written CUDA kernel for the linears (`hand`, or one variant: `hand-64x128x32-s3`,
    /// … — the `cuda-nvrtc` build only, bf16; elsewhere burn's op); or one per kind,
    /// `linear=NAME,scores=NAME` (experimental; see `dam::core::matmul_kernel`).
    #[arg(long, default_value = "fusion")]
    matmul: dam::core::matmul_kernel::MatmulChoice,
    /// After the timed runs: one more generation whose 9th decode step is profiled per stage
    /// of the fused decoder layers (device time; needs `--fused-ops on` on cuda).
    #[arg(long)]
    profile_step: bool,
}

/// The model and inputs, built once.
struct Bench {
    device: Device,
    config: CheckpointConfig,
    processor: ImageProcessor,
    vision: VisionModel,
    /// Replays repeated encodes from a recording (CUDA graphs) where the backend can.
    recorder: VisionRecorder,
    llm: LlamaModel,
    /// Prompt ids with the image sentinel.
    ids: Vec<i64>,
    /// How many prompt ids had to be folded into a small vocabulary.
    clamped_ids: usize,
    /// The loaded weights on the device.
    weights: WeightsOnDevice,
}

/// What the weights take on the device, against what their values need: the difference is
/// layout padding (cubecl pads rows of 2-D buffers on CUDA; `dam_core::Loader` uploads flat
/// to avoid it) — a check that the loader keeps them dense.
#[derive(Clone, Copy, Debug)]
struct WeightsOnDevice {
    params: usize,
    /// `params` × the float type's size.
    value_bytes: u64,
    /// Allocator bytes in use right after building the model, where the backend reports it.
    in_use: Option<u64>,
}

/// One timed run.
#[derive(Clone, Copy, Debug, Default)]
struct RunTimes {
    preprocess: Duration,
    vision: Duration,
    prefill: Duration,
    decode: Duration,
    /// Host time spent queuing the decode forwards (see `dam::llm::session::Timings`).
    decode_enqueue: Duration,
    /// Generated tokens, all regions together.
    tokens: usize,
    /// LLM positions of one region's prompt (text + visual tokens).
    prompt_positions: usize,
    /// KV-cache slots per region (prompt, padding, new tokens, rounded up).
    cache_len: usize,
    /// Regions whose crop differs from the full view (both vision passes ran).
    crops_differ: usize,
    /// Allocator bytes in use at the phase ends (max), where the backend reports it.
    in_use: Option<u64>,
    /// Whether the decode steps replayed a recorded step (CUDA graph).
    recorded: bool,
}

impl RunTimes {
    fn total(&self) -> Duration {
        self.preprocess + self.vision + self.prefill + self.decode
    }
}

/// Median, minimum and maximum of one metric over the timed runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Stat {
    pub(super) median: f64,
    min: f64,
    max: f64,
}

/// Peak memory and where it comes from.
#[derive(Clone, Debug)]
struct MemoryPeak {
    /// What was measured (device allocator or process RSS).
    source: &'static str,
    bytes: Option<u64>,
    /// Current device allocator state at the end, when the backend reports it.
    device_in_use: Option<u64>,
    /// Largest allocator `bytes_in_use` seen at the phase ends of the timed runs (after the
    /// vision sync, after prefill, after the last decode step, with the KV cache alive): a
    /// lower bound of the true peak, where `bytes` (a sum of per-pool peaks) is an upper one.
    in_use_at_phase_ends: Option<u64>,
    /// Largest allocator `bytes_in_use` a monitoring thread saw during one extra, untimed run
    /// (cubecl backends): the tightest lower bound of the true peak we have.
    sampled_peak: Option<SampledPeak>,
}

/// What the monitoring thread saw.
#[derive(Clone, Copy, Debug)]
struct SampledPeak {
    bytes: u64,
    samples: usize,
    run: Duration,
}

/// One extra, untimed run while a second thread reads the allocator's bytes in use as fast as
/// it can (below burn's fusion layer, so it neither waits for nor drains the run's queue). The
/// allocator pools' peak (`pages_peak`) also counts autotuning scratch of the warm-up and
/// pages held by different pools at different times, so it overstates the workload's peak;
/// the sampled maximum is a lower bound that misses only what lives shorter than a sample.
fn sampled_peak(bench: &Bench, image: &RgbImage, masks: &[Mask], args: &Args) -> Result<Option<SampledPeak>> {
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        let device = bench.device.clone();
        if dam::core::device_memory::bytes_in_use(&device).is_none() {
            return Ok(None);
        }
        let stop = AtomicBool::new(false);
        let t = Instant::now();
        let (peak, run) = std::thread::scope(|scope| {
            let monitor = scope.spawn(|| {
                let (mut peak, mut samples) = (0u64, 0usize);
                while !stop.load(Ordering::Relaxed) {
                    if let Some(b) = dam::core::device_memory::bytes_in_use(&device) {
                        peak = peak.max(b);
                        samples += 1;
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
                (peak, samples)
            });
            let run = time_run(bench, image, masks, args);
            stop.store(true, Ordering::Relaxed);
            (monitor.join().unwrap_or((0, 0)), run)
        });
        run?;
        let (bytes, samples) = peak;
        Ok((samples > 0).then_some(SampledPeak {
            bytes,
            samples,
            run: t.elapsed(),
        }))
    }
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    {
        let _ = (bench, image, masks, args);
        Ok(None)
    }
}

/// Runs `bench` with these arguments (the first is the program name, as in `std::env::args_os`).
pub fn main_from(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    crate::parse_and_run(args, |a: Args| bench(&a))
}

fn bench(args: &Args) -> Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if args.new_tokens == 0 {
        bail!("--new-tokens must be at least 1");
    }
    if let Some(dir) = args.json.as_deref().and_then(Path::parent)
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        bail!("--json: folder {} does not exist", dir.display());
    }
    // Before every mode (the probes and checks too): a `batch` line starts from the library's
    // defaults plus what it names.
    apply_switches(args);
    if args.probe {
        let device = device(args)?;
        let config = CheckpointConfig::dam_3b();
        let mut rows = vec![1];
        if args.batch > 1 {
            rows.push(args.batch);
        }
        let table = super::probe::matmul_probe(&device, &config, &rows, 20 * args.runs)?;
        if let Some(path) = &args.json {
            write_json(path, &json!({ "matmul_probe": table }))?;
        }
        return Ok(());
    }
    if args.probe_vision {
        let device = device(args)?;
        let table = super::probe::vision_probe(&device, &checkpoint_config(args)?, 5 * args.runs, &args.probe_only)?;
        if let Some(path) = &args.json {
            write_json(path, &json!({ "vision_probe": table }))?;
        }
        return Ok(());
    }
    if args.probe_matmul {
        let device = device(args)?;
        let kernels = if args.probe_kernels.is_empty() {
            dam::core::matmul_kernel::MatmulKernel::all().collect()
        } else {
            args.probe_kernels.clone()
        };
        let config = checkpoint_config(args)?;
        let table = super::probe::matmul_kernel_probe(
            &device,
            &config,
            &kernels,
            &args.probe_shapes,
            args.batch,
            5 * args.runs,
            args.probe_reference,
        )?;
        if let Some(path) = &args.json {
            write_json(path, &json!({ "matmul_kernel_probe": table }))?;
        }
        return Ok(());
    }
    if args.check_fused {
        return check_fused(args);
    }
    if args.check_vision {
        return check_vision(args);
    }
    if let Some(dir) = &args.flash_ptx {
        return flash_ptx(dir);
    }
    eprintln!(
        "building model: config {}, backend {}, dtype {}, random weights",
        args.config.name(),
        args.backend,
        args.dtype
    );
    let t = Instant::now();
    let bench = build(args)?;
    eprintln!("built in {:.1} s", t.elapsed().as_secs_f64());
    if bench.clamped_ids > 0 {
        eprintln!(
            "note: {} prompt ids are outside the vocabulary of {} and were folded in (id % vocab)",
            bench.clamped_ids, bench.config.llm.vocab_size
        );
    }

    let image = synthetic_image(IMAGE_W, IMAGE_H);
    let masks = ellipse_masks(IMAGE_W, IMAGE_H, args.batch)?;

    let cache_at_start = kernel_cache_entries(args.backend);
    // The first run of each shape compiles and autotunes (or loads both from the kernel cache):
    // its wall time is the cold start.
    let mut warmup_s = Vec::with_capacity(args.warmup);
    for i in 0..args.warmup {
        eprintln!("warm-up {}/{}", i + 1, args.warmup);
        let t = Instant::now();
        time_run(&bench, &image, &masks, args)?;
        warmup_s.push(t.elapsed().as_secs_f64());
        eprintln!("  took {:.1} s", warmup_s[i]);
    }
    let mut runs = Vec::with_capacity(args.runs);
    for i in 0..args.runs {
        eprintln!("run {}/{}", i + 1, args.runs);
        let run = time_run(&bench, &image, &masks, args)?;
        eprintln!(
            "  total {:.1} ms, decode {:.1} tok/s",
            ms(run.total()),
            per_second(run.tokens, run.decode)
        );
        runs.push(run);
    }
    let memory = memory_peak(&bench.device, &runs);
    let mut report = Report::new(args, &bench, &runs, memory);
    report.warmup_s = warmup_s;
    report.kernel_cache_at_start = cache_at_start;
    // The table first: what follows runs the model again.
    report.print();
    if let Some(path) = &args.json {
        write_json(path, &report.to_json())?;
    }
    report.memory.sampled_peak = sampled_peak(&bench, &image, &masks, args)?;
    report.print_sampled_peak();
    if let Some(path) = &args.json {
        write_json(path, &report.to_json())?;
        eprintln!("wrote {}", path.display());
    }
    if args.profile_step {
        profile_step(&bench, &image, &masks, args)?;
    }
    Ok(())
}

/// Sets every process-wide switch the arguments name — and puts back the library's default
/// (or its environment variable) for each one they leave out. `dam-tools batch` runs many
/// benches in one process: a switch left as the previous line set it would time that line's
/// configuration under this one's name (it did, on 2026-11-27: `--row-kernels cached` lines
/// after a `--flash-passes 1` line ran the one-pass flash attention).
fn apply_switches(args: &Args) {
    match args.vision_attention {
        Some(kernel) => dam::vision::sdpa::set_kernel(kernel),
        None => dam::vision::sdpa::reset_kernel(),
    }
    dam::core::matmul_kernel::set_choice(args.matmul);
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    {
        dam::core::graph::set_enabled(args.cuda_graph == "on");
        dam::llm::fused::set_gemv(args.gemv == "on");
        dam::llm::fused::set_decode_attention(args.decode_attention == "on");
        match args.layer_norm.as_deref() {
            Some(layer_norm) => dam::core::layer_norm_kernel::set_enabled(layer_norm == "kernel"),
            None => dam::core::layer_norm_kernel::reset(),
        }
        match args.row_kernels.as_deref() {
            Some(row_kernels) => dam::core::row_kernels::set_cached(row_kernels == "cached"),
            None => dam::core::row_kernels::reset_cached(),
        }
        match args.flash_passes.as_deref() {
            Some(passes) => dam::vision::flash::set_online(passes == "1"),
            None => dam::vision::flash::reset_online(),
        }
    }
}

/// The requested backend, set up with the requested float type.
/// `--check-fused`: the fused decoder kernels against the burn ops they replace, at DAM-3B's
/// LLM widths (1 row, and 2 sequences × 3 positions) and at a small GQA shape.
fn check_fused(args: &Args) -> Result<()> {
    let device = device(args)?;
    if !dam::llm::LlamaModel::fused_ops_available(&device) {
        bail!(
            "--check-fused: the fused ops run on the cuda backend (any cubecl backend with DAM_FUSED_OPS=any), not with DAM_FUSED_OPS=0"
        );
    }
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    {
        let c = CheckpointConfig::dam_3b().llm;
        println!("| shape | op | max abs diff | max abs reference |");
        println!("| --- | --- | ---: | ---: |");
        let mut worst = 0.0f32;
        let tiny = CheckpointConfig::load(&workspace_root().join("tests/fixtures/dam-tiny/checkpoint"))?.llm;
        let mut gqa = tiny.clone();
        gqa.num_key_value_heads = Some(gqa.num_attention_heads / 2);
        // `small`: a mid-size config that lavapipe's buffer limits allow (see `mid_size`).
        let small = args.check_shapes == "small";
        let (big_name, big) = if small {
            ("mid-size GQA", dam::llm::fused::check::mid_size(&tiny))
        } else {
            ("DAM-3B", c.clone())
        };
        let big_dims = [
            big.hidden_size,
            big.num_attention_heads,
            big.num_kv_heads(),
            big.head_dim(),
            big.intermediate_size,
        ];
        let big_decode = format!("{big_name}, decode kernels");
        for (name, config, batch, prompt, experimental) in [
            ("tiny fixture", &tiny, 2, 7, false),
            ("tiny, GQA", &gqa, 2, 5, false),
            (big_name, &big, 1, 9, false),
            // The decode step through the experimental kernels (matrix-vector products for
            // its one row; one-query attention for every sequence).
            ("tiny, GQA, decode kernels", &gqa, 2, 5, true),
            (big_decode.as_str(), &big, 1, 9, true),
        ] {
            dam::llm::fused::set_gemv(experimental);
            dam::llm::fused::set_decode_attention(experimental);
            for c in dam::llm::fused::check::stack_check(config, &device, batch, prompt)? {
                println!(
                    "| {name}, {batch}x{prompt} | {} | {:.3e} | {:.3e} |",
                    c.op, c.max_abs_diff, c.max_abs_ref
                );
                worst = worst.max(c.max_abs_diff / c.max_abs_ref.max(1.0));
            }
        }
        dam::llm::fused::set_gemv(false);
        dam::llm::fused::set_decode_attention(false);
        let (one_row, two_by_three) = (format!("{big_name}, 1 row"), format!("{big_name}, 2x3 rows"));
        for (name, rows, dims) in [
            (one_row.as_str(), [1, 1], big_dims),
            (two_by_three.as_str(), [2, 3], big_dims),
            ("GQA 8/2 heads, 2x5 rows", [2, 5], [64, 8, 2, 8, 96]),
        ] {
            for c in dam::llm::fused::check::self_check(&device, rows, dims) {
                println!("| {name} | {} | {:.3e} | {:.3e} |", c.op, c.max_abs_diff, c.max_abs_ref);
                worst = worst.max(c.max_abs_diff / c.max_abs_ref.max(1.0));
            }
        }
        println!("worst relative difference: {worst:.3e}");

        // The vision attention's forms (dam_vision::sdpa) against burn's attention at
        // SigLIP-so400m's shape (16 heads, 729 positions, head_dim 72), q/k/v at the scale of
        // real activations. Reported, not counted in `worst`: the flash kernels round to f16.
        let vision_attention = vision_attention_check(&device);

        // Recorded (CUDA-graph) paths against the ordinary ones, on the tiny fixture's config
        // with random weights: generated ids, and vision encodes (1st: seen, 2nd: recorded,
        // 3rd and 4th: replayed with new pixels).
        let ckpt = CheckpointConfig::load(&workspace_root().join("tests/fixtures/dam-tiny/checkpoint"))?;
        let mut llm = LlamaModel::random(&ckpt.llm, &device)?;
        let normal = burn::tensor::Distribution::Normal(0.0, 1.0);
        let prompt = burn::tensor::Tensor::<2>::random([9, ckpt.llm.hidden_size], normal, &device);
        // Greedy, the original's sampling defaults (top-k 50) and sampling over all logits
        // (top-k 0), each seeded: recorded steps must choose what the ordinary ones do.
        let samplings = [
            ("greedy", Sampling::Greedy),
            ("sampled, top-k 50", Sampling::from_temperature(0.8, 50, 0.9, 7)),
            ("sampled, all logits", Sampling::from_temperature(0.8, 0, 0.9, 7)),
        ];
        let mut ids_ok = true;
        for (name, sampling) in samplings {
            let mut generate = |fused: bool, graph: bool| -> Result<(Vec<u32>, bool)> {
                llm.set_fused(fused);
                dam::core::graph::set_enabled(graph);
                let options = SessionOptions {
                    max_new_tokens: 16,
                    sampling,
                    eos: vec![EOS],
                    suppress_eos: true,
                    record_logits: false,
                    lookahead: 1,
                    prompt_multiple: 1,
                    cache_multiple: args.cache_multiple,
                };
                let mut session = Session::new(&llm, vec![prompt.clone()], options)?;
                while session.step()?.is_some() {}
                Ok((session.tokens()[0].clone(), session.decode_recorded()))
            };
            let (plain, _) = generate(false, false)?;
            let (fused, _) = generate(true, false)?;
            let (recorded, used) = generate(true, true)?;
            println!("{name}: generated ids, plain:    {plain:?}");
            println!("{name}: generated ids, fused:    {fused:?}");
            println!("{name}: generated ids, recorded: {recorded:?} (recording used: {used})");
            // Where the device cannot record (not CUDA), "recorded" runs the ordinary path.
            ids_ok &= plain == fused && fused == recorded && (used || !dam::core::graph::supported(&device));
        }

        let vision = VisionModel::random(&ckpt, &device)?;
        let recorder = VisionRecorder::new();
        let s = ckpt.vision.image_size;
        let mut vision_worst = 0.0f32;
        for i in 0..4 {
            let pixels = burn::tensor::Tensor::<4>::random([1, 8, s, s], normal, &device);
            let a = recorder.encode(&vision, pixels.clone(), &[true])?;
            let b = vision.encode(pixels, &[true])?;
            let diff = (a - b).abs().max().into_scalar::<f32>();
            println!(
                "vision encode {}: recorder vs direct max abs diff {diff:.3e} (recorded: {})",
                i + 1,
                recorder.has_recordings()
            );
            vision_worst = vision_worst.max(diff);
        }
        dam::core::graph::set_enabled(true);
        println!(
            "recorded paths: ids {} , vision max abs diff {vision_worst:.3e}",
            if ids_ok { "identical" } else { "DIFFER" }
        );
        if let Some(path) = &args.json {
            write_json(
                path,
                &json!({
                    "check_fused_worst_relative": worst,
                    "recorded_ids_identical": ids_ok,
                    "recorded_vision_max_abs_diff": vision_worst,
                    "vision_attention_max_abs_diff": vision_attention,
                }),
            )?;
        }
    }
    Ok(())
}

/// `--flash-ptx DIR`: the flash kernel's PTX (cubecl's LLVM compiler) and CUDA C++ (its C++
/// backend, what the NVRTC build compiles) per form and architecture, and a summary row of the
/// PTX each (see `dam::vision::flash::ptx`).
fn flash_ptx(dir: &Path) -> Result<()> {
    #[cfg(feature = "cuda")]
    {
        use burn::tensor::DType;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        println!(
            "| form | sm | planes | shared bytes | wmma.mma (row.col / row.row) | wmma.load | wmma.store | bar.sync |"
        );
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        // What a launch of each file needs (scripts/flash-outside.py launches them without
        // cubecl): the form, the planes a cube (threads = 32 × planes), the shared bytes.
        let mut summary = Vec::new();
        for (name, dtype, tensor_cores, online) in [
            ("bf16-tensor-cores", DType::BF16, true, false),
            ("f16-tensor-cores", DType::F16, true, false),
            ("bf16-plain", DType::BF16, false, false),
            ("f32-plain", DType::F32, false, false),
            ("online-bf16-tensor-cores", DType::BF16, true, true),
            ("online-f16-tensor-cores", DType::F16, true, true),
            ("online-f32-plain", DType::F32, false, true),
        ] {
            for sm in [80, 90] {
                // In the 48 KiB a cube may take without opting in (every CUDA part since sm_70).
                let form = dam::vision::flash::ptx::FlashForm::new(dtype, 72, tensor_cores, online);
                let out = dam::vision::flash::ptx::flash_ptx(sm, form)
                    .map_err(|e| anyhow!("flash kernel, {name}, sm_{sm}: {e}"))?;
                let path = dir.join(format!("flash-{name}-sm{sm}.ptx"));
                std::fs::write(&path, &out.ptx).with_context(|| format!("writing {}", path.display()))?;
                // The same kernel as the NVRTC build's C++ (scripts/nvrtc-compile.py compiles it).
                let cpp = dam::vision::flash::ptx::flash_cpp(sm, form)
                    .map_err(|e| anyhow!("flash kernel as C++, {name}, sm_{sm}: {e}"))?;
                let path = dir.join(format!("flash-{name}-sm{sm}.cu"));
                std::fs::write(&path, &cpp.source).with_context(|| format!("writing {}", path.display()))?;
                summary.push(json!({"name": format!("flash-{name}-sm{sm}"), "form": name, "sm": sm,
                    "dtype": format!("{dtype:?}"), "tensor_cores": tensor_cores, "online": online,
                    "head_dim": 72, "planes": out.planes, "shared_bytes": out.shared_memory_bytes}));
                let count = |needle: &str| out.ptx.matches(needle).count();
                println!(
                    "| {name} | {sm} | {} | {} | {} ({} / {}) | {} | {} | {} |",
                    out.planes,
                    out.shared_memory_bytes,
                    count("wmma.mma.sync"),
                    count("wmma.mma.sync.aligned.row.col"),
                    count("wmma.mma.sync.aligned.row.row"),
                    count("wmma.load"),
                    count("wmma.store"),
                    count("bar.sync") + count("barrier.sync"),
                );
            }
        }
        write_json(&dir.join("summary.json"), &Value::Array(summary))?;
        Ok(())
    }
    #[cfg(not(feature = "cuda"))]
    {
        bail!(
            "--flash-ptx {}: a cuda build compiles PTX (--features cuda)",
            dir.display()
        )
    }
}

/// `--check-vision`: [`vision_attention_check`] alone (cubecl backends).
fn check_vision(args: &Args) -> Result<()> {
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    {
        let checks = vision_attention_check(&device(args)?);
        if let Some(path) = &args.json {
            write_json(path, &json!({ "vision_attention_max_abs_diff": checks }))?;
        }
        Ok(())
    }
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    {
        bail!(
            "--check-vision: the vision kernels run on the cuda and wgpu backends ({})",
            args.backend
        )
    }
}

/// `--check-fused`: each form of the vision attention against burn's `attention` at DAM-3B's
/// vision shape; returns the largest difference per form.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn vision_attention_check(device: &Device) -> serde_json::Value {
    use dam::vision::sdpa;
    let normal = burn::tensor::Distribution::Normal(0.0, 2.0);
    let shape = [1, 16, 729, 72];
    let [q, k, v] = [(); 3].map(|_| burn::tensor::Tensor::<4>::random(shape, normal, device));
    let reference = burn::tensor::module::attention(q.clone(), k.clone(), v.clone(), None, None, Default::default());
    let size = reference.clone().abs().max().into_scalar::<f32>();
    let mut out = serde_json::Map::new();
    // The row kernels' two variants (`dam::core::row_kernels::set_cached`): re-reading the row,
    // then the row kept in registers; they must agree exactly.
    dam::core::row_kernels::set_cached(false);
    let fused_reread = sdpa::fused_softmax(q.clone(), k.clone(), v.clone(), None);
    dam::core::row_kernels::set_cached(true);
    let fused_cached = sdpa::fused_softmax(q.clone(), k.clone(), v.clone(), None);
    dam::core::row_kernels::reset_cached();
    for (name, form) in [
        (
            "materialized",
            sdpa::materialized(q.clone(), k.clone(), v.clone(), None),
        ),
        ("padded", sdpa::padded(q.clone(), k.clone(), v.clone(), None)),
        ("fused-softmax", fused_reread),
        ("fused-softmax, rows cached", fused_cached),
        ("flash", sdpa::flash(q.clone(), k.clone(), v.clone(), None)),
        ("flash, one pass", {
            dam::vision::flash::set_online(true);
            let o = sdpa::flash(q.clone(), k.clone(), v.clone(), None);
            dam::vision::flash::reset_online();
            o
        }),
    ] {
        let diff = (form - reference.clone()).abs().max().into_scalar::<f32>();
        println!(
            "vision attention {shape:?}, {name} vs burn's attention: max abs diff {diff:.3e} (max abs {size:.3e})"
        );
        out.insert(name.into(), json!(diff));
    }
    // The one-kernel attention in bf16 where the device has it (CUDA): its tensor-core
    // variant against its plain-loop variant (tested on lavapipe) and against the materialised
    // form in bf16 (the rounding points it follows). Both differences are bf16 roundings
    // (≈ 4e-3 relative) at most; a fragment-layout mistake would show as O(1).
    if dam::core::switch::cuda_device(device) {
        use burn::tensor::FloatDType;
        let [q, k, v] = [q, k, v].map(|x| x.cast(FloatDType::BF16));
        let flash = |tensor_cores: bool, online: bool| {
            dam::vision::flash::set_tensor_cores(tensor_cores);
            dam::vision::flash::set_online(online);
            let o = sdpa::flash(q.clone(), k.clone(), v.clone(), None).cast(FloatDType::F32);
            dam::vision::flash::reset_online();
            dam::vision::flash::reset_tensor_cores();
            o
        };
        let (cores, plain) = (flash(true, false), flash(false, false));
        // One pass over the keys: its own rounding points (see `dam::vision::flash`), so
        // against the materialised form a little further than the two-pass kernel.
        let (online_cores, online_plain) = (flash(true, true), flash(false, true));
        // The hand-written kernel (PyTorch flash SDPA's rounding points), where it runs.
        let hand_name = if dam::vision::flash::hand_available(device) {
            "hand bf16 vs materialized bf16"
        } else {
            "hand bf16 (not available here: fused-softmax ran) vs materialized bf16"
        };
        let hand = sdpa::hand(q.clone(), k.clone(), v.clone(), None).cast(FloatDType::F32);
        let materialized = sdpa::materialized(q, k, v, None).cast(FloatDType::F32);
        let size = materialized.clone().abs().max().into_scalar::<f32>();
        for (name, a, b) in [
            ("flash bf16, tensor cores vs plain loops", cores.clone(), plain.clone()),
            (
                "flash bf16, tensor cores vs materialized bf16",
                cores,
                materialized.clone(),
            ),
            (
                "flash bf16, plain loops vs materialized bf16",
                plain,
                materialized.clone(),
            ),
            (
                "flash bf16 one pass, tensor cores vs plain loops",
                online_cores.clone(),
                online_plain.clone(),
            ),
            (
                "flash bf16 one pass, tensor cores vs materialized bf16",
                online_cores,
                materialized.clone(),
            ),
            (
                "flash bf16 one pass, plain loops vs materialized bf16",
                online_plain,
                materialized.clone(),
            ),
            (hand_name, hand, materialized),
        ] {
            let diff = (a - b).abs().max().into_scalar::<f32>();
            println!("vision attention {shape:?}, {name}: max abs diff {diff:.3e} (max abs {size:.3e})");
            out.insert(name.into(), json!(diff));
        }
    }
    // The one-kernel LayerNorm (dam::core::layer_norm_kernel) at SigLIP's shape, offset
    // activations as a residual stream has them.
    let d = 1152;
    let norm = dam::core::nn::LayerNorm {
        weight: burn::module::Param::from_tensor(burn::tensor::Tensor::random([d], normal, device)),
        bias: burn::module::Param::from_tensor(burn::tensor::Tensor::random([d], normal, device)),
        eps: 1e-6,
    };
    let x = burn::tensor::Tensor::<3>::random([1, 729, d], normal, device) + 4.0;
    dam::core::layer_norm_kernel::set_enabled(true);
    dam::core::row_kernels::set_cached(false);
    let ours = norm.forward(x.clone());
    dam::core::row_kernels::set_cached(true);
    let ours_cached = norm.forward(x.clone());
    dam::core::row_kernels::reset_cached();
    dam::core::layer_norm_kernel::set_enabled(false);
    let reference = norm.forward(x);
    dam::core::layer_norm_kernel::reset();
    let size = reference.clone().abs().max().into_scalar::<f32>();
    for (name, ours) in [
        ("layer_norm_kernel", ours),
        ("layer_norm_kernel, rows cached", ours_cached),
    ] {
        let diff = (ours - reference.clone()).abs().max().into_scalar::<f32>();
        println!("layer norm [1, 729, {d}], {name} vs burn ops: max abs diff {diff:.3e} (max abs {size:.3e})");
        out.insert(name.into(), json!(diff));
    }
    serde_json::Value::Object(out)
}

/// The `flash` vision attention's passes over the keys (`dam::vision::flash::online`; 2 where
/// the kernel is not built).
fn flash_passes() -> usize {
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    {
        if dam::vision::flash::online() { 1 } else { 2 }
    }
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    {
        2
    }
}

/// Whether the row kernels keep rows in registers (`dam::core::row_kernels`; GPU builds only).
fn row_kernels_cached() -> bool {
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    {
        dam::core::row_kernels::cached()
    }
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    {
        false
    }
}

/// Whether LayerNorms on `device` run `dam::core::layer_norm_kernel` (GPU builds only).
fn layer_norm_kernel_on(device: &Device) -> bool {
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    {
        dam::core::layer_norm_kernel::enabled(device)
    }
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    {
        let _ = device;
        false
    }
}

fn device(args: &Args) -> Result<Device> {
    args.backend
        .configured_device(args.dtype)
        .with_context(|| format!("cannot set up {} with {}", args.backend, args.dtype))
}

/// `--config`: DAM-3B's sizes or the tiny fixture's.
fn checkpoint_config(args: &Args) -> Result<CheckpointConfig> {
    Ok(match args.config {
        ConfigArg::Full => CheckpointConfig::dam_3b(),
        ConfigArg::Tiny => {
            let dir = workspace_root().join("tests/fixtures/dam-tiny/checkpoint");
            CheckpointConfig::load(&dir).with_context(|| format!("cannot read the tiny config in {}", dir.display()))?
        }
    })
}

/// Builds the configured model with random weights on a seeded device.
fn build(args: &Args) -> Result<Bench> {
    let device = device(args)?;
    device.seed(0);
    let config = checkpoint_config(args)?;
    let processor = ImageProcessor::from_config(&config.preprocessor)?;
    let vision = VisionModel::random(&config, &device)?;
    let mut llm = LlamaModel::random(&config.llm, &device)?;
    llm.set_fused(args.fused_ops == "on");
    sync(&device)?;
    let params = vision.num_params() + llm.num_params();
    let elem = burn::tensor::DType::from(burn::tensor::FloatDType::from(args.dtype)).size();
    let weights = WeightsOnDevice {
        params,
        value_bytes: (params * elem) as u64,
        in_use: in_use_now(&device),
    };
    let (ids, clamped_ids) = prompt_ids(config.llm.vocab_size);
    Ok(Bench {
        device,
        config,
        processor,
        vision,
        recorder: VisionRecorder::new(),
        llm,
        ids,
        clamped_ids,
        weights,
    })
}

/// The workspace this binary was built from, or the current folder when the binary was copied
/// elsewhere (e.g. to a GPU machine, run from a checkout's root).
fn workspace_root() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if built.join("tests/fixtures").is_dir() {
        built
    } else {
        PathBuf::from(".")
    }
}

/// DAM-3B's prompt ids; ids at or above `vocab` (small test vocabularies) become `id % vocab`.
fn prompt_ids(vocab: usize) -> (Vec<i64>, usize) {
    let vocab = vocab as i64;
    let mut clamped = 0;
    let mut fold = |id: i64| {
        if id >= vocab {
            clamped += 1;
            id % vocab
        } else {
            id
        }
    };
    let mut ids: Vec<i64> = PROMPT_PREFIX.iter().map(|&id| fold(id)).collect();
    ids.push(dam::llm::tokenizer::IMAGE_TOKEN_INDEX);
    ids.extend(PROMPT_SUFFIX.iter().map(|&id| fold(id)));
    (ids, clamped)
}

/// A deterministic test picture: smooth colour gradients, a few shapes and pixel noise (so
/// the resizes see texture, not flat areas).
fn synthetic_image(width: u32, height: u32) -> RgbImage {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let stripes = if (x / 40 + y / 40) % 2 == 0 { 30.0 } else { 0.0 };
        let disc = if (fx - 0.3).powi(2) + (fy - 0.6).powi(2) < 0.02 {
            80.0
        } else {
            0.0
        };
        let noise = (rng.next() % 32) as f32 - 16.0;
        let channel = |base: f32| (base + stripes + disc + noise).clamp(0.0, 255.0) as u8;
        image::Rgb([
            channel(200.0 * fx + 20.0),
            channel(180.0 * fy + 30.0),
            channel(120.0 * (1.0 - fx) * fy + 60.0),
        ])
    })
}

/// `n` different ellipses inside the image (none covers it, so the focal crop differs from
/// the full view and both vision passes run).
fn ellipse_masks(width: u32, height: u32, n: usize) -> Result<Vec<Mask>> {
    (0..n)
        .map(|i| {
            // Spread the centres over a 4×4 grid, then shift them a little per lap.
            let lap = (i / 16) as f64;
            let (gx, gy) = ((i % 4) as f64, ((i / 4) % 4) as f64);
            let cx = width as f64 * (0.2 + 0.2 * gx + 0.01 * lap);
            let cy = height as f64 * (0.2 + 0.2 * gy + 0.01 * lap);
            let rx = width as f64 * (0.08 + 0.02 * ((i % 3) as f64));
            let ry = height as f64 * (0.06 + 0.02 * ((i % 5) as f64));
            let data = (0..height)
                .flat_map(|y| (0..width).map(move |x| (x, y)))
                .map(|(x, y)| ((x as f64 - cx) / rx).powi(2) + ((y as f64 - cy) / ry).powi(2) <= 1.0)
                .collect();
            Mask::from_vec(width, height, data).map_err(|e| anyhow!("synthetic mask {i}: {e}"))
        })
        .collect()
}

/// `--profile-step`: the fused layers' stages during one decode step (the 9th), device time
/// per stage summed over the layers, beside the step's wall time.
fn profile_step(bench: &Bench, image: &RgbImage, masks: &[Mask], args: &Args) -> Result<()> {
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    {
        use dam::llm::fused::profile;
        if !bench.llm.fused() {
            bail!("--profile-step profiles the fused decoder layers: use --fused-ops on with cuda");
        }
        let device = &bench.device;
        let prompts = focal_prompts(image, masks, &bench.processor)?;
        let views: Vec<&FocalPrompt> = prompts.iter().collect();
        let (pixels, crop_flags) = stack_focal_prompts(&views, device)?;
        let tokens = bench.recorder.encode(&bench.vision, pixels, &crop_flags)?;
        let embeds = split_views(tokens)
            .into_iter()
            .map(|block| splice(&bench.llm, &bench.ids, &[block]))
            .collect::<Result<Vec<_>, _>>()?;
        let options = SessionOptions {
            max_new_tokens: 16,
            sampling: Sampling::Greedy,
            eos: vec![EOS],
            suppress_eos: true,
            record_logits: false,
            lookahead: 1,
            prompt_multiple: args.prompt_multiple,
            cache_multiple: args.cache_multiple,
        };
        // The stages are timed on the ordinary (unrecorded) step: a replay runs them as one
        // dispatch, with nothing to bracket.
        let recording = dam::core::graph::enabled();
        dam::core::graph::set_enabled(false);
        let session = Session::new(&bench.llm, embeds, options);
        dam::core::graph::set_enabled(recording);
        let mut session = session?;
        for _ in 0..8 {
            session.step()?;
        }
        sync(device)?;
        // Unprofiled reference step, then the profiled one.
        let t = Instant::now();
        session.step()?;
        sync(device)?;
        let plain = t.elapsed();
        profile::begin();
        let t = Instant::now();
        session.step()?;
        sync(device)?;
        let wall = t.elapsed();
        let stages = profile::end();
        let layers = bench.config.llm.num_hidden_layers;
        println!();
        println!(
            "decode step profile (batch {}, one step; {layers} layers): unprofiled step {:.3} ms, profiled step {:.3} ms wall",
            masks.len(),
            ms(plain),
            ms(wall)
        );
        println!("| stage | device time, all layers (ms) | per layer (µs) | calls |");
        println!("| --- | ---: | ---: | ---: |");
        let mut sum = Duration::ZERO;
        for st in &stages {
            sum += st.total;
            println!(
                "| {} | {:.3} | {:.1} | {} |",
                st.stage,
                ms(st.total),
                st.total.as_secs_f64() * 1e6 / st.calls.max(1) as f64,
                st.calls
            );
        }
        println!("| sum of the layers' stages | {:.3} | | |", ms(sum));
        println!(
            "| rest of the step (embedding, final norm, lm_head, argmax, read-back, host) | {:.3} | | |",
            ms(wall.saturating_sub(sum))
        );
        Ok(())
    }
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    {
        let _ = (bench, image, masks, args);
        bail!("--profile-step needs a build with the cuda or wgpu feature")
    }
}

/// One pass over the four phases for all masks, with `args`' generation settings
/// (`--new-tokens`, `--lookahead`, `--prompt-multiple`); the device is synchronised at each
/// phase's end.
fn time_run(bench: &Bench, image: &RgbImage, masks: &[Mask], args: &Args) -> Result<RunTimes> {
    let device = &bench.device;

    let t = Instant::now();
    let prompts: Vec<FocalPrompt> = focal_prompts(image, masks, &bench.processor)?;
    let preprocess = t.elapsed();

    let t = Instant::now();
    let views: Vec<&FocalPrompt> = prompts.iter().collect();
    let (pixels, crop_flags) = stack_focal_prompts(&views, device)?;
    let tokens = bench.recorder.encode(&bench.vision, pixels, &crop_flags)?;
    sync(device)?;
    let vision = t.elapsed();
    let mut in_use = in_use_now(device);

    let t = Instant::now();
    let embeds = split_views(tokens)
        .into_iter()
        .map(|block| splice(&bench.llm, &bench.ids, &[block]))
        .collect::<Result<Vec<_>, _>>()?;
    let prompt_positions = embeds[0].dims()[0];
    let options = SessionOptions {
        max_new_tokens: args.new_tokens,
        sampling: Sampling::Greedy,
        eos: vec![EOS],
        suppress_eos: true,
        record_logits: false,
        lookahead: args.lookahead,
        prompt_multiple: args.prompt_multiple,
        cache_multiple: args.cache_multiple,
    };
    let mut session = Session::new(&bench.llm, embeds, options)?;
    sync(device)?;
    let prefill = t.elapsed();
    in_use = in_use.max(in_use_now(device));

    let t = Instant::now();
    while session.step()?.is_some() {}
    sync(device)?;
    let decode = t.elapsed();
    in_use = in_use.max(in_use_now(device));

    let recorded = session.decode_recorded();
    let tokens: usize = session.tokens().iter().map(Vec::len).sum();
    if tokens != args.new_tokens * masks.len() {
        bail!(
            "expected {} generated tokens, got {tokens}",
            args.new_tokens * masks.len()
        );
    }
    Ok(RunTimes {
        preprocess,
        vision,
        prefill,
        decode,
        decode_enqueue: session.timings().decode_enqueue,
        tokens,
        prompt_positions,
        cache_len: session.cache_len(),
        crops_differ: crop_flags.iter().filter(|&&d| d).count(),
        in_use,
        recorded,
    })
}

fn in_use_now(device: &Device) -> Option<u64> {
    device.memory_pool_usage().map(|u| u.bytes_in_use)
}

pub(super) fn sync(device: &Device) -> Result<()> {
    device.sync().map_err(|e| anyhow!("device error: {e:?}"))
}

/// Median (mean of the two middle values for an even count), min and max.
pub(super) fn summarise(values: &[f64]) -> Stat {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Stat {
        median,
        min: v[0],
        max: v[n - 1],
    }
}

/// LLM forwards of the decode phase for `tokens` new tokens per region: the first token comes
/// from the prefill's logits, so `tokens - 1` (each step also picks a token on the device).
fn decode_forwards(tokens: usize) -> usize {
    tokens.saturating_sub(1).max(1)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn per_second(count: usize, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { count as f64 / s } else { 0.0 }
}

/// The device allocator's peak where the backend reports its pools (cubecl: CUDA, wgpu), else
/// the process's peak resident set size.
fn memory_peak(device: &Device, runs: &[RunTimes]) -> MemoryPeak {
    let in_use_at_phase_ends = runs.iter().filter_map(|r| r.in_use).max();
    let device_in_use = device.memory_pool_usage().map(|u| u.bytes_in_use);
    let pools_peak: Option<u64> = device
        .memory_pool_report()
        .filter(|pools| !pools.is_empty())
        .map(|pools| pools.iter().map(|p| p.pages_peak * p.page_size).sum());
    match pools_peak {
        Some(bytes) => MemoryPeak {
            source: "device pools' peak reserved pages (sum of pages_peak × page_size)",
            bytes: Some(bytes),
            device_in_use,
            in_use_at_phase_ends,
            sampled_peak: None,
        },
        None => MemoryPeak {
            source: "process peak RSS (VmHWM)",
            bytes: peak_rss(),
            device_in_use,
            in_use_at_phase_ends,
            sampled_peak: None,
        },
    }
}

/// `VmHWM` of /proc/self/status, in bytes (Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// What the device is, in words.
fn device_description(backend: Backend, device: &Device) -> String {
    match backend {
        Backend::Cpu => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            format!("{} ({threads} threads), burn flex", cpu_model())
        }
        Backend::Cuda(_) => format!("{device:?}, kernels compiled by {}", Backend::cuda_compiler()),
        Backend::Wgpu => format!("{device:?}"),
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Today's UTC date and time, ISO 8601, from the system clock (civil-from-days).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// What the kernel cache held before the first run (`(autotune decisions, all entries)`), where
/// there is one: whether this process started cold. Printed on stderr with the database's path.
fn kernel_cache_entries(backend: Backend) -> Option<(u64, u64)> {
    #[cfg(feature = "kernel-cache")]
    if backend != Backend::Cpu {
        let contents = dam::KernelCache::contents();
        let all = contents.total();
        let autotune = contents.entries("autotune");
        eprintln!(
            "kernel cache {}: {autotune} autotune decisions, {all} entries in all",
            contents.database.display()
        );
        return Some((autotune, all));
    }
    let _ = backend;
    None
}

/// Everything reported, in display order.
struct Report {
    config: &'static str,
    backend: String,
    dtype: String,
    device: String,
    date: String,
    batch: usize,
    new_tokens: usize,
    lookahead: usize,
    prompt_multiple: usize,
    cache_multiple: usize,
    /// Whether the LLM ran its fused decoder layers.
    fused_ops: bool,
    /// Whether the fused layers' one-row products ran our matrix-vector kernel.
    gemv: bool,
    /// Whether decode steps ran our one-query attention kernel.
    decode_attention: bool,
    /// The form of the vision attention.
    vision_attention: dam::vision::sdpa::AttentionKernel,
    /// Whether LayerNorms ran our kernel.
    layer_norm_kernel: bool,
    /// Whether our row kernels kept each row in registers.
    row_kernels_cached: bool,
    /// The `flash` vision attention's passes over the keys (1 or 2).
    flash_passes: usize,
    /// The matmul kernels of the linears and the attention's score products.
    matmul: dam::core::matmul_kernel::MatmulChoice,
    /// Whether every timed run's decode replayed a recorded step (CUDA graph).
    recorded: bool,
    /// Whether the vision encodes were replayed from a recording by the end.
    vision_recorded: bool,
    runs: usize,
    warmup: usize,
    prompt_positions: usize,
    cache_len: usize,
    crops_differ: usize,
    clamped_ids: usize,
    weights: WeightsOnDevice,
    /// `(key with unit, label, stat)`.
    metrics: Vec<(&'static str, &'static str, Stat)>,
    memory: MemoryPeak,
    /// Wall time of each warm-up run (the first one compiles and autotunes).
    warmup_s: Vec<f64>,
    /// [`kernel_cache_entries`] before the first run.
    kernel_cache_at_start: Option<(u64, u64)>,
}

impl Report {
    fn new(args: &Args, bench: &Bench, runs: &[RunTimes], memory: MemoryPeak) -> Self {
        let stat = |f: &dyn Fn(&RunTimes) -> f64| summarise(&runs.iter().map(f).collect::<Vec<_>>());
        let batch = args.batch;
        let metrics = vec![
            ("preprocessing_ms", "preprocessing (ms)", stat(&|r| ms(r.preprocess))),
            ("vision_ms", "vision (ms)", stat(&|r| ms(r.vision))),
            ("prefill_ms", "prefill (ms)", stat(&|r| ms(r.prefill))),
            ("decode_ms", "decode (ms)", stat(&|r| ms(r.decode))),
            (
                "decode_tokens_per_s",
                "decode (tok/s, all regions)",
                stat(&|r| per_second(r.tokens, r.decode)),
            ),
            (
                "decode_ms_per_forward",
                "decode (ms per forward)",
                stat(&|r| ms(r.decode) / decode_forwards(r.tokens / batch) as f64),
            ),
            (
                "decode_enqueue_ms_per_forward",
                "  of which host queuing (ms)",
                stat(&|r| ms(r.decode_enqueue) / decode_forwards(r.tokens / batch) as f64),
            ),
            ("total_ms", "total (ms)", stat(&|r| ms(r.total()))),
            ("regions_per_s", "regions/s", stat(&|r| per_second(batch, r.total()))),
        ];
        Self {
            config: args.config.name(),
            backend: args.backend.to_string(),
            dtype: args.dtype.to_string(),
            device: device_description(args.backend, &bench.device),
            date: utc_now(),
            batch,
            new_tokens: args.new_tokens,
            lookahead: args.lookahead,
            prompt_multiple: args.prompt_multiple,
            cache_multiple: args.cache_multiple,
            fused_ops: bench.llm.fused(),
            gemv: bench.llm.fused() && args.gemv == "on",
            decode_attention: bench.llm.fused() && args.decode_attention == "on",
            vision_attention: dam::vision::sdpa::kernel_for(&bench.device),
            layer_norm_kernel: layer_norm_kernel_on(&bench.device),
            row_kernels_cached: row_kernels_cached(),
            flash_passes: flash_passes(),
            matmul: dam::core::matmul_kernel::choice_on(&bench.device),
            recorded: !runs.is_empty() && runs.iter().all(|r| r.recorded),
            vision_recorded: bench.recorder.has_recordings(),
            runs: args.runs,
            warmup: args.warmup,
            prompt_positions: runs[0].prompt_positions,
            cache_len: runs[0].cache_len,
            crops_differ: runs[0].crops_differ,
            clamped_ids: bench.clamped_ids,
            weights: bench.weights,
            metrics,
            memory,
            warmup_s: Vec::new(),
            kernel_cache_at_start: None,
        }
    }

    fn print(&self) {
        println!(
            "DAM bench — config {}, backend {}, dtype {}, batch {}, {} new tokens, lookahead {}, fused decoder ops {}{}{}, recorded decode step {}, recorded vision encode {}{}{}{}{}, median of {} after {} warm-up",
            self.config,
            self.backend,
            self.dtype,
            self.batch,
            self.new_tokens,
            self.lookahead,
            if self.fused_ops { "on" } else { "off" },
            if self.gemv { " + gemv kernel" } else { "" },
            if self.decode_attention {
                " + decode-attention kernel"
            } else {
                ""
            },
            if self.recorded { "yes" } else { "no" },
            if self.vision_recorded { "yes" } else { "no" },
            match self.vision_attention {
                dam::vision::sdpa::AttentionKernel::Auto => String::new(),
                dam::vision::sdpa::AttentionKernel::Flash => format!(
                    ", vision attention flash ({} pass{})",
                    self.flash_passes,
                    if self.flash_passes == 1 { "" } else { "es" }
                ),
                other => format!(", vision attention {}", other.name()),
            },
            if self.layer_norm_kernel {
                ", layer-norm kernel"
            } else {
                ""
            },
            if self.row_kernels_cached {
                ", row kernels cached"
            } else {
                ""
            },
            if self.matmul == Default::default() {
                String::new()
            } else {
                format!(", matmul {}", self.matmul.name())
            },
            self.runs,
            self.warmup
        );
        println!("device: {}", self.device);
        println!("date:   {}", self.date);
        println!(
            "prompt: {} positions per region{}, KV cache {} slots; {}/{} regions with a differing crop (both vision passes){}",
            self.prompt_positions,
            if self.prompt_multiple > 1 {
                format!(" (left-padded to a multiple of {})", self.prompt_multiple)
            } else {
                String::new()
            },
            self.cache_len,
            self.crops_differ,
            self.batch,
            if self.clamped_ids > 0 {
                format!("; {} ids folded into the vocabulary", self.clamped_ids)
            } else {
                String::new()
            }
        );
        println!();
        println!("| {:<28} | {:>12} | {:>12} | {:>12} |", "phase", "median", "min", "max");
        println!("|{:-<30}|{:->14}|{:->14}|{:->14}|", "", "", "", "");
        for (_, label, s) in &self.metrics {
            println!(
                "| {label:<28} | {:>12} | {:>12} | {:>12} |",
                fmt_value(s.median),
                fmt_value(s.min),
                fmt_value(s.max)
            );
        }
        let peak = self
            .memory
            .bytes
            .map_or_else(|| "not available".to_string(), |b| format!("{:.2} GiB", gib(b)));
        println!();
        println!("peak memory: {peak} — {}", self.memory.source);
        if let Some(b) = self.memory.in_use_at_phase_ends {
            println!("device memory in use at phase ends (max): {:.2} GiB", gib(b));
        }
        if let Some(b) = self.memory.device_in_use {
            println!("device memory in use at the end: {:.2} GiB", gib(b));
        }
        let w = self.weights;
        if let Some(b) = w.in_use {
            println!(
                "weights on the device: {:.3} GiB in use for {:.3} GiB of values ({} parameters)",
                gib(b),
                gib(w.value_bytes),
                w.params
            );
        }
        if let Some(first) = self.warmup_s.first() {
            let cache = match self.kernel_cache_at_start {
                Some((0, _)) => ", kernel cache empty at start".to_string(),
                Some((autotune, all)) => {
                    format!(", kernel cache at start: {autotune} autotune decisions, {all} entries")
                }
                None => String::new(),
            };
            println!("first warm-up run (compiles and autotunes): {first:.1} s{cache}");
        }
    }

    fn print_sampled_peak(&self) {
        if let Some(p) = self.memory.sampled_peak {
            println!(
                "device memory in use, sampled peak: {:.2} GiB ({} samples over one extra untimed run of {:.1} s)",
                gib(p.bytes),
                p.samples,
                p.run.as_secs_f64()
            );
        }
    }

    fn to_json(&self) -> Value {
        let mut phases = serde_json::Map::new();
        for (key, _, s) in &self.metrics {
            phases.insert(
                (*key).to_string(),
                json!({ "median": s.median, "min": s.min, "max": s.max }),
            );
        }
        json!({
            "date": self.date,
            "config": self.config,
            "backend": self.backend,
            "dtype": self.dtype,
            "device": self.device,
            "batch": self.batch,
            "new_tokens": self.new_tokens,
            "lookahead": self.lookahead,
            "prompt_multiple": self.prompt_multiple,
            "cache_multiple": self.cache_multiple,
            "fused_ops": self.fused_ops,
            "gemv": self.gemv,
            "decode_attention": self.decode_attention,
            "vision_attention": self.vision_attention.name(),
            "layer_norm_kernel": self.layer_norm_kernel,
            "row_kernels_cached": self.row_kernels_cached,
            "flash_passes": self.flash_passes,
            "matmul": self.matmul.name(),
            "recorded_decode_step": self.recorded,
            "recorded_vision_encode": self.vision_recorded,
            "runs": self.runs,
            "warmup": self.warmup,
            "image_size_px": [IMAGE_W, IMAGE_H],
            "prompt_positions": self.prompt_positions,
            "cache_len": self.cache_len,
            "regions_with_differing_crop": self.crops_differ,
            "prompt_ids_folded_into_vocab": self.clamped_ids,
            "phases": phases,
            "peak_memory_gib": self.memory.bytes.map(gib),
            "peak_memory_source": self.memory.source,
            "device_memory_in_use_at_end_gib": self.memory.device_in_use.map(gib),
            "device_memory_in_use_at_phase_ends_max_gib": self.memory.in_use_at_phase_ends.map(gib),
            "device_memory_in_use_sampled_peak_gib": self.memory.sampled_peak.map(|p| gib(p.bytes)),
            "parameters": self.weights.params,
            "weight_values_gib": gib(self.weights.value_bytes),
            "weights_in_use_gib": self.weights.in_use.map(gib),
            "warmup_s": self.warmup_s,
            "kernel_cache_autotune_entries_at_start": self.kernel_cache_at_start.map(|c| c.0),
            "kernel_cache_entries_at_start": self.kernel_cache_at_start.map(|c| c.1),
        })
    }
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

/// A small deterministic generator for the image noise.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_odd_and_even_counts() {
        assert_eq!(
            summarise(&[3.0, 1.0, 2.0]),
            Stat {
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        assert_eq!(summarise(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
    }

    #[test]
    fn prompt_has_the_dam_3b_structure() {
        let (ids, clamped) = prompt_ids(32_000);
        assert_eq!((ids.len(), clamped), (52, 0));
        assert_eq!(ids[35], dam::llm::tokenizer::IMAGE_TOKEN_INDEX);
        let (small, clamped) = prompt_ids(512);
        assert!(clamped > 0 && small.iter().all(|&i| i < 512));
    }

    /// What one `dam-tools batch` line switches on is off again for the next line that does
    /// not name it (the vision attention on every build; the GPU-only switches where built).
    #[test]
    fn a_bench_line_leaves_no_switch_to_the_next() {
        let plain = Args::try_parse_from(["bench", "--backend", "cpu"]).unwrap();
        let device = device(&plain).unwrap();
        apply_switches(&plain);
        let default_attention = dam::vision::sdpa::kernel_for(&device);
        let other = if default_attention == dam::vision::sdpa::AttentionKernel::Materialized {
            "auto"
        } else {
            "materialized"
        };
        let set = Args::try_parse_from([
            "bench",
            "--backend",
            "cpu",
            "--vision-attention",
            other,
            #[cfg(any(feature = "cuda", feature = "wgpu"))]
            "--row-kernels",
            #[cfg(any(feature = "cuda", feature = "wgpu"))]
            "cached",
            #[cfg(any(feature = "cuda", feature = "wgpu"))]
            "--flash-passes",
            #[cfg(any(feature = "cuda", feature = "wgpu"))]
            "1",
        ])
        .unwrap();
        apply_switches(&set);
        assert_eq!(dam::vision::sdpa::kernel_for(&device).name(), other);
        #[cfg(any(feature = "cuda", feature = "wgpu"))]
        assert!(dam::core::row_kernels::cached() && dam::vision::flash::online());
        apply_switches(&plain);
        assert_eq!(dam::vision::sdpa::kernel_for(&device), default_attention);
        #[cfg(any(feature = "cuda", feature = "wgpu"))]
        assert!(!dam::core::row_kernels::cached() && !dam::vision::flash::online());
    }

    #[test]
    fn masks_are_partial_and_distinct() {
        let masks = ellipse_masks(320, 240, 3).unwrap();
        for m in &masks {
            let b = m.bbox().unwrap();
            assert!(b.w < 320 && b.h < 240);
        }
        assert_ne!(masks[0], masks[1]);
    }
}
