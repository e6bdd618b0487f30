#!/usr/bin/env python3
"""Reads `bench --probe-matmul --json F` output and ranks the matmul kernels by the time one
DAM-3B vision encode (both passes, the adapters) would spend in its linears and in its
attention score products (each kind can have its own kernel: `bench --matmul
linear=A,scores=B`), and the LLM prefill by its own products.

    python3 scripts/pick-matmul.py probe-matmul.json          # table (markdown)
    python3 scripts/pick-matmul.py probe-matmul.json --best   # the vision winners, `bench --matmul`'s form

Also reads the probe's printed table (any file not ending in .json), so a probe cut off by a
time limit still ranks what it measured.

Products per encode (spec §4): 26 SigLIP layers per pass × 2 passes, one adapter after each
layer of the crop pass. q|k|v: 52; the adapters' k|v: 26; o-shaped (1152 → 1152: 52 self-attention
o, 26 adapter o, 26 adapter q): 104; fc1, fc2, q·kᵀ, p·v: 78 each (52 + 26). Prefill: 32 layers.
A kernel that refused a product, or whose result differs from burn's op by more than 5 %
of its largest value, is left out of that stage's ranking.
"""
import json
import sys

COUNTS = {
    "vision q|k|v": 52,
    "vision k|v (adapter)": 26,
    "vision o": 104,
    "vision fc1": 78,
    "vision fc2": 78,
    "vision q·kᵀ": 78,
    "vision p·v": 78,
    "prefill q|k|v": 32,
    "prefill o": 32,
    "prefill gate|up": 32,
    "prefill down": 32,
}


def stage_of(product):
    """(stage, count): stage `vision-linear`, `vision-scores` (q·kᵀ, p·v) or `prefill`."""
    for prefix, n in COUNTS.items():
        if product.startswith(prefix + " "):
            stage = prefix.split()[0]
            if stage == "vision":
                stage = "vision-scores" if prefix in ("vision q·kᵀ", "vision p·v") else "vision-linear"
            return stage, n
    return None, 0


def rank(rows):
    totals = {}  # (stage, kernel) -> [ms, products seen, ok]
    for r in rows:
        stage, n = stage_of(r["product"])
        if stage is None:
            continue
        t = totals.setdefault((stage, r["kernel"]), [0.0, 0, True])
        t[0] += n * r["us"] / 1000
        t[1] += 1
        if r["refused"] or r["max_rel_diff"] > 5e-2:
            t[2] = False
    out = {}
    for (stage, kernel), (ms, seen, ok) in totals.items():
        out.setdefault(stage, []).append((ms, kernel, seen, ok))
    for stage in out:
        most = max(seen for _, _, seen, _ in out[stage])
        # Only kernels measured on every product of the stage compete.
        out[stage] = sorted(
            (ms, k, ok and seen == most) for ms, k, seen, ok in out[stage]
        )
    return out


def table_rows(text):
    """The probe's printed rows: | product | kernel[ (why it did not run)] | µs | TFLOP/s | diff[ **WRONG**] |"""
    rows = []
    for line in text.splitlines():
        # Product names hold "|" themselves (q|k|v): the last four cells are fixed.
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or not cells[-3].replace(".", "", 1).isdigit():
            continue
        cells = ["|".join(cells[:-4])] + cells[-4:]
        kernel = cells[1].split(" (")[0]
        rows.append({
            "product": cells[0],
            "kernel": kernel,
            # Refused by the routine, or not run at all (not a cubecl device).
            "refused": " (" in cells[1],
            "us": float(cells[2]),
            "max_rel_diff": float(cells[4].split()[0]),
        })
    return rows


def main():
    path = sys.argv[1]
    text = open(path).read()
    rows = json.loads(text)["matmul_kernel_probe"] if path.endswith(".json") else table_rows(text)
    ranked = rank(rows)
    if "--best" in sys.argv:
        # `bench --matmul`'s form: one name, or one per kind of product.
        best = {}
        for stage in ("vision-linear", "vision-scores"):
            ok = [k for _, k, eligible in ranked.get(stage, []) if eligible]
            best[stage] = ok[0] if ok else "fusion"
        linear, scores = best["vision-linear"], best["vision-scores"]
        print(linear if linear == scores else f"linear={linear},scores={scores}")
        return
    for stage, entries in ranked.items():
        print(f"\n{stage}: products' time per {'prefill' if stage == 'prefill' else 'encode'}")
        print("| kernel | ms | eligible |")
        print("| --- | ---: | --- |")
        for ms, k, ok in entries:
            print(f"| {k} | {ms:.2f} | {'yes' if ok else 'no (refused, wrong or incomplete)'} |")


if __name__ == "__main__":
    main()
