#!/usr/bin/env python3
"""Writes a DAM-3B-shaped checkpoint with random bf16 weights in the Hugging Face layout of
`nvidia/DAM-3B` (LLM in shards + `model.safetensors.index.json`), to time and check loading
the real thing where it cannot be downloaded:

    python3 scripts/make-full-checkpoint.py /tmp/dam-3b-random     # ~7.1 GB on disk, ~1 min
    cargo run --release -p dam-examples --bin describe -- --model /tmp/dam-3b-random ...

Every tensor name comes from the tiny checkpoint (`tests/fixtures/dam-tiny/checkpoint`, saved
by the original code), with its layers repeated to DAM-3B's counts and each dimension mapped
to DAM-3B's size per component (spec §4–§6); the configs are the tiny ones with the sizes
replaced. The tokenizer stays the tiny one (its 512 ids are valid in a 32 000-row table), so
the text is noise — the point is the layout, the dtype and the sizes. Values are N(0, 0.02)
(LayerNorm/RMSNorm weights 1, gates 0.1), written as raw bf16 (numpy has no bf16: the upper
16 bits of f32).
"""
import json
import pathlib
import re
import shutil
import struct
import sys

import numpy as np

tiny = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/dam-tiny/checkpoint"
out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/dam-3b-random")
rng = np.random.default_rng(3)

# Per component: tiny dimension -> DAM-3B dimension, and layer count.
VISION = {64: 1152, 160: 4304, 192: 3456, 49: 729}
COMPONENTS = {
    "vision_tower": (VISION, 27),
    "context_provider": (VISION, 27),
    "mm_projector": ({256: 4608, 64: 2560}, None),
    "llm": ({64: 2560, 172: 6912, 512: 32000}, 32),
}
CONFIG = {
    "vision_tower": dict(hidden_size=1152, intermediate_size=4304, num_attention_heads=16, num_hidden_layers=27, image_size=384),
    "context_provider": dict(hidden_size=1152, intermediate_size=4304, num_attention_heads=16, num_hidden_layers=27, image_size=384),
    "llm": dict(hidden_size=2560, intermediate_size=6912, num_attention_heads=20, num_key_value_heads=20, head_dim=128, num_hidden_layers=32, vocab_size=32000),
}


def header(path):
    raw = path.read_bytes()[:8]
    n = struct.unpack("<Q", raw)[0]
    h = json.loads(path.read_bytes()[8:8 + n])
    h.pop("__metadata__", None)
    return h


def tensors(component):
    dims, layers = COMPONENTS[component]
    h = header(tiny / component / "model.safetensors")
    seen = {}
    for name, info in h.items():
        shape = [dims.get(d, d) for d in info["shape"]]
        m = re.search(r"\.layers\.(\d+)\.", name)
        if m and layers is not None and component != "mm_projector":
            if m.group(1) != "0":
                continue
            for i in range(layers):
                seen[name.replace(".layers.0.", f".layers.{i}.")] = shape
        else:
            seen[name] = shape
    return seen


def values(name, shape):
    n = int(np.prod(shape))
    # LayerNorm / RMSNorm scales (the projector's `layers.1` is its LayerNorm).
    if re.search(r"norm\d?\.weight$", name) or name == "layers.1.weight":
        v = np.ones(n, np.float32)
    elif name.endswith("_factor"):
        v = np.full(n, 0.1, np.float32)
    else:
        v = rng.standard_normal(n, dtype=np.float32) * 0.02
    return (v.view(np.uint32) >> 16).astype(np.uint16)  # bf16, truncated


def write(path, items):
    meta, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in items:
        size = int(np.prod(shape)) * 2
        meta[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    head = json.dumps(meta, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        for name, shape in items:
            f.write(values(name, shape).tobytes())


out.mkdir(parents=True, exist_ok=True)
for component in COMPONENTS:
    d = out / component
    d.mkdir(exist_ok=True)
    for f in (tiny / component).iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, d / f.name)
    items = sorted(tensors(component).items())
    if component == "llm":
        # Two shards and an index, as save_pretrained writes them.
        half = len(items) // 2
        shards = [items[:half], items[half:]]
        weight_map, total = {}, 0
        for k, shard in enumerate(shards, 1):
            fname = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
            write(d / fname, shard)
            for name, shape in shard:
                weight_map[name] = fname
                total += int(np.prod(shape)) * 2
        (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    else:
        write(d / "model.safetensors", items)
    if component in CONFIG:
        cfg = json.loads((d / "config.json").read_text())
        cfg.update(CONFIG[component])
        (d / "config.json").write_text(json.dumps(cfg, indent=2))
    print(component, len(items), "tensors", flush=True)

pre = json.loads((out / "vision_tower/preprocessor_config.json").read_text())
pre["size"] = {"height": 384, "width": 384}
(out / "vision_tower/preprocessor_config.json").write_text(json.dumps(pre, indent=2))
top = json.loads((tiny / "config.json").read_text())
for key, component in [("llm_cfg", "llm"), ("vision_tower_cfg", "vision_tower"), ("context_provider_cfg", "context_provider")]:
    top[key].update(CONFIG[component])
top.update(hidden_size=2560, mm_hidden_size=1152, model_dtype="torch.bfloat16")
(out / "config.json").write_text(json.dumps(top, indent=2))
print("wrote", out)
