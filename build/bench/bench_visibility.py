"""Visibility benchmark: how much a cloak shows, judged by two independent perceptual metrics.

For every photo in `<faces>/photos` and `<faces>/scenes`, cloak it with the real engine
(`veil.engine.Engine`, the file bytes the user would get) and compare original and cloak with
two judges from PyPI (the `bench` extra):

- SSIMULACRA2 (`ssimulacra2`: 100 identical, 90 visually lossless, 70 high quality, 50 medium);
- NVIDIA FLIP (`flip-evaluator`, LDR, mean error: 0 identical, higher is worse),

at two scales:

- face: the largest face's detector box grown 1.4x around its centre, at full resolution
  (what someone sees zooming in at 100%);
- display: the whole photo shrunk to 1080 px on its long side with cv2.INTER_AREA (a feed).

Beside each figure, the same for a plain JPEG quality 85 re-encode of the original (what a
site does to every upload anyway): the yardstick. The yardstick does not depend on the cloak,
so it is cached (bench-out/visibility/yardstick.json, keyed by the photo's bytes).

    .venv/bin/python build/bench/bench_visibility.py --modes mid --limit 5
    .venv/bin/python build/bench/bench_visibility.py --modes low mid high --json bench-out/vis.json
    .venv/bin/python build/bench/bench_visibility.py --photos Matt_Damon/img33.jpg scenes/couple.jpg
    .venv/bin/python build/bench/bench_visibility.py --modes mid --personal light medium strong

`--personal STRENGTH...`: each photo's person is enrolled (`veil.enrolment`, the product's
own code) from all their photos in `photos/` (for `scenes/`, from the photo's largest face)
and the photo is cloaked as that person's upload at each strength: their face gets the
personal cloak, everyone else in the photo the default. Profiles are cached under --out.

Speed of the judges (this machine, 1000x1000, one core busy): SSIMULACRA2 about 4 s, FLIP
about 3 s, so a photo costs 10-40 s of judging per mode on top of the cloak; all 50 photos
at one mode take about 15-25 minutes. Use `--limit`/`--photos` for quick runs.

Nothing is asserted: this prints figures for docs/visibility.md. These judges are for
measuring only; the optimiser must never be tuned against them directly.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from veil import imageio
from veil.engine import Engine
from veil.results import Mode
from veil_research.evaluate import default_faces_dir
from veil_research.personal_report import personal_algorithm

DISPLAY_LONG_SIDE = 1080
FACE_GROW = 1.4
YARDSTICK_QUALITY = 85


def photo_paths(faces_dir: Path) -> list[Path]:
    photos = sorted((faces_dir / "photos").glob("*/*"))
    scenes = sorted((faces_dir / "scenes").glob("*"))
    suffixes = {".jpg", ".jpeg", ".png", ".webp"}
    return [p for p in photos + scenes if p.suffix.lower() in suffixes]


def label_of(path: Path, faces_dir: Path) -> str:
    rel = path.relative_to(faces_dir)
    return str(rel.relative_to("photos")) if rel.parts[0] == "photos" else str(rel)


def rgb8(data: bytes) -> np.ndarray:
    """Decoded pixels as the engine sees them (orientation applied), 8-bit RGB."""
    pixels = imageio.decode(data).pixels
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    return np.ascontiguousarray(pixels[..., :3])


def jpeg_yardstick(rgb: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=YARDSTICK_QUALITY)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def display(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    factor = DISPLAY_LONG_SIDE / max(h, w)
    if factor >= 1.0:
        return rgb
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))


def face_slices(box: tuple[int, int, int, int], shape: tuple[int, ...]) -> tuple[slice, slice]:
    """(x0, y0, x1, y1) grown FACE_GROW x around its centre, clipped to the image."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hw, hh = (x1 - x0) * FACE_GROW / 2, (y1 - y0) * FACE_GROW / 2
    h, w = shape[:2]
    xa, xb = max(0, round(cx - hw)), min(w, round(cx + hw))
    ya, yb = max(0, round(cy - hh)), min(h, round(cy + hh))
    return slice(ya, yb), slice(xa, xb)


