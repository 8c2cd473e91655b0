"""Calibrate each recogniser's match threshold (cosine) on real faces, for `veil check`.

For every recogniser in the manifest, embeds every ArcFace-aligned crop in
`<faces>/aligned` (one folder per person), takes all same-person pairs (genuine) and all
different-person pairs (impostor), and picks the cosine where the false-match rate equals
the false-non-match rate (equal error rate). The threshold, its error rates and the data it
came from are written to the model's `match` entry in models/manifest.json (numbers only:
no face data goes into the project).

    .venv/bin/python build/models/calibrate_thresholds.py [--faces ../shared/faces] [--dry-run]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

from export_models import update_manifest  # the one writer of models/manifest.json
from veil.modelstore import get_store
from veil.recognizers import Recognizer
from veil_research import evaluate as ev


def equal_error_threshold(
    genuine: npt.NDArray[np.float64], impostor: npt.NDArray[np.float64]
) -> tuple[float, float, float]:
    """(threshold, false-match rate, false-non-match rate) where the two rates cross."""
    candidates = np.unique(np.concatenate([genuine, impostor]))
    g, i = np.sort(genuine), np.sort(impostor)
    # A pair "matches" when cosine >= threshold.
    fnmr = np.searchsorted(g, candidates, side="left") / len(g)
    fmr = 1.0 - np.searchsorted(i, candidates, side="left") / len(i)
    best = int(np.argmin(np.abs(fmr - fnmr)))
    return float(candidates[best]), float(fmr[best]), float(fnmr[best])


def pair_cosines(
    embeddings: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    sims = np.asarray(embeddings @ embeddings.T, dtype=np.float64)
    upper = np.triu(np.ones_like(sims, dtype=bool), k=1)
    same = labels[:, None] == labels[None, :]
    return sims[upper & same], sims[upper & ~same]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=None)
    parser.add_argument("--dry-run", action="store_true", help="print, do not write")
    args = parser.parse_args(argv)
    faces_dir = args.faces or ev.default_faces_dir()
    aligned = faces_dir / "aligned"
    people = sorted(p for p in aligned.iterdir() if p.is_dir())
    crops, labels = [], []
    for index, person in enumerate(people):
        files = sorted(f for f in person.iterdir() if f.suffix.lower() in {".png", ".jpg"})
        crops.append(ev._read_crops(files))
        labels += [index] * len(files)
    all_crops = np.concatenate(crops)
    label_array = np.asarray(labels, dtype=np.int64)
    print(f"{len(people)} people, {len(all_crops)} aligned crops from {aligned}")

    store = get_store()
    entries: dict[str, dict[str, object]] = {}
    for name in store.names(role="recogniser"):
        emb = ev.embed_all(Recognizer(name, store), all_crops)
        genuine, impostor = pair_cosines(emb, label_array)
        threshold, fmr, fnmr = equal_error_threshold(genuine, impostor)
        print(
            f"{name:15s} threshold {threshold:.3f}  false match {fmr:.3f}  "
            f"false non-match {fnmr:.3f}  ({len(genuine)} genuine, {len(impostor)} impostor pairs)"
        )
        entries[name] = {**store.entry(name).raw}
        entries[name]["match"] = {
            "cosine_threshold": round(threshold, 3),
            "rule": "equal error rate: false-match rate = false-non-match rate",
            "false_match_rate": round(fmr, 4),
            "false_non_match_rate": round(fnmr, 4),
            "data": f"{len(people)} people, {len(all_crops)} ArcFace-aligned crops "
            "(the project's shared test faces, aligned/)",
            "produced_by": "build/models/calibrate_thresholds.py",
        }
    if not args.dry_run:
        for name, entry in entries.items():
            update_manifest(name, entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
