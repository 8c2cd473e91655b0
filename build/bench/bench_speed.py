"""Speed benchmark of the cloaking engine: prints figures, asserts nothing.

For each photo: median wall seconds over N runs of `Engine.cloak_bytes` (default mode), the
median per stage, peak RSS of a fresh process that loads the models and cloaks the photo,
faces found, whole-image SSIM (full resolution, decoded output vs decoded input), and the
ratio to a plain decode + encode of the same file (so the figure survives a noisy machine).

    .venv/bin/python build/bench/bench_speed.py [--faces-dir DIR] [--runs 5] [--mode mid]
    .venv/bin/python build/bench/bench_speed.py --personal medium   # as an enrolled person

`--personal STRENGTH`: each photo's person is enrolled first (from their other photos in
`photos/`; a scene from its own largest face), so their face gets the personal cloak at
that strength. Enrolment there runs 2 optimiser steps: the upload's time does not depend
on how long the enrolment optimised (build/bench/bench_enrol.py times enrolment).

Photos: ../shared/faces/photos/Scarlett_Johansson/img49.jpg (12.6 MP, one face),
George_Clooney/img40.jpg (14 MP), scenes/couple.jpg (two faces), and a generated 12 MP
photo without a face (gradient + noise texture, 4000x3000 JPEG q90 with GPS EXIF).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
PHOTOS = (
    "photos/Scarlett_Johansson/img49.jpg",
    "photos/George_Clooney/img40.jpg",
    "scenes/couple.jpg",
)


def no_face_photo(path: Path) -> Path:
    """A deterministic 12 MP photo with no face: smooth gradient + noise texture + GPS."""
    rng = np.random.default_rng(20261122)
    width, height = 4000, 3000
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x / width * 200, y / height * 200, (x + y) / (width + height) * 255], axis=2)
    image += rng.normal(0, 10, image.shape).astype(np.float32) + 20
    exif = Image.Exif()
    exif[0x010F] = "BenchCam"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 24.0)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
        path, "JPEG", quality=90, exif=exif
    )
    return path


def peak_rss_mb() -> float:
    """Peak RSS of this process image. Linux's VmHWM resets at exec, whereas ru_maxrss keeps
    the high-water mark of the parent that forked us, so prefer VmHWM."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # macOS: bytes / 1024


def enrol_for(engine: object, path: Path) -> object:
    """A quick profile of the person in `path` (see the module docstring)."""
    from veil.align import alignment_matrix, warp_crop
    from veil.enrolment import EnrolPhoto, FoundFace, build_profile, enrolment_faces
    from veil.personal import EnrolPlan, Strength

    others = [p for p in sorted(path.parent.glob("*.jpg")) if p != path]
    if path.parent.parent.name == "photos" and len(others) >= 3:
        faces = enrolment_faces(engine, [EnrolPhoto(p.name, p.read_bytes()) for p in others])
    else:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        found = engine.find_faces(rgb)  # type: ignore[attr-defined]
        if not found:
            return None  # nobody to enrol: the photo is timed as it is
        big = max(found, key=lambda f: f.box.width * f.box.height)
        crop = warp_crop(rgb, alignment_matrix(big.landmarks, 112), 112)
        faces = [FoundFace(0, crop, (0, 0, 112, 112))] * 3
    return build_profile(
        engine,
        faces,
        "bench",
        strength=Strength.MEDIUM,
        surrogates=engine.surrogates,
        plan=EnrolPlan(steps=2),  # type: ignore[attr-defined]
    )


