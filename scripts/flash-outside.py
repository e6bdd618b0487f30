#!/usr/bin/env python3
"""Launches the flash kernel's PTX **outside cubecl** on a GPU and times it with CUDA events:
whether the kernel's code is slow (1.3–2.9 ms a SigLIP attention through cubecl on the H100,
2026-11-27) or how cubecl runs it, whether the LLVM build's PTX and NVRTC's PTX of the
same kernel differ on the card, and what a hand-written kernel (dam-vision/src/flash/flash_hand.cu, same
arguments) does beside them.

    python3 scripts/flash-outside.py DIR [--iters 50]

DIR holds what `bench --flash-ptx DIR` writes (`flash-<form>-sm90.ptx` from cubecl's LLVM
compiler, `summary.json` with each form's planes and shared bytes) and, compiled from its
`.cu` files by `scripts/nvrtc-compile.py`, `flash-<form>-sm90.nvrtc.ptx`. Each PTX is loaded
with the CUDA driver (`cuModuleLoadData`, through ctypes), launched as
`dam_vision::flash::cube` launches it — grid (⌈729 / (16 · planes)⌉, 16 heads), block (32,
planes), the shared bytes dynamic — on PyTorch's bf16 tensors `[1, 16, 729, 72]`, timed over
`--iters` launches (captured in a CUDA graph and replayed: device time, not Python's; see
`time_gpu`), and compared with PyTorch's attention in f32.

The launch's arguments, as cubecl-cuda 0.11.3 passes them on sm_70+ (grid constants): the
four buffers (q, k, v, out), a buffer of "dynamic metadata" (here: each tensor's four strides,
in elements), and a 104-byte struct by value — `uint32 scalars_usize[8]`, `float
scalars_f32[2]` (the scale at byte 32), `uint32 scalars_u32[4]` (heads, seq_q, seq_kv at bytes
40, 44, 48), `uint32 static_meta[12]` (at byte 56; entries 8–11, bytes 88–100, the offsets of
q's, k's, v's and out's strides in the dynamic metadata). Read off the kernel's CUDA C++
(`struct info_st`) and its PTX (`ld.param … [param_5+40]` etc.); this kernel reads nothing
else of the struct. `--selftest` checks the packing without a GPU.

Needs PyTorch with CUDA (the lent machines have it) and the driver's libcuda.

Making DIR on a machine without a GPU (what gpu-bundle/flash-ptx/ holds, 2026-11-28):

    eval "$(../shared/tools/cuda-build-env.sh)"
    CARGO_TARGET_DIR=/tmp/cuda-target cargo build --release -p dam-examples --features cuda,wgpu --bin dam-tools
    # libdevice for cubecl's LLVM compiler: PyPI's nvidia-cuda-nvcc-cu12, unpacked
    CUDA_PATH=/tmp/cuda-libdevice/nvidia/cuda_nvcc /tmp/cuda-target/release/dam-tools bench --flash-ptx /tmp/fp
    # libnvrtc: nvidia-cuda-nvrtc-cu12's lib/; headers: nvidia-cuda-runtime-cu12's include/
    # with nvidia-cuda-nvcc-cu12's include/ (crt/) copied in
    python3 scripts/nvrtc-compile.py --lib NVRTC_LIB --include HEADERS /tmp/fp/flash-*bf16*-sm90.cu
    mkdir -p gpu-bundle/flash-ptx && cp /tmp/fp/summary.json /tmp/fp/flash-*bf16*-sm90*.ptx gpu-bundle/flash-ptx/
    # and dam-vision/src/flash/flash_hand.cu, a hand-written kernel with the same arguments, beside them:
    cp dam-vision/src/flash/flash_hand.cu /tmp/fp/flash-hand-bf16-sm90.cu
    python3 scripts/nvrtc-compile.py --lib NVRTC_LIB --include HEADERS /tmp/fp/flash-hand-bf16-sm90.cu
    cp /tmp/fp/flash-hand-bf16-sm90.nvrtc.ptx gpu-bundle/flash-ptx/
"""
import argparse
import ctypes
import json
import os
import re
import struct
import sys