class Judges:
    """The two PyPI judges; SSIMULACRA2's package reads files, so images go through PNGs."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.tmp = Path(tempfile.mkdtemp(prefix="veil-vis-"))

    def __call__(self, ref: np.ndarray, test: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        if "ssimulacra2" in self.names:
            import ssimulacra2

            a, b = self.tmp / "ref.png", self.tmp / "test.png"
            Image.fromarray(ref).save(a, compress_level=1)
            Image.fromarray(test).save(b, compress_level=1)
            out["ssimulacra2"] = float(ssimulacra2.compute_ssimulacra2(str(a), str(b)))
        if "flip" in self.names:
            import flip_evaluator

            _, mean, _ = flip_evaluator.evaluate(
                ref.astype(np.float32) / 255,
                test.astype(np.float32) / 255,
                "LDR",
                applyMagma=False,
            )
            out["flip"] = float(mean)
        return out


def compare(judge: Judges, ref: np.ndarray, test: np.ndarray, face: tuple[slice, slice]) -> dict:
    return {
        "face": judge(np.ascontiguousarray(ref[face]), np.ascontiguousarray(test[face])),
        "display": judge(display(ref), display(test)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=None)
    parser.add_argument("--modes", nargs="+", default=["mid"], choices=[m.value for m in Mode])
    parser.add_argument("--photos", nargs="+", help="subset, e.g. Matt_Damon/img33.jpg")
    parser.add_argument("--limit", type=int, help="first N photos (after --photos)")
    parser.add_argument("--judges", nargs="+", default=["ssimulacra2", "flip"])
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--out", type=Path, default=Path("bench-out/visibility"))
    parser.add_argument("--save-cloaks", action="store_true", help="keep cloaked files in --out")
    parser.add_argument(
        "--personal",
        nargs="+",
        default=[],
        choices=["light", "medium", "strong"],
        help="also each photo as an enrolled person's upload at these strengths",
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="FIELD=VALUE",
        help="research: override budget fields of every mode run (linf in 1/255 units), "
        "e.g. --set linf=6 colour_scale=0",
    )
    args = parser.parse_args(argv)
    apply_overrides(args.modes, args.set)

    faces_dir = args.faces or default_faces_dir()
    paths = photo_paths(faces_dir)
    if not paths:
        print(f"no photos under {faces_dir}", file=sys.stderr)
        return 2
    if args.photos:
        wanted = set(args.photos)
        paths = [p for p in paths if label_of(p, faces_dir) in wanted]
    if args.limit:
        paths = paths[: args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    cache_file = args.out / "yardstick.json"
    cache: dict[str, Any] = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    judge = Judges(args.judges)
    surrogates = [s.split("=", 1)[1].split("+") for s in args.set if s.startswith("surrogates=")]
    engine = Engine.load(surrogates=surrogates[0] if surrogates else None)
    from veil.optimizer import ALGORITHM_VERSION

    rows: list[dict[str, Any]] = []
    for path in paths:
        label = label_of(path, faces_dir)
        data = path.read_bytes()
        original = rgb8(data)
        found = engine.find_faces(original)
        if not found:
            print(f"{label}: no face found, skipped", flush=True)
            continue
        big = max(found, key=lambda f: f.box.width * f.box.height).box
        face = face_slices((big.x0, big.y0, big.x1, big.y1), original.shape)
        key = f"{hashlib.sha256(data).hexdigest()[:16]}|{'+'.join(sorted(args.judges))}"
        if key not in cache:
            cache[key] = compare(judge, original, jpeg_yardstick(original), face)
            cache_file.write_text(json.dumps(cache, indent=1))
        row: dict[str, Any] = {
            "photo": label,
            "size": [original.shape[1], original.shape[0]],
            "faces": len(found),
            "jpeg85": cache[key],
        }
        runs: list[tuple[str, Mode, Any]] = [(m, Mode(m), None) for m in args.modes]
        if args.personal:
            profile = personal_profile(engine, path, faces_dir, args.out)
            runs += [(f"personal-{s}", Mode.MID, (profile, s)) for s in args.personal]
        for mode, engine_mode, enrolled in runs:
            started = time.perf_counter()
            result = cloak_as(engine, data, engine_mode, enrolled)
            seconds = time.perf_counter() - started
            if args.save_cloaks:
                (args.out / f"{label.replace('/', '_')}.{mode}{path.suffix}").write_bytes(
                    result.data
                )
            cloaked = rgb8(result.data)
            if cloaked.shape != original.shape:
                print(f"{label}: cloak is {cloaked.shape}, original {original.shape}", flush=True)
                continue
            row[mode] = compare(judge, original, cloaked, face) | {"seconds": seconds}
        rows.append(row)
        print_row(row, args.modes, args.judges)
    print_summary(rows, args.modes, args.judges)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "algorithm_version": ALGORITHM_VERSION,
                    # the personal rows' algorithm (personal-report refuses other versions)
                    "personal_algorithm": personal_algorithm(["--set"] if args.set else []),
                    "modes": args.modes,
                    "rows": rows,
                },
                indent=1,
            )
        )
        print(f"wrote {args.json}")
    return 0


def cloak_as(engine: Engine, data: bytes, mode: Mode, enrolled: Any) -> Any:
    """The engine's cloak of `data`, with `enrolled` = (profile, strength) enrolled."""
    from dataclasses import replace

    from veil.personal import Strength
    from veil.profiles import ProfileBook

    saved = engine.profiles
    if enrolled is not None:
        profile, strength = enrolled
        engine.profiles = ProfileBook.fixed([replace(profile, strength=Strength(strength))])
    try:
        return engine.cloak_bytes(data, mode=mode)
    finally:
        engine.profiles = saved


