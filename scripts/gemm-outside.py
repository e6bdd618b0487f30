#!/usr/bin/env python3
"""Times the hand-written matrix product (dam-core/src/matmul_kernel/gemm_hand.cu — the library's
`hand` matmul kernels — compiled offline by NVRTC)
on a GPU at DAM-3B's vision and prefill linears, beside PyTorch's cuBLAS, and prints what
the vision encode's linears would take with each — the question being whether a kernel with
`cp.async` and `ldmatrix` (what cubecl's LLVM build withholds) gets near cuBLAS where
cubek's routines reach 30–65 TFLOP/s (burn's autotune: ≈ 32.4 ms of linears an encode on
the H100, 2026-11-27).

    python3 scripts/gemm-outside.py DIR [--iters 50]   # DIR holds gemm-hand-bf16-sm90.nvrtc.ptx
    python3 scripts/gemm-outside.py --selftest          # no GPU: the launch constants against the .cu

Each product: x [M, K], w [K, N] (the library's layout of a linear's weight), bias [N], all
bf16 from `torch.randn` (w scaled by 1/√K); y checked against the f32 product of the same
bf16 values (+ bias; fc1 with the GELU the kernel applies) and against cuBLAS's bf16 output.
cuBLAS timed as `torch.addmm(bias, x, w)` (same layout) and as `F.linear(x, wᵀ, bias)`
(PyTorch's own `[N, K]` layout), every row timed as a CUDA graph of `--iters` calls
(scripts/flash-outside.py's `time_gpu`: the device's time, not Python's); then every variant of the hand kernel (the `.cu`'s
GEMM_HAND_VARIANTS: tile, K step, ring depth), each after every cuBLAS row — a fault in one
would poison the context for every launch after it.

Making DIR's PTX on a machine without a GPU (see scripts/flash-outside.py for the wheels):

    cp dam-core/src/matmul_kernel/gemm_hand.cu /tmp/fp/gemm-hand-bf16-sm90.cu
    python3 scripts/nvrtc-compile.py --lib NVRTC_LIB --include HEADERS /tmp/fp/gemm-hand-bf16-sm90.cu
    cp /tmp/fp/gemm-hand-bf16-sm90.nvrtc.ptx gpu-bundle/flash-ptx/
"""
import ctypes
import importlib.util
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
PTX_NAME = "gemm-hand-bf16-sm90.nvrtc.ptx"
THREADS = 256
# (name, M, K, N, bias, gelu); the names are scripts/pick-matmul.py's, whose COUNTS give the
# products per encode.
PRODUCTS = [
    ("vision q|k|v", 729, 1152, 3456, True, False),
    ("vision k|v (adapter)", 729, 1152, 2304, True, False),
    ("vision o", 729, 1152, 1152, True, False),
    ("vision fc1", 729, 1152, 4304, True, True),
    ("vision fc2", 729, 4304, 1152, True, False),
    ("prefill q|k|v", 247, 2560, 7680, False, False),
    ("prefill o", 247, 2560, 2560, False, False),
    ("prefill gate|up", 247, 2560, 13824, False, False),
    ("prefill down", 247, 6912, 2560, False, False),
]
CU = os.path.join(HERE, "..", "dam-core", "src", "matmul_kernel", "gemm_hand.cu")
# The most shared memory a kernel can declare statically — and cubecl's precompiled path
# (`PrecompiledSource`) launches with no dynamic shared memory, so only variants within it
# are the library's (`bench --matmul linear=hand-…`); their label says so.
STATIC_LIMIT = 48 * 1024
STATIC_MARK = " (≤ 48 KiB)"


