"""Per photo of the corpus: each face's strength under `veil.prominence` (research, not shipped).

Prints photo, size, faces, and the strength (share of the mode's budget) of each face, then
how many photos have a face below full strength. The figures in docs/visibility.md.

    .venv/bin/python build/research/prominence_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import bench_visibility as bv
from veil.engine import Engine
from veil.prominence import face_strengths
from veil_research.evaluate import default_faces_dir


def main() -> int:
    faces_dir = default_faces_dir()
    engine = Engine.load()
    reduced = 0
    paths = bv.photo_paths(faces_dir)
    for path in paths:
        pixels = bv.rgb8(path.read_bytes())
        height, width = pixels.shape[:2]
        faces = engine.find_faces(pixels)
        strengths = face_strengths([f.box for f in faces], width, height)
        if any(s < 1.0 for s in strengths):
            reduced += 1
        cells = " ".join(f"{s:.2f}" for s in strengths)
        print(f"{bv.label_of(path, faces_dir):32s} {width}x{height} {len(faces)} faces: {cells}")
    print(f"{reduced} of {len(paths)} photos have a face below full strength")
    return 0


if __name__ == "__main__":
    sys.exit(main())
