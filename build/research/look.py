"""Before/after images for looking at a cloak with one's own eyes (research, not shipped).

For each photo: `<out>/<name>.<mode>.face.png` (the largest face grown 1.4x, at 100%,
original left, cloak right) and `<out>/<name>.<mode>.feed.png` (the whole photo at 1080 px
long side, original left, cloak right). Budget overrides as in bench_visibility.py --set.

    .venv/bin/python build/research/look.py --modes mid --out /tmp/look \\
        --photos Matt_Damon/img33.jpg Jennifer_Aniston/img12.jpg scenes/selfie-many-people.jpg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import bench_visibility as bv
from veil.engine import Engine
from veil.results import Mode
from veil_research.evaluate import default_faces_dir

MAX_FACE_SIDE = 700  # px per half of the 100% face image (a larger face is centre-cropped)


DOCS_SIDE = 300


def save_docs_crop(path: Path, before: np.ndarray, after: np.ndarray) -> None:
    """A DOCS_SIDE square at 100% around the eyes (40% down the face box, where the cloak
    gathers), before | after, JPEG q92."""
    h, w = before.shape[:2]
    side = min(DOCS_SIDE, h, w)
    y0 = min(max(0, round(0.4 * h) - side // 2), h - side)
    x0 = (w - side) // 2
    pair = [im[y0 : y0 + side, x0 : x0 + side] for im in (before, after)]
    gap = np.full((side, 4, 3), 255, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([pair[0], gap, pair[1]], axis=1)).save(path, quality=92)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", nargs="+", required=True)
    parser.add_argument("--modes", nargs="+", default=["mid"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/look"))
    parser.add_argument("--set", nargs="+", default=[])
    parser.add_argument("--tag", default="")
    parser.add_argument(
        "--docs",
        type=Path,
        help="also write <docs>/visibility-<name>-<mode>.jpg: a DOCS_SIDE px square of the face "
        "at 100%% (before left, after right), small enough for the repository",
    )
    args = parser.parse_args(argv)
    bv.apply_overrides(args.modes, args.set)
    faces_dir = default_faces_dir()
    surrogates = [s.split("=", 1)[1].split("+") for s in args.set if s.startswith("surrogates=")]
    engine = Engine.load(surrogates=surrogates[0] if surrogates else None)
    args.out.mkdir(parents=True, exist_ok=True)
    for label in args.photos:
        path = faces_dir / label if label.startswith("scenes/") else faces_dir / "photos" / label
        data = path.read_bytes()
        original = bv.rgb8(data)
        found = engine.find_faces(original)
        big = max(found, key=lambda f: f.box.width * f.box.height).box
        face = bv.face_slices((big.x0, big.y0, big.x1, big.y1), original.shape)
        name = label.replace("/", "_").rsplit(".", 1)[0]
        for mode in args.modes:
            cloaked = bv.rgb8(engine.cloak_bytes(data, mode=Mode(mode)).data)
            a, b = original[face], cloaked[face]
            h, w = a.shape[:2]
            if max(h, w) > MAX_FACE_SIDE:  # centre crop, still at 100%
                y0, x0 = max(0, (h - MAX_FACE_SIDE) // 2), max(0, (w - MAX_FACE_SIDE) // 2)
                a = a[y0 : y0 + MAX_FACE_SIDE, x0 : x0 + MAX_FACE_SIDE]
                b = b[y0 : y0 + MAX_FACE_SIDE, x0 : x0 + MAX_FACE_SIDE]
            tag = f".{args.tag}" if args.tag else ""
            Image.fromarray(np.concatenate([a, b], axis=1)).save(
                args.out / f"{name}.{mode}{tag}.face.png"
            )
            feed = np.concatenate([bv.display(original), bv.display(cloaked)], axis=1)
            if feed.shape[1] > 1600:
                scale = 1600 / feed.shape[1]
                feed = cv2.resize(
                    feed, (1600, round(feed.shape[0] * scale)), interpolation=cv2.INTER_AREA
                )
            Image.fromarray(feed).save(args.out / f"{name}.{mode}{tag}.feed.png")
            if args.docs:
                save_docs_crop(args.docs / f"visibility-{name}-{mode}.jpg", a, b)
            diff = np.abs(cloaked.astype(np.int16) - original.astype(np.int16))[face]
            print(f"{label} {mode}: face |change| mean {diff.mean():.2f} max {diff.max()} /255")
    return 0


if __name__ == "__main__":
    sys.exit(main())
