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

from typing import Any

from format_samples import CORPUS, face_image, ultra_hdr
from metadata_samples import exiftool_tags
from veil import imageio
from veil.engine import Engine

IGNORED_GROUPS = ("System:", "ExifTool:", "Composite:")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diff", default="ultrahdr.jpg", help="sample whose tags are diffed")
    parser.add_argument("--side", type=int, default=720, help="long side of the samples (px)")
    parser.add_argument(
        "--gain-maps",
        type=int,
        default=0,
        metavar="N",
        help="also run the gain-map check on Ultra HDR files made from N people's photos",
    )
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
    if args.gain_maps:
        gain_map_table(engine, args.gain_maps, args.side)
    return 0


def gain_map_table(engine: Engine, people: int, side: int) -> None:
    """Per person (first photo, mid mode): faces the detector finds in the original gain map
    alone, then the engine's check on the flattened one (worst face, per surrogate)."""
    import cv2
    import numpy as np
    from PIL import Image

    from corpus import require_faces
    from veil.imaging import jpeg

    checks: list[Any] = []
    original_check = Engine.gain_map_check

    def spy(self: Engine, *args: Any, **kwargs: Any) -> Any:
        result = original_check(self, *args, **kwargs)
        checks.append(result)
        return result

    Engine.gain_map_check = spy  # type: ignore[method-assign]
    print("\n| photo | faces in the original gain map | kept | exposed SDR / HDR cosine |")
    print("|---|---|---|---|")
    folders = sorted((require_faces() / "photos").iterdir())[:people]
    for folder in folders:
        path = sorted(folder.glob("*.jpg"))[0]
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((side, side))
        data = ultra_hdr(image)
        gain = jpeg.layout(data).gain_map
        assert gain is not None
        grey = cv2.imdecode(np.frombuffer(gain.data, np.uint8), cv2.IMREAD_COLOR)
        big = cv2.resize(grey, image.size, interpolation=cv2.INTER_LINEAR)
        in_gain = len(engine.find_faces(cv2.cvtColor(big, cv2.COLOR_BGR2RGB)))
        checks.clear()
        result = engine.cloak_bytes(data)
        kept = jpeg.layout(result.data).gain_map is not None
        figures = (
            "; ".join(
                f"{n} {checks[0].exposed_sdr[n]:+.3f} / {checks[0].hdr[n]:+.3f}"
                for n in checks[0].hdr
            )
            if checks
            else "no face cloaked"
        )
        print(f"| {folder.name}/{path.name} | {in_gain} | {'yes' if kept else 'no'} | {figures} |")
    Engine.gain_map_check = original_check  # type: ignore[method-assign]


if __name__ == "__main__":
    raise SystemExit(main())
