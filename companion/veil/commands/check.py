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

from veil.errors import VeilError

# Verdicts on cosine(original, cloaked), per model. Same-person pairs typically score above
# ~0.4-0.5 on these models, so below 0.3 the model no longer links the two photos.
FAR, MOVED = 0.3, 0.6


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


def verdict(cosine: float) -> str:
    if cosine < FAR:
        return "moved far: this model does not link the cloaked face to the original"
    if cosine < MOVED:
        return "moved: this model sees a weaker match than for a normal photo of you"
    return "barely moved: this model still matches the cloaked face to the original"


def measure(original: Path, cloaked: Path, models: Path | None) -> dict[str, Any]:
    from veil import imageio, optimizer
    from veil.align import alignment_matrix, warp_crop
    from veil.engine import Engine, shrink_for_detection
    from veil.quality import psnr, ssim

    a = imageio.decode(original.read_bytes())
    b = imageio.decode(cloaked.read_bytes())
    if a.pixels.shape != b.pixels.shape:
        raise VeilError(
            f"the two photos differ in size: {a.width}x{a.height} vs {b.width}x{b.height}"
        )
    engine = Engine.load(models)
    preview, scale = shrink_for_detection(a.pixels, engine.detect_long_side)
    faces = engine.detect_faces(preview, scale)
    recognizers = engine.all_recognizers()
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
            emb = model.embed(crops)
            emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
            cosine = float(emb[0] @ emb[1])
            entry["models"][model.name] = {"cosine": cosine, "verdict": verdict(cosine)}
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
            print(f"  {name}: cosine {model['cosine']:+.3f} - {model['verdict']}")
    return 0
