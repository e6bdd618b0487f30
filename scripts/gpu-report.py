#!/usr/bin/env python3
"""Compares a GPU check's fixture runs with the fixtures: ids and dumped tensors.

usage: gpu-report.py DIR [BUNDLE]   (DIR holds `fixtures-<stage>.out` and the
`<case>-<tag>.safetensors` dumps, i.e. an unpacked results-*.tgz of scripts/gpu-check.sh; which
case each run of a stage is comes from that stage's batch file in BUNDLE, default gpu-bundle/)

Standard library only (this machine has no numpy): the dumps are read by `load_file` below.
"""
import json
import pathlib
import struct
import sys
from array import array

root = pathlib.Path(__file__).resolve().parent.parent
cases_dir = root / "tests/fixtures/dam-tiny/cases"
out = pathlib.Path(sys.argv[1])
# The CPU suite's tolerances (issue 5); on a GPU they are reported, not asserted.
tolerances = {"pixel_values": 1e-5, "projector_output": 1e-4, "llm_inputs_embeds": 1e-4, "step_logits": 1e-3}
bundle = root / (sys.argv[2] if len(sys.argv) > 2 else "gpu-bundle")


def load_file(path):
    """A safetensors file's float tensors as flat f32 arrays (F32, BF16, F16; little-endian
    host assumed, as the format's own byte order is)."""
    data = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    tensors = {}
    for key, meta in header.items():
        if key == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        raw = data[8 + n + start:8 + n + end]
        if meta["dtype"] == "F32":
            values = array("f")
            values.frombytes(raw)
        elif meta["dtype"] == "BF16":
            # bf16 is the upper half of an f32.
            half = array("H")
            half.frombytes(raw)
            values = array("f")
            values.frombytes(array("I", (h << 16 for h in half)).tobytes())
        elif meta["dtype"] == "F16":
            values = array("f", struct.unpack(f"<{len(raw) // 2}e", raw))
        else:
            continue
        tensors[key] = values
    return tensors


def max_abs_diff(a, b):
    return max((abs(x - y) for x, y in zip(a, b)), default=0.0)



def runs(path):
    """The JSON result line of each `describe` run in a batch output, by run index."""
    results, current, lines = {}, None, []
    for line in path.read_text().splitlines():
        if line.startswith("==> ["):
            current, lines = int(line[5:line.index("]")]), []
        elif line.startswith("<== [") and current is not None:
            ok = line.endswith("OK")
            results[current] = json.loads(lines[-1]) if ok and lines else None
            current = None
        elif current is not None:
            lines.append(line)
    return results


def dumps(stage):
    """The `--dump` stem (`<case>-<tag>`) of each run of a stage's batch file, by run index."""
    stems = []
    for line in (bundle / f"{stage}.jsonl").read_text().splitlines():
        args = json.loads(line)
        stems.append(pathlib.Path(args[args.index("--dump") + 1]).stem)
    return stems


for batch in sorted(out.glob("fixtures-*.out")):
    results = runs(batch)
    for i, stem in enumerate(dumps(batch.stem)):
        name, tag = stem.split("-", 1)
        want = json.loads((cases_dir / name / "case.json").read_text())["generated_ids"]
        got = results.get(i)
        if got is None:
            print(f"{name:7} {tag:5} no result")
            continue
        same = sum(a == b for a, b in zip(got["token_ids"], want))
        line = f"{name:7} {tag:5} ids {same}/{len(want)}{' identical' if got['token_ids'] == want else ''}"
        dump = out / f"{stem}.safetensors"
        if dump.exists():
            ref = load_file(str(cases_dir / name / "tensors.safetensors"))
            mine = load_file(str(dump))
            for key, tol in tolerances.items():
                if key not in mine or key not in ref:
                    continue
                if len(mine[key]) != len(ref[key]):
                    line += f"  {key} {len(mine[key])} values, the fixture {len(ref[key])}"
                    continue
                d = max_abs_diff(mine[key], ref[key])
                line += f"  {key} {d:.1e}{'' if d <= tol else ' (> ' + format(tol, '.0e') + ')'}"
        print(line)

# The coldstart stage: one bf16 `describe` as three processes (empty kernel cache, the cache
# the first filled, cache off). Wall times are in summary.txt; here the ids of each, which
# must agree with one another (and, for this case, matched the fixture in bf16 before).
if any(out.glob("coldstart-*.out")):
    coldstart_case = dumps("coldstart")[0].split("-", 1)[0]
    coldstart_want = json.loads((cases_dir / coldstart_case / "case.json").read_text())["generated_ids"]
    for run in ("cold", "cached", "off"):
        path = out / f"coldstart-{run}.out"
        if not path.exists():
            continue
        got = runs(path).get(0)
        if got is None:
            print(f"coldstart {run:6} no result")
        else:
            same = sum(a == b for a, b in zip(got["token_ids"], coldstart_want))
            print(f"coldstart {run:6} ids {same}/{len(coldstart_want)} ({got.get('timings_ms', {}).get('total', 0):.0f} ms in describe)")
