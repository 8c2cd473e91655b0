"""Markdown tables from bench_visibility.py --json files (for docs/visibility.md).

    .venv/bin/python build/bench/vis_table.py bench-out/vis-mid-all.json [more.json ...]

Per photo: SSIMULACRA2 and FLIP, face at 100% and display (1080 px), for the JPEG q85
yardstick and every mode in the files (rows matched by photo); then means and worst values.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    rows: dict[str, dict[str, Any]] = {}
    modes: list[str] = []
    for path in args.files:
        data = json.loads(path.read_text())
        for mode in data["modes"]:
            if mode not in modes:
                modes.append(mode)
        for row in data["rows"]:
            rows.setdefault(row["photo"], {}).update(row)
    columns = ["jpeg85", *modes]
    judges = [
        j
        for j in ("ssimulacra2", "flip")
        if any(j in r.get(c, {}).get("face", {}) for r in rows.values() for c in columns)
    ]
    head = ["photo", "size"]
    for c in columns:
        for scale in ("face", "display"):
            head += [f"{c} {scale} {'S2' if j == 'ssimulacra2' else 'FLIP'}" for j in judges]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for photo, row in rows.items():
        cells = [photo, f"{row['size'][0]}x{row['size'][1]}"]
        for c in columns:
            for scale in ("face", "display"):
                for j in judges:
                    v = row.get(c, {}).get(scale, {}).get(j)
                    cells.append("" if v is None else f"{v:.3f}" if j == "flip" else f"{v:.1f}")
        print("| " + " | ".join(cells) + " |")
    print()
    print("| column | scale | judge | mean | worst | worst photo |")
    print("|---|---|---|---|---|---|")
    for c in columns:
        for scale in ("display", "face"):
            for j in judges:
                have = [
                    (p, r[c][scale][j]) for p, r in rows.items() if j in r.get(c, {}).get(scale, {})
                ]
                if not have:
                    continue
                values = [v for _, v in have]
                worst = (
                    min(have, key=lambda t: t[1])
                    if j == "ssimulacra2"
                    else max(have, key=lambda t: t[1])
                )
                fmt = "{:.3f}" if j == "flip" else "{:.1f}"
                print(
                    f"| {c} | {scale} | {j} | {fmt.format(statistics.fmean(values))} | "
                    f"{fmt.format(worst[1])} | {worst[0]} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