def personal_profile(engine: Engine, path: Path, faces_dir: Path, out: Path) -> Any:
    """The profile of the person in `path`: enrolled from all their photos in `photos/`, or
    for a scene from its largest face; cached under `out`."""
    from veil.enrolment import EnrolPhoto, FoundFace, build_profile, enrolment_faces
    from veil.modelstore import get_store
    from veil.personal import ENROL_BUDGET, PERSONAL_ALGORITHM_VERSION, EnrolPlan, Strength
    from veil.profiles import load_profile, save_profile
    from veil.recognizers import load_recognizers

    in_photos = path.parent.parent.name == "photos"
    sources = sorted(path.parent.glob("*.jpg")) if in_photos else [path]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]
    key = f"{ENROL_BUDGET!r}|{EnrolPlan()!r}|{PERSONAL_ALGORITHM_VERSION}|{digest}"
    tag = hashlib.sha256(key.encode()).hexdigest()[:12]
    folder = out / "profiles" / tag
    cached = list((folder / "profiles").glob("*.npz")) if folder.exists() else []
    if cached:
        return load_profile(cached[0])
    if len(sources) > 1:
        faces = enrolment_faces(engine, [EnrolPhoto(p.name, p.read_bytes()) for p in sources])
    else:
        rgb = rgb8(sources[0].read_bytes())
        from veil.align import alignment_matrix, warp_crop

        big = max(engine.find_faces(rgb), key=lambda f: f.box.width * f.box.height)
        crop = warp_crop(rgb, alignment_matrix(big.landmarks, 112), 112)
        faces = [FoundFace(0, crop, (0, 0, 112, 112))] * 3
    store = get_store()
    everyone = load_recognizers(store.names(role="recogniser"), store)
    started = time.perf_counter()
    profile = build_profile(engine, faces, "bench", strength=Strength.MEDIUM, surrogates=everyone)
    print(f"  enrolled {path.parent.name}: {time.perf_counter() - started:.0f} s", flush=True)
    save_profile(folder, profile)
    return profile


def apply_overrides(modes: list[str], settings: list[str]) -> None:
    """Replace the named modes' budgets for this run only (research variants)."""
    import ast

    from veil import optimizer

    if not settings:
        return
    changes: dict[str, Any] = {}
    for item in settings:
        key, _, text = item.partition("=")
        if key == "surrogates":  # handled by main() when it loads the engine
            continue
        if key == "feather":  # the paste mask's feather (veil.paste), not a budget field
            from veil import paste

            paste._MASK_FEATHER = float(text)
            paste.face_mask.cache_clear()
            continue
        value = ast.literal_eval(text)
        changes[key] = value / 255 if key == "linf" else value
    for mode in modes:
        budgets = optimizer._BUDGETS  # research override; the product never does this
        budgets[Mode(mode)] = optimizer.with_overrides(budgets[Mode(mode)], **changes)
        print(f"{mode}: {budgets[Mode(mode)]}")


def cell(figures: dict[str, float], judges: list[str]) -> str:
    parts = []
    if "ssimulacra2" in judges:
        parts.append(f"{figures['ssimulacra2']:6.1f}")
    if "flip" in judges:
        parts.append(f"{figures['flip']:.3f}")
    return " ".join(parts)


def print_row(row: dict[str, Any], modes: list[str], judges: list[str]) -> None:
    extra = [k for k in row if k.startswith("personal-")]
    cols = [("jpeg85", row["jpeg85"])] + [(m, row[m]) for m in [*modes, *extra] if m in row]
    text = "  ".join(
        f"{name}: face {cell(f['face'], judges)} | display {cell(f['display'], judges)}"
        for name, f in cols
    )
    print(
        f"{row['photo']:32s} {row['size'][0]}x{row['size'][1]} {row['faces']}f  {text}", flush=True
    )


def print_summary(rows: list[dict[str, Any]], modes: list[str], judges: list[str]) -> None:
    print(f"\n{len(rows)} photos. SSIMULACRA2 higher is better; FLIP lower is better.")
    print(f"{'':8s} {'scale':8s} {'judge':12s} {'mean':>7s} {'worst':>7s}  worst photo")
    extra = sorted({k for r in rows for k in r if k.startswith("personal-")})
    for name in ["jpeg85", *modes, *extra]:
        have = [r for r in rows if name in r]
        if not have:
            continue
        for scale in ("display", "face"):
            for j in judges:
                values = [r[name][scale][j] for r in have]
                worst_i = int(np.argmin(values) if j == "ssimulacra2" else np.argmax(values))
                print(
                    f"{name:8s} {scale:8s} {j:12s} {statistics.fmean(values):7.3f} "
                    f"{values[worst_i]:7.3f}  {have[worst_i]['photo']}"
                )
        if name != "jpeg85":
            secs = [r[name]["seconds"] for r in have]
            print(
                f"{name:8s} cloak seconds: mean {statistics.fmean(secs):.2f}, max {max(secs):.2f}"
            )


if __name__ == "__main__":
    sys.exit(main())
