#!/usr/bin/env python3
"""Writes the batch files `scripts/gpu-check.sh` runs on the GPU machine into gpu-bundle/.

`@OUT@` in them is replaced on that machine by its output folder. Every public fixture case is
run through `describe` exactly as the CLI test does (`--greedy --max-new-tokens 24 --query`
from case.json, `--dump`), once per float type; the bf16 batch also holds the benchmarks (bf16
is what they measure), so one process pays the kernel compilation once.
"""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent
fix = pathlib.Path("tests/fixtures/dam-tiny")
# The bundle folder: gpu-bundle/ unless named (gpu-bundle.sh passes gpu-bundle-nvrtc/ for the
# NVRTC build).
bundle = root / (sys.argv[1] if len(sys.argv) > 1 else "gpu-bundle")
bundle.mkdir(exist_ok=True)


def describe_runs(dtype, backend="cuda", tag=None):
    """Every fixture case through `describe`; outputs named `<case>-<tag>` (tag: the dtype)."""
    tag = tag or dtype
    runs = []
    for case_dir in sorted((root / fix / "cases").iterdir()):
        case = json.loads((case_dir / "case.json").read_text())
        rel = fix / "cases" / case_dir.name
        args = ["describe", "--model", str(fix / "checkpoint"), "--backend", backend, "--dtype", dtype]
        for k in range(case["num_frames"]):
            if case["kind"] == "video":
                args += ["--image", str(rel / f"image_{k}.png"), "--mask", str(rel / f"mask_{k}.png")]
            else:
                args += ["--image", str(rel / "image.png"), "--mask", str(rel / "mask.png")]
        args += ["--greedy", "--max-new-tokens", "24", "--json", "--query", case["query"]]
        args += ["--dump", f"@OUT@/{case_dir.name}-{tag}.safetensors"]
        runs.append(args)
    return runs


def bench(*extra):
    return ["bench", "--backend", "cuda", "--dtype", "bf16", "--config", "full", *extra]


