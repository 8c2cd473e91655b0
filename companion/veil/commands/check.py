"""`veil check ORIGINAL CLOAKED`: how far the cloak moved each face, per local model.

For every face found in the original, both photos are aligned with the ORIGINAL's landmarks
and embedded by every local recogniser; the cosine similarity of the two embeddings says how
much the cloak moved the face in that model's eyes. Also: whole-image and face-region SSIM,
and PSNR. A cloak protects you by poisoning what scrapers TRAIN on; a low cosine here means a
local model already sees the cloaked face as someone else, which is a good sign, not a proof.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from veil.errors import ModelMissingError, VeilError

# Used only for a recogniser whose manifest entry has no calibrated `match` threshold.
GENERIC_THRESHOLD = 0.4


def match_threshold(model: object) -> float | None:
    """Cosine above which `model` calls two faces the same person, from the manifest.

    Calibrated per model at its equal error rate on real faces by
    `build/models/calibrate_thresholds.py` (the published 0.363 for SFace sits at a lower
    false-match rate; the others have no published operating point on ArcFace crops).
    """
    store, name = getattr(model, "store", None), getattr(model, "name", "")
    entries = getattr(store, "models", {})
    entry = entries.get(name) if isinstance(entries, dict) else None
    match = entry.raw.get("match", {}) if entry is not None else {}
    value = match.get("cosine_threshold") if isinstance(match, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help="measure how far a cloak moved the faces (cosine, SSIM, PSNR)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("original", type=Path)
    parser.add_argument("cloaked", type=Path)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--models", type=Path, metavar="DIR", help="models folder")


def verdict(cosine: float, threshold: float | None) -> str:
    """Plain-language reading of cosine(original, cloaked) against the model's threshold."""
    limit = threshold if threshold is not None else GENERIC_THRESHOLD
    if cosine < limit:
        return (
            f"moved past this model's match threshold ({limit:.2f}): it would not link the "
            "cloaked face to the original"
        )
    if cosine < (1 + limit) / 2:
        return "moved, but this model would still match the two (weakly)"
    return "barely moved: this model still matches the cloaked face to the original"


def measure(original: Path, cloaked: Path, models: Path | None) -> dict[str, Any]:
    from veil import imageio, optimizer
    from veil.align import alignment_matrix, warp_crop
    from veil.engine import Engine
    from veil.quality import psnr, ssim

    a = imageio.decode(original.read_bytes())
    b = imageio.decode(cloaked.read_bytes())
    if a.pixels.shape != b.pixels.shape:
        raise VeilError(
            f"the two photos differ in size: {a.width}x{a.height} vs {b.width}x{b.height}"
        )
    engine = Engine.load(models)
    faces = engine.find_faces(a.pixels)
    recognizers = engine.all_recognizers()
    surrogate_names = {s.name for s in engine.surrogates}
    maxval = float(a.max_value)
    size = optimizer.CROP_SIZE
    report: dict[str, Any] = {
        "ssim": ssim(a.pixels, b.pixels, maxval),
        "psnr": psnr(a.pixels, b.pixels, maxval),
        "faces": [],
    }
    for face in faces:
        matrix = alignment_matrix(face.landmarks, size)
        crops = np.stack([warp_crop(a.pixels, matrix, size), warp_crop(b.pixels, matrix, size)])
        box = face.box
        region = (slice(box.y0, box.y1), slice(box.x0, box.x1))
        entry: dict[str, Any] = {
            "box": [box.x0, box.y0, box.width, box.height],
            "face_ssim": ssim(a.pixels[region], b.pixels[region], maxval),
            "face_psnr": psnr(a.pixels[region], b.pixels[region], maxval),
            "models": {},
        }
        for model in recognizers:
            try:
                emb = model.embed(crops)
            except ModelMissingError as exc:  # a held-out model not built here: say so
                entry["models"][model.name] = {"cosine": None, "verdict": exc.message}
                continue
            emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
            cosine = float(emb[0] @ emb[1])
            entry["models"][model.name] = {
                "cosine": cosine,
                "verdict": verdict(cosine, match_threshold(model)),
                "threshold": match_threshold(model),
                "surrogate": model.name in surrogate_names,
            }
        report["faces"].append(entry)
    return report


def run(args: argparse.Namespace) -> int:
    try:
        report = measure(args.original, args.cloaked, args.models)
    except VeilError as exc:
        print(f"veil check: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"veil check: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"whole image: SSIM {report['ssim']:.4f}, PSNR {report['psnr']:.2f} dB")
    if not report["faces"]:
        print("no face found in the original: nothing to compare")
    for i, face in enumerate(report["faces"], 1):
        x, y, w, h = face["box"]
        print(
            f"face {i} at {x},{y} {w}x{h}: SSIM {face['face_ssim']:.4f}, "
            f"PSNR {face['face_psnr']:.2f} dB"
        )
        for name, model in face["models"].items():
            if model["cosine"] is None:
                print(f"  {name}: not available - {model['verdict']}")
                continue
            role = "surrogate" if model["surrogate"] else "held-out"
            print(f"  {name} ({role}): cosine {model['cosine']:+.3f} - {model['verdict']}")
    return 0