def worker(path: Path, runs: int, mode: str, out: Path, personal: str | None = None) -> None:
    """Runs in a fresh process: load, cloak N times, then the decode+encode baseline."""
    from veil import imageio
    from veil.engine import Engine, StageTimer
    from veil.imaging.metadata import MetadataReport
    from veil.results import Mode

    data = path.read_bytes()
    load_start = time.perf_counter()
    engine = Engine.load()
    load_seconds = time.perf_counter() - load_start
    if personal:
        from dataclasses import replace

        from veil.personal import Strength
        from veil.profiles import ProfileBook

        profile = enrol_for(engine, path)
        if profile is not None:
            chosen = replace(profile, strength=Strength(personal))  # type: ignore[type-var]
            engine.profiles = ProfileBook.fixed([chosen])
    walls, stages = [], []
    result = None
    for _ in range(runs):
        timer = StageTimer()
        start = time.perf_counter()
        result = engine.cloak_bytes(data, mode=Mode(mode), timer=timer)
        walls.append(time.perf_counter() - start)
        stages.append(timer.seconds)
    assert result is not None
    peak_mb = peak_rss_mb()
    out.write_bytes(result.data)
    baseline = []
    for _ in range(runs):
        start = time.perf_counter()
        decoded = imageio.decode(data)
        imageio.encode(decoded, decoded.pixels, keep_metadata=False, report=MetadataReport())
        baseline.append(time.perf_counter() - start)
    names = sorted({name for s in stages for name in s})
    print(
        json.dumps(
            {
                "median_s": statistics.median(walls),
                "runs_s": walls,
                "stages_s": {n: statistics.median(s.get(n, 0.0) for s in stages) for n in names},
                "peak_rss_mb": peak_mb,
                "faces": result.face_count,
                "personal": sum(f.profile is not None for f in result.faces),
                "engine_ssim": result.ssim,
                "removed": list(result.metadata_removed),
                "decode_encode_s": statistics.median(baseline),
                "load_s": load_seconds,
            }
        )
    )


def full_ssim(original: Path, cloaked: Path) -> float:
    from veil import imageio
    from veil.quality import ssim

    a = imageio.decode(original.read_bytes())
    b = imageio.decode(cloaked.read_bytes())
    return ssim(a.pixels, b.pixels, float(a.max_value))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_faces = os.environ.get("VEIL_FACES_DIR", str(REPO.parent / "shared" / "faces"))
    parser.add_argument("--faces-dir", type=Path, default=Path(default_faces))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mode", default="mid")
    parser.add_argument("--personal", choices=["light", "medium", "strong"], default=None)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.runs, args.mode, args.out, args.personal)
        return 0
    with tempfile.TemporaryDirectory(prefix="veil-bench-") as tmp:
        photos = [args.faces_dir / p for p in PHOTOS]
        missing = [p for p in photos if not p.exists()]
        if missing:
            print(f"skipping (not found): {', '.join(map(str, missing))}", file=sys.stderr)
        photos = [p for p in photos if p.exists()] + [no_face_photo(Path(tmp) / "no-face-12mp.jpg")]
        print(
            f"mode={args.mode} personal={args.personal or '-'} runs={args.runs} "
            f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}"
        )
        header = (
            f"{'photo':<34}{'MP':>6}{'faces':>6}{'median s':>10}{'dec+enc s':>10}{'ratio':>7}"
            f"{'peak MB':>9}{'SSIM':>8}  stages (median s)"
        )
        print(header)
        for photo in photos:
            out = Path(tmp) / ("out-" + photo.name)
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", str(photo), "--out", str(out),
                 "--runs", str(args.runs), "--mode", args.mode,
                 *(["--personal", args.personal] if args.personal else [])],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if proc.returncode != 0:
                print(f"{photo.name}: worker failed\n{proc.stderr[-2000:]}")
                continue
            figures = json.loads(proc.stdout.strip().splitlines()[-1])
            with Image.open(photo) as im:
                megapixels = im.width * im.height / 1e6
            similarity = full_ssim(photo, out)
            stages = " ".join(f"{k}={v:.3f}" for k, v in figures["stages_s"].items())
            label = "/".join(photo.parts[-2:])
            print(
                f"{label:<34}{megapixels:>6.1f}{figures['faces']:>6}{figures['median_s']:>10.3f}"
                f"{figures['decode_encode_s']:>10.3f}"
                f"{figures['median_s'] / figures['decode_encode_s']:>7.2f}"
                f"{figures['peak_rss_mb']:>9.0f}{similarity:>8.4f}  {stages}"
            )
            engine_part = figures["median_s"] - figures["stages_s"].get("optimize", 0.0)
            print(
                f"{'':<34}  without optimiser: {engine_part:.3f} s; runs: "
                + ", ".join(f"{s:.2f}" for s in figures["runs_s"])
                + f"; removed: {','.join(figures['removed']) or 'none'}"
                + f"; faces with the personal cloak: {figures['personal']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
