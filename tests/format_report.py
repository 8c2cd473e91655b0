"""Per format: cloak time, output size against the input's, and an exiftool diff.

    .venv/bin/python tests/format_report.py [--diff NAME]

Builds the test corpus (tests/format_samples.py, from ../shared/faces) in memory, cloaks
each file once with the engine (mid mode, after one warm-up photo) and prints a Markdown
table; then the exiftool diff (tags removed / changed / added, -G1 -a -u) of one sample.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from format_samples import CORPUS, face_image
from metadata_samples import exiftool_tags
from veil import imageio
from veil.engine import Engine

IGNORED_GROUPS = ("System:", "ExifTool:", "Composite:")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diff", default="ultrahdr.jpg", help="sample whose tags are diffed")
    parser.add_argument("--side", type=int, default=720, help="long side of the samples (px)")
    args = parser.parse_args()
    engine = Engine.load()
    names = [n for n in CORPUS if not (n.endswith(".avif") and "AVIF" not in imageio.MEDIA_TYPES)]
    image = face_image(args.side)
    corpus = {name: CORPUS[name][0](image) for name in names}
    engine.cloak_bytes(corpus["plain.jpg"])  # warm-up (first-call allocations)
    print("| sample | size | input | output | output/input | time | faces | removed |")
    print("|---|---|---|---|---|---|---|---|")
    outputs = {}
    for name, data in corpus.items():
        info = imageio.probe(data)
        start = time.perf_counter()
        result = engine.cloak_bytes(data)
        seconds = time.perf_counter() - start
        outputs[name] = result.data
        print(
            f"| {name} | {info.width}x{info.height} | {len(data) / 1024:.1f} KiB "
            f"| {len(result.data) / 1024:.1f} KiB | {len(result.data) / len(data):.2f} "
            f"| {seconds:.2f} s | {result.face_count} | {len(result.metadata_removed)} items |"
        )
    with tempfile.TemporaryDirectory() as folder:
        before, after = Path(folder) / "before", Path(folder) / "after"
        before.mkdir()
        after.mkdir()
        (before / args.diff).write_bytes(corpus[args.diff])
        (after / args.diff).write_bytes(outputs[args.diff])
        old = exiftool_tags([before / args.diff])[args.diff]
        new = exiftool_tags([after / args.diff])[args.diff]
    old = {k: v for k, v in old.items() if not k.startswith(IGNORED_GROUPS)}
    new = {k: v for k, v in new.items() if not k.startswith(IGNORED_GROUPS)}
    print(f"\nexiftool -j -G1 -a -u, {args.diff} before -> after")
    for tag in sorted(set(old) | set(new)):
        if tag not in new:
            print(f"- {tag} = {str(old[tag])[:60]}")
        elif tag not in old:
            print(f"+ {tag} = {str(new[tag])[:60]}")
        elif old[tag] != new[tag]:
            print(f"~ {tag}: {str(old[tag])[:30]} -> {str(new[tag])[:30]}")
        else:
            print(f"  {tag} = {str(new[tag])[:60]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