def variants(path=CU):
    """The .cu's GEMM_HAND_VARIANTS: (entry point, BM, BN, BK, STAGES), in its order."""
    src = open(path).read()
    block = re.search(r"#define GEMM_HAND_VARIANTS\(X\)((?:.*\\\n)*.*\n)", src).group(1)
    out = []
    for bm, bn, bk, st in re.findall(r"X\((\d+), (\d+), (\d+), (\d+), \d+, \d+, \d+\)", block):
        bm, bn, bk, st = int(bm), int(bn), int(bk), int(st)
        out.append((f"gemm_hand_{bm}x{bn}x{bk}_s{st}", bm, bn, bk, st))
    return out


def cu_constants(path=CU):
    src = open(path).read()
    d = {"THREADS": int(re.search(r"#define THREADS (\d+)", src).group(1))}
    d["LDA_PAD"] = int(re.search(r"LDA = BK \+ (\d+);", src).group(1))
    d["LDB_PAD"] = int(re.search(r"LDB = BN \+ (\d+);", src).group(1))
    return d


def shared_bytes(bm, bn, bk, stages, c):
    """`Shape<…>::SHARED_BYTES` of the .cu: STAGES × (BM × (BK + 8) + BK × (BN + 8)) bf16."""
    return stages * (bm * (bk + c["LDA_PAD"]) + bk * (bn + c["LDB_PAD"])) * 2


def counts():
    return load_script("pick_matmul", "pick-matmul.py").COUNTS


def selftest():
    c = cu_constants()
    assert c["THREADS"] == THREADS, c
    v = variants()
    assert len(v) >= 2 and v[0] == ("gemm_hand_64x128x32_s3", 64, 128, 32, 3), v
    # The variants within 48 KiB first (the .cu's comment).
    fits = [shared_bytes(bm, bn, bk, st, c) <= STATIC_LIMIT for _, bm, bn, bk, st in v]
    assert fits == sorted(fits, reverse=True), fits
    assert shared_bytes(128, 128, 32, 3, c) == 56832 and shared_bytes(64, 128, 32, 3, c) == 41472, c
    for name, bm, bn, bk, st in v:
        # H100: 227 KiB of shared memory a block at most.
        assert shared_bytes(bm, bn, bk, st, c) <= 227 * 1024, name
    n = counts()
    assert all(p[0] in n for p in PRODUCTS), "a product without a count in pick-matmul.py"
    print(f"gemm-outside: selftest ok ({len(v)} variants: {', '.join(x[0] for x in v)})")


