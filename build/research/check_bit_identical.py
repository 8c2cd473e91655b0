"""Cloak fixed inputs and record the sha256 of every output (a refactor must not change them).

    .venv/bin/python build/research/check_bit_identical.py --write bench-out/bit-identical.json
    .venv/bin/python build/research/check_bit_identical.py --compare bench-out/bit-identical.json

Inputs come from `../shared/faces` (or `VEIL_FACES_DIR`): a one-face JPEG photo, the two-face
scene, a photo re-saved as PNG, two aligned crops through the engine's `--aligned` path, and
a batch of aligned crops straight through `optimizer.cloak_crops` (with and without the
engine's face mask), each in every mode. The engine is deterministic (its seed comes from
the input bytes and the mode), so the same commit gives the same hashes run after run;
`--runs 2` checks that too. Imports only what the product exposes, so that it runs at any
commit since the engine took this shape.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def faces_dir() -> Path:
    path = Path(os.environ.get("VEIL_FACES_DIR", REPO.parent / "shared" / "faces"))
    if not (path / "photos").is_dir():
        sys.exit(f"no face corpus at {path} (set VEIL_FACES_DIR)")
    return path


def shrunk(path: Path, max_side: int, fmt: str) -> bytes:
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
        return buffer.getvalue()


def inputs(faces: Path) -> dict[str, bytes]:
    aligned = sorted((faces / "aligned").iterdir())
    return {
        "photo.jpg": shrunk(faces / "photos" / "Scarlett_Johansson" / "img49.jpg", 900, "JPEG"),
        "couple.jpg": (faces / "scenes" / "couple.jpg").read_bytes(),
        "photo.png": shrunk(faces / "photos" / "George_Clooney" / "img40.jpg", 640, "PNG"),
        "aligned-a.png": sorted(aligned[0].glob("*.png"))[0].read_bytes(),
        "aligned-b.png": sorted(aligned[5].glob("*.png"))[0].read_bytes(),
    }


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_once(faces: Path) -> dict[str, str]:
    from veil import optimizer
    from veil.engine import Engine
    from veil.paste import face_mask
    from veil.results import Mode

    engine = Engine.load()
    out: dict[str, str] = {}
    files = inputs(faces)
    for name, data in files.items():
        out[f"input/{name}"] = sha(data)
    for mode in Mode:
        for name, data in files.items():
            if name.startswith("aligned"):
                result = engine.cloak_aligned_bytes(data, mode=mode)
            else:
                result = engine.cloak_bytes(data, mode=mode)
            out[f"{mode.value}/{name}"] = sha(result.data)
            out[f"{mode.value}/{name}/faces"] = str(result.face_count)
            print(
                f"  {mode.value:4s} {name:14s} {result.face_count} face(s) {sha(result.data)[:16]}"
            )
    crops = []
    for person in sorted((faces / "aligned").iterdir())[:4]:
        with Image.open(sorted(person.glob("*.png"))[1]) as image:
            crops.append(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
    batch = np.stack(crops)
    for mode in Mode:
        for label, region in (("masked", face_mask(optimizer.CROP_SIZE)), ("whole", None)):
            cloaked = optimizer.cloak_crops(
                batch, mode, engine.surrogates, seed=1234, region=region
            )
            key = f"{mode.value}/cloak_crops/{label}"
            out[key] = sha(np.ascontiguousarray(cloaked, dtype=np.float32).tobytes())
            print(f"  {key} {out[key][:16]}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="save the hashes to this JSON file")
    parser.add_argument("--compare", type=Path, help="compare with hashes saved earlier")
    parser.add_argument("--runs", type=int, default=1, help="runs (2: check run-to-run)")
    args = parser.parse_args()
    faces = faces_dir()
    before = json.loads(args.compare.read_text()) if args.compare else None  # fail fast
    runs = []
    for k in range(args.runs):
        print(f"run {k + 1}:")
        runs.append(run_once(faces))
    hashes = runs[0]
    unstable = [key for key in hashes if any(r[key] != hashes[key] for r in runs[1:])]
    if unstable:
        print(f"NOT deterministic run to run: {unstable}")
        return 1
    if args.runs > 1:
        print(f"deterministic: {len(hashes)} hashes equal over {args.runs} runs")
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.write}")
    if args.compare and before is not None:
        differ = sorted(k for k in set(before) | set(hashes) if before.get(k) != hashes.get(k))
        if differ:
            print(f"DIFFERENT from {args.compare}: {differ}")
            return 1
        print(f"bit-identical: all {len(hashes)} hashes equal to {args.compare}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
