#!/usr/bin/env bash
# Prepares gpu-bundle/ for `scripts/gpu-check.sh` from a fresh checkout, in one command:
#
#   bash scripts/gpu-bundle.sh            # 28 min cold on 2 cores (2026-11-27), ~1 min with a warm target
#
# 1. the LLVM bundle burn's cuda feature needs at build time (../shared/tools/cuda-build-env.sh,
#    from PyPI; this machine cannot reach GitHub),
# 2. `dam-tools` (describe + segment + bench in one binary) built with `--features cuda,wgpu`
#    into $CUDA_TARGET (default /tmp/cuda-target: kept apart from target/ so the CPU builds and
#    the CUDA build do not evict each other's artefacts),
# 3. stripped and xz'd into gpu-bundle/dam-tools.xz (the device tool carries ≤ 64 MiB; the
#    stripped binary is ~155 MB, 40.6 MB xz at 88898a4), its commit in gpu-bundle/COMMIT
#    ("-dirty" when the tree has changes), a check that it runs (`describe` of the `border`
#    case on the CPU, the original's ids),
# 4. the batch files and the Vulkan loader (scripts/gpu-prep.py; Debian's libvulkan1 is
#    installed here first when missing, so the wgpu stage has a loader to carry),
# 5. gpu-bundle/ named in .git/info/exclude, so that the device tool's copy of the working tree
#    leaves it out unless `carry` names it.
#
# Then, through the device tool: `carry: ["gpu-bundle"]`, e.g.
#   STAGES="matmul" OUT=$OUT bash scripts/gpu-check.sh
# and `give_back` unless the next call follows at once.
#
# `VARIANT=nvrtc bash scripts/gpu-bundle.sh` builds the same into gpu-bundle-nvrtc/ with
# `--features cuda,cuda-nvrtc,wgpu`: cubecl's kernels compiled from CUDA C++ by NVRTC instead of
# through LLVM (the LLVM path withholds TMA, `cp.async` and barriers; docs/performance.md,
# 2026-11-27). Run it with `carry: ["gpu-bundle-nvrtc"]` and `BUNDLE=gpu-bundle-nvrtc` before
# scripts/gpu-check.sh. (Both bundles do not fit one call's 64 MiB: one per call.)
set -euo pipefail
cd "$(dirname "$0")/.."
CUDA_TARGET=${CUDA_TARGET:-/tmp/cuda-target}
VARIANT=${VARIANT:-llvm}
case $VARIANT in
  llvm) bundle=gpu-bundle features=cuda,wgpu ;;
  nvrtc) bundle=gpu-bundle-nvrtc features=cuda,cuda-nvrtc,wgpu ;;
  *) echo "gpu-bundle: VARIANT is llvm or nvrtc, not $VARIANT" >&2; exit 2 ;;
esac
mkdir -p "$bundle"

grep -qx "$bundle/" .git/info/exclude 2>/dev/null || {
  mkdir -p .git/info && echo "$bundle/" >> .git/info/exclude
}

if [ ! -e /usr/lib/x86_64-linux-gnu/libvulkan.so.1 ]; then
  echo "gpu-bundle: installing Debian's Vulkan loader (libvulkan1) to carry along" >&2
  apt-get install -y -q libvulkan1 >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q libvulkan1 >/dev/null; }
fi

eval "$(../shared/tools/cuda-build-env.sh)"
echo "gpu-bundle: building dam-tools ($features) into $CUDA_TARGET" >&2
CARGO_TARGET_DIR="$CUDA_TARGET" cargo build --release -p dam-examples --features "$features" --bin dam-tools

strip -o /tmp/dam-tools "$CUDA_TARGET/release/dam-tools"
xz -6 -T2 -c /tmp/dam-tools > "$bundle/dam-tools.xz"
commit=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- . ':!gpu-bundle*' || commit="$commit-dirty"
echo "$commit" > "$bundle/COMMIT"

# The binary must describe a fixture case with the original's greedy ids on the CPU before it
# is worth a device call.
case_dir=tests/fixtures/dam-tiny/cases/border
query=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['query'])" "$case_dir/case.json")
ids=$(/tmp/dam-tools describe --model tests/fixtures/dam-tiny/checkpoint --backend cpu \
  --image "$case_dir/image.png" --mask "$case_dir/mask.png" --greedy --max-new-tokens 24 \
  --json --query "$query" | tail -n 1 | python3 -c "import json,sys; print(json.load(sys.stdin)['token_ids'])")
want=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['generated_ids'])" "$case_dir/case.json")
if [ "$ids" != "$want" ]; then
  echo "gpu-bundle: the CUDA build's CPU path gave $ids for border, the original $want" >&2
  exit 1
fi
echo "gpu-bundle: border on the CPU through the bundled binary: the original's ids" >&2

python3 scripts/gpu-prep.py "$bundle"
ls -l "$bundle" >&2
echo "gpu-bundle: $bundle ready ($(du -sh "$bundle" | cut -f1), commit $commit, kernels compiled by $VARIANT)" >&2
