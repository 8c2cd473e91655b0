"""`veil-research video`: protection of cloaked video frames (issue 20's target).

A tracker that takes frames of a person's videos as its "uploads" must fare no better than
one that takes the person's cloaked photos. Per protected person (the people of
`<faces>/photos/`, files sorted by name): the first `--uploads` photos are the uploads, the
rest clean probes. Each upload photo becomes a short clip (a pan and zoom over the photo,
so the face moves and grows, H.264 via PyAV at a phone-like CRF), which goes through the
product's path (`veil.video.pipeline.cloak_video_file`); the tracker takes `--frames` frames
spread over the cloaked clip, finds the face with the engine's own detector, aligns it
(ArcFace template, 112 px) and keeps those crops. Upload conditions of the protected person:

- `none`: the clean upload photos (the yardstick; must be near 0);
- `plain-frames`: frames of the same clip re-encoded through the same path with nothing
  pasted (`cloak_video_file(..., cloak=False)`): what frames alone do to the tracker;
- `photo`: the upload photos cloaked as photos (`Engine.cloak_bytes`, same mode);
- `frames`: frames of the cloaked clip.

The tracker's gallery: everyone's clean uploads (the other protected people's clean upload
photos, and `--distractors` people of `<faces>/aligned` with up to `--gallery` crops each);
the protected person's uploads are the condition's. It fits the nearest-centroid and
logistic-regression classifiers of `veil_research.evaluate` on the attacker's embeddings and
is scored on the person's clean probes; protection is the share of probes not identified,
averaged over the protected people. Default attackers are the held-out ones: the default
cloak is computed with the manifest's default surrogates, so the recognisers outside them
(FaceNet, the face-api ResNet) never shaped it; `--attackers` may add the white-box ones.
Each row also gives the attacker's mean cosine between each cloaked crop and the same
picture uncloaked (`cosine_to_uncloaked`: the photo against the clean photo, each frame
against the same frame of the plain re-encode).

The crops are saved (`--crops`, default `<out>/video/crops-MODE.npz`; the corpus's faces, so
never in the repository) and `--rescore FILE` scores them again without cloaking, e.g. with
`--score-frames 1` (the tracker keeps one frame a clip: as many uploads as photos).

`--personal medium`: also the enrolled person's personal cloak at that strength, photo and
frames. Only people with enough photos take part: each enrols with their last `--enrol`
photos (never uploads or probes) through `veil.enrolment.build_profile`, with every
recogniser but FaceNet, and is attacked by FaceNet only (the personal cloak is computed with
the others; the default cloak's rows of such a run are on the same, smaller set of people).

`--aligned --personal medium`: the larger sample. The 24 people of `<faces>/aligned`, split
as `veil-research personal` splits them (`personal_eval.load_split`: enrolment crops,
uploads, clean probes); each person's first `--uploads` (3) uploads, all their probes (the
clean crops as they are). Each enrols from their enrolment crops through
`personal_eval.enrolled_profiles` (every recogniser but FaceNet, `EnrolPlan()`, or
`--enrol-steps`), cached in `<out>/personal/` with `veil-research personal`'s profiles; the
engine is the one that run cloaks with when FaceNet is held out. Each upload crop is made a
photo (`aligned_photo`: 4x bicubic, in the middle of a 1280x960 canvas filled by
replicating its border; `--upscale`, `--canvas`) and goes through `none` (the face found
and aligned on that photo), `plain-frames`, `personal-photo` and `personal-frames` with
only that person enrolled (`--with-default`: also `photo` and `frames`, nobody enrolled).
The tracker's gallery is everyone of `aligned/` (`--distractors` is not used): the
protected people by their photos' clean crops, the others (`--people N` protects the first
N only) by their first `--uploads` clean uploads.

Budget: the product gives a face that is prominent where people look (large, filling the
frame) less of its budget (`veil.prominence`; for a track, its median face,
`veil.video.cloaks`). The aligned photos' faces are small enough to keep all of it; the
clips zoom in until the face fills much of the frame, so most tracks get less (the JSON's
`track_strengths`). `--whole-track-strength` (research only) gives every track its whole
budget, as the photos get theirs: frames and photos compared at the same budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import av
import cv2
import numpy as np
import numpy.typing as npt

from veil.results import DEFAULT_MODE, Mode
from veil.video import cloaks
from veil_research import evaluate as ev
from veil_research.personal_report import personal_algorithm

if TYPE_CHECKING:
    from veil.align import Box
    from veil.engine import Engine
    from veil.profiles import Profile
    from veil.recognizers import Recognizer
    from veil_research.personal_eval import PersonalSplit

F64 = npt.NDArray[np.float64]

CONDITIONS = ("none", "plain-frames", "photo", "frames")
CLOAKED = ("plain-frames", "photo", "frames")
"""What each upload goes through (`none` is the clean photo itself)."""
PERSONAL_CONDITIONS = ("personal-photo", "personal-frames")
UNCLOAKED = {
    "none": "none",
    "plain-frames": "plain-frames",
    "photo": "none",
    "frames": "plain-frames",
    "personal-photo": "none",
    "personal-frames": "plain-frames",
}
"""Per condition, the uncloaked crops of the same pictures (the cosine a cloak moved)."""
PERSONAL_ATTACKER = "facenet"
"""The one recogniser the personal cloak is not computed with (enrolment uses the others)."""

ALIGNED_CONDITIONS = ("plain-frames", "personal-photo", "personal-frames")
"""`--aligned`: what each upload goes through (`none`: the clean crop found on its photo)."""
ALIGNED_UPLOADS = 3
"""`--aligned`: uploads per person by default (the first of the split's uploads)."""
CANVAS = (1280, 960)
UPSCALE = 4
"""`--aligned`: the 112-px crop, 4x (448 px), in the middle of a 1280x960 photo."""

CLIP_CRF = 20
"""The source clip's x264 CRF: about what a phone records at (the product re-encodes at 16)."""
PHOTO_LONG_SIDE = 2400
"""Upload photos are shrunk to this long side before the clip is drawn from them."""


@dataclass(frozen=True)
class Person:
    name: str
    uploads: tuple[Path, ...]
    probes: tuple[Path, ...]
    enrol: tuple[Path, ...] = ()


@dataclass(frozen=True)
class ClipSettings:
    size: tuple[int, int]
    frames: int
    fps: int
    crf: int


@dataclass
class UploadRecord:
    """What one upload photo became in each condition (crops: uint8 [k, 112, 112, 3])."""

    identity: str
    photo: str
    photo_size: tuple[int, int]
    crops: dict[str, ev.U8] = field(default_factory=dict)
    facts: dict[str, object] = field(default_factory=dict)


def load_people(faces_dir: Path, *, limit: int | None, uploads: int, enrol: int) -> list[Person]:
    """People of `photos/` with at least one probe; with `enrol`, only those who also have
    `enrol` more photos to enrol with (the last ones, never uploads or probes)."""
    folder = faces_dir / "photos"
    if not folder.is_dir():
        raise FileNotFoundError(f"no photos at {folder}")
    people = []
    for person in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(person.glob("*.jpg"))
        if len(files) < uploads + 1:
            continue
        if enrol > 0 and len(files) < uploads + 1 + enrol:
            continue
        rest = files[uploads : len(files) - enrol]
        chosen = tuple(files[len(files) - enrol :])
        people.append(Person(person.name, tuple(files[:uploads]), tuple(rest), chosen))
    return people[:limit] if limit is not None else people


def decode_rgb(data: bytes) -> ev.U8:
    """Upright RGB pixels of a photo, as the engine decodes it."""
    from veil import imageio

    pixels = imageio.decode(data).pixels
    if pixels.dtype != np.uint8:
        pixels = (pixels.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(pixels[:, :, :3], dtype=np.uint8)


def prominent_face(engine: Engine, rgb: ev.U8) -> tuple[ev.U8, F64] | None:
    """The largest face the engine finds: its aligned crop (uint8) and its landmarks."""
    from veil.align import alignment_matrix, warp_crop
    from veil.optimizer import CROP_SIZE

    faces = engine.find_faces(rgb)
    if not faces:
        return None
    face = max(faces, key=lambda f: f.box.width * f.box.height)
    crop = warp_crop(rgb, alignment_matrix(face.landmarks, CROP_SIZE), CROP_SIZE)
    return ev.to_uint8(crop), np.asarray(face.landmarks, np.float64)


def pan_zoom(landmarks: F64, settings: ClipSettings) -> list[F64]:
    """Per frame, the 2x3 affine from photo to frame: a window about 10 eye distances wide
    around the face that drifts sideways and narrows to 55% (the face grows)."""
    width_px, height_px = settings.size
    iod = float(np.linalg.norm(landmarks[1] - landmarks[0]))
    centre = landmarks.mean(axis=0)
    width0 = 10.0 * iod
    out = []
    for i in range(settings.frames):
        t = i / max(settings.frames - 1, 1)
        width = width0 * (1 - 0.45 * t)
        scale = width_px / width
        c = centre + np.array([(t - 0.5) * 0.25 * width0, (t - 0.5) * 0.05 * width0])
        out.append(
            np.array(
                [
                    [scale, 0.0, width_px / 2 - scale * c[0]],
                    [0.0, scale, height_px / 2 - scale * c[1]],
                ]
            )
        )
    return out


def make_clip(path: Path, photo: ev.U8, landmarks: F64, settings: ClipSettings) -> None:
    """An H.264 MP4 of the pan and zoom (yuv420p, x264 veryfast at `settings.crf`)."""
    transforms = pan_zoom(landmarks, settings)
    # Never more than a 2x downscale in the warp (bilinear would alias): shrink first.
    least = min(float(m[0, 0]) for m in transforms)
    shrink = min(1.0, 2.0 * least)
    if shrink < 1.0:
        photo = np.asarray(
            cv2.resize(photo, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA), np.uint8
        )
        transforms = [np.hstack([m[:, :2] / shrink, m[:, 2:]]) for m in transforms]
    options = {"crf": str(settings.crf), "preset": "veryfast"}
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=settings.fps, options=options)
        stream.width, stream.height = settings.size
        stream.pix_fmt = "yuv420p"
        for matrix in transforms:
            rgb = cv2.warpAffine(
                photo,
                matrix,
                settings.size,
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def frame_indices(total: int, count: int) -> list[int]:
    """`count` frames spread evenly over `total` (the middle of each stretch)."""
    return sorted({min(total - 1, int((k + 0.5) * total / count)) for k in range(count)})


def read_frames(path: Path, indices: Sequence[int]) -> dict[int, ev.U8]:
    wanted = set(indices)
    out: dict[int, ev.U8] = {}
    with av.open(str(path)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n in wanted:
                out[n] = np.ascontiguousarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
            if n >= max(wanted):
                break
    return out


def frame_crops(engine: Engine, path: Path, indices: Sequence[int]) -> tuple[ev.U8, int]:
    """The tracker's crops from these frames (the face found by the engine's detector) and
    how many of the frames had a face."""
    crops = []
    for rgb in read_frames(path, indices).values():
        found = prominent_face(engine, rgb)
        if found is not None:
            crops.append(found[0])
    if not crops:
        return np.zeros((0, 112, 112, 3), np.uint8), 0
    return np.stack(crops), len(crops)


def cloak_upload(
    engine: Engine,
    identity: str,
    label: str,
    data: bytes,
    mode: Mode,
    settings: ClipSettings,
    frames: int,
    work: Path,
    conditions: Sequence[str],
) -> UploadRecord | None:
    """One upload photo (its file's bytes; `label`: its name) through every condition;
    None where no face is found on it."""
    from veil.video.pipeline import cloak_video_file

    rgb = decode_rgb(data)
    found = prominent_face(engine, rgb)
    if found is None:
        print(f"  {identity}/{label}: no face found, skipped", flush=True)
        return None
    clean, landmarks = found
    record = UploadRecord(identity, label, (rgb.shape[1], rgb.shape[0]))
    record.crops["none"] = clean[None]
    factor = min(1.0, PHOTO_LONG_SIDE / max(rgb.shape[:2]))
    small = rgb
    if factor < 1.0:
        small = np.asarray(
            cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA), np.uint8
        )
    clip = work / f"{identity}-{Path(label).stem}.mp4"
    make_clip(clip, small, landmarks * factor, settings)
    indices = frame_indices(settings.frames, frames)
    for condition in conditions:
        started = time.perf_counter()
        if condition in {"photo", "personal-photo"}:
            result = engine.cloak_bytes(data, mode=mode)
            cloaked = prominent_face(engine, decode_rgb(result.data))
            record.crops[condition] = (
                cloaked[0][None] if cloaked else np.zeros((0, 112, 112, 3), np.uint8)
            )
            record.facts[condition] = {
                "seconds": round(time.perf_counter() - started, 2),
                "faces": result.face_count,
                "profiles": [f.profile for f in result.faces],
            }
        elif condition in {"plain-frames", "frames", "personal-frames"}:
            out = work / f"{clip.stem}-{condition}.mp4"
            video = cloak_video_file(
                engine, clip, out, mode=mode, cloak=condition != "plain-frames"
            )
            crops, seen = frame_crops(engine, out, indices)
            record.crops[condition] = crops
            record.facts[condition] = {
                "seconds": round(time.perf_counter() - started, 2),
                "tracks": len(video.tracks),
                "face_frames": video.face_frames,
                "frames": video.frames,
                "frames_taken": len(indices),
                "frames_with_face": seen,
                "profiles": [t.profile for t in video.tracks],
            }
    print(
        f"  {identity}/{label} ({record.photo_size[0]}x{record.photo_size[1]}): "
        + ", ".join(f"{k} {v}" for k, v in record.facts.items()),
        flush=True,
    )
    return record


def aligned_photo(crop: ev.U8, canvas: tuple[int, int], upscale: int) -> bytes:
    """An aligned crop (RGB) made a photo, PNG: upscaled (bicubic) and in the middle of a
    `canvas`-sized picture filled by replicating its border, so that the engine's detector
    finds the face with some context around it."""
    big = np.asarray(
        cv2.resize(crop, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC), np.uint8
    )
    width, height = canvas
    h, w = big.shape[:2]
    if w > width or h > height:
        raise ValueError(f"a {w}x{h} face does not fit a {width}x{height} canvas")
    top, left = (height - h) // 2, (width - w) // 2
    photo = cv2.copyMakeBorder(
        big, top, height - h - top, left, width - w - left, cv2.BORDER_REPLICATE
    )
    ok, png = cv2.imencode(".png", np.ascontiguousarray(photo[:, :, ::-1]))
    if not ok:
        raise RuntimeError("PNG encode failed")
    return bytes(png.tobytes())


@dataclass(frozen=True)
class AlignedRun:
    """`--aligned`: who is protected, with how many uploads, as what photos."""

    people: tuple[str, ...]
    uploads: int
    canvas: tuple[int, int]
    upscale: int
    strength: str
    default: bool


TRACK_STRENGTHS: list[float] = []
"""The prominence factor each track's cloak got in this run (`watch_track_strengths`)."""
SHIPPED_TRACK_STRENGTH = cloaks._strength


def watch_track_strengths(*, whole: bool) -> None:
    """Research only: from now on record the prominence factor (`veil.prominence`) of
    every track the product cloaks in `TRACK_STRENGTHS` (emptied here); `whole`: then give
    the track its whole budget instead."""
    TRACK_STRENGTHS.clear()

    def watched(boxes: Sequence[Box], width: int, height: int) -> float:
        value = SHIPPED_TRACK_STRENGTH(boxes, width, height)
        TRACK_STRENGTHS.append(value)
        return 1.0 if whole else value

    cloaks._strength = watched


def collect_aligned(
    engine: Engine,
    split: PersonalSplit,
    run: AlignedRun,
    profiles: dict[str, Profile],
    mode: Mode,
    settings: ClipSettings,
    frames: int,
) -> list[UploadRecord]:
    """Each protected person's first `run.uploads` uploads of the split, each made a photo
    (`aligned_photo`), through the conditions with only that person enrolled (their profile
    at `run.strength`); with `run.default`, also the default cloak (nobody enrolled)."""
    from veil.profiles import ProfileBook

    records: list[UploadRecord] = []
    try:
        with tempfile.TemporaryDirectory(prefix="veil-video-eval-") as tmp:
            work = Path(tmp)
            for name in run.people:
                profile = profiles[name]
                strength = type(profile.strength)(run.strength)
                book = ProfileBook.fixed([replace(profile, strength=strength)])
                for k, crop in enumerate(split.uploads[name][: run.uploads]):
                    data = aligned_photo(crop, run.canvas, run.upscale)
                    label = f"upload{k:02d}.png"
                    # The same upload under each profile book: only the conditions differ.
                    through = partial(
                        cloak_upload, engine, name, label, data, mode, settings, frames, work
                    )
                    engine.profiles = book
                    record = through(ALIGNED_CONDITIONS)
                    if record is None:
                        continue
                    if run.default:  # the same upload with the default cloak, nobody enrolled
                        engine.profiles = None
                        extra = through(("photo", "frames"))
                        if extra is not None:
                            record.crops.update(
                                {k: v for k, v in extra.crops.items() if k != "none"}
                            )
                            record.facts.update(extra.facts)
                    records.append(record)
    finally:
        engine.profiles = None
    return records


def track_strengths(*, whole: bool) -> dict[str, object]:
    """What `watch_track_strengths` saw: the tracks' prominence factors."""
    values = np.asarray(TRACK_STRENGTHS, float)
    return {
        "tracks": len(values),
        "mean": round(float(values.mean()), 3) if len(values) else None,
        "min": round(float(values.min()), 3) if len(values) else None,
        "below_whole": int(np.sum(values < 1.0)),
        "overridden_to_whole": whole,
    }


def matched(records: Sequence[UploadRecord]) -> dict[str, float]:
    """Per personal condition, the share of uploads whose photo or clip's track got the
    enrolled person's profile."""
    out = {}
    for condition in PERSONAL_CONDITIONS:
        hits = []
        for record in records:
            facts = record.facts.get(condition)
            if isinstance(facts, dict):
                profiles = facts.get("profiles") or []
                assert isinstance(profiles, list)
                hits.append(any(p is not None for p in profiles))
        if hits:
            out[condition] = float(np.mean(hits))
    return out


def probe_crops(engine: Engine, paths: Sequence[Path]) -> ev.U8:
    crops = []
    for path in paths:
        found = prominent_face(engine, decode_rgb(path.read_bytes()))
        if found is not None:
            crops.append(found[0])
    return np.stack(crops) if crops else np.zeros((0, 112, 112, 3), np.uint8)


def distractors(faces_dir: Path, skip: set[str], count: int, gallery: int) -> dict[str, ev.U8]:
    """Clean uploads of people of `aligned/` who are not protected (first crops, sorted)."""
    if count <= 0:
        return {}
    aligned = faces_dir / "aligned"
    names = [p.name for p in sorted(aligned.iterdir()) if p.is_dir() and p.name not in skip]
    out = {}
    for name in names[:count]:
        files = sorted((aligned / name).glob("*.png"))[:gallery]
        out[name] = ev._read_crops(files)
    return out


def enrol(engine: Engine, person: Person, recognisers: dict[str, Recognizer]) -> Profile | None:
    """The person's profile at medium from their enrolment photos, without FaceNet."""
    from veil import personal
    from veil.enrolment import FoundFace, build_profile

    faces = []
    for i, path in enumerate(person.enrol):
        found = prominent_face(engine, decode_rgb(path.read_bytes()))
        if found is not None:
            faces.append(FoundFace(i, ev.to_float(found[0]), (0, 0, 112, 112)))
    if len(faces) < 2:
        return None
    models = [r for n, r in recognisers.items() if n != PERSONAL_ATTACKER]
    return build_profile(
        engine, faces, person.name, strength=personal.Strength.MEDIUM, surrogates=models
    )


def _spread(crops: ev.U8 | None, count: int | None) -> ev.U8 | None:
    if crops is None or count is None or len(crops) <= 1 or count >= len(crops):
        return crops
    return crops[frame_indices(len(crops), count)]


def score(
    attacker: Recognizer,
    gallery: dict[str, ev.U8],
    probes: dict[str, ev.U8],
    records: Sequence[UploadRecord],
    condition: str,
    cache: ev.EmbeddingCache,
    frames: int | None = None,
) -> dict[str, object] | None:
    """Protection of the people with uploads in `condition`, each in turn, and the mean
    cosine between each upload's crops and its clean photo's crop. `frames`: the tracker
    keeps only that many of each clip's frames (spread over the ones taken)."""
    by_person: dict[str, list[ev.U8]] = {}
    cosines: list[float] = []
    moved: list[float] = []
    for record in records:
        crops = _spread(record.crops.get(condition), frames)
        if crops is None or not len(crops):
            continue
        by_person.setdefault(record.identity, []).append(crops)
        emb = ev.l2_normalise(cache.embed(attacker, crops))
        clean = ev.l2_normalise(cache.embed(attacker, record.crops["none"]))
        cosines.extend((emb @ clean[0]).tolist())
        # What the cloak alone did: each frame against the same frame re-encoded with
        # nothing pasted (the photo against the clean photo).
        same = record.crops.get(UNCLOAKED[condition])
        same = _spread(same, frames) if UNCLOAKED[condition].endswith("frames") else same
        if same is not None and len(same) == len(crops):
            before = ev.l2_normalise(cache.embed(attacker, same))
            moved.extend(np.sum(emb * before, axis=1).tolist())
    protected = {p: np.concatenate(c) for p, c in by_person.items() if len(probes.get(p, ()))}
    if not protected:
        return None
    clean_up = {i: cache.embed(attacker, crops) for i, crops in gallery.items()}
    probe_emb = {i: cache.embed(attacker, probes[i]) for i in protected}
    attacked = {i: cache.embed(attacker, crops) for i, crops in protected.items()}
    result = ev.protection(clean_up, probe_emb, attacked)
    return {
        "condition": condition,
        "attacker": attacker.name,
        "scores": result.by_classifier,
        "per_identity": result.per_identity,
        "people": len(protected),
        "uploads": int(sum(len(v) for v in protected.values())),
        "cosine_to_clean": float(np.mean(cosines)),
        "cosine_to_uncloaked": float(np.mean(moved)) if moved else None,
    }


def main(argv: Sequence[str]) -> int:
    from veil import personal
    from veil.engine import Engine
    from veil.modelstore import get_store
    from veil.profiles import MATCH_MODELS
    from veil.recognizers import load_recognizers
    from veil_research import personal_eval

    parser = argparse.ArgumentParser(prog="veil-research video", description=__doc__)
    parser.add_argument("--faces", type=Path, default=None)
    parser.add_argument("--mode", choices=[m.value for m in Mode], default=DEFAULT_MODE.value)
    parser.add_argument(
        "--people",
        type=int,
        default=None,
        help="protected people (photos/; with --aligned: the first N of aligned/)",
    )
    parser.add_argument(
        "--uploads",
        type=int,
        default=None,
        help=f"upload photos per person (default 2; with --aligned {ALIGNED_UPLOADS})",
    )
    parser.add_argument("--frames", type=int, default=3, help="frames the tracker takes a clip")
    parser.add_argument("--size", default="1280x720", help="clip size WxH")
    parser.add_argument("--clip-frames", type=int, default=30)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--crf", type=int, default=CLIP_CRF)
    parser.add_argument(
        "--distractors", type=int, default=23, help="people of aligned/ (not with --aligned)"
    )
    parser.add_argument(
        "--gallery",
        type=int,
        default=None,
        help="clean crops per distractor (default: --uploads, so that no class outweighs "
        "another in the tracker's classifiers)",
    )
    parser.add_argument("--attackers", nargs="+", default=None)
    parser.add_argument(
        "--personal",
        choices=["light", "medium", "strong"],
        default=None,
        help="also the enrolled person's personal cloak at this strength (attacker: FaceNet)",
    )
    parser.add_argument("--enrol", type=int, default=3, help="enrolment photos (--personal)")
    parser.add_argument(
        "--aligned",
        action="store_true",
        help="with --personal: the 24 people of aligned/, split as `veil-research personal` "
        "splits them, each upload crop made a photo (see the module's notes)",
    )
    parser.add_argument(
        "--canvas", default=f"{CANVAS[0]}x{CANVAS[1]}", help="--aligned: photo size WxH"
    )
    parser.add_argument(
        "--upscale", type=int, default=UPSCALE, help="--aligned: the crop's scale on the photo"
    )
    parser.add_argument(
        "--enrol-steps",
        type=int,
        default=personal.EnrolPlan.steps,
        help="--aligned: enrolment steps (the default shares `veil-research personal`'s "
        "profile cache, <out>/personal/)",
    )
    parser.add_argument(
        "--with-default",
        action="store_true",
        help="--aligned: also the default cloak's photo and frames rows (nobody enrolled)",
    )
    parser.add_argument(
        "--whole-track-strength",
        action="store_true",
        help="research: every track gets its whole budget, as the photos do (the prominence "
        "rule shrinks the clips' close-up tracks; see the module's notes)",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="caches (bench-out/)")
    parser.add_argument(
        "--crops", type=Path, default=None, help="where the crops go (<out>/video/crops-MODE.npz)"
    )
    parser.add_argument(
        "--score-frames",
        type=int,
        default=None,
        metavar="N",
        help="the tracker keeps only N of each clip's frames (1: as many uploads as photos)",
    )
    parser.add_argument(
        "--rescore", type=Path, default=None, help="score the crops of an earlier run again"
    )
    args = parser.parse_args(list(argv))
    if args.aligned and not args.personal and not args.rescore:
        parser.error("--aligned needs --personal STRENGTH")

    started = time.perf_counter()
    watch_track_strengths(whole=args.whole_track_strength)
    faces_dir: Path = args.faces or ev.default_faces_dir()
    width, height = (int(v) for v in args.size.lower().split("x"))
    settings = ClipSettings((width, height), args.clip_frames, args.fps, args.crf)
    mode = Mode(args.mode)
    uploads: int = args.uploads or (ALIGNED_UPLOADS if args.aligned else 2)
    split: PersonalSplit | None = None
    try:
        if args.aligned:
            split = personal_eval.load_split(faces_dir)
            people = []
        else:
            people = load_people(
                faces_dir,
                limit=args.people,
                uploads=uploads,
                enrol=args.enrol if args.personal else 0,
            )
    except FileNotFoundError as exc:
        print(f"veil-research video: {exc} (set --faces or VEIL_FACES_DIR)", file=sys.stderr)
        return 2
    store = get_store()
    recognisers = {r.name: r for r in load_recognizers(store.names(role="recogniser"), store)}
    if args.aligned:
        # The engine `veil-research personal` cloaks uploads with when FaceNet is held out
        # (today the same as `Engine.load()`): the profiles' cache is keyed on it.
        engine = Engine.load(
            surrogates=[n for n in MATCH_MODELS if n != PERSONAL_ATTACKER],
            refiners=[n for n in personal.REFINE_MODELS if n != PERSONAL_ATTACKER],
        )
    else:
        engine = Engine.load()
    surrogates = [s.name for s in engine.surrogates]
    attackers = args.attackers or [n for n in recognisers if n not in surrogates]
    unknown = sorted(set(attackers) - set(recognisers))
    if unknown:
        print(f"veil-research video: unknown recogniser(s) {unknown}", file=sys.stderr)
        return 2
    out: Path = args.out or ev.REPO / "bench-out"
    cache = ev.EmbeddingCache(out / "embeddings")
    meta: dict[str, object]
    if args.rescore:
        records, probes, meta = load_crops(args.rescore)
        print(f"rescoring {args.rescore}: {meta['command']}", flush=True)
    else:
        header = (
            f"{uploads} uploads a person, {args.frames} frames a clip "
            f"({width}x{height}, {args.clip_frames} frames, CRF {args.crf}); mode {mode.value}; "
            f"cloak with {surrogates}; attackers {attackers}"
        )
        extra: dict[str, object] = {}
        if split is not None:
            canvas_w, canvas_h = (int(v) for v in args.canvas.lower().split("x"))
            run = AlignedRun(
                tuple(split.identities[: args.people]),
                uploads,
                (canvas_w, canvas_h),
                args.upscale,
                args.personal,
                args.with_default,
            )
            print(f"{len(run.people)} people of aligned/ (personal split), {header}", flush=True)
            models = [recognisers[n] for n in recognisers if n != PERSONAL_ATTACKER]
            plan = personal.EnrolPlan(steps=args.enrol_steps)
            began = time.perf_counter()
            profiles = personal_eval.enrolled_profiles(
                split, engine, models, plan, out / "personal", run.people
            )
            tag = personal_eval.profile_cache_tag(engine, models, plan)
            print(
                f"  profiles of {len(profiles)} people ({out / 'personal' / tag}, "
                f"{time.perf_counter() - began:.0f} s)",
                flush=True,
            )
            records = collect_aligned(engine, split, run, profiles, mode, settings, args.frames)
            probes = {name: split.probes[name] for name in run.people}
            enrolled = {name: profiles[name].name for name in run.people}
            extra = {
                "protocol": "aligned",
                "canvas": list(run.canvas),
                "upscale": run.upscale,
                "enrol_plan": {"steps": plan.steps, "batch": plan.batch},
                "profile_cache": tag,
                "enrolment_crops": {n: len(split.enrol[n]) for n in run.people},
            }
        else:
            print(f"{len(people)} people x {header}", flush=True)
            records, probes, enrolled = collect(
                engine, people, recognisers, mode, settings, args.frames, args.personal
            )
        meta = {
            "command": " ".join(["veil-research", "video", *argv]),
            "mode": mode.value,
            "personal": args.personal,
            "personal_algorithm": personal_algorithm(
                [
                    *(["--whole-track-strength"] if args.whole_track_strength else []),
                    *(["--enrol-steps"] if args.enrol_steps != personal.EnrolPlan.steps else []),
                ]
            )
            if args.personal
            else None,
            "surrogates": surrogates,
            "clip": {
                "size": [width, height],
                "frames": args.clip_frames,
                "fps": args.fps,
                "crf": args.crf,
                "codec": "h264",
            },
            "frames_per_clip": args.frames,
            "uploads_per_person": uploads,
            **extra,
            "track_strengths": track_strengths(whole=args.whole_track_strength),
            "enrolled": enrolled,
            "matched": matched(records),
            "uploads": [
                {
                    "identity": r.identity,
                    "photo": r.photo,
                    "photo_size": list(r.photo_size),
                    "conditions": r.facts,
                }
                for r in records
            ],
        }
        # The crops are of the corpus's faces: they stay in bench-out/, never in the repo.
        name = f"crops-aligned-{args.personal}" if split is not None else f"crops-{mode.value}"
        save_crops(args.crops or out / "video" / f"{name}.npz", records, probes, meta)
    protected = sorted({r.identity for r in records})
    gallery: dict[str, ev.U8] = {}
    for name in protected:
        gallery[name] = np.concatenate([r.crops["none"] for r in records if r.identity == name])
    if meta.get("protocol") == "aligned":
        # Everyone of aligned/: the protected people's clean crops as found on their photos
        # (the row's condition replaces them in turn), the others' first clean uploads.
        split = split or personal_eval.load_split(faces_dir)
        stored = meta.get("uploads_per_person")
        per_distractor = stored if isinstance(stored, int) else uploads
        for name in split.identities:
            if name not in gallery:
                gallery[name] = split.uploads[name][:per_distractor]
    else:
        per_distractor = args.gallery or uploads
        gallery.update(distractors(faces_dir, set(protected), args.distractors, per_distractor))
    results = []
    print(f"\ntracker gallery: {len(gallery)} people; protection (centroid / logreg):")
    for name in attackers:
        for condition in CONDITIONS + PERSONAL_CONDITIONS:
            if condition in PERSONAL_CONDITIONS and name != PERSONAL_ATTACKER:
                continue
            row = score(
                recognisers[name], gallery, probes, records, condition, cache, args.score_frames
            )
            if row is None:
                continue
            results.append(row)
            pair = row["scores"]
            assert isinstance(pair, dict)
            print(
                f"  vs {name:14s} {condition:15s} centroid {pair['centroid']:.2f} / logreg "
                f"{pair['logreg']:.2f}  cosine to clean {row['cosine_to_clean']:.3f}, "
                f"to uncloaked {row['cosine_to_uncloaked'] or 0:.3f}"
                f"  ({row['people']} people, {row['uploads']} uploads)",
                flush=True,
            )
    if meta.get("matched"):
        print(f"uploads that got the person's profile: {meta['matched']}", flush=True)
    payload = {
        **meta,
        "attackers": attackers,
        "scored_by": " ".join(["veil-research", "video", *argv]),
        "people": protected,
        "gallery": {
            "people": len(gallery),
            "distractors": len(gallery) - len(protected),
            "crops_per_distractor": per_distractor,
        },
        "probes": {k: len(v) for k, v in probes.items() if k in protected},
        "frames_scored": args.score_frames or meta["frames_per_clip"],
        "results": results,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        ev.save_json(args.json, payload)
        print(f"\nwrote {args.json}")
    else:
        print(json.dumps(payload["results"], indent=1))
    return 0


def collect(
    engine: Engine,
    people: Sequence[Person],
    recognisers: dict[str, Recognizer],
    mode: Mode,
    settings: ClipSettings,
    frames: int,
    personal_strength: str | None,
) -> tuple[list[UploadRecord], dict[str, ev.U8], dict[str, str]]:
    """Every person's probes, and their uploads through every condition."""
    from veil.profiles import ProfileBook

    records: list[UploadRecord] = []
    probes: dict[str, ev.U8] = {}
    enrolled: dict[str, str] = {}
    book: ProfileBook | None = None
    with tempfile.TemporaryDirectory(prefix="veil-video-eval-") as tmp:
        for person in people:
            probes[person.name] = probe_crops(engine, person.probes)
            engine.profiles = book = None
            if personal_strength and person.enrol:
                began = time.perf_counter()
                profile = enrol(engine, person, recognisers)
                if profile is not None:
                    enrolled[person.name] = profile.name
                    print(
                        f"  enrolled {person.name} ({len(person.enrol)} photos, "
                        f"{time.perf_counter() - began:.0f} s)",
                        flush=True,
                    )
                    strength = type(profile.strength)(personal_strength)
                    book = ProfileBook.fixed([replace(profile, strength=strength)])
            for photo in person.uploads:
                engine.profiles = None
                data = photo.read_bytes()
                record = cloak_upload(
                    engine,
                    person.name,
                    photo.name,
                    data,
                    mode,
                    settings,
                    frames,
                    Path(tmp),
                    CLOAKED,
                )
                if record is None:
                    continue
                if book is not None:
                    engine.profiles = book
                    extra = cloak_upload(
                        engine,
                        person.name,
                        photo.name,
                        data,
                        mode,
                        settings,
                        frames,
                        Path(tmp),
                        PERSONAL_CONDITIONS,
                    )
                    engine.profiles = None
                    if extra is not None:
                        record.crops.update({k: v for k, v in extra.crops.items() if k != "none"})
                        record.facts.update(extra.facts)
                records.append(record)
    engine.profiles = None
    return records, probes, enrolled


def save_crops(
    path: Path, records: Sequence[UploadRecord], probes: dict[str, ev.U8], meta: dict[str, object]
) -> None:
    arrays: dict[str, npt.NDArray[np.generic]] = {"meta": np.array(json.dumps(meta))}
    for k, record in enumerate(records):
        for condition, crops in record.crops.items():
            arrays[f"upload/{k}/{condition}"] = crops
    for name, crops in probes.items():
        arrays[f"probe/{name}"] = crops
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
    print(f"crops: {path} (rescore with --rescore)", flush=True)


def load_crops(
    path: Path,
) -> tuple[list[UploadRecord], dict[str, ev.U8], dict[str, object]]:
    stored = np.load(path)
    meta: dict[str, object] = json.loads(str(stored["meta"]))
    uploads = meta["uploads"]
    assert isinstance(uploads, list)
    records = []
    for k, info in enumerate(uploads):
        size = info["photo_size"]
        record = UploadRecord(info["identity"], info["photo"], (size[0], size[1]))
        record.facts = info["conditions"]
        prefix = f"upload/{k}/"
        for key in stored.files:
            if key.startswith(prefix):
                record.crops[key.removeprefix(prefix)] = np.asarray(stored[key], np.uint8)
        records.append(record)
    probes = {
        key.removeprefix("probe/"): np.asarray(stored[key], np.uint8)
        for key in stored.files
        if key.startswith("probe/")
    }
    return records, probes, meta
