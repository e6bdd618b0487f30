#!/usr/bin/env python3
"""Compiles CUDA C++ files to PTX with NVRTC, as cubecl-cuda's C++ backend does at run time
(`--gpu-architecture=sm_XXa`, the CUDA include folder, `-lineinfo`), without a GPU: NVRTC is
a host library. For kernels `bench --flash-ptx DIR` writes as C++ (`*.cu`): does NVRTC take
them, how long does it take per kernel, and (with ptxas) how many registers do they use.

    python3 scripts/nvrtc-compile.py --lib DIR_WITH_LIBNVRTC --include DIR [--arch 90] FILE.cu...

Writes FILE.nvrtc.ptx beside each file and prints one line per file: seconds, PTX size, the
compiler's log (warnings / errors). libnvrtc from PyPI: `nvidia-cuda-nvrtc-cu12` (lib/), the
headers from `nvidia-cuda-runtime-cu12` (include/) and `nvidia-cuda-nvcc-cu12` (include/crt).
Standard-library Python only (ctypes).
"""
import argparse
import ctypes
import glob
import os
import sys
import time


def load(libdir):
    # libnvrtc loads libnvrtc-builtins from its own folder.
    names = sorted(glob.glob(os.path.join(libdir, "libnvrtc.so*")))
    names = [n for n in names if ".alt." not in n]
    if not names:
        sys.exit(f"nvrtc-compile: no libnvrtc.so* in {libdir}")
    for b in glob.glob(os.path.join(libdir, "libnvrtc-builtins.so*")):
        if ".alt." not in b:
            ctypes.CDLL(b, mode=ctypes.RTLD_GLOBAL)
    return ctypes.CDLL(names[0])


def compile_one(lib, path, options):
    src = open(path, "rb").read()
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), src, os.path.basename(path).encode(), 0, None, None)
    if rc != 0:
        return None, f"nvrtcCreateProgram: error {rc}", 0.0
    opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    t = time.perf_counter()
    rc = lib.nvrtcCompileProgram(prog, len(options), opts)
    seconds = time.perf_counter() - t
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    ptx = None
    if rc == 0:
        lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(prog, buf)
        ptx = buf.value.decode()
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return ptx, log.value.decode(errors="replace").strip(), seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", required=True, help="folder holding libnvrtc.so.* and libnvrtc-builtins.so.*")
    ap.add_argument("--include", required=True, help="CUDA include folder (cuda_bf16.h, mma.h, crt/)")
    ap.add_argument("--arch", type=int, default=90, help="SM version (90: H100; sm_90a as cubecl-cuda asks)")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    lib = load(args.lib)
    arch = f"sm_{args.arch}a" if args.arch >= 90 else f"sm_{args.arch}"
    options = [f"--gpu-architecture={arch}", f"--include-path={args.include}", "-lineinfo"]
    failed = 0
    for path in args.files:
        ptx, log, seconds = compile_one(lib, path, options)
        status = "ok" if ptx is not None else "FAILED"
        failed += ptx is None
        size = len(ptx) if ptx else 0
        print(f"{os.path.basename(path)}: {status} in {seconds:.2f} s, PTX {size} bytes")
        if log:
            print("  " + log.replace("\n", "\n  "))
        if ptx is not None:
            out = os.path.splitext(path)[0] + ".nvrtc.ptx"
            open(out, "w").write(ptx)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
