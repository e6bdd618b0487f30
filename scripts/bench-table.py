#!/usr/bin/env python3
"""One line per `bench --json` file: what ran (batch, vision attention, LayerNorm, matmul, KV
cache, compiler) and the medians (min–max) of each phase, for reading a GPU run's results.

usage: bench-table.py FILE_OR_DIR...   (a folder: every bench-*.json in it)

Standard library only.
"""
import json
import pathlib
import sys

PHASES = [
    ("preprocessing_ms", "preproc ms"),
    ("vision_ms", "vision ms"),
    ("prefill_ms", "prefill ms"),
    ("decode_tokens_per_s", "decode tok/s"),
    ("regions_per_s", "regions/s"),
]


def files(args):
    for arg in args:
        path = pathlib.Path(arg)
        yield from sorted(path.glob("bench-*.json")) if path.is_dir() else [path]


def cell(phase):
    if phase is None:
        return "—"
    return f"{phase['median']:.4g} ({phase['min']:.4g}–{phase['max']:.4g})"


print("| file | batch | runs | vision attention | layer-norm kernel | matmul | KV slots | device | "
      + " | ".join(name for _, name in PHASES) + " | peak GiB (sampled / pools) |")
print("| --- " * (9 + len(PHASES)) + "|")
for path in files(sys.argv[1:]):
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        print(f"| {path.name} | unreadable: {e} |")
        continue
    if "phases" not in d:
        continue
    p = d["phases"]
    print(
        f"| {path.name} | {d.get('batch')} | {d.get('runs')} | {d.get('vision_attention', '—')} | "
        f"{d.get('layer_norm_kernel', '—')} | {d.get('matmul', '—')} | {d.get('cache_len', '—')} | "
        f"{d.get('device', '—')} | "
        + " | ".join(cell(p.get(key)) for key, _ in PHASES)
        + f" | {d.get('device_memory_in_use_sampled_peak_gib', 0):.2f} / {d.get('peak_memory_gib', 0):.2f} |"
    )