HEADS, SEQ, HEAD_DIM = 16, 729, 72
ROWS = 16  # query rows per plane (`flash::kernel::ROWS`)
INFO_BYTES = 104


def info_struct(heads, seq_q, seq_kv, scale, stride_offsets):
    """The 104-byte grid-constant struct (see the module docs)."""
    b = bytearray(INFO_BYTES)
    struct.pack_into("<f", b, 32, scale)
    struct.pack_into("<3I", b, 40, heads, seq_q, seq_kv)
    struct.pack_into("<4I", b, 88, *stride_offsets)
    return bytes(b)


def entry_name(ptx):
    m = re.search(r"\.visible\s+\.entry\s+([A-Za-z0-9_]+)\s*\(", ptx)
    if not m:
        raise ValueError("no .entry in the PTX")
    return m.group(1)


def selftest():
    b = info_struct(16, 729, 729, 0.125, (0, 4, 8, 12))
    assert len(b) == INFO_BYTES
    assert struct.unpack_from("<f", b, 32)[0] == 0.125
    assert struct.unpack_from("<3I", b, 40) == (16, 729, 729)
    assert struct.unpack_from("<4I", b, 88) == (0, 4, 8, 12)
    assert b[:32] == bytes(32) and b[52:88] == bytes(36)
    assert entry_name(".visible .entry flash_attention_kernel_e_bf16_0f154b7f(\n") == \
        "flash_attention_kernel_e_bf16_0f154b7f"
    print("flash-outside: selftest ok")


def time_gpu(torch, fn, iters):
    """µs per call of `fn` on the GPU, and how it was timed. `fn` launches on torch's current
    stream, read at each call. Three calls to warm up, then `iters` calls captured into a CUDA
    graph and replayed between two events: the device's time alone, not Python's — a ctypes
    launch or a PyTorch op costs the host 5–50 µs, as much as the kernels measured here, and
    eager timing would measure that instead. If the capture fails, the calls are timed
    eagerly ("eager")."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    try:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(iters):
                fn()
        graph.replay()
        torch.cuda.synchronize()
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) * 1e3 / iters, "graph"
    except Exception:  # noqa: BLE001 — any capture failure: time eagerly instead
        torch.cuda.synchronize()
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) * 1e3 / iters, "eager"


class Driver:
    def __init__(self):
        self.lib = ctypes.CDLL("libcuda.so.1")
        self.shared_set = set()  # (function, bytes) whose dynamic shared memory limit is set

    def check(self, rc, what):
        if rc != 0:
            name = ctypes.c_char_p()
            self.lib.cuGetErrorName(rc, ctypes.byref(name))
            raise RuntimeError(f"{what}: {name.value.decode() if name.value else rc}")

    def load(self, ptx, name):
        module = ctypes.c_void_p()
        self.check(self.lib.cuModuleLoadData(ctypes.byref(module), ctypes.c_char_p(ptx.encode() + b"\0")),
                   "cuModuleLoadData")
        func = ctypes.c_void_p()
        self.check(self.lib.cuModuleGetFunction(ctypes.byref(func), module, name.encode()), "cuModuleGetFunction")
        return func

    def launch(self, func, grid, block, shared, stream, args):
        # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8, as cubecl-cuda sets it; once a
        # function (not a stream operation: it must not fall inside a graph capture).
        if (func.value, shared) not in self.shared_set:
            self.check(self.lib.cuFuncSetAttribute(func, 8, ctypes.c_int(shared)), "cuFuncSetAttribute")
            self.shared_set.add((func.value, shared))
        params = (ctypes.c_void_p * len(args))(*[ctypes.cast(ctypes.pointer(a), ctypes.c_void_p) for a in args])
        self.check(self.lib.cuLaunchKernel(func, *grid, *block, ctypes.c_uint(shared), ctypes.c_void_p(stream),
                                           params, None), "cuLaunchKernel")


def cli(doc, selftest):
    """The command line both `-outside` scripts take: `DIR [--iters N]` or `--selftest` (which
    runs `selftest` and exits)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("dir", nargs="?")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--selftest", action="store_true")
    args = ap.parse_args()
    if args.selftest:
        selftest()
        sys.exit(0)
    return args


