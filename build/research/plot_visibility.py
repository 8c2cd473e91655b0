"""docs/visibility.png: protection (leave-one-out, logistic regression) against display
SSIMULACRA2, one point per variant tried and per shipped mode (research, not shipped).

Reads the JSON lines of build/research/sweep_visibility.py (`--results`); a variant listed
twice keeps its last line. Needs the `bench` extra (matplotlib).

    .venv/bin/python build/research/plot_visibility.py bench-out/sweep.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/visibility.png"))
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: dict[str, dict[str, object]] = {}
    for line in args.results.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if "display_mean" in row and row.get("loo"):
                rows[str(row["variant"])] = row
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    for name, row in rows.items():
        x = float(row["display_mean"])  # type: ignore[arg-type]
        loo = row["loo"]["none"]  # type: ignore[index]
        y = float(loo["logreg"])
        shipped = name.startswith("ship_")
        old = name.startswith("v4_")
        marker, colour = (
            ("*", "tab:green") if shipped else ("s", "tab:red") if old else ("o", "tab:blue")
        )
        ax.scatter([x], [y], marker=marker, s=140 if shipped else 45, color=colour, zorder=3)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.axvline(80, color="grey", linestyle="--", linewidth=1)
    ax.text(80.5, 0.02, "default floor: display >= 80", fontsize=7, color="grey")
    ax.axhline(0.60, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("display SSIMULACRA2, mean over the quick photo set (higher = less visible)")
    ax.set_ylabel("leave-one-out protection, logistic regression (tuning split)")
    ax.set_ylim(0, 1)
    ax.set_title(
        "Veil cloaks: protection against visibility\n"
        "(squares: v4 modes; stars: shipped v5 modes; dots: variants tried)",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out} ({len(rows)} points)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
