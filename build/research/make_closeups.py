"""Close-up reframings of corpus photos, for an out-of-sample check of `veil.prominence`.

The prominence rule's constant was set on the 50 corpus photos as framed. This writes, for
each chosen photo, a square crop around its largest face with side `--grow` x the face box
(the face then fills much of the frame: the case the rule exists for) into `--out`/photos/
(outside the project: the corpus is never copied into it), as JPEG q95. Then:

    .venv/bin/python build/research/make_closeups.py --out /tmp/closeups
    .venv/bin/python build/bench/bench_visibility.py --faces /tmp/closeups --modes mid \\
        --judges ssimulacra2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from PIL import Image

import bench_visibility as bv
from veil.engine import Engine
from veil_research.evaluate import default_faces_dir

PHOTOS = (
    "Angelina_Jolie/img4.jpg",
    "George_Clooney/img39.jpg",
    "George_Clooney/img40.jpg",
    "Jennifer_Aniston/img3.jpg",
    "Jennifer_Aniston/img54.jpg",
    "Katy_Perry/img26.jpg",
    "Mark_Zuckerberg/img13.jpg",
    "Matt_Damon/img31.jpg",
    "Matt_Damon/img33.jpg",
    "Scarlett_Johansson/img49.jpg",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--grow", type=float, default=1.6)
    args = parser.parse_args(argv)
    faces_dir = default_faces_dir()
    engine = Engine.load()
    for label in PHOTOS:
        pixels = bv.rgb8((faces_dir / "photos" / label).read_bytes())
        height, width = pixels.shape[:2]
        box = max(engine.find_faces(pixels), key=lambda f: f.box.width * f.box.height).box
        side = min(round(args.grow * max(box.width, box.height)), width, height)
        cx, cy = (box.x0 + box.x1) // 2, (box.y0 + box.y1) // 2
        x0 = min(max(0, cx - side // 2), width - side)
        y0 = min(max(0, cy - side // 2), height - side)
        target = args.out / "photos" / label
        target.parent.mkdir(parents=True, exist_ok=True)
        crop = pixels[y0 : y0 + side, x0 : x0 + side]
        Image.fromarray(crop).save(target, quality=95)
        print(f"{label}: {side}x{side} around a {box.width}x{box.height} face")
    return 0


if __name__ == "__main__":
    sys.exit(main())
