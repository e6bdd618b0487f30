#!/usr/bin/env bash
# GPU check for issues 5 and 7, run on the lent GPU machine (no internet, no cargo registry).
#
# Build here first (the cuda feature fetches an LLVM bundle at build time; offline use
# `eval "$(../shared/tools/cuda-build-env.sh)"`), then pack the binaries:
#   cargo build --release -p dam-examples --features cuda --bin describe --bin bench   # ~21 min cold on 2 cores (measured 2026-11-26)
#   mkdir -p gpu-bundle && for b in describe bench; do strip -o /tmp/$b target/release/$b && xz -6 -c /tmp/$b > gpu-bundle/$b.xz; done
# and run this script through the device tool with `carry: ["gpu-bundle"]`. The carry limit is
# 64 MiB and each xz'd CUDA binary is ~33 MB (measured 2026-11-26: 155 MB stripped), so carry
# one binary per call: the script runs the parts whose binary is in gpu-bundle/.
#
# It runs every public fixture case through `describe` on CUDA in f32 (ids must equal the
# CPU's, i.e. the fixture's) and in bf16 (reports how many ids match), then the benchmark at
# DAM-3B size (bf16, batch 1 and 16). Results land in $OUT (or ./gpu-out).
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT" /tmp/dam-bin
for b in describe bench; do
  [ -f "gpu-bundle/$b.xz" ] && xz -dc "gpu-bundle/$b.xz" > "/tmp/dam-bin/$b" && chmod +x "/tmp/dam-bin/$b"
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
F=tests/fixtures/dam-tiny
if [ -x /tmp/dam-bin/describe ]; then
for dtype in f32 bf16; do
  for case in center tiny border video; do
    args=()
    n=$(python3 -c "import json;print(json.load(open('$F/cases/$case/case.json'))['num_frames'])")
    if [ "$case" = video ]; then
      for k in $(seq 0 $((n - 1))); do args+=(--image "$F/cases/$case/image_$k.png" --mask "$F/cases/$case/mask_$k.png"); done
    else
      args+=(--image "$F/cases/$case/image.png" --mask "$F/cases/$case/mask.png")
    fi
    query=$(python3 -c "import json;print(json.load(open('$F/cases/$case/case.json'))['query'])")
    timeout 300 /tmp/dam-bin/describe --model "$F/checkpoint" --backend cuda --dtype "$dtype" "${args[@]}" \
      --greedy --max-new-tokens 24 --json --query "$query" --dump "$OUT/$case-$dtype.safetensors" \
      > "$OUT/$case-$dtype.out" 2> "$OUT/$case-$dtype.err"
    echo "$case $dtype exit $?"
  done
done
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for dtype in ("f32", "bf16"):
    for case in ("center", "tiny", "border", "video"):
        want = json.load(open(f"tests/fixtures/dam-tiny/cases/{case}/case.json"))["generated_ids"]
        try:
            got = json.loads(open(f"{out}/{case}-{dtype}.out").read().strip().splitlines()[-1])["token_ids"]
        except Exception as e:
            print(f"{case} {dtype}: no result ({e})"); continue
        same = sum(a == b for a, b in zip(got, want))
        print(f"{case} {dtype}: {same}/{len(want)} ids match{' (identical)' if got == want else ''}")
PY
fi
[ -x /tmp/dam-bin/bench ] || exit 0
timeout 400 /tmp/dam-bin/bench --backend cuda --dtype bf16 --config full --new-tokens 256 --runs 3 --warmup 1 \
  --json "$OUT/bench-b1.json" > "$OUT/bench-b1.txt" 2>&1; echo "bench b1 exit $?"
timeout 400 /tmp/dam-bin/bench --backend cuda --dtype bf16 --config full --new-tokens 256 --runs 3 --warmup 1 \
  --batch 16 --json "$OUT/bench-b16.json" > "$OUT/bench-b16.txt" 2>&1; echo "bench b16 exit $?"
cat "$OUT/bench-b1.txt" "$OUT/bench-b16.txt"
