"""Issue 11 research: does a smooth sub-pixel warp (veil_research.warp) buy more protection per
unit of visibility than the pixel cloak? Not shipped.

`loo`: leave-one-out protection on the tuning split (first 16 identities, 3 uploads each),
exactly as `veil-research tune` computes it (surrogates sface + mobilefacenet; facenet and
faceapi_resnet held out by construction, sface attacked by the cloak made with mobilefacenet
alone and vice versa), after no re-encode and JPEG 75.

`vis`: the warp at full resolution on the quick photo set (build/research/sweep_visibility.py
QUICK_SET), SSIMULACRA2 at display (1080 px) and on the face at 100% as
build/bench/bench_visibility.py measures them, plus side-by-side PNGs to look at.

Variant names: `warp_g<grid>_d<max displacement, crop px>`, with `+mid` for the warp followed
by the shipped mid pixel cloak (computed on the warped crop), or `ship_mid` alone.

    nice -n 10 .venv/bin/python build/research/warp_study.py loo --variants warp_g7_d0.6 \\
        --results docs/visibility-data/warp-study.jsonl
    nice -n 10 .venv/bin/python build/research/warp_study.py vis --variants warp_g7_d1.0 \\
        --results docs/visibility-data/warp-study.jsonl --look /tmp/warp-look
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_visibility as bv
from sweep_visibility import QUICK_SET
from veil import imageio, optimizer
from veil.align import alignment_matrix, scale_of, warp_crop
from veil.engine import Engine, StageTimer, seed_for
from veil.imageio import MetadataReport
from veil.paste import face_mask
from veil.prominence import face_strengths
from veil.recognizers import Recognizer
from veil.results import Mode
from veil_research import evaluate as ev
from veil_research.warp import WarpPlan, warp_crops, warp_photo

SURROGATES = ("sface", "mobilefacenet")
ATTACKERS = ("sface", "mobilefacenet", "facenet", "faceapi_resnet")
REENCODES = ("none", "jpeg75")
IOD_CROP_PX = 73.5318 - 38.2946  # eye distance in the 112-px ArcFace template


def parse_variant(name: str) -> tuple[WarpPlan | None, bool]:
    """(warp plan or None, whether the shipped mid pixel cloak follows)."""
    if name == "ship_mid":
        return None, True
    m = re.fullmatch(r"warp_g(\d+)_d([0-9.]+)(\+mid)?", name)
    if not m:
        raise SystemExit(f"unknown variant {name}")
    return WarpPlan(grid=int(m.group(1)), max_disp=float(m.group(2))), bool(m.group(3))


def cloak_one(
    crops: ev.F32,
    surrogates: list[optimizer.Surrogate],
    plan: WarpPlan | None,
    with_mid: bool,
    seed: int,
    strength: list[float] | None = None,
) -> tuple[ev.F32, ev.F32 | None]:
    """Cloaked crops and the warp field (None without a warp)."""
    region = face_mask(optimizer.CROP_SIZE)
    out, flow = crops, None
    if plan is not None:
        out, flow = warp_crops(
            crops, surrogates, plan=plan, seed=seed, region=region, strength=strength
        )
    if with_mid:
        out = optimizer.cloak_crops(
            out, Mode.MID, surrogates, seed=seed, region=region, strength=strength
        )
    return out, flow


def loo(args: argparse.Namespace) -> None:
    faces = ev.load_face_set(ev.default_faces_dir(), limit_identities=args.ids, max_uploads=3)
    models = {name: Recognizer(name) for name in ATTACKERS}
    cache = ev.EmbeddingCache(args.out / "embeddings")
    baseline = {}
    for name in ATTACKERS:
        base = ev.attack(models[name], faces, None, "none", cache).by_classifier
        baseline[name] = [base["centroid"], base["logreg"]]
    print(f"baseline (no cloak): {baseline}", flush=True)
    for variant in args.variants:
        plan, with_mid = parse_variant(variant)
        sets = [("ensemble", list(SURROGATES))] + [
            (held, [n for n in SURROGATES if n != held]) for held in SURROGATES
        ]
        per: dict[str, dict[str, list[float]]] = {r: {} for r in REENCODES}
        whitebox: dict[str, dict[str, list[float]]] = {r: {} for r in REENCODES}
        ssim, secs = 0.0, 0.0
        for label, names in sets:
            chosen: list[optimizer.Surrogate] = [models[n] for n in names]
            blob = f"{plan!r}|{with_mid}|{names}|{[models[n].fingerprint for n in names]}|v2"
            tag = (
                f"warp-{variant}-{'+'.join(names)}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"
            )

            def cloak(
                crops: ev.F32,
                seed: int,
                chosen: list[optimizer.Surrogate] = chosen,
                plan: WarpPlan | None = plan,
                with_mid: bool = with_mid,
            ) -> ev.F32:
                # One face at a time, as the engine runs them (cloak_uploads times the lot).
                out = [
                    cloak_one(crops[i : i + 1], chosen, plan, with_mid, seed + i)[0]
                    for i in range(len(crops))
                ]
                return np.concatenate(out)

            run = ev.cloak_uploads(faces, tag, cloak, args.out / "cloaked", log=lambda _: None)
            if label == "ensemble":
                ssim = run.crop_ssim
                secs = run.seconds_per_face
            targets = (
                [a for a in ATTACKERS if a not in SURROGATES] if label == "ensemble" else [label]
            )
            for reencode in REENCODES:
                if label == "ensemble":
                    for name in SURROGATES:
                        s = ev.attack(
                            models[name], faces, run.uploads, reencode, cache
                        ).by_classifier
                        whitebox[reencode][name] = [s["centroid"], s["logreg"]]
                for name in targets:
                    s = ev.attack(models[name], faces, run.uploads, reencode, cache).by_classifier
                    per[reencode][name] = [s["centroid"], s["logreg"]]
        row: dict[str, Any] = {
            "variant": variant,
            "plan": None if plan is None else plan.__dict__,
            "with_mid": with_mid,
            "identities": len(faces.identities),
            "uploads": faces.upload_count,
            "baseline": baseline,
            "crop_ssim": ssim,
            # The ensemble's (both surrogates, as the engine runs), from the cache's record.
            "optimizer_s_per_face": secs,
            "loo": {},
            "whitebox_ensemble": whitebox,
        }
        for reencode in REENCODES:
            cells = per[reencode]
            row["loo"][reencode] = {
                "centroid": round(float(np.mean([v[0] for v in cells.values()])), 3),
                "logreg": round(float(np.mean([v[1] for v in cells.values()])), 3),
                "min": min(min(v) for v in cells.values()),
                "per_attacker": cells,
            }
        append(args.results, {"kind": "loo"} | row)


def vis(args: argparse.Namespace) -> None:
    faces_dir = ev.default_faces_dir()
    engine = Engine.load()
    judge = bv.Judges(["ssimulacra2"])
    size = optimizer.CROP_SIZE
    if args.look:
        args.look.mkdir(parents=True, exist_ok=True)
    for variant in args.variants:
        plan, with_mid = parse_variant(variant)
        rows = []
        for label in QUICK_SET:
            path = faces_dir / ("photos/" + label if not label.startswith("scenes/") else label)
            data = path.read_bytes()
            original = bv.rgb8(data)
            decoded = imageio.decode(data)
            if not decoded.pixels.flags.writeable:
                decoded.pixels = decoded.pixels.copy()
            found = engine.find_faces(original)
            height, width = original.shape[:2]
            started = time.perf_counter()
            moved = {"image_px": 0.0, "display_px": 0.0, "iod_share": 0.0}
            if plan is not None:
                matrices = [alignment_matrix(f.landmarks, size) for f in found]
                crops = np.stack([warp_crop(decoded.pixels, m, size) for m in matrices])
                strengths = face_strengths([f.box for f in found], width, height)
                _, flows = warp_crops(
                    crops,
                    engine.surrogates,
                    plan=plan,
                    seed=seed_for(data, Mode.MID),
                    region=face_mask(size),
                    strength=strengths,
                )
                for matrix, flow in zip(matrices, flows, strict=True):
                    decoded.pixels = warp_photo(decoded.pixels, matrix, flow)
                    # The largest displacement, in image px, in px at display size, and as
                    # a share of the eye distance (35.2 px in the 112-px ArcFace template).
                    crop_px = float(np.max(np.linalg.norm(flow, axis=2)))
                    image_px = crop_px / scale_of(matrix)
                    if image_px > moved["image_px"]:
                        shrink = min(1.0, bv.DISPLAY_LONG_SIDE / max(height, width))
                        moved = {
                            "image_px": image_px,
                            "display_px": image_px * shrink,
                            "iod_share": crop_px / IOD_CROP_PX,
                        }
            if with_mid:
                engine._cloak_faces(
                    decoded, found, Mode.MID, seed_for(data, Mode.MID), StageTimer()
                )
            seconds = time.perf_counter() - started
            out = imageio.encode(
                decoded, decoded.pixels, keep_metadata=False, report=MetadataReport()
            )
            cloaked = bv.rgb8(out)
            big = max(found, key=lambda f: f.box.width * f.box.height).box
            face = bv.face_slices((big.x0, big.y0, big.x1, big.y1), original.shape)
            figures = bv.compare(judge, original, cloaked, face)
            rows.append(
                {"photo": label, "seconds": seconds, "faces": len(found), "moved": moved} | figures
            )
            print(variant, label, json.dumps(figures), f"{seconds:.1f} s", flush=True)
            if args.look:
                save_look(args.look, variant, label, original, cloaked, face)
        row: dict[str, Any] = {"kind": "vis", "variant": variant, "rows": rows}
        for scale in ("display", "face"):
            values = [r[scale]["ssimulacra2"] for r in rows]
            row[f"{scale}_mean"] = statistics.fmean(values)
            row[f"{scale}_min"] = min(values)
        append(args.results, row)


def save_look(
    folder: Path,
    variant: str,
    label: str,
    original: np.ndarray,
    cloaked: np.ndarray,
    face: tuple[slice, slice],
) -> None:
    """Original | cloaked side by side: the face at 100% and the photo at feed size, plus the
    face's absolute difference x8 (where the warp moved something)."""
    stem = f"{variant}_{label.replace('/', '_').rsplit('.', 1)[0]}"
    a, b = original[face], cloaked[face]
    diff = np.clip(np.abs(a.astype(np.int16) - b.astype(np.int16)) * 8, 0, 255).astype(np.uint8)
    Image.fromarray(np.hstack([a, b, diff])).save(folder / f"{stem}_face100.png")
    # Anaglyph: original's grey in red, the cloak's in green and blue; what a flicker
    # comparison shows as motion shows here as red/cyan fringes.
    grey_a = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    grey_b = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    Image.fromarray(np.dstack([grey_a, grey_b, grey_b])).save(folder / f"{stem}_anaglyph.png")
    feed_a, feed_b = bv.display(original), bv.display(cloaked)
    long_side = 540  # feed size in a browser column
    f = long_side / max(feed_a.shape[:2])
    dims = (round(feed_a.shape[1] * f), round(feed_a.shape[0] * f))
    feed_a = cv2.resize(feed_a, dims, interpolation=cv2.INTER_AREA)
    feed_b = cv2.resize(feed_b, dims, interpolation=cv2.INTER_AREA)
    Image.fromarray(np.hstack([feed_a, feed_b])).save(folder / f"{stem}_feed.png")


def append(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["loo", "vis"])
    parser.add_argument("--variants", nargs="+", required=True)
    parser.add_argument("--results", type=Path, default=Path("bench-out/warp-study.jsonl"))
    parser.add_argument("--ids", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("bench-out/warp"))
    parser.add_argument("--look", type=Path, default=None, help="vis: save PNGs to look at")
    args = parser.parse_args(argv)
    if args.command == "loo":
        loo(args)
    else:
        vis(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
