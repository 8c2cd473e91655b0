"""Where an enrolled person's video frames lose protection against their photos (research).

`veil-research video --aligned` measured it (docs/video.md, *Protection on frames*): at
*medium*, FaceNet held out, the personal cloak moves FaceNet's embedding of a cloaked photo
to cosine 0.61 of the clean one and of a cloaked clip's frames to 0.70 only. This script
takes the same uploads (the last N people of the personal split, 3 uploads each, each crop
made a photo and a pan-and-zoom clip as `veil_research.video_eval` does) and splits the
loss, FaceNet's cosine between cloaked and clean (lower: moved more), in crop space:

- `photo-own`: the photo's crop with its own refinement (what a photo gets);
- `key-own`: each of the track's keyframes with its own refinement;
- `key-shared`: the keyframes with the track's one refinement (`shared_personal_delta`,
  what the product pastes on every frame);
- `cand-shared`: the same change on every crop pass 1 kept of the track (other frames);
- `key-cross`: the first keyframe's own refinement on the other keyframes;
- `reg-shared` (`--register`): the keyframes first registered onto the first one (OpenCV
  ECC, affine), then one shared refinement: is the loss the landmarks' jitter?
- `key-mad` / `reg-mad`: mean absolute difference between keyframes (levels of 255),
  before and after registration.

`--local` adds each kept crop with its own refinement (`cand-own`, what refining every
frame would buy) and a cheaper stand-in, every other crop refined and the ones between
given the mean of their neighbours' changes (`odd-blend` against `odd-own`/`odd-shared`),
with `own-step`, how much own refinements of neighbouring crops differ (levels, against
`own-size`, their size: what would flicker). `--heldout` optimises the shared refinement
on every other kept crop and judges it on the ones between (`train-shared`,
`test-shared`: frames no optimisation saw). `--copies N` / `--steps N`: the refinement
with N transformed copies per step / N steps (`personal_eval.patch_refine_budget`).
A variant with K changes blended linearly over time instead of one (`--anchors K`) needed
an optimiser change and was tried at commit d160398, then removed (docs/video.md).

`--keyframes K` shares over K keyframes instead of the product's 3. Profiles come from
`veil-research personal`'s cache (`bench-out/personal/`), computed there when missing.

    .venv/bin/python build/research/video_personal_gap.py --people 8 --register
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from veil import personal
from veil.engine import Engine, StageTimer
from veil.modelstore import get_store
from veil.profiles import MATCH_MODELS, Profile, ProfileBook
from veil.recognizers import load_recognizers
from veil.video.cloaks import KEYFRAMES, pick_keyframes
from veil.video.limits import VideoLimits
from veil.video.probe import probe
from veil.video.scan import scan
from veil_research import evaluate as ev
from veil_research import personal_eval
from veil_research import video_eval as ve

F32 = npt.NDArray[np.float32]
HELD_OUT = "facenet"


def register(crops: F32) -> F32:
    """Crops 1.. warped onto crop 0 (ECC, affine, on grey); a crop ECC fails on stays."""
    ref = cv2.cvtColor(crops[0], cv2.COLOR_RGB2GRAY)
    out = [crops[0]]
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    for crop in crops[1:]:
        warp = np.eye(2, 3, dtype=np.float32)
        with contextlib.suppress(cv2.error):  # no convergence: the crop stays
            _, found = cv2.findTransformECC(
                ref,
                cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY),
                warp,
                cv2.MOTION_AFFINE,
                criteria,
                np.ones_like(ref, np.uint8),
                3,
            )
            warp = np.asarray(found, np.float32)
        size = crop.shape[0]
        out.append(
            cv2.warpAffine(
                crop,
                warp,
                (size, size),
                flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
        )
    return np.asarray(np.clip(np.stack(out), 0.0, 1.0), np.float32)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=8)
    parser.add_argument("--uploads", type=int, default=3)
    parser.add_argument("--keyframes", type=int, default=KEYFRAMES)
    parser.add_argument("--register", action="store_true")
    parser.add_argument("--local", action="store_true")
    parser.add_argument("--heldout", action="store_true")
    parser.add_argument("--copies", type=int, default=0)
    parser.add_argument("--steps", type=int, default=0)
    args = parser.parse_args(argv)
    knobs = {"copies": args.copies} if args.copies else {}
    if args.steps:
        knobs["steps"] = args.steps
    personal_eval.patch_refine_budget(**knobs)

    split = personal_eval.load_split(ev.default_faces_dir())
    store = get_store()
    recognisers = {r.name: r for r in load_recognizers(store.names(role="recogniser"), store)}
    engine = Engine.load(
        surrogates=[n for n in MATCH_MODELS if n != HELD_OUT],
        refiners=[n for n in personal.REFINE_MODELS if n != HELD_OUT],
    )
    people = split.identities[-args.people :]
    profiles = personal_eval.enrolled_profiles(
        split,
        engine,
        [recognisers[n] for n in recognisers if n != HELD_OUT],
        personal.EnrolPlan(),
        ev.REPO / "bench-out" / "personal",
        people,
    )
    attacker = recognisers[HELD_OUT]

    def cosine(a: F32, b: F32) -> list[float]:
        ea, eb = attacker.embed(a), attacker.embed(b)
        ea = ea / np.linalg.norm(ea, axis=1, keepdims=True)
        eb = eb / np.linalg.norm(eb, axis=1, keepdims=True)
        return [float(v) for v in np.sum(ea * eb, axis=1)]

    def moved(crops: F32, delta: F32) -> list[float]:
        return cosine(np.clip(crops + delta, 0.0, 1.0).astype(np.float32), crops)

    settings = ve.ClipSettings((1280, 720), 30, 30, ve.CLIP_CRF)
    rows: dict[str, list[float]] = {}
    skipped = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in people:
            profile = replace(profiles[name], strength=personal.Strength.MEDIUM)
            engine.profiles = ProfileBook.fixed([profile])

            def refine(views: F32, profile: Profile = profile) -> F32:
                return personal.shared_personal_delta(
                    views,
                    profile.cloak,
                    profile.strength,
                    engine.refiners,
                    profile.targets,
                    seed=1,
                )

            for k, upload in enumerate(split.uploads[name][: args.uploads]):
                rgb = ve.decode_rgb(ve.aligned_photo(upload, (1280, 960), 4))
                face = ve.prominent_face(engine, rgb)
                if face is None:
                    skipped += 1
                    continue
                photo = face[0].astype(np.float32) / 255.0
                clip = Path(tmp) / f"{name}-{k}.mp4"
                ve.make_clip(clip, rgb, face[1], settings)
                info = probe(clip, VideoLimits())
                found = scan(
                    engine, clip, info, VideoLimits(), every=5, max_missed=2, timer=StageTimer()
                )
                tracks = [t for t in found.tracks if t.sightings]
                if len(tracks) != 1:
                    skipped += 1
                    continue
                keys = pick_keyframes(tracks[0].candidates, args.keyframes)
                kc = np.stack([c.crop.astype(np.float32) for c in keys])
                cc = np.stack([c.crop.astype(np.float32) for c in tracks[0].candidates])
                own = np.stack([refine(kc[i : i + 1]) for i in range(len(kc))])
                shared = refine(kc)
                got = {
                    "photo-own": moved(photo[None], refine(photo[None])[None]),
                    "key-own": moved(kc, own),
                    "key-shared": moved(kc, shared[None]),
                    "cand-shared": moved(cc, shared[None]),
                    "key-cross": moved(kc[1:], own[:1]) if len(kc) > 1 else [],
                    "key-mad": [float(np.abs(kc[1:] - kc[:1]).mean() * 255)],
                }
                if args.local:
                    # Each kept crop with its own refinement, and cheaper stand-ins for it:
                    # every other crop refined, the ones between given the mean of their
                    # neighbours' changes (a linear blend in time at the midpoint).
                    cand_own = np.stack([refine(cc[i : i + 1]) for i in range(len(cc))])
                    blend = cand_own.copy()
                    for i in range(1, len(cc), 2):
                        right = cand_own[i + 1] if i + 1 < len(cc) else cand_own[i - 1]
                        blend[i] = (cand_own[i - 1] + right) / 2
                    odd = list(range(1, len(cc), 2))
                    got["cand-own"] = moved(cc, cand_own)
                    got["odd-own"] = moved(cc[odd], cand_own[odd])
                    got["odd-blend"] = moved(cc[odd], blend[odd])
                    got["odd-shared"] = moved(cc[odd], shared[None])
                    got["own-step"] = [float(np.abs(cand_own[1:] - cand_own[:-1]).mean() * 255)]
                    got["own-size"] = [float(np.abs(cand_own).mean() * 255)]
                if args.heldout:
                    train = list(range(0, len(cc), 2))
                    test = list(range(1, len(cc), 2))
                    even_shared = refine(cc[train])
                    got["train-shared"] = moved(cc[train], even_shared[None])
                    got["test-shared"] = moved(cc[test], even_shared[None])
                if args.register:
                    registered = register(kc)
                    got["reg-shared"] = moved(registered, refine(registered)[None])
                    got["reg-mad"] = [float(np.abs(registered[1:] - registered[:1]).mean() * 255)]
                for key, values in got.items():
                    rows.setdefault(key, []).extend(values)
                summary = {key: round(float(np.mean(v)), 3) for key, v in got.items() if v}
                print(name, k, summary, flush=True)
    print(f"{len(people)} people, keyframes {args.keyframes}, skipped {skipped} uploads")
    for key, values in rows.items():
        print(f"  {key:12s} {float(np.mean(values)):.3f}  (n={len(values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