# Ordered by value: a run that times out loses what comes after it.
batches = {
    # The fused decoder kernels against the plain burn ops, and the recorded (CUDA-graph) decode
    # step and vision encode against the ordinary ones (f32: the sharp check).
    "check.jsonl": [
        ["bench", "--backend", "cuda", "--dtype", "f32", "--check-fused", "--json", "@OUT@/check-f32.json"],
    ],
    # Issue 7's protocol (fused decoder, recorded decode step and vision encode), its per-stage
    # profile; the same without recording (same process, same kernels); then batch 16.
    "bf16.jsonl": [
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--profile-step", "--json", "@OUT@/bench-b1.json"),
        bench("--new-tokens", "256", "--runs", "1", "--warmup", "0", "--cuda-graph", "off", "--json", "@OUT@/bench-b1-unrecorded.json"),
        # The vision attention with our one-kernel softmax (dam_vision::softmax) against the
        # default's 54.3-54.7 ms recorded encodes (22:59 UTC), at batch 1 (warm-up 1, so the
        # median is a replay) and batch 16.
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--vision-attention", "fused-softmax",
              "--json", "@OUT@/bench-b1-vision-fused-softmax.json"),
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--batch", "16", "--json", "@OUT@/bench-b16.json"),
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--batch", "16", "--vision-attention", "flash",
              "--json", "@OUT@/bench-b16-flash.json"),
        bench("--new-tokens", "256", "--runs", "1", "--warmup", "1", "--batch", "16", "--vision-attention", "fused-softmax",
              "--json", "@OUT@/bench-b16-vision-fused-softmax.json"),
    ],
    # The experiments, each beside the default in the same process: the decode kernels
    # (matrix-vector products, one-query attention; off by default until this batch and `check`
    # have run on a GPU), the vision attention's other forms and the padded prompt.
    "gemv.jsonl": [
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--gemv", "on", "--json", "@OUT@/bench-b1-gemv.json"),
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "0", "--gemv", "on", "--decode-attention", "on",
              "--json", "@OUT@/bench-b1-gemv-attention.json"),
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "0", "--json", "@OUT@/bench-b1-default.json"),
        # The vision attention's other forms (SigLIP's 729 positions and head_dim 72 keep
        # burn-cubecl's tensor-core flash kernel out; dam_vision::sdpa), against the default
        # just above: materialised scores, then padded to the flash kernel's shapes. The full
        # protocol (256 tokens, 1 warm-up, median of 3), so the winner's line is a table row
        # as it stands; then each at batch 16 (one run) for regions/s.
        *[bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--vision-attention", form,
                "--json", f"@OUT@/bench-b1-vision-{form}.json") for form in ("materialized", "padded")],
        *[bench("--new-tokens", "256", "--runs", "1", "--warmup", "1", "--batch", "16", "--vision-attention", form,
                "--json", f"@OUT@/bench-b16-vision-{form}.json") for form in ("materialized", "padded")],
        # The prompt left-padded 247 -> 256 positions (masked) so the prefill's attention has
        # shapes the flash kernel accepts (SessionOptions::prompt_multiple).
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--prompt-multiple", "128",
              "--json", "@OUT@/bench-b1-prompt-multiple-128.json"),
    ],
    # Issue 7's table on the current code (cache rounded to 64 slots by default, 503 -> 512;
    # the vision kernels — one-kernel softmax and LayerNorm — on by default on CUDA since
    # 2026-11-27), most telling lines first (a stage cut off by its limit loses the last):
    # the defaults; the row kernels with their rows in registers beside them (`--row-kernels
    # cached`, off by default: predicted ≈ 36 ms against 42.3 for the encode, never measured
    # with the default attention — on 2026-11-27 the line ran the one-pass flash kernel); the
    # vision through burn's ops (48.9-53.1 ms on 2026-11-27); batch 16 for regions/s, both row
    # variants (three runs: the first timed run after the warm-up records the batch-16 encode
    # and takes ~2 s); the flash kernel end to end, one pass and two (150.9 / 257.3 ms on
    # 2026-11-27, before the strides were hoisted); the exact 503-slot cache (123.3 tok/s
    # against 125.3 on 2026-11-27). Warm-up 1, so every median is a replay. (`--probe-vision`
    # runs in the `flash` stage.)
    "decode.jsonl": [
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--json", "@OUT@/bench-b1-default.json"),
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--row-kernels", "cached",
              "--json", "@OUT@/bench-b1-row-kernels-cached.json"),
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--vision-attention", "auto",
              "--layer-norm", "ops", "--json", "@OUT@/bench-b1-vision-burn-ops.json"),
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--batch", "16", "--json", "@OUT@/bench-b16.json"),
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--batch", "16", "--row-kernels", "cached",
              "--json", "@OUT@/bench-b16-row-kernels-cached.json"),
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--vision-attention", "flash",
              "--flash-passes", "1", "--json", "@OUT@/bench-b1-flash-1pass.json"),
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--vision-attention", "flash",
              "--json", "@OUT@/bench-b1-flash.json"),
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--cache-multiple", "1",
              "--json", "@OUT@/bench-b1-cache-exact.json"),
    ],
    # The hand-written CUDA kernels (`--matmul linear=hand`, `--vision-attention hand`: kernel
    # text, so the NVRTC bundle only — elsewhere each falls back to burn's op / `fused-softmax`
    # and the line measures that): issue 7's table with both, the same build's default beside
    # it, batch 16 with both, the border case through both against the original's ids
    # (gpu-check.sh sets DAM_MATMUL / DAM_VISION_ATTENTION for this stage; `bench` takes its
    # flags), then each kernel alone. Warm-up 1, so every median is a replay.
    "hand.jsonl": [
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--matmul", "linear=hand",
              "--vision-attention", "hand", "--json", "@OUT@/bench-b1-hand.json"),
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--json", "@OUT@/bench-b1-default.json"),
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--batch", "16", "--matmul", "linear=hand",
              "--vision-attention", "hand", "--json", "@OUT@/bench-b16-hand.json"),
        *[r for r in describe_runs("bf16", tag="hand") if "/border/" in " ".join(r)],
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--matmul", "linear=hand",
              "--json", "@OUT@/bench-b1-hand-linears.json"),
        bench("--new-tokens", "256", "--runs", "3", "--warmup", "1", "--vision-attention", "hand",
              "--json", "@OUT@/bench-b1-hand-attention.json"),
    ],
    # The plain burn-op path (no fused ops, no recording) for comparison on the same machine.
    "bf16-plain.jsonl": [
        bench("--new-tokens", "256", "--runs", "1", "--warmup", "1", "--fused-ops", "off", "--cuda-graph", "off", "--json", "@OUT@/bench-b1-plain.json"),
    ],
    "fixtures-f32.jsonl": describe_runs("f32"),
    "fixtures-bf16.jsonl": describe_runs("bf16"),
    # The one-kernel vision attention (`dam_vision::flash`, written 2026-11-27 without a GPU):
    # its tensor-core variant in bf16 against its plain loops and the materialised form at
    # SigLIP's shape (`--check-vision`, seconds), then every attention form timed per call
    # (`--probe-vision`); `fixtures-flash` runs every case in bf16 through it (gpu-check.sh sets
    # DAM_VISION_ATTENTION=flash for that stage).
    "flash.jsonl": [
        bench("--check-vision", "--json", "@OUT@/check-vision.json"),
        bench("--probe-vision", "--runs", "1", "--json", "@OUT@/probe-vision.json"),
    ],
    "fixtures-flash.jsonl": describe_runs("bf16", tag="flash"),
    # The same in one pass over the keys (gpu-check.sh adds DAM_FLASH_ONLINE=on).
    "fixtures-flash-online.jsonl": describe_runs("bf16", tag="flash1"),
    # The one bf16 case the 2026-11-26 runs did not finish (its 8-frame shapes compile anew).
    "fixtures-bf16-video.jsonl": [r for r in describe_runs("bf16") if "/video/" in " ".join(r)],
    # Batch 1 with fewer runs: the sampled peak of bytes in use (printed after the table).
    "memory.jsonl": [bench("--new-tokens", "256", "--runs", "1", "--warmup", "1", "--json", "@OUT@/bench-memory.json")],
    # Every fixture case on wgpu (Vulkan; the 2026-11-26 machine had NVIDIA's Vulkan ICD but no
    # Vulkan loader, which gpu-check.sh now brings along in gpu-bundle/lib).
    "fixtures-wgpu.jsonl": describe_runs("f32", backend="wgpu", tag="wgpu"),
    # The `matmul` stage's correctness look, if time is left: the border case (its crop differs:
    # both passes and the adapters run) in bf16 with the winning matmul kernels (gpu-check.sh
    # sets them through the environment) and the default vision kernels; with the
    # 2026-11-27 winner it gave the original's 24/24 ids.
    "fixtures-matmul.jsonl": [r for r in describe_runs("bf16", tag="matmul") if "/border/" in " ".join(r)],
    # One bf16 `describe` of a fixture case; gpu-check.sh runs it as fresh processes on an empty
    # kernel cache, then on the cache the first filled, then with the cache off (cold start).
    "coldstart.jsonl": [r for r in describe_runs("bf16", tag="coldstart") if "/center/" in " ".join(r)],
    "probe.jsonl": [bench("--probe", "--batch", "16", "--runs", "1", "--json", "@OUT@/probe.json")],
    # cubecl's per-kernel log (gpu-check.sh sets CUBECL_DEBUG_OPTION=profile for this stage):
    # every kernel of one vision encode and a few decode steps, unrecorded so each launch shows.
    "profile.jsonl": [bench("--new-tokens", "8", "--runs", "1", "--warmup", "1", "--cuda-graph", "off")],
}
for name, runs in batches.items():
    (bundle / name).write_text("".join(json.dumps(r) + "\n" for r in runs))
    print(f"{bundle.name}/{name}: {len(runs)} runs", file=sys.stderr)

# The Vulkan loader for the wgpu stage (the GPU machine's image lacks it); used there only when
# the system has none.
loader = pathlib.Path("/usr/lib/x86_64-linux-gnu/libvulkan.so.1")
if loader.exists():
    (bundle / "lib").mkdir(exist_ok=True)
    (bundle / "lib" / "libvulkan.so.1").write_bytes(loader.read_bytes())
    print(f"{bundle.name}/lib/libvulkan.so.1: the Vulkan loader", file=sys.stderr)
