"""Research runs for the optimiser's budgets: protection, leave-one-out and speed of one setting.

Cloaks the uploads of the first `--ids` identities (the tuning split: never the 8 reported-only
ones unless asked) with one budget, then prints, per attacker, protection (nearest centroid /
logistic regression) after each re-encode, and the leave-one-out figure: for every surrogate
M, the cloak computed with the ensemble WITHOUT M attacked by M; attackers that are not in
the ensemble are held out by construction. Crop SSIM/DSSIM and the optimiser's seconds per
face (wall time of `cloak_crops`, one crop at a time like the engine) are printed beside.

    .venv/bin/veil-research tune --surrogates sface mobilefacenet faceapi_resnet \\
        --steps 10 --copies 2 [--ids 16 --uploads 3]

Nothing is asserted: this prints figures for the research log (docs/CHANGELOG.md). Cloaked
crops are cached under bench-out/tune/ keyed by every setting. Only what `ModeBudget` holds
can be varied (plus `--feather`, the paste mask's); the variants tried and dropped
(decoy-targeted, no identity copy, step power, step decay, surrogate weights) are in the
research log, not in the product. The visibility sweeps of issue 11 run this through
build/research/sweep_visibility.py.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from veil import optimizer
from veil.paste import face_mask
from veil.recognizers import Recognizer
from veil.results import Mode
from veil_research import evaluate as ev

ATTACKERS = ("sface", "mobilefacenet", "facenet", "faceapi_resnet")


FINE_SIGMA = 2.0  # crop px: colour varying faster than this is the "speckle" seen on faces


def change_split(faces: ev.FaceSet, uploads: dict[str, ev.U8]) -> tuple[float, float, float]:
    """RMS of the cloak's brightness part (same change on R, G, B), colour part, and the
    colour part's fine grain (minus a Gaussian blur), in 1/255 units, inside the face mask."""
    import cv2

    weight = face_mask(optimizer.CROP_SIZE) > 0.5
    grey, colour, fine = [], [], []
    for ident, cloaked in uploads.items():
        delta = cloaked.astype(np.float32) - faces.uploads[ident].astype(np.float32)
        brightness, chroma = optimizer.split_grey_colour(delta)
        for i in range(len(delta)):
            blurred = cv2.GaussianBlur(chroma[i], (0, 0), FINE_SIGMA)
            grey.append(float(np.mean(brightness[i][weight] ** 2)))
            colour.append(float(np.mean(chroma[i][weight] ** 2)))
            fine.append(float(np.mean((chroma[i] - blurred)[weight] ** 2)))

    def rms(squares: list[float]) -> float:
        return float(np.sqrt(np.mean(squares)))

    return rms(grey), rms(colour), rms(fine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="mid", choices=[m.value for m in Mode])
    parser.add_argument("--surrogates", nargs="+", default=["sface", "mobilefacenet"])
    parser.add_argument("--attackers", nargs="+", default=list(ATTACKERS))
    parser.add_argument("--steps", type=int)
    parser.add_argument("--copies", type=int)
    parser.add_argument("--linf", type=float, help="in 1/255 units")
    parser.add_argument("--grid", type=int)
    parser.add_argument("--min-crop-ssim", type=float)
    parser.add_argument("--momentum", type=float)
    parser.add_argument("--smooth-sigma", type=float)
    parser.add_argument("--jpeg-share", type=float)
    parser.add_argument("--colour-low-share", type=float)
    parser.add_argument("--colour-sigma", type=float)
    parser.add_argument("--delta-blur", type=float)
    parser.add_argument("--texture-low", type=float)
    parser.add_argument("--texture-high", type=float)
    parser.add_argument("--colour-scale", type=float)
    parser.add_argument("--luminance-adapt", action="store_true")
    parser.add_argument("--penalty", type=float)
    parser.add_argument("--edge-protect", type=float)
    parser.add_argument("--feather", type=float, help="research: paste mask feather share")
    parser.add_argument("--no-loo", action="store_true")
    parser.add_argument(
        "--region",
        default="face",
        choices=["face", "none"],
        help="face: the engine's feathered face mask (what reaches a photo); none: whole crop",
    )
    parser.add_argument("--ids", type=int, default=16, help="first N identities (tuning split)")
    parser.add_argument("--uploads", type=int, default=3, help="uploads per identity")
    parser.add_argument("--reencodes", nargs="+", default=["none", "jpeg75"])
    parser.add_argument("--faces", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("bench-out/tune"))
    args = parser.parse_args(argv)

    budget = optimizer.mode_budget(Mode(args.mode))
    changes: dict[str, float | int | bool] = {}
    fields = (
        "steps",
        "copies",
        "grid",
        "min_crop_ssim",
        "momentum",
        "smooth_sigma",
        "jpeg_share",
        "colour_low_share",
        "colour_sigma",
        "delta_blur",
        "texture_low",
        "texture_high",
        "colour_scale",
        "penalty",
        "edge_protect",
    )
    for field in fields:
        value = getattr(args, field)
        if value is not None:
            changes[field] = value
    if args.linf is not None:
        changes["linf"] = args.linf / 255
    if args.luminance_adapt:
        changes["luminance_adapt"] = True
    if args.feather is not None:
        from veil import paste

        paste._MASK_FEATHER = args.feather  # research override of the paste mask
        paste.face_mask.cache_clear()
    budget = optimizer.with_overrides(budget, **changes)
    print(f"budget: {budget}")

    faces_dir = args.faces or ev.default_faces_dir()
    faces = ev.load_face_set(faces_dir, limit_identities=args.ids, max_uploads=args.uploads)
    models = {name: Recognizer(name) for name in set(args.attackers) | set(args.surrogates)}
    cache = ev.EmbeddingCache(args.out / "embeddings")
    print(f"{len(faces.identities)} identities, {faces.upload_count} uploads")
    for name in args.attackers:
        base = ev.attack(models[name], faces, None, "none", cache).by_classifier
        print(f"  baseline {name:15s} {base['centroid']:.2f} / {base['logreg']:.2f}")

    sets: list[tuple[str, list[str]]] = [("ensemble", list(args.surrogates))]
    if not args.no_loo:
        for held in args.surrogates:
            rest = [n for n in args.surrogates if n != held]
            if rest and held in args.attackers:
                sets.append((held, rest))

    region = face_mask(optimizer.CROP_SIZE) if args.region == "face" else None
    loo: dict[str, dict[str, dict[str, float]]] = {}  # attacker -> reencode -> classifier
    for label, names in sets:
        chosen: list[optimizer.Surrogate] = [models[n] for n in names]
        set_budget = budget
        surrogate_files = ",".join(f"{n}@{models[n].fingerprint}" for n in names)
        blob = (
            f"{set_budget!r}|{surrogate_files}|{optimizer.ALGORITHM_VERSION}|{args.region}"
            f"|{args.feather}"
        )
        tag = f"{args.mode}-{'+'.join(names)}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"
        times: list[float] = []

        def cloak(
            crops: ev.F32,
            seed: int,
            chosen: list[optimizer.Surrogate] = chosen,
            times: list[float] = times,
            set_budget: optimizer.ModeBudget = set_budget,
        ) -> ev.F32:
            out = []
            for i in range(len(crops)):  # one face at a time, as the engine runs them
                started = time.perf_counter()
                out.append(
                    optimizer.cloak_crops(
                        crops[i : i + 1],
                        Mode(args.mode),
                        chosen,
                        seed=seed + i,
                        budget=set_budget,
                        region=region,
                    )
                )
                times.append(time.perf_counter() - started)
            return np.concatenate(out)

        run = ev.cloak_uploads(faces, tag, cloak, args.out / "cloaked", log=lambda _: None)
        speed = f"{statistics.median(times):.2f} s/face" if times else "cached"
        grey_rms, colour_rms, fine_colour_rms = change_split(faces, run.uploads)
        print(
            f"\n[{label}] {'+'.join(names)}: crop SSIM {run.crop_ssim:.4f} "
            f"DSSIM {run.crop_dssim:.4f}, {speed}; change RMS /255 inside the mask: "
            f"brightness {grey_rms:.2f}, colour {colour_rms:.2f} (finer than "
            f"{FINE_SIGMA} px {fine_colour_rms:.2f})",
            flush=True,
        )
        targets = args.attackers if label == "ensemble" else [label]
        for name in targets:
            for reencode in args.reencodes:
                result = ev.attack(models[name], faces, run.uploads, reencode, cache)
                scores = result.by_classifier
                role = "white-box" if name in names else "held out"
                print(
                    f"  vs {name:15s} {reencode:7s} {role:9s} "
                    f"{scores['centroid']:.2f} / {scores['logreg']:.2f}"
                )
                if name not in names:
                    loo.setdefault(name, {})[reencode] = scores
    if loo:
        print("\nleave-one-out (centroid / logreg):")
        for reencode in args.reencodes:
            rows = [(name, per[reencode]) for name, per in loo.items() if reencode in per]
            cells = ", ".join(f"{n} {s['centroid']:.2f}/{s['logreg']:.2f}" for n, s in rows)
            mean_c = float(np.mean([s["centroid"] for _, s in rows]))
            mean_l = float(np.mean([s["logreg"] for _, s in rows]))
            low = min(min(s["centroid"], s["logreg"]) for _, s in rows)
            print(f"  {reencode:7s} mean {mean_c:.2f} / {mean_l:.2f}  min {low:.2f}  ({cells})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
