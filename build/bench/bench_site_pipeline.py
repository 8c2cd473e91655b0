"""Protection through the whole pipeline a real site and tracker run (prints figures).

`veil-research eval` follows the Fawkes protocol on 112x112 aligned crops, and its "JPEG q75" and
"0.75 rescale" re-encode those crops. A site re-encodes the whole photo instead, usually
after shrinking it, and a tracker then finds and aligns the face itself. This benchmark
runs that chain on `../shared/faces/photos` (8 people, 4-8 full-resolution photos each):

1. Per person, the first half of the photos (sorted) are uploads, the second half probes.
2. Each upload goes through `Engine.cloak_bytes` (the default mode unless `--mode`), as the
   extension would send it.
3. The "site" re-encodes the cloaked file: as uploaded, JPEG q75 at full size, or shrunk to
   a long side of 2048 or 1080 pixels and saved at q85 / q75 (what large social sites do).
4. The "tracker" decodes that file, detects the largest face (YuNet, the engine's
   detector), aligns it to the ArcFace template and embeds it with each recogniser.
5. Classifiers (nearest centroid, logistic regression) are trained on every person's
   uploads, cloaked for the protected person and clean for everyone else, plus the clean
   aligned uploads of the 24 people in `../shared/faces/aligned` as distractors (4 each, as
   many as the photo people have at most); they then
   predict the protected person's clean probe photos. Protection = share of those probes
   not identified as the person, mean over the 8 people.

With 2-4 probes a person the figures move in steps of 0.25-0.5 per person: read them as
a check that the crop-protocol figures carry over to real photos, not as a finer measure.

    .venv/bin/python build/bench/bench_site_pipeline.py [--mode mid] [--faces DIR]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from veil import imageio
from veil.align import alignment_matrix, warp_crop
from veil.engine import Engine
from veil.recognizers import Recognizer
from veil.results import DEFAULT_MODE, Mode
from veil_research import evaluate as ev

ATTACKERS = ("sface", "mobilefacenet", "facenet", "faceapi_resnet")
U8 = npt.NDArray[np.uint8]


def _site_jpeg(long_side: int | None, quality: int) -> Callable[[bytes], bytes]:
    def reencode(data: bytes) -> bytes:
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")
        if long_side is not None and max(rgb.size) > long_side:
            factor = long_side / max(rgb.size)
            size = (round(rgb.width * factor), round(rgb.height * factor))
            rgb = rgb.resize(size, Image.Resampling.LANCZOS)
        out = io.BytesIO()
        rgb.save(out, "JPEG", quality=quality)  # Pillow's default 4:2:0, as most sites
        return out.getvalue()

    return reencode


SITE_REENCODES: dict[str, Callable[[bytes], bytes]] = {
    "as uploaded": lambda data: data,
    "JPEG q75": _site_jpeg(None, 75),
    "2048 px q85": _site_jpeg(2048, 85),
    "1080 px q75": _site_jpeg(1080, 75),
}


def aligned_face(engine: Engine, data: bytes) -> U8:
    """The tracker's crop: the largest detected face, aligned to the 112 ArcFace template."""
    decoded = imageio.decode(data)
    faces = engine.find_faces(decoded.pixels)
    if not faces:
        raise LookupError("no face found")
    face = max(faces, key=lambda f: (f.box.x1 - f.box.x0) * (f.box.y1 - f.box.y0))
    crop = warp_crop(decoded.pixels, alignment_matrix(face.landmarks, 112), 112)
    return np.asarray(ev.to_uint8(crop[None])[0], dtype=np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default=None, choices=[m.value for m in Mode])
    parser.add_argument("--faces", type=Path, default=None)
    parser.add_argument("--attackers", nargs="+", default=list(ATTACKERS))
    parser.add_argument("--per-person", action="store_true", help="also print each person")
    parser.add_argument("--distractor-uploads", type=int, default=4)
    args = parser.parse_args(argv)
    faces_dir = args.faces or ev.default_faces_dir()
    photos_dir = faces_dir / "photos"
    if not photos_dir.is_dir():
        print(f"no photos at {photos_dir}: nothing to measure")
        return 2
    engine = Engine.load()
    mode = Mode(args.mode) if args.mode else DEFAULT_MODE
    people = sorted(p.name for p in photos_dir.iterdir() if p.is_dir())
    uploads: dict[str, list[bytes]] = {}
    probes: dict[str, list[bytes]] = {}
    for person in people:
        files = sorted((photos_dir / person).glob("*.jpg"))
        half = len(files) // 2
        uploads[person] = [f.read_bytes() for f in files[:half]]
        probes[person] = [f.read_bytes() for f in files[half:]]

    # Cloak every upload once, as the extension would send it.
    cloaked: dict[str, list[bytes]] = {}
    seconds: list[float] = []
    ssims: list[float] = []
    for person in people:
        cloaked[person] = []
        for data in uploads[person]:
            started = time.perf_counter()
            result = engine.cloak_bytes(data, mode=mode)
            seconds.append(time.perf_counter() - started)
            if result.ssim is not None:
                ssims.append(result.ssim)
            cloaked[person].append(result.data)
    print(
        f"{len(people)} people, {sum(map(len, uploads.values()))} uploads cloaked "
        f"(median {statistics.median(seconds):.2f} s a photo, whole-image SSIM "
        f"mean {np.mean(ssims):.4f} min {np.min(ssims):.4f}), "
        f"{sum(map(len, probes.values()))} clean probes"
    )

    # As few uploads per distractor as the photo people have, so that neither classifier
    # learns "big class" instead of "this face" (with 25 a distractor, logistic regression
    # never recognised a 2-photo person even uncloaked).
    faces = ev.load_face_set(faces_dir, max_uploads=args.distractor_uploads)
    distractors = [p for p in faces.identities if p not in people]  # one person is in both
    print(
        f"distractors: {len(distractors)} people from aligned/, "
        f"{args.distractor_uploads} clean uploads each"
    )
    crops_of: dict[str, dict[str, U8]] = {}  # condition -> person -> crops

    def crops(datas: list[bytes], reencode: Callable[[bytes], bytes]) -> U8:
        return np.stack([aligned_face(engine, reencode(d)) for d in datas])

    clean_uploads = {p: crops(uploads[p], SITE_REENCODES["as uploaded"]) for p in people}
    probe_crops = {p: crops(probes[p], SITE_REENCODES["as uploaded"]) for p in people}
    for name, reencode in SITE_REENCODES.items():
        crops_of[name] = {p: crops(cloaked[p], reencode) for p in people}

    header = f"{'attacker':15s} {'baseline':>11s} " + " ".join(
        f"{name:>13s}" for name in SITE_REENCODES
    )
    print("\nprotection, nearest centroid / logistic regression (mean over the 8 people)")
    print(header)
    for attacker in args.attackers:
        model = Recognizer(attacker)

        def embed(batch: U8, model: Recognizer = model) -> ev.F32:
            return ev.l2_normalise(model.embed(ev.to_float(batch)))

        gallery = {p: embed(clean_uploads[p]) for p in people}
        gallery |= {p: embed(faces.uploads[p]) for p in distractors}
        # Only the photo people take a turn as the protected person (and have probes); the
        # baseline is the same turn with their clean uploads in place of the cloaked ones.
        probe_emb = {p: embed(probe_crops[p]) for p in people}
        conditions = {"baseline": {p: gallery[p] for p in people}}
        conditions |= {n: {p: embed(crops_of[n][p]) for p in people} for n in SITE_REENCODES}
        cells = []
        for attacked in conditions.values():
            got = ev.protection(gallery, probe_emb, attacked).by_classifier
            cells.append(f"{got['centroid']:.2f} / {got['logreg']:.2f}")
        print(f"{attacker:15s} {cells[0]:>11s} " + " ".join(f"{c:>13s}" for c in cells[1:]))
        if args.per_person:
            moved = {
                p: float(np.mean(np.sum(gallery[p] * conditions["as uploaded"][p], axis=1)))
                for p in people
            }
            per = ev.protection(gallery, probe_emb, conditions["as uploaded"]).per_identity
            for p in people:
                print(
                    f"    {p:20s} uploads {len(uploads[p])} probes {len(probes[p])}: cosine "
                    f"clean-cloaked upload {moved[p]:+.2f}, protection "
                    f"{per['centroid'][p]:.2f} / {per['logreg'][p]:.2f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
