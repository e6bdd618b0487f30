#!/usr/bin/env bash
# GPU check for issues 5 and 7, run on the lent GPU machine (no internet, no cargo registry).
#
# Prepare here with `bash scripts/gpu-bundle.sh` (its header lists the steps: the CUDA build
# of `dam-tools`, strip + xz, the batch files, a CPU check of the built binary, the Vulkan
# loader); then run this script through the device tool with `carry: ["gpu-bundle"]`, and
# compare here:
#   python3 scripts/gpu-report.py DIR [BUNDLE]  # DIR = where results.tgz was unpacked: fixture ids and tensors
#   python3 scripts/bench-table.py DIR          # every bench-*.json in it, one line each
#
# STAGES picks the batch files to run, in order (default: the f32 fixture check, then the
# issue-7 numbers, then whether wgpu runs); each is one process with its own time limit
# (LIMIT_<stage>, seconds; defaults below), so CUDA kernel compilation and autotuning (~2 min
# cold at full size, measured 2026-11-26) is paid once per process.
#
# Next (plan after 2026-11-28's fifth session without a GPU; docs/performance.md, "Prepared
# 2026-11-28, fifth session"): the hand-written kernels are in the library now (`--matmul
# linear=hand`, `--vision-attention hand`; kernel text, so the NVRTC build only), and what is
# left of issue 7 is the vision phase. One call, read, then a second (≈ 14 of the 15 min with
# two starts; the machine goes back after 30 s idle, so the second may start fresh):
#   1. carry ["gpu-bundle-nvrtc"], timeout_s 330:
#      BUNDLE=gpu-bundle-nvrtc LIMIT_nvrtc=300 EXPORT_BY=310 STAGES="nvrtc" OUT=$OUT bash scripts/gpu-check.sh
#      (`nvrtc`: the `hand` matmul on every vision and prefill product — its first use probes
#      each variant against burn's product, probe-matmul.err says which failed and why — and
#      the `hand` attention's probe-vision row; the whole bench with those that ran right
#      (bench-b1-nvrtc-hand.json: the vision phase); then, with what is left, cubek's TMA
#      routines, our cubecl flash kernel through NVRTC and burn's linears; compile.log /
#      autotune.log / nvrtc-progress.txt show whether a silent process compiles, tunes or
#      hangs; the NVRTC kernel cache comes back if ≤ 15 MiB.)
#   2a. If a hand-written kernel ran right: carry ["gpu-bundle-nvrtc"], timeout_s 450:
#      BUNDLE=gpu-bundle-nvrtc LIMIT_hand=420 EXPORT_BY=0 STAGES="hand" OUT=$OUT bash scripts/gpu-check.sh
#      (issue 7's table on the NVRTC build: both kernels, the build's default beside it,
#      batch 16, the border fixture through both against the original's ids, each kernel alone.)
#   2b. Else (the NVRTC build does not run them), the 2026-11-28 plan's second call on the LLVM
#      bundle, carry ["gpu-bundle"], timeout_s 360:
#      LIMIT_flash=150 LIMIT_ncu_flash=170 EXPORT_BY=0 STAGES="flash-outside flash ncu-flash" OUT=$OUT bash scripts/gpu-check.sh
#      (`flash-outside`: the flash kernels' PTX — LLVM's, NVRTC's and the hand-written one's,
#      in gpu-bundle/flash-ptx/ — launched through the CUDA driver from Python, outside cubecl,
#      beside PyTorch's SDPA; then scripts/gemm-outside.py: the hand-written matrix product's
#      ten variants (dam-core/src/matmul_kernel/gemm_hand.cu) at the vision and prefill
#      linears beside cuBLAS; `flash`: the LLVM build's attention forms per call, and the
#      one-pass form with parts of its loop left out; `ncu-flash`: where their warps stall.)
#   Then `give_back`. Record in docs/performance.md with the command, card and date.
# (`flash`: both flash forms' tensor-core variants against their plain loops and the
# materialised form in bf16 (`bench --check-vision`), then every attention form timed per call
# (`--probe-vision`: two passes and one, 4, 2 and 1 planes a cube); `fixtures-flash-online` /
# `fixtures-flash`: every case in bf16 through the one-pass / two-pass form, against the
# original; `decode`: the issue-7 table with the defaults, with `--vision-attention flash`
# (two passes, one pass, two with `--row-kernels cached`, batch 16), with burn's ops, and the
# vision probe; `matmul` probes every routine — the TMA ones included — and benches the winner;
# `ncu-flash`: Nsight Compute on the flash kernels and our softmax; `nvrtc`, `hand`: above.)
# The NVRTC build's "launch errors" of 2026-11-27 ("Element strides must be non-zero and <= 8",
# "Tile shape must be non-zero and <= 256") are cubecl-cuda's own checks refusing TMA
# candidates of autotune (the patch embedding's convolution: im2col element strides = its
# stride 14 > 8) — skipped by autotune, not a failure. What followed (nothing for 170 s) fits
# NVRTC compiling cold: 0.6–1.3 s a flash kernel on this machine (scripts/nvrtc-compile.py).
# (15 min of device time a session, start included; the machine is given back after 30 s idle,
# so send a second call at once. On 2026-11-27 `flash` took 73 s, `decode` 230 s (10 lines),
# `matmul` 307 s on a warm kernel cache; a fresh machine started in ≈ 30 s.)
#
# Kernel cache across sessions: the end of the script exports the cache to
# $OUT/kernel-cache.xz (when ≤ 15 MiB); copy it to gpu-bundle/kernel-cache.xz here and the
# next session's first process loads it (tested on lavapipe: export, then import on a fresh
# cache — 42 entries; the CUDA cache's size is not known yet). Compiled kernels are keyed by
# the executable's build id, so they load only into the same dam-tools; the autotune
# decisions load into any build — keep the binary if nothing in it has to change.
#
# One binary (`dam-tools` = describe + segment + bench) because the CUDA build is ~155 MB
# stripped / ~33 MB xz and the carry limit is 64 MiB. The device tool brings back only a few
# files, so every stage packs its outputs into one archive in $OUT as soon as it ends.
set -u
OUT=${OUT:-gpu-out}
STAGES=${STAGES:-"fixtures-f32 bf16 fixtures-wgpu"}
# The bundle to run (BUNDLE): gpu-bundle/ (cubecl's LLVM compiler) or gpu-bundle-nvrtc/
# (`VARIANT=nvrtc bash scripts/gpu-bundle.sh`: kernels compiled by NVRTC), whichever `carry` named.
B=${BUNDLE:-gpu-bundle}
W=/tmp/dam-work
mkdir -p "$OUT" "$W" /tmp/dam-bin
xz -dc "$B/dam-tools.xz" > /tmp/dam-bin/dam-tools && chmod +x /tmp/dam-bin/dam-tools
T=/tmp/dam-bin/dam-tools
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv; date -u
  ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d; cat /usr/share/vulkan/icd.d/*.json
  ldconfig -p | grep -i "vulkan\|GLX_nvidia\|nvidia-vk"
  # whether a cuBLAS path could ever run here (issue 7's matmul question): the system's CUDA
  # libraries and a PyTorch with its own cuBLAS
  ldconfig -p | grep -i "cublas\|nvrtc\|libcuda\.so"
  timeout 30 python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  } > "$W/gpu.txt" 2>&1
# wgpu needs the Vulkan loader (libvulkan.so.1), which this image lacked on 2026-11-26 although
# NVIDIA's Vulkan ICD is registered: use the bundled one (Debian's) only when there is none.
if ! ldconfig -p | grep -q "libvulkan.so.1" && [ -f "$B/lib/libvulkan.so.1" ]; then
  export LD_LIBRARY_PATH="$PWD/$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "using the bundled Vulkan loader" >> "$W/gpu.txt"
fi
# One kernel cache (compiled PTX + autotune decisions, dam's `kernel-cache` feature) for every
# stage and both calls: the machine keeps /tmp while it stays warm, so the second call's
# processes load what the first compiled instead of spending minutes on it again.
# The cache is new since the 2026-11-26 runs and unmeasured on CUDA: if a stage that passed
# then fails now, rerun it with DAM_KERNEL_CACHE=off before suspecting the model code.
export DAM_KERNEL_CACHE=${DAM_KERNEL_CACHE:-$W/kernel-cache}
# A kernel cache exported by an earlier session (the end of this script writes one to
# $OUT/kernel-cache.xz): put it in gpu-bundle/ and the first process of a fresh machine loads
# kernels and autotune decisions instead of spending ~2 min compiling and tuning (entries of
# kernels the new binary changed simply miss). Mind the 64 MiB that may travel.
if [ -f "$B/kernel-cache.xz" ] && [ "$DAM_KERNEL_CACHE" != off ]; then
  xz -dc "$B/kernel-cache.xz" > /tmp/dam-bin/kernel-cache.kc &&
    "$T" kernel-cache import /tmp/dam-bin/kernel-cache.kc 2>&1 | tail -1 | sed 's/^/kernel cache from the bundle: /' | tee -a "$W/summary.txt"
fi
# The `matmul` stage's probe: burn's two paths and cubek's routines on tensor cores (the
# `unit` routines use none, and the rest of ROUTINES are variants of these; MATMUL_KERNELS=all
# tries every one, ~2x the time).
# Most promising first (the probe stops starting kernels after 180 s).
MATMUL_KERNELS=${MATMUL_KERNELS:-fusion,autotune,tma-mma,specialized-tma-mma,double-mma,ordered-double-mma,specialized-mma,simple-mma,tma-multirow-mma,double-specialized-mma,simple-multirow-mma,simple-cmma}
[ "$MATMUL_KERNELS" = all ] && MATMUL_KERNELS=$(python3 -c "print(','.join(['fusion','autotune']+[l.strip().strip('\",') for l in open('dam-core/src/matmul_kernel/mod.rs').read().split('pub const ROUTINES')[1].split('];')[0].splitlines()[1:] if l.strip()]))")
# Everything a stage wrote so far, as $OUT/results-NAME.tgz (the kernel caches left out): called
# as soon as a stage (or a part of one that a time-out could cut off) ends.
pack() { tar czf "$OUT/results-$1.tgz" -C "$W" --exclude='kernel-cache' --exclude='kc-*' .; }
for f in "$B"/*.jsonl; do sed "s#@OUT@#$W#g" "$f" > "/tmp/dam-bin/$(basename "$f")"; done
for stage in $STAGES; do
  # Default limits from the 2026-11-26 H100 runs (each process compiles and autotunes cold,
  # ~2 min at full size); LIMIT_<stage> overrides.
  case $stage in
    fixtures-bf16|fixtures-bf16-video|fixtures-flash|fixtures-flash-online) default=200 ;;
    flash) default=150 ;;
    ncu-flash) default=180 ;;
    nvrtc) default=400 ;;
    hand) default=420 ;;
    flash-outside) default=90 ;;
    fixtures-wgpu) default=150 ;;
    check|bf16|gemv) default=300 ;;
    decode) default=480 ;;
    matmul) default=280 ;;
    profile|memory|fixtures-f32|coldstart) default=150 ;;
    *) default=120 ;;
  esac
  limit_var="LIMIT_${stage//-/_}"
  limit=${!limit_var:-$default}
  extra=()
  [ "$stage" = profile ] && extra=(CUBECL_DEBUG_LOG="$W/profile.log" CUBECL_DEBUG_OPTION=profile)
  # The hand-written kernels for the stage's `describe` too (its `bench` lines take flags).
  [ "$stage" = hand ] && extra=(DAM_MATMUL=linear=hand DAM_VISION_ATTENTION=hand)
  # On 2026-11-26 wgpu found no Vulkan adapter even with the loader: let it say why.
  [ "$stage" = fixtures-wgpu ] && extra=(VK_LOADER_DEBUG=error,warn,driver)
  # Every fixture case with the vision attention as our one kernel (tensor cores in bf16).
  [ "$stage" = fixtures-flash ] && extra=(DAM_VISION_ATTENTION=flash)
  # The same with the kernel's one-pass form.
  [ "$stage" = fixtures-flash-online ] && extra=(DAM_VISION_ATTENTION=flash DAM_FLASH_ONLINE=on)
  if [ "$stage" = matmul ]; then
    # Issue 7's vision lever (docs/performance.md, "Matmul kernels"): 1. the products through
    # PyTorch/cuBLAS (what the card does at these shapes); 2. every kernel of
    # dam_core::matmul_kernel on the vision and prefill products (`bench --probe-matmul`; rows
    # print as they go, so a cut-off probe still ranks what it measured); 3. the winner for the
    # vision encode (scripts/pick-matmul.py) end to end, in one process beside the default
    # (since 2026-11-27 both include the two vision kernels on CUDA) and beside the vision
    # through burn's ops: batch 1 (issue 7's protocol), then batch 16. The winner's line first
    # (a time-out loses the last lines).
    stage_start=$SECONDS
    s=$SECONDS
    timeout 90 python3 scripts/torch-matmul.py > "$W/torch-matmul.out" 2>&1
    echo "torch-matmul: exit $? after $((SECONDS - s)) s" | tee -a "$W/summary.txt"
    # One process per kernel (a routine that fails to compile or hangs costs only its own
    # rows; the kernel cache carries compiled kernels across them), each within 45 s, none
    # started after LIMIT_probe_matmul (180 s).
    s=$SECONDS
    for kernel in ${MATMUL_KERNELS//,/ }; do
      [ $((SECONDS - s)) -ge "${LIMIT_probe_matmul:-180}" ] && { echo "probe-matmul: out of time before $kernel" >> "$W/summary.txt"; break; }
      k0=$SECONDS
      timeout 45 "$T" bench --backend cuda --dtype bf16 --config full --probe-matmul --probe-shapes both \
        --probe-kernels "$kernel" --runs 1 >> "$W/probe-matmul.out" 2>> "$W/probe-matmul.err"
      echo "probe-matmul $kernel: exit $? after $((SECONDS - k0)) s" >> "$W/summary.txt"
    done
    echo "probe-matmul: $((SECONDS - s)) s" | tee -a "$W/summary.txt"
    python3 scripts/pick-matmul.py "$W/probe-matmul.out" > "$W/pick-matmul.md" 2>&1
    best=$(python3 scripts/pick-matmul.py "$W/probe-matmul.out" --best 2>/dev/null || echo fusion)
    echo "matmul winner for the vision encode: $best" | tee -a "$W/summary.txt"
    tag=$(echo "$best" | tr '=,' '-_')
    pack "$stage-probe"
    b='["bench", "--backend", "cuda", "--dtype", "bf16", "--config", "full", "--new-tokens", "256"'
    ops='"--vision-attention", "auto", "--layer-norm", "ops"'
    {
      echo "$b, \"--runs\", \"3\", \"--warmup\", \"1\", \"--matmul\", \"$best\", \"--json\", \"$W/bench-b1-matmul-$tag.json\"]"
      echo "$b, \"--runs\", \"3\", \"--warmup\", \"1\", \"--json\", \"$W/bench-b1-default.json\"]"
      echo "$b, \"--runs\", \"3\", \"--warmup\", \"1\", $ops, \"--json\", \"$W/bench-b1-vision-burn-ops.json\"]"
      echo "$b, \"--runs\", \"3\", \"--warmup\", \"1\", \"--batch\", \"16\", \"--matmul\", \"$best\", \"--json\", \"$W/bench-b16-matmul-$tag.json\"]"
    } > /tmp/dam-bin/matmul-bench.jsonl
    s=$SECONDS
    timeout "$limit" "$T" batch /tmp/dam-bin/matmul-bench.jsonl > "$W/matmul-bench.out" 2> "$W/matmul-bench.err"
    echo "matmul-bench: exit $? after $((SECONDS - s)) s (limit $limit)" | tee -a "$W/summary.txt"
    pack "$stage"
    # If the call has time left (STAGE_BUDGET, 570 s from the stage's start): the border
    # fixture in bf16 through the same kernels (scripts/gpu-report.py compares it).
    left=$(( ${STAGE_BUDGET:-570} - (SECONDS - stage_start) ))
    if [ "$left" -ge 40 ]; then
      s=$SECONDS
      DAM_MATMUL=$best timeout "$left" "$T" batch \
        /tmp/dam-bin/fixtures-matmul.jsonl > "$W/fixtures-matmul.out" 2> "$W/fixtures-matmul.err"
      echo "fixtures-matmul: exit $? after $((SECONDS - s)) s (limit $left)" | tee -a "$W/summary.txt"
      pack "$stage"
    fi
    continue
  fi
  if [ "$stage" = flash-outside ]; then
    # The flash kernel's PTX launched outside cubecl (scripts/flash-outside.py: the CUDA driver
    # through ctypes, PyTorch's tensors, CUDA events), the LLVM build's and NVRTC's PTX of the
    # same forms side by side, beside PyTorch's SDPA: if the PTX is fast there, cubecl's way of
    # running it is what is slow; if slow, the kernel's code. Needs $B/flash-ptx/ (made here:
    # `bench --flash-ptx`, then scripts/nvrtc-compile.py on its .cu files; see the script).
    s=$SECONDS
    timeout "$limit" python3 scripts/flash-outside.py "$B/flash-ptx" > "$W/flash-outside.out" 2> "$W/flash-outside.err"
    echo "flash-outside: exit $? after $((SECONDS - s)) s (limit $limit)" | tee -a "$W/summary.txt"
    cat "$W/flash-outside.out" >> "$W/summary.txt"
    # Then the hand-written matrix product (dam-core/src/matmul_kernel/gemm_hand.cu: cp.async + ldmatrix +
    # mma.sync, what the LLVM build withholds) at the vision and prefill linears beside
    # cuBLAS (scripts/gemm-outside.py), in a process of its own: a fault there cannot cost
    # the flash rows above. Its own limit, LIMIT_gemm_outside (default 45 s).
    if [ -f "$B/flash-ptx/gemm-hand-bf16-sm90.nvrtc.ptx" ]; then
      s=$SECONDS
      timeout "${LIMIT_gemm_outside:-45}" python3 scripts/gemm-outside.py "$B/flash-ptx" > "$W/gemm-outside.out" 2> "$W/gemm-outside.err"
      echo "gemm-outside: exit $? after $((SECONDS - s)) s (limit ${LIMIT_gemm_outside:-45})" | tee -a "$W/summary.txt"
      cat "$W/gemm-outside.out" >> "$W/summary.txt"
    fi
    pack "$stage"
    continue
  fi
  if [ "$stage" = nvrtc ]; then
    # The NVRTC build (run with BUNDLE=gpu-bundle-nvrtc): cubecl's kernels compiled from CUDA
    # C++ by NVRTC, which keeps what the LLVM build withholds (TMA, cp.async, mbarrier). Two
    # questions: how fast cubek's TMA matmul routines are at the vision and prefill products
    # (the linears are ≈ 32 ms of the 42 ms encode at 30–65 TFLOP/s; cuBLAS does 150–260), and
    # whether our flash kernel, the same cube code compiled by another compiler, is as slow
    # as through LLVM (1.3–2.9 ms a call) — if not, the LLVM path is what is slow.
    # On 2026-11-27 this build printed two refused launches and then nothing for 170 s. The
    # refusals are cubecl-cuda's own checks of tensor-map arguments (server.rs,
    # check_tma_generic / check_tma_tiled) failing for TMA candidates of the patch
    # embedding's convolution (cubek-convolution gives the im2col map element strides equal to
    # the conv stride, 14 > 8): autotune skips such candidates. Whether the silence was
    # NVRTC compiling cold (slower per kernel than LLVM) or a hang is what this stage's logs
    # say: every kernel compiled and every autotune result go to compile.log / autotune.log
    # (a cubecl.toml in the working directory, read by every process), sampled every 5 s with
    # the GPU's utilisation into nvrtc-progress.txt.
    stage_start=$SECONDS
    printf '[compilation.logger]\nlevel = "basic"\nfile = "%s"\n\n[autotune.logger]\nlevel = "full"\nfile = "%s"\n' \
      "$W/compile.log" "$W/autotune.log" > cubecl.toml
    touch "$W/compile.log" "$W/autotune.log"
    # NVRTC compiles against the CUDA headers cubecl-cuda finds ($CUDA_PATH/include, else
    # /usr/local/cuda/include): what is there.
    { echo "CUDA_PATH=${CUDA_PATH:-}"; ls -d /usr/local/cuda*/ 2>&1
      ls "${CUDA_PATH:-/usr/local/cuda}/include" 2>&1 | grep -E "^(cuda_bf16.h|cuda_fp16.h|mma.h|crt|cuda)$"
      ldconfig -p | grep -i nvrtc; } > "$W/nvrtc-env.txt" 2>&1
    ( while sleep 5; do
        echo "$((SECONDS - stage_start)) s: $(wc -l < "$W/compile.log") kernels compiled, $(grep -c '^Autotune\[' "$W/autotune.log") autotune results, GPU $(nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader 2>/dev/null | head -1), last: $(tail -1 "$W/compile.log" | cut -c1-160)"
      done >> "$W/nvrtc-progress.txt" ) &
    sampler=$!
    # In order of what decides issue 7's open number (the vision phase) — the hand-written
    # kernels first, only this build can launch them (kernel text through NVRTC):
    # 1. `hand` matmul (dam-core/src/matmul_kernel/gemm_hand.cu) on every vision and prefill
    #    product: its first use probes each variant against burn's product and says in
    #    probe-matmul.err which failed and why. Checked against `simple-unit` (CUDA cores, one
    #    kernel per product) rather than burn's op, whose autotune would compile every
    #    candidate through NVRTC first.
    # 2. `hand` attention (dam-vision/src/flash/flash_hand.cu): its probe-vision row, marked
    #    "not available" if its probe failed (then `fused-softmax` ran).
    # 3. The whole bench with those of the two that ran right (`--matmul linear=hand`: rows
    #    neither refused nor wrong; `--vision-attention hand`), LIMIT_nvrtc_bench (150 s) at
    #    most, ≥ 60 s or not at all (a cold NVRTC process compiles every kernel first).
    # 4. With what is left: cubek's TMA routines launched directly (no autotune: one routine's
    #    kernels to compile per process), 40 s each; then our cubecl flash kernel through
    #    NVRTC (two passes, one pass, the ablations) and the linears through burn's fusion (its
    #    autotune now has TMA candidates) with the CUDA default attention.
    left() { echo $(( limit - (SECONDS - stage_start) )); }
    probe_matmul() {  # KERNEL
      local k0=$SECONDS
      echo "== $1" >> "$W/compile.log"
      timeout 40 "$T" bench --backend cuda --dtype bf16 --config full --probe-matmul --probe-shapes both \
        --probe-kernels "$1" --probe-reference simple-unit --runs 1 >> "$W/probe-matmul.out" 2>> "$W/probe-matmul.err"
      echo "nvrtc probe-matmul $1: exit $? after $((SECONDS - k0)) s" | tee -a "$W/summary.txt"
    }
    probe_vision() {  # NAME ONLY MAX_SECONDS
      local lim k0=$SECONDS
      lim=$(left); [ "$lim" -gt "$3" ] && lim=$3
      [ "$lim" -ge 30 ] || { echo "nvrtc probe-vision $1: out of time" >> "$W/summary.txt"; return; }
      echo "== probe-vision $1" >> "$W/compile.log"
      timeout "$lim" "$T" bench --backend cuda --dtype bf16 --config full --probe-vision --runs 1 \
        --probe-only "$2" > "$W/probe-vision-$1.out" 2> "$W/probe-vision-$1.err"
      echo "nvrtc probe-vision $1: exit $? after $((SECONDS - k0)) s (limit $lim)" | tee -a "$W/summary.txt"
      pack "$stage"
    }
    at='head_dim 72, 729 tokens'
    probe_matmul hand
    pack "$stage"
    probe_vision hand "\`hand\`, $at" 45
    hand=()
    grep -q "| hand |" "$W/probe-matmul.out" 2>/dev/null && ! grep "| hand" "$W/probe-matmul.out" | grep -q "refused\|WRONG" \
      && hand+=(--matmul linear=hand)
    grep "\`hand\`" "$W/probe-vision-hand.out" 2>/dev/null | grep -qv "not available" && hand+=(--vision-attention hand)
    lim=$(left); [ "$lim" -gt "${LIMIT_nvrtc_bench:-150}" ] && lim=${LIMIT_nvrtc_bench:-150}
    if [ "${#hand[@]}" -gt 0 ] && [ "$lim" -ge 60 ]; then
      s=$SECONDS
      echo "== bench ${hand[*]}" >> "$W/compile.log"
      timeout "$lim" "$T" bench --backend cuda --dtype bf16 --config full --new-tokens 256 --runs 3 --warmup 1 \
        "${hand[@]}" --json "$W/bench-b1-nvrtc-hand.json" > "$W/bench-hand.out" 2> "$W/bench-hand.err"
      echo "nvrtc bench ${hand[*]}: exit $? after $((SECONDS - s)) s (limit $lim)" | tee -a "$W/summary.txt"
      pack "$stage"
    else
      echo "nvrtc bench with the hand-written kernels: not run ($lim s left; flags from the probes: ${hand[*]:-none})" >> "$W/summary.txt"
    fi
    for kernel in $(echo "${NVRTC_MATMUL_KERNELS:-tma-mma,specialized-tma-mma,double-mma,tma-multirow-mma}" | tr , ' '); do
      [ "$(left)" -ge 45 ] || { echo "nvrtc probe-matmul: out of time before $kernel" >> "$W/summary.txt"; break; }
      probe_matmul "$kernel"
    done
    python3 scripts/pick-matmul.py "$W/probe-matmul.out" > "$W/pick-matmul.md" 2>&1
    pack "$stage"
    probe_vision flash "\`flash\`, $at;one pass, 4 planes a cube, $at;one pass, 2 planes a cube, $at;without" 120
    probe_vision linears "1152→3456, 729 tokens;1152→1152, 729 tokens;1152→4304, 729 tokens;4304→1152, 729 tokens;\`fused-softmax\`, $at" 1000
    kill "$sampler" 2>/dev/null
    rm -f cubecl.toml
    xz -6 -f "$W/autotune.log"
    pack "$stage"
    continue
  fi
  if [ "$stage" = ncu-flash ]; then
    # Why the flash kernel is slow (2026-11-27: 1.3–2.9 ms a SigLIP attention where the two
    # burn matmuls around our softmax take 0.22): Nsight Compute on `bench --check-vision`,
    # which launches each flash form once per variant (tensor cores and plain loops, two
    # passes and one) beside our softmax and LayerNorm kernels (52 and 40 µs a call in the
    # eager probe, 5–35x their memory bound — or the host's launch path, which the eager probe
    # times for small ops; ncu has their device time): throughput, occupancy, launch shape,
    # where warps stall, memory traffic. Kernel replay, clocks as they are. Two runs, each its own process:
    # 1. every matching launch, those sections printed (ncu-flash.txt);
    # 2. the bf16 flash launches alone (skip the two f32 ones: two passes with tensor cores,
    #    two passes plain, one pass with tensor cores) with SourceCounters into a saved report,
    #    whose source page — each SASS instruction's executions and warp-stall samples — is
    #    printed (ncu-flash-sass.csv) and summarised by scripts/ncu-sass.py (ncu-flash-sass.md:
    #    which instructions the ≈ 50 000 cycles a key block sit on, and why).
    # Run 1 first and on its own limit, so a slow instrumented run 2 cannot cost it.
    NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
    s=$SECONDS
    if [ -n "$NCU" ]; then
      "$NCU" --version > "$W/ncu-version.txt" 2>&1
      check=("$T" bench --backend cuda --dtype bf16 --config full --check-vision)
      timeout "${LIMIT_ncu_overview:-80}" "$NCU" --clock-control none -k "regex:flash_attention|scaled_softmax|layer_norm" \
        --launch-count "${NCU_LAUNCHES:-14}" --section SpeedOfLight --section LaunchStats \
        --section Occupancy --section WarpStateStats --section SchedulerStats \
        --section MemoryWorkloadAnalysis --section InstructionStats \
        "${check[@]}" > "$W/ncu-flash.txt" 2> "$W/ncu-flash.err"
      echo "ncu-flash overview: exit $? after $((SECONDS - s)) s" | tee -a "$W/summary.txt"
      left=$(( limit - (SECONDS - s) ))
      if [ "$left" -ge 20 ]; then
        timeout "$left" "$NCU" --clock-control none -k regex:flash_attention --launch-skip 2 --launch-count 3 \
          --section LaunchStats --section WarpStateStats --section SourceCounters -f -o "$W/ncu-flash" \
          "${check[@]}" > "$W/ncu-flash-sass.out" 2> "$W/ncu-flash-sass.err"
        echo "ncu-flash source counters: exit $? after $((SECONDS - s)) s (limit $limit)" | tee -a "$W/summary.txt"
      fi
      if [ -f "$W/ncu-flash.ncu-rep" ]; then
        timeout 60 "$NCU" --import "$W/ncu-flash.ncu-rep" > "$W/ncu-flash-sass.txt" 2>> "$W/ncu-flash-sass.err"
        timeout 60 "$NCU" --import "$W/ncu-flash.ncu-rep" --page source --print-source sass --csv \
          > "$W/ncu-flash-sass.csv" 2>> "$W/ncu-flash-sass.err"
        echo "ncu-flash print: exit $? after $((SECONDS - s)) s" | tee -a "$W/summary.txt"
        python3 scripts/ncu-sass.py "$W/ncu-flash-sass.csv" > "$W/ncu-flash-sass.md" 2>&1
        xz -6 -f "$W/ncu-flash-sass.csv"
        # The report itself only if small (the archive comes back through $OUT's 16 MiB files).
        [ "$(stat -c %s "$W/ncu-flash.ncu-rep")" -le 8388608 ] || rm -f "$W/ncu-flash.ncu-rep"
      fi
    else
      echo "ncu-flash: no ncu on this machine" | tee -a "$W/summary.txt"
    fi
    pack "$stage"
    continue
  fi
  if [ "$stage" = coldstart ]; then
    # The same `describe` as three fresh processes: on an empty kernel cache of their own (it
    # compiles and autotunes everything), on the cache that run filled (it loads it), and
    # with the cache off (for the first's overhead). Wall times go to summary.txt.
    # The driver's own PTX → SASS cache gets a fresh folder too (cold for the first run, warm
    # after, as for a user's first and second process).
    rm -rf "$W/kc-coldstart" "$W/kc-nv"
    for run in cold cached off; do
      kc=$W/kc-coldstart; [ $run = off ] && kc=off
      s=$SECONDS
      CUDA_CACHE_PATH=$W/kc-nv DAM_KERNEL_CACHE=$kc timeout "$limit" "$T" batch /tmp/dam-bin/coldstart.jsonl > "$W/coldstart-$run.out" 2> "$W/coldstart-$run.err"
      echo "coldstart $run: exit $? after $((SECONDS - s)) s (limit $limit)" | tee -a "$W/summary.txt"
    done
    pack "$stage"
    continue
  fi
  s=$SECONDS
  env "${extra[@]}" timeout "$limit" "$T" batch "/tmp/dam-bin/$stage.jsonl" > "$W/$stage.out" 2> "$W/$stage.err"
  echo "$stage: exit $? after $((SECONDS - s)) s (limit $limit)" | tee -a "$W/summary.txt"
  [ -f "$W/profile.log" ] && xz -6 -f "$W/profile.log"
  pack "$stage"
