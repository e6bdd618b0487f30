#!/usr/bin/env python3
"""The products of `bench --probe-matmul` through PyTorch (cuBLAS), bf16, on the GPU machine:
what the card does at DAM-3B's shapes with NVIDIA's own kernels — the reference for cubecl's.
Prints a markdown table (µs per call, TFLOP/s). Needs torch with CUDA (the lent machines have
it); not part of the Rust build or tests.
"""
import torch

dev = "cuda"
dt = torch.bfloat16
t, d, i, h, dh = 729, 1152, 4304, 16, 72
rows, D, I = 247, 2560, 6912
linears = [
    ("vision q|k|v", t, d, 3 * d), ("vision k|v (adapter)", t, d, 2 * d), ("vision o", t, d, d),
    ("vision fc1", t, d, i), ("vision fc2", t, i, d),
    ("prefill q|k|v", rows, D, 3 * D), ("prefill o", rows, D, D),
    ("prefill gate|up", rows, D, 2 * I), ("prefill down", rows, I, D),
]


def bench(f, reps=50):
    for _ in range(5):
        f()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        f()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps * 1000  # µs


print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
print("| product | µs per call | TFLOP/s |")
print("| --- | ---: | ---: |")
total = 0.0
for name, m, k, n in linears:
    x = torch.randn(m, k, device=dev, dtype=dt)
    w = torch.randn(n, k, device=dev, dtype=dt) * 0.02
    b = torch.randn(n, device=dev, dtype=dt)
    us = bench(lambda: torch.nn.functional.linear(x, w, b))
    print(f"| {name} {m}×{k}→{n} | {us:.1f} | {2 * m * k * n / us / 1e6:.1f} |")
q = torch.randn(1, h, t, dh, device=dev, dtype=dt)
k = torch.randn(1, h, t, dh, device=dev, dtype=dt)
p = torch.softmax(torch.randn(1, h, t, t, device=dev, dtype=dt), -1)
flops = 2 * h * t * t * dh
us = bench(lambda: q @ k.transpose(2, 3))
print(f"| vision q·kᵀ {h}×{t}×{dh} | {us:.1f} | {flops / us / 1e6:.1f} |")
us = bench(lambda: p @ k)
print(f"| vision p·v {h}×{t}×{t} | {us:.1f} | {flops / us / 1e6:.1f} |")
us = bench(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, k))
print(f"| vision sdpa (whole attention) {h}×{t}×{dh} | {us:.1f} | {2 * flops / us / 1e6:.1f} |")
