"""Before/after images of the personal cloak, per strength, to look at (research, not shipped).

The photo's person is enrolled from all their photos in `photos/` (as bench_visibility.py
--personal, cached under --out); each strength writes `<out>/<name>.<strength><tag>.face.png`
(the largest face at 100%, original left, cloak right), `.eyes.png` (the eye region at
100%, original above) and `.feed.png` (the whole photo at 1080 px long side).
`--set key=value` overrides every strength's look (`veil.personal.StrengthBudget`
fields) and `--budget key=value` the refining optimiser's budget
(`veil.optimizer.ModeBudget` fields), for this run only.

    .venv/bin/python build/research/look_personal.py --photos Matt_Damon/img33.jpg \\
        --strengths medium strong --out /tmp/look-personal
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import bench_visibility as bv
from veil import personal
from veil.engine import Engine
from veil.results import Mode
from veil_research import shading_zones
from veil_research.evaluate import default_faces_dir

MAX_FACE_SIDE = 700


def override(settings: list[str], budget: list[str]) -> None:
    changes = {k: ast.literal_eval(v) for k, _, v in (s.partition("=") for s in settings)}
    for level, look in list(personal.STRENGTHS.items()):
        personal.STRENGTHS[level] = replace(look, **changes)  # research override
    if budget:
        extra = {k: ast.literal_eval(v) for k, _, v in (s.partition("=") for s in budget)}
        original = personal.refine_budget

        def patched(*args: object, **kwargs: object) -> object:
            return replace(original(*args, **kwargs), **extra)  # type: ignore[arg-type]

        personal.refine_budget = patched  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", nargs="+", required=True)
    parser.add_argument("--strengths", nargs="+", default=["medium", "strong"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/look-personal"))
    parser.add_argument("--set", nargs="*", default=[])
    parser.add_argument("--budget", nargs="*", default=[])
    parser.add_argument("--tag", default="")
    parser.add_argument(
        "--zones", default=None, choices=sorted(shading_zones.ZONE_SETS), help="zone set (research)"
    )
    args = parser.parse_args(argv)
    override(args.set, args.budget)
    if args.zones:
        shading_zones.use(args.zones)
    faces_dir = default_faces_dir()
    engine = Engine.load()
    args.out.mkdir(parents=True, exist_ok=True)
    tag = f".{args.tag}" if args.tag else ""
    for label in args.photos:
        path = faces_dir / label if label.startswith("scenes/") else faces_dir / "photos" / label
        data = path.read_bytes()
        original = bv.rgb8(data)
        big = max(engine.find_faces(original), key=lambda f: f.box.width * f.box.height).box
        face = bv.face_slices((big.x0, big.y0, big.x1, big.y1), original.shape)
        profile = bv.personal_profile(engine, path, faces_dir, args.out)
        name = label.replace("/", "_").rsplit(".", 1)[0]
        for strength in args.strengths:
            result = bv.cloak_as(engine, data, Mode.MID, (profile, strength))
            cloaked = bv.rgb8(result.data)
            a, b = original[face], cloaked[face]
            h, w = a.shape[:2]
            if max(h, w) > MAX_FACE_SIDE:
                y0, x0 = max(0, (h - MAX_FACE_SIDE) // 2), max(0, (w - MAX_FACE_SIDE) // 2)
                a = a[y0 : y0 + MAX_FACE_SIDE, x0 : x0 + MAX_FACE_SIDE]
                b = b[y0 : y0 + MAX_FACE_SIDE, x0 : x0 + MAX_FACE_SIDE]
            stem = args.out / f"{name}.{strength}{tag}"
            Image.fromarray(np.concatenate([a, b], axis=1)).save(f"{stem}.face.png")
            fh, fw = original[face].shape[:2]
            ey0, ey1 = int(0.2 * fh), int(0.6 * fh)
            ex0, ex1 = int(0.1 * fw), int(0.9 * fw)
            eyes = [im[face][ey0:ey1, ex0:ex1] for im in (original, cloaked)]
            if eyes[0].shape[1] > 1400:  # wider than a screen: the middle, still at 100%
                x = (eyes[0].shape[1] - 1400) // 2
                eyes = [e[:, x : x + 1400] for e in eyes]
            pair = np.concatenate(eyes, axis=0)  # original above, cloak below
            Image.fromarray(pair).save(f"{stem}.eyes.png")
            feed = np.concatenate([bv.display(original), bv.display(cloaked)], axis=1)
            if feed.shape[1] > 1600:
                s = 1600 / feed.shape[1]
                feed = cv2.resize(
                    feed, (1600, round(feed.shape[0] * s)), interpolation=cv2.INTER_AREA
                )
            Image.fromarray(feed).save(f"{stem}.feed.png")
            diff = cloaked.astype(np.int16) - original.astype(np.int16)
            d = diff[face].mean(axis=2)
            print(
                f"{label} {strength}{tag}: face change mean |{np.abs(d).mean():.2f}| "
                f"darker>8: {np.mean(d < -8):.3f} lighter>8: {np.mean(d > 8):.3f} "
                f"faces={[(f.strength, f.ssimulacra2) for f in result.faces]}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