def load_script(name, file):
    """Another script of this folder as a module (its name has a dash)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    fo = load_script("flash_outside", "flash-outside.py")  # the driver, the timing, the command line
    args = fo.cli(__doc__, selftest)
    import torch
    import torch.nn.functional as F

    drv = fo.Driver()
    c = cu_constants()
    n_of = counts()
    torch.manual_seed(0)
    eager = []  # rows whose CUDA-graph capture failed (timed eagerly: host time included)

    def timed(fn, what):
        us, how = fo.time_gpu(torch, fn, args.iters)
        if how != "graph":
            eager.append(what)
        return us

    data = []
    for name, m, k, n, has_bias, gelu in PRODUCTS:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        w = (torch.randn(k, n, device="cuda") / k ** 0.5).to(torch.bfloat16)
        b = (torch.randn(n, device="cuda") * 0.5).to(torch.bfloat16)
        want = x.float() @ w.float()
        if has_bias:
            want = want + b.float()
        if gelu:
            want = F.gelu(want.to(torch.bfloat16).float(), approximate="tanh")
        data.append((x, w, b, want))

    print(f"| product (bf16) | M × K → N | kernel | µs | TFLOP/s | max abs diff vs f32 | vs cuBLAS bf16 |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    per_encode = {}  # kernel -> ms of the vision linears an encode
    best_hand = {}  # vision product -> the fastest hand variant's µs
    best_static = {}  # the same among the variants that fit 48 KiB (cubecl's precompiled path)

    def cell(name):
        return name.replace("|", "\\|")  # a markdown cell

    def row(name, m, k, n, kernel, us, diff, vs, gelu=False, hand=False, fits=False):
        tflops = 2 * m * k * n / us / 1e6
        label = kernel + (" + GELU" if gelu else "")
        print(f"| {cell(name)} | {m} × {k} → {n} | {label} | {us:.1f} | {tflops:.0f} | {diff} | {vs} |", flush=True)
        if name.startswith("vision"):
            per_encode[kernel] = per_encode.get(kernel, 0.0) + n_of[name] * us / 1e3
            if hand:
                best_hand[name] = min(best_hand.get(name, us), us)
            if fits:
                best_static[name] = min(best_static.get(name, us), us)

    cublas_out = []
    for (name, m, k, n, has_bias, gelu), (x, w, b, want) in zip(PRODUCTS, data):
        wt = w.t().contiguous()

        def addmm():
            y = torch.addmm(b, x, w) if has_bias else x @ w
            return F.gelu(y, approximate="tanh") if gelu else y

        def linear():
            y = F.linear(x, wt, b if has_bias else None)
            return F.gelu(y, approximate="tanh") if gelu else y

        cublas_out.append(addmm())
        for kernel, fn in (("cuBLAS addmm", addmm), ("cuBLAS F.linear", linear)):
            diff = f"{(fn().float() - want).abs().max().item():.3e}"
            row(name, m, k, n, kernel, timed(fn, f"{name} {kernel}"), diff, "—", gelu)

    ptx = open(os.path.join(args.dir, PTX_NAME)).read()
    for kname, bm, bn, bk, st in variants():
        shared = shared_bytes(bm, bn, bk, st, c)
        fits = shared <= STATIC_LIMIT
        label = f"hand {bm}×{bn}×{bk}, {st} stages" + (STATIC_MARK if fits else "")
        try:
            func = drv.load(ptx, kname)
        except Exception as e:
            print(f"| — | — | {label} | failed to load: {e} | — | — | — |", flush=True)
            continue
        for (name, m, k, n, has_bias, gelu), (x, w, b, want), ref in zip(PRODUCTS, data, cublas_out):
            try:
                y = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
                argv = [ctypes.c_uint64(x.data_ptr()), ctypes.c_uint64(w.data_ptr()),
                        ctypes.c_uint64(b.data_ptr() if has_bias else 0), ctypes.c_uint64(y.data_ptr()),
                        ctypes.c_int(m), ctypes.c_int(n), ctypes.c_int(k), ctypes.c_int(int(gelu))]
                grid = (-(-n // bn), -(-m // bm), 1)

                def run():
                    stream = torch.cuda.current_stream().cuda_stream
                    drv.launch(func, grid, (THREADS, 1, 1), shared, stream, argv)

                us = timed(run, f"{name} {label}")
                y.fill_(float("nan"))
                run()
                torch.cuda.synchronize()
                diff = f"{(y.float() - want).abs().max().item():.3e}"
                vs = f"{(y.float() - ref.float()).abs().max().item():.3e}"
                row(name, m, k, n, label, us, diff, vs, gelu, hand=True, fits=fits)
            except Exception as e:  # one product failing must not hide the others
                print(f"| {cell(name)} | {m} × {k} → {n} | {label} | failed: {e} | — | — | — |", flush=True)

    print()
    if eager:
        print(f"Timed eagerly (the CUDA graph capture failed; host time included): {', '.join(eager)}")
    print("Vision linears per encode (counts of scripts/pick-matmul.py; burn's autotune on the "
          "H100 2026-11-27: 32.4 ms):")
    for kernel, ms in per_encode.items():
        print(f"- {kernel}: {ms:.2f} ms")
    for what, best in (("", best_hand), (" that fits 48 KiB", best_static)):
        if best:
            ms = sum(n_of[name] * us / 1e3 for name, us in best.items())
            print(f"- hand, the fastest variant{what} for each product ({len(best)} products): {ms:.2f} ms")


if __name__ == "__main__":
    main()