def main():
    args = cli(__doc__, selftest)
    import torch
    import torch.nn.functional as F

    summary = {s["name"]: s for s in json.load(open(os.path.join(args.dir, "summary.json")))}
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, HEADS, SEQ, HEAD_DIM, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    scale = HEAD_DIM ** -0.5
    want = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), scale=scale)
    drv = Driver()

    def timed(fn):
        us, how = time_gpu(torch, fn, args.iters)
        return f"{us:.1f}" + ("" if how == "graph" else " (eager)")

    print(f"| kernel (bf16 [1, {HEADS}, {SEQ}, {HEAD_DIM}]) | compiler | µs per call | max abs diff vs f32 |")
    print("| --- | --- | ---: | ---: |")
    us = timed(lambda: F.scaled_dot_product_attention(q, k, v, scale=scale))
    got = F.scaled_dot_product_attention(q, k, v, scale=scale)
    print(f"| PyTorch SDPA | — | {us} | {(got.float() - want).abs().max().item():.3e} |", flush=True)
    # The LLVM build's PTX first (what the library runs), then NVRTC's, the hand-written kernel
    # last: a fault in one would poison the context for every launch after it.
    order = lambda p: (p.startswith("flash-hand-"), ".nvrtc." in p, p)  # noqa: E731
    for path in sorted(os.listdir(args.dir), key=order):
        m = re.match(r"(flash-.*-sm(\d+))(\.nvrtc)?\.ptx$", path)
        if not m or int(m.group(2)) != torch.cuda.get_device_capability()[0] * 10:
            continue
        form = summary.get(m.group(1))
        if form is None and m.group(1).startswith("flash-hand-"):
            # dam-vision/src/flash/flash_hand.cu: 4 warps of 16 query rows, its shared memory static.
            form = {"dtype": "BF16", "planes": 4, "shared_bytes": 0}
        if form is None or form["dtype"] != "BF16":
            continue
        compiler = "NVRTC" if m.group(3) else "LLVM"
        if m.group(1).startswith("flash-hand-"):
            compiler = "hand-written C++, NVRTC"
        try:
            ptx = open(os.path.join(args.dir, path)).read()
            func = drv.load(ptx, entry_name(ptx))
            out = torch.zeros_like(q)
            strides = torch.tensor([list(t.stride()) for t in (q, k, v, out)], dtype=torch.int32,
                                   device="cuda").flatten()
            info = ctypes.create_string_buffer(info_struct(HEADS, SEQ, SEQ, scale, (0, 4, 8, 12)), INFO_BYTES)
            ptrs = [ctypes.c_uint64(t.data_ptr()) for t in (q, k, v, out, strides)]
            planes = form["planes"]
            grid = (-(-SEQ // (ROWS * planes)), HEADS, 1)
            block = (32, planes, 1)

            def run():
                stream = torch.cuda.current_stream().cuda_stream
                drv.launch(func, grid, block, form["shared_bytes"], stream, ptrs + [info])

            us = timed(run)
            out.zero_()
            run()
            torch.cuda.synchronize()
            diff = (out.float() - want).abs().max().item()
            print(f"| {m.group(1)} ({planes} planes) | {compiler} | {us} | {diff:.3e} |", flush=True)
        except Exception as e:  # one kernel failing must not hide the others
            print(f"| {m.group(1)} | {compiler} | failed: {e} | — |", flush=True)


if __name__ == "__main__":
    main()
