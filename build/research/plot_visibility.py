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


def eval_rows(eval_json: Path, vis_json: Path, prefix: str) -> dict[str, dict[str, object]]:
    """Rows in sweep_visibility's format from an eval run (leave-one-out mean over the
    attackers, no re-encode) and a visibility run over the same modes."""
    data = json.loads(eval_json.read_text())
    vis = json.loads(vis_json.read_text())["rows"]
    out: dict[str, dict[str, object]] = {}
    for mode in {m["mode"] for m in data["modes"]}:
        loo = [
            r["row"]["scores"]
            for r in data["loo"]
            if r["row"]["mode"] == mode and r["row"]["reencode"] == "none"
        ]
        have = [v[mode] for v in vis if mode in v]
        if not loo or not have:
            continue
        display = [h["display"]["ssimulacra2"] for h in have]
        out[prefix + mode] = {
            "variant": prefix + mode,
            "display_mean": sum(display) / len(display),
            "display_min": min(display),
            "loo": {"none": {"logreg": sum(s["logreg"] for s in loo) / len(loo)}},
        }
    return out


def print_table(rows: dict[str, dict[str, object]]) -> None:
    """One markdown row per variant: settings, visibility (quick set), leave-one-out."""
    print(
        "| variant | settings (linf /255, penalty, ...) | display S2 mean (min) | face S2 mean "
        "(min) | LOO centroid / logreg | after JPEG q75 | per attacker (logreg) | RMS /255 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        settings = row.get("settings") or {}
        shown = {
            k: v
            for k, v in settings.items()  # type: ignore[union-attr]
            if k
            in (
                "linf",
                "penalty",
                "steps",
                "edge_protect",
                "surrogates",
                "luminance_adapt",
                "shade_grid",
                "shade_linf",
            )
        }
        loo = row["loo"]  # type: ignore[index]
        none, jpeg = loo.get("none", {}), loo.get("jpeg75", {})  # type: ignore[union-attr]
        per = ", ".join(f"{a} {v[1]:.2f}" for a, v in none.get("per_attacker", {}).items())
        face = f"{row['face_mean']:.1f} ({row['face_min']:.1f})" if "face_mean" in row else ""
        centroid = f"{none['centroid']:.2f} / " if "centroid" in none else ""
        after = f"{jpeg['logreg']:.2f}" if jpeg else ""
        rms = row.get("rms_brightness") or ""
        print(
            f"| {name} | {shown or '(mode as shipped)'} | {row['display_mean']:.1f} "
            f"({row['display_min']:.1f}) | {face} | {centroid}{none['logreg']:.2f} | {after} "
            f"| {per} | {rms} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/visibility.png"))
    parser.add_argument(
        "--eval",
        nargs=3,
        action="append",
        default=[],
        metavar=("EVAL_JSON", "VIS_JSON", "PREFIX"),
        help="also plot every mode of a `veil-research eval` run (same 16 x 3 tuning split), "
        "with its display SSIMULACRA2 from a bench_visibility.py JSON (e.g. the v4 modes: "
        "docs/data/eval-16x3.json bench-out/vis_baseline_quick.json v4_)",
    )
    parser.add_argument("--table", action="store_true", help="also print a markdown table")
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
    for eval_json, vis_json, prefix in args.eval:
        for name, row in eval_rows(Path(eval_json), Path(vis_json), prefix).items():
            rows[name] = row
    if args.table:
        print_table(rows)
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    for name, row in rows.items():
        x = float(row["display_mean"])  # type: ignore[arg-type]
        loo = row["loo"]["none"]  # type: ignore[index]
        y = float(loo["logreg"])
        shipped = name.startswith("ship_")
        old = name.startswith(("v4_", "v5_"))
        marker, colour = (
            ("*", "tab:green")
            if shipped
            else ("s", "tab:red")
            if name.startswith("v4_")
            else ("D", "tab:purple")
            if old
            else ("o", "tab:blue")
        )
        ax.scatter([x], [y], marker=marker, s=140 if shipped else 45, color=colour, zorder=3)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.axvline(80, color="grey", linestyle="--", linewidth=1)
    ax.text(80.5, 0.02, "default floor: display mean >= 80", fontsize=7, color="grey")
    ax.axhline(0.60, color="grey", linestyle=":", linewidth=1)
    for eval_json, _, _ in args.eval[:1]:  # what no cloak at all gives on this split
        base = json.loads(Path(eval_json).read_text())["baseline"]
        level = sum(v["logreg"] for v in base.values()) / len(base)
        ax.axhline(level, color="tab:orange", linestyle="-.", linewidth=1)
        ax.text(-5, level + 0.01, f"no cloak: {level:.2f}", fontsize=7, color="tab:orange")
    ax.set_xlabel(
        "display SSIMULACRA2, mean (variants: quick photo set; shipped modes: all 50 photos)"
    )
    ax.set_ylabel("leave-one-out protection, logistic regression (tuning split)")
    ax.set_ylim(0, 1)
    ax.set_title(
        "Veil cloaks: protection against visibility\n"
        "(squares: v4 modes; diamonds: v5 modes; stars: shipped v6 modes; dots: variants)",
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
