"""Print what each shipped model does on the shared face photos: accuracy and speed.

Usage: .venv/bin/python build/bench/bench_models.py [--faces DIR] [--per-identity N]

Runs with the companion's own code (veil.recognizers, veil.detector) on ONNX Runtime.
For each recogniser: leave-one-out rank-1 identification and the mean cosine of
same-identity vs different-identity pairs on `aligned/` (N crops per identity), then
median seconds of `embed` and `loss_and_grad` for batches of 1 and 8 crops. For the
detector: faces found and seconds per photo on `photos/` at a 1024-pixel long side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "companion"))

from veil.detector import FaceDetector  # noqa: E402
from veil.modelstore import get_store  # noqa: E402
from veil.recognizers import Recognizer  # noqa: E402


def default_faces() -> Path:
    override = os.environ.get("VEIL_FACES_DIR")
    return Path(override) if override else REPO.parent / "shared" / "faces"


def load_aligned(root: Path, per_identity: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    crops, labels, names = [], [], []
    for k, identity in enumerate(sorted(p.name for p in (root / "aligned").iterdir())):
        names.append(identity)
        for f in sorted((root / "aligned" / identity).glob("*.png"))[:per_identity]:
            with Image.open(f) as im:
                crops.append(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0)
            labels.append(k)
    return np.stack(crops), np.array(labels), names


def median_seconds(fn: object, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=default_faces())
    parser.add_argument("--per-identity", type=int, default=10)
    args = parser.parse_args()
    if not (args.faces / "aligned").is_dir():
        print(f"skipped: {args.faces}/aligned is absent")
        return 0
    crops, labels, names = load_aligned(args.faces, args.per_identity)
    print(f"aligned set: {len(names)} identities, {len(crops)} crops")
    store = get_store()
    header = (
        "recogniser      dim  rank-1  cos same  cos diff   embed x1  embed x8   grad x1   grad x8"
    )
    print(header)
    for name in store.names(role="recogniser"):
        rec = Recognizer(name, store)
        emb = rec.embed(crops)
        cos = emb @ emb.T
        same = (labels[:, None] == labels[None, :]) & ~np.eye(len(labels), dtype=bool)
        diff = labels[:, None] != labels[None, :]
        np.fill_diagonal(cos, -2.0)
        rank1 = float(np.mean(labels[cos.argmax(axis=1)] == labels))
        one, eight = crops[:1], crops[:8]
        rec.embed(eight)
        rec.loss_and_grad(eight, emb[:8])
        t_e1 = median_seconds(lambda: rec.embed(one))  # noqa: B023
        t_e8 = median_seconds(lambda: rec.embed(eight))  # noqa: B023
        t_g1 = median_seconds(lambda: rec.loss_and_grad(one, emb[:1]))  # noqa: B023
        t_g8 = median_seconds(lambda: rec.loss_and_grad(eight, emb[:8]))  # noqa: B023
        print(
            f"{name:<15} {rec.dim:>3}  {rank1:6.3f}  {cos[same].mean():8.3f}  "
            f"{cos[diff].mean():8.3f}  {t_e1:8.3f}s {t_e8:8.3f}s {t_g1:8.3f}s {t_g8:8.3f}s"
        )
    detector = FaceDetector.load()
    counts, seconds = [], []
    photos = sorted((args.faces / "photos").glob("*/*.jpg"))
    for path in photos:
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = min(1.0, 1024 / max(im.size))
            im = im.resize((round(im.width * scale), round(im.height * scale)))
            rgb = np.asarray(im)
        start = time.perf_counter()
        counts.append(len(detector.detect(rgb)))
        seconds.append(time.perf_counter() - start)
    print(
        f"detector: {len(photos)} photos at <=1024 px, exactly one face in "
        f"{sum(c == 1 for c in counts)}, none in {sum(c == 0 for c in counts)}, "
        f"median {statistics.median(seconds):.3f}s per photo"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
