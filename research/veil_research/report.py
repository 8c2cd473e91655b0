"""Merge several `veil-research eval --json` result files into docs/protection.md and .png.

`veil-research eval` writes its own report for one run; the full benchmark is several runs
(modes at different sample sizes, the photo pass), so this stitches their tables together,
each section under the exact command that produced it, and draws one plot from all of them.

    .venv/bin/veil-research report bench-out/mid.json bench-out/low.json ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from veil_research.eval_report import Figures, render_markdown, write_plot

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", nargs="+", type=Path, help="veil-research eval --json files")
    parser.add_argument("--report", type=Path, default=REPO / "docs" / "protection.md")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "protection.png")
    parser.add_argument("--preamble", type=Path, default=None, help="markdown put on top")
    parser.add_argument("--postamble", type=Path, default=None, help="markdown put last")
    args = parser.parse_args(argv)
    runs = [Figures.from_json(json.loads(p.read_text())) for p in args.results]
    parts = [args.preamble.read_text()] if args.preamble else []
    for run in runs:
        text = render_markdown(run).replace("# Protection benchmark", "## Run", 1)
        parts.append(text.replace("\n## ", "\n### ").replace("\n### Run", "\n## Run"))
    if args.postamble:
        parts.append(args.postamble.read_text())
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n".join(parts))
    print(f"report: {args.report}")
    merged = Figures(identities=0, uploads=0, command="merged")
    for run in runs:
        merged.modes += run.modes
        merged.ensemble += run.ensemble
        merged.loo += run.loo
    print(write_plot(merged, args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
