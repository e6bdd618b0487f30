#!/usr/bin/env python3
"""Writes tests/fixtures/focal-random/: focal prompts of random geometry, as Pillow (the
original's image library) computes them, for `dam-core/tests/focal_random.rs`.

The four dam-tiny cases check the whole model; these check the preprocessing alone over
shapes those four do not reach: images narrower or shorter than the 48 px minimum box,
1-pixel masks, masks on every edge, whole-image masks, scattered pixels, strong up- and
downscaling (Pillow widens the bicubic's support when it shrinks), at S = 98 (dam-tiny)
and S = 384 (DAM-3B). Each case stores the inputs (`image.png`, `mask.png`) and Pillow's
resized 8-bit views (`full.png`, `full_mask.png`, `crop.png`, `crop_mask.png`); the test
normalises those exactly as the processor does, so only u8 images are stored.

The reference follows the original code (spec §3): mask box, focal crop (48 px minimum,
truncation toward zero, 3x context, clamped), `Image.resize((S, S))` (bicubic) of the RGB
image and of the 0/255 mask converted to RGB (channel 0 kept), and upstream's "crop equals
full" test on the two normalised 4-channel halves.

Run once with Pillow 11.3 (the version of the dam-tiny fixtures):
    python3 scripts/make-focal-cases.py
"""
import json
import pathlib

import numpy as np
from PIL import Image

out = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/focal-random"
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(20261127)


def image(h, w):
    """Gradients, a wave and hard-edged checks (overshoot, clipped by Pillow); noise only on
    small images, so the large ones stay small as PNG."""
    y, x = np.mgrid[0:h, 0:w]
    checks = ((x // 5 + y // 7) % 2) * 90.0
    base = np.stack([x * 255 / max(w, 1), y * 160 / max(h, 1) + checks, 128 + 120 * np.sin((x + 2 * y) / 7.0)], -1)
    if h * w <= 40_000:
        base = base + rng.normal(0, 8, (h, w, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


def mask(h, w, kind):
    m = np.zeros((h, w), np.uint8)
    if kind == "rect":
        a, b = sorted(rng.integers(0, w, 2))
        c, d = sorted(rng.integers(0, h, 2))
        m[c:d + 1, a:b + 1] = 1
    elif kind == "pixel":
        m[rng.integers(0, h), rng.integers(0, w)] = 1
    elif kind == "middle-pixel":
        m[h // 2, w // 2] = 1
    elif kind == "corner-pixel":
        m[h - 1, w - 1] = 1
    elif kind == "scattered":
        m[rng.random((h, w)) < 0.01] = 1
    elif kind == "ellipse":
        y, x = np.mgrid[0:h, 0:w]
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(2, h / 2 + 2), rng.uniform(2, w / 2 + 2)
        m[((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1] = 1
    elif kind == "full":
        m[:] = 1
    elif kind == "top":
        m[:2] = 1
    elif kind == "left":
        m[:, :1] = 1
    elif kind == "bottom-right":
        m[h * 3 // 4:, w * 3 // 4:] = 1
    if not m.any():
        m[h // 2, w // 2] = 1
    return m


def view(img, m, s):
    rgb = img.resize((s, s))
    mm = Image.fromarray(m * 255).convert("RGB").resize((s, s)).getchannel(0)
    return rgb, mm


def normalised(rgb, mm):
    a = np.concatenate([np.asarray(rgb), np.asarray(mm)[..., None]], -1).astype(np.float64)
    return ((a / 255 - 0.5) / 0.5).astype(np.float32)


# (width, height, mask kind, S)
shapes = [
    (230, 170, "rect", 98), (17, 9, "pixel", 98), (40, 300, "ellipse", 98), (300, 40, "scattered", 98),
    (1, 1, "full", 98), (1, 157, "middle-pixel", 98), (164, 1, "middle-pixel", 98), (97, 131, "top", 98),
    (131, 97, "left", 98), (200, 100, "corner-pixel", 98), (147, 149, "ellipse", 98), (148, 148, "middle-pixel", 98),
    (640, 480, "bottom-right", 98), (350, 260, "full", 98), (512, 37, "ellipse", 98), (90, 610, "rect", 98),
    (150, 120, "ellipse", 384), (9, 11, "pixel", 384), (800, 600, "rect", 384), (1200, 30, "middle-pixel", 384),
    (384, 384, "full", 384), (383, 385, "corner-pixel", 384), (2000, 1500, "ellipse", 384),
]
cases = []
for i, (w, h, kind, s) in enumerate(shapes):
    arr, m = image(h, w), mask(h, w, kind)
    ys, xs = np.nonzero(m)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    bw, bh = x1 - x0, y1 - y0
    xc, yc = x0 + bw / 2, y0 + bh / 2
    bw2, bh2 = max(bw, 48), max(bh, 48)
    x0p, y0p = int(xc - bw2 / 2), int(yc - bh2 / 2)
    crop = [max(x0p - bw2, 0), max(y0p - bh2, 0), min(x0p + 2 * bw2, w), min(y0p + 2 * bh2, h)]
    img = Image.fromarray(arr)
    full_rgb, full_mask = view(img, m, s)
    crop_rgb, crop_mask = view(img.crop(tuple(crop)), m[crop[1]:crop[3], crop[0]:crop[2]], s)
    differs = not np.array_equal(normalised(full_rgb, full_mask), normalised(crop_rgb, crop_mask))
    name = f"{i:02d}-{w}x{h}-{kind}-s{s}"
    d = out / name
    d.mkdir(exist_ok=True)
    img.save(d / "image.png", optimize=True)
    Image.fromarray(m * 255).save(d / "mask.png", optimize=True)
    full_rgb.save(d / "full.png", optimize=True)
    full_mask.save(d / "full_mask.png", optimize=True)
    crop_rgb.save(d / "crop.png", optimize=True)
    crop_mask.save(d / "crop_mask.png", optimize=True)
    cases.append({"name": name, "size": s, "mask_box_xyxy": [x0, y0, x1, y1], "crop_xyxy": crop, "crop_differs": differs})
(out / "cases.json").write_text(json.dumps({"pillow": Image.__version__, "cases": cases}, indent=1) + "\n")
print(len(cases), "cases")
