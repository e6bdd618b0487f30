#!/usr/bin/env python3
"""Writes tests/fixtures/pillow-modes/: small images in the PNG/JPEG modes users hand us, each
with what Pillow (the original's image library) makes of it — `<name>.rgb.png`, the
`convert("RGB")` pixels, `<name>.mask.png`, `convert("L")` non-zero as 0/255, and
`<name>.scribble.png`, the alpha > 0 of a drawing layer (where there is alpha). The test
`dam-core/tests/pillow_modes.rs` checks `dam_core::image_io` against them.

Run once with Pillow 11.3 (the version the dam-tiny fixtures were made with):
    python3 scripts/make-pillow-modes.py
16-bit PNGs are written by hand below (Pillow cannot write 16-bit RGB or grey+alpha).
"""
import pathlib
import struct
import zlib

import numpy as np
from PIL import Image

out = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/pillow-modes"
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(7)


def photo(h, w):
    """A smooth gradient with noise, like a photo's statistics."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h) + 60], -1)
    return np.clip(img + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)


def png16(path, w, h, color_type, samples):
    """A 16-bit PNG (colour type 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA) from big-endian samples."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    per_row = len(samples) // h
    raw = b"".join(b"\0" + struct.pack(f">{per_row}H", *samples[r * per_row:(r + 1) * per_row]) for r in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def sixteen(n):
    """16-bit samples around the 8-bit boundaries Pillow's conversions treat specially."""
    edges = [0, 1, 0xFF, 0x100, 0x1FF, 0x500, 0x8000, 0xFFFF]
    return [edges[i % len(edges)] if i % 3 else int(v) for i, v in enumerate(rng.integers(0, 65536, n))]


files = []
# JPEGs: accurate IDCT and chroma upsampling decide every pixel; odd sizes exercise the edges.
for name, kwargs in [
    ("jpeg-444", dict(quality=90, subsampling=0)),
    ("jpeg-420", dict(quality=75, subsampling=2)),
    ("jpeg-422", dict(quality=95, subsampling=1)),
    ("jpeg-progressive", dict(quality=80, subsampling=2, progressive=True)),
]:
    Image.fromarray(photo(37, 61)).save(out / f"{name}.jpg", **kwargs)
    files.append(f"{name}.jpg")
Image.fromarray(photo(30, 45)).convert("L").save(out / "jpeg-grey.jpg", quality=85)
files.append("jpeg-grey.jpg")
# The other formats a frame folder may hold (dam-video): lossy WebP, BMP, TIFF.
Image.fromarray(photo(37, 61)).save(out / "webp-lossy.webp", quality=80)
Image.fromarray(photo(21, 13)).save(out / "bmp.bmp")
Image.fromarray(photo(21, 13)).save(out / "tiff.tif")
files += ["webp-lossy.webp", "bmp.bmp", "tiff.tif"]
# A mask drawn in colours: dark blues and reds whose luma rounds to 0, pure green, etc.
colours = [(0, 0, b) for b in range(8)] + [(r, 0, 0) for r in range(4)] + [(0, g, 0) for g in range(3)]
colours += [(0, 255, 0), (0, 0, 255), (255, 0, 0), (10, 10, 10), (0, 0, 0)]
drawing = np.array(colours * 2, dtype=np.uint8).reshape(2, len(colours), 3)
Image.fromarray(drawing).save(out / "mask-colours.png")
files.append("mask-colours.png")
rgba = np.concatenate([drawing, rng.integers(0, 256, (*drawing.shape[:2], 1), dtype=np.uint8)], -1)
Image.fromarray(rgba).save(out / "rgba8.png")
files.append("rgba8.png")
la = np.stack([np.arange(24, dtype=np.uint8) % 3, rng.integers(0, 256, 24, dtype=np.uint8)], -1).reshape(2, 12, 2)
Image.fromarray(la).save(out / "la8.png")
files.append("la8.png")
# Palette (VOC-style class colours, several with red 0) with and without transparency.
pal = Image.new("P", (6, 2))
pal.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 0, 0, 128, 0, 0, 3, 0, 1, 0] + [0] * (250 * 3))
pal.putdata([i % 6 for i in range(12)])
pal.save(out / "palette.png")
pal.save(out / "palette-trns.png", transparency=2)
files += ["palette.png", "palette-trns.png"]
# Low bit depth grey.
Image.fromarray((np.arange(16, dtype=np.uint8).reshape(2, 8) % 4) * 85).convert("L").save(out / "grey2.png", bits=2)
files.append("grey2.png")
# 16-bit PNGs.
png16(out / "grey16.png", 8, 2, 0, sixteen(16))
png16(out / "la16.png", 8, 2, 4, sixteen(32))
png16(out / "rgb16.png", 8, 2, 2, sixteen(48))
png16(out / "rgba16.png", 8, 2, 6, sixteen(64))
files += ["grey16.png", "la16.png", "rgb16.png", "rgba16.png"]
# A scribble layer as the demo's editor draws it: a black brush on a transparent layer.
layer = np.zeros((5, 9, 4), dtype=np.uint8)
layer[2, 1:8, 3] = 255
layer[1:4, 4, 3] = 128
Image.fromarray(layer).save(out / "scribble-layer.png")
files.append("scribble-layer.png")

for f in files:
    image = Image.open(out / f)
    stem = f.rsplit(".", 1)[0]
    image.convert("RGB").save(out / f"{stem}.rgb.png")
    mask = (np.array(image.convert("L")) > 0).astype(np.uint8) * 255
    Image.fromarray(mask).save(out / f"{stem}.mask.png")
    # A scribble: the drawing layer's alpha > 0 where there is alpha, else as a mask.
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        mask = (np.array(image.convert("RGBA"))[..., 3] > 0).astype(np.uint8) * 255
    Image.fromarray(mask).save(out / f"{stem}.scribble.png")
    print(f"{f:22} mode {image.mode:5} {image.size}")