done
# Hand the kernel cache back for the next session's bundle (≤ 15 MiB after xz: $OUT takes
# files of 16 MiB), unless the call is near its end (EXPORT_BY, seconds since the start).
if [ "$DAM_KERNEL_CACHE" != off ] && [ "$SECONDS" -lt "${EXPORT_BY:-575}" ]; then
  s=$SECONDS
  if "$T" kernel-cache export "$W/kc-export" "dam-rs $(cat "$B/COMMIT" 2>/dev/null | cut -c1-12) on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)" >> "$W/kc-export.log" 2>&1 &&
    xz -6 -T0 -c "$W/kc-export" > "$W/kc-export.xz"; then
    size=$(stat -c %s "$W/kc-export.xz")
    if [ "$size" -le 15728640 ]; then cp "$W/kc-export.xz" "$OUT/kernel-cache.xz"; fi
    echo "kernel cache exported: $(tail -1 "$W/kc-export.log"), $size bytes xz, $((SECONDS - s)) s" | tee -a "$W/summary.txt"
  else
    echo "kernel cache export failed: $(tail -1 "$W/kc-export.log")" | tee -a "$W/summary.txt"
  fi
fi
grep -h "tok/s\|regions/s\|host queuing\|^| \(vision\|prefill\|preproc\)\|peak\|in use" "$W"/bf16.out 2>/dev/null | head -60
