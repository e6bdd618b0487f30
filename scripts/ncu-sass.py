#!/usr/bin/env python3
"""Summarise Nsight Compute's per-instruction source page (standard library only).

Input: the CSV of `ncu --import REPORT --page source --print-source sass --csv` (one table per
profiled kernel; `scripts/gpu-check.sh`'s `ncu-flash` stage writes it as ncu-flash-sass.csv).
Output (markdown, stdout): per kernel, the instructions holding the most warp-stall samples
with their executions, and the samples summed by opcode — which instructions a kernel's time
sits on. Columns are found by name, so a newer ncu that adds or reorders columns still reads;
where none is recognised, the table's first lines are printed as they are.

    python3 scripts/ncu-sass.py ncu-flash-sass.csv[.xz] [--top 40]
"""

import csv
import io
import lzma
import sys
from collections import defaultdict


def read_text(path):
    if path.endswith(".xz"):
        with lzma.open(path, "rt", encoding="utf-8", errors="replace") as f:
            return f.read()
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def number(cell):
    """A CSV cell as a float ('1,234', '12.5 %', '' → 0)."""
    cell = (cell or "").replace(",", "").replace("%", "").strip().strip('"')
    try:
        return float(cell)
    except ValueError:
        return 0.0


def find(header, *needles, avoid=()):
    """Index of the first column whose name holds every needle (case-insensitive)."""
    for i, name in enumerate(header):
        low = name.lower()
        if all(n in low for n in needles) and not any(a in low for a in avoid):
            return i
    return None


def tables(text):
    """Splits the page into (title lines, header, rows): a new table starts at a row whose
    cells name an address or source column; lines between tables become the next title."""
    out, title, header, rows = [], [], None, []
    for row in csv.reader(io.StringIO(text)):
        if not row or not any(c.strip() for c in row):
            continue
        names = [c.strip().lower() for c in row]
        if "address" in names or ("source" in names and len(row) > 2):
            if header is not None:
                out.append((title, header, rows))
                title = []
            header, rows = [c.strip() for c in row], []
        elif header is not None and len(row) >= len(header) - 1:
            rows.append(row)
        else:
            if header is not None and rows:
                out.append((title, header, rows))
                title, header, rows = [], None, []
            title.append(" ".join(c.strip() for c in row if c.strip()))
    if header is not None:
        out.append((title, header, rows))
    return out


def summarise(title, header, rows, top):
    print(f"## {' / '.join(title[-2:]) or 'kernel'}\n")
    src = find(header, "source")
    addr = find(header, "address")
    stall = find(header, "warp stall sampling", "all") or find(header, "stall", "all samples")
    not_issued = find(header, "warp stall sampling", "not")
    executed = find(header, "instructions executed") or find(header, "inst_executed")
    if src is None or stall is None:
        print("(columns not recognised; the header and first rows as they are)\n")
        print("    " + " | ".join(header))
        for row in rows[:20]:
            print("    " + " | ".join(row))
        print()
        return
    total = sum(number(r[stall]) for r in rows if len(r) > stall) or 1.0
    ranked = sorted((r for r in rows if len(r) > stall), key=lambda r: -number(r[stall]))
    print(f"{len(rows)} instructions, {total:.0f} warp-stall samples.\n")
    print("| address | instruction | stall samples | share | not issued | executed |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in ranked[:top]:
        s = number(r[stall])
        ni = number(r[not_issued]) if not_issued is not None and len(r) > not_issued else 0
        ex = number(r[executed]) if executed is not None and len(r) > executed else 0
        a = r[addr] if addr is not None else ""
        print(f"| {a} | `{r[src].strip()}` | {s:.0f} | {100 * s / total:.1f} % | {ni:.0f} | {ex:.0f} |")
    by_op = defaultdict(float)
    for r in rows:
        if len(r) > stall:
            text = r[src].strip()
            words = [w for w in text.split() if not w.startswith("@")]
            by_op[words[0].split(".")[0] if words else "?"] += number(r[stall])
    print("\n| opcode | stall samples | share |")
    print("| --- | ---: | ---: |")
    for op, s in sorted(by_op.items(), key=lambda kv: -kv[1])[:15]:
        print(f"| {op} | {s:.0f} | {100 * s / total:.1f} % |")
    print()


def main():
    args = sys.argv[1:]
    top = 40
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i : i + 2]
    if len(args) != 1:
        sys.exit(__doc__)
    found = tables(read_text(args[0]))
    if not found:
        print("no table found; the first lines as they are:\n")
        print(read_text(args[0])[:3000])
        return
    for title, header, rows in found:
        summarise(title, header, rows, top)


if __name__ == "__main__":
    main()
