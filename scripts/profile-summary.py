#!/usr/bin/env python3
"""Summarises cubecl's per-kernel profile log (`CUBECL_DEBUG_OPTION=profile`, the `profile`
stage of scripts/gpu-check.sh) for the vision encodes in it.

    python3 scripts/profile-summary.py profile.log[.xz]

Each encode is found by its two patch-embedding convolutions (the only implicit-GEMM kernels,
`MatmulEntry | TensorArgs | RuntimeArgs`, one per pass) and ends at the LLM's first RMSNorm
after them. Per encode it prints the kernel count and the summed profiled time by kernel kind,
grouped into what they compute. Profiled times serialise every kernel and include its launch,
so they sum to more than an encode takes unprofiled (54 ms recorded vs ≈ 100 ms summed on an
H100, 2026-11-26): read them as shares, not as the encode's time.
"""
import bisect
import collections
import lzma
import re
import sys

UNITS = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}
# Kernel kinds (names with hashes and launch arguments removed) → what they compute in the
# vision tower; anything else is "other".
GROUPS = [
    ("convolution (patch embedding)", lambda n: "RuntimeArgs" in n and n.startswith("MatmulEntry")),
    ("matmul with fused epilogue (bias, GELU)", lambda n: n.startswith("MatmulEntry | FusedMatmulArgs")),
    ("matmul (linears without epilogue, q·kᵀ, ·v)", lambda n: n.startswith("MatmulEntry")),
    ("softmax as separate ops (scale, max, sub, exp, sum, div, NaN guards)",
     lambda n: any(k in n for k in ("ScalarBinop | MulOp", "SubOp", "DivOp", "BasicFloatUnary",
                                    "MaskFill", "ScalarCmp")) or n.startswith("ReduceKernel | TensorArgs")),
    ("fused reductions and elementwise (layer norms, GELU, residuals)", lambda n: n.startswith(("ReduceKernelFused", "ElemwiseFuse"))),
    ("copies and slices (head split/merge, q|k|v split)", lambda n: n.startswith(("CopyKernel", "SliceKernel"))),
    ("binary adds/muls (bias, residual, gates)", lambda n: n.startswith("KernelBinop")),
]


def rows(path):
    opener = lzma.open if path.endswith(".xz") else open
    out = []
    with opener(path, "rt") as f:
        for line in f:
            m = re.match(r"\|\s*([\d.]+)(ns|µs|us|ms|s)\s*\|\s*(.*)$", line.strip())
            if m:
                name = re.sub(r"_[0-9a-f]{8}", "", m.group(3).strip())
                name = name.replace("DynamicScalar | ", "").replace("DynamicSize | ", "")
                out.append((float(m.group(1)) * UNITS[m.group(2)], name))
    return out


def group(name):
    return next((g for g, test in GROUPS if test(name)), "other")


def main():
    log = rows(sys.argv[1])
    convs = [i for i, (_, n) in enumerate(log) if group(n) == GROUPS[0][0]]
    norms = [i for i, (_, n) in enumerate(log) if n.startswith("RmsNormKernel")]
    print(f"{len(log)} kernels in the log, {len(convs)} patch-embedding convolutions")
    for e, k in enumerate(range(0, len(convs) - 1, 2)):
        start, second = convs[k], convs[k + 1]
        after = bisect.bisect(norms, second)
        end = norms[after] if after < len(norms) else len(log)
        seg = log[start:end]
        total = sum(t for t, _ in seg)
        print(f"\nencode {e + 1}: {len(seg)} kernels, {total / 1e3:.1f} ms profiled")
        by_group = collections.defaultdict(lambda: [0, 0.0])
        for t, n in seg:
            g = by_group[group(n)]
            g[0] += 1
            g[1] += t
        print("| what | kernels | profiled ms | share |")
        print("| --- | ---: | ---: | ---: |")
        for g, (c, t) in sorted(by_group.items(), key=lambda x: -x[1][1]):
            print(f"| {g} | {c} | {t / 1e3:.1f} | {100 * t / total:.0f} % |")


if __name__ == "__main__":
    main()
