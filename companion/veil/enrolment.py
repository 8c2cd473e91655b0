"""Enrolment ("Protect my face"): from 3-20 photos of a person to their stored profile.

1. `enrolment_faces`: find the person's face in each photo (the engine's own detector and
   aligner, so enrolment sees faces exactly as uploads will be seen). A photo with one face
   gives it; with several, the photo's `face` choice, else the face that matches the
   faces of the single-face photos clearly best; else `EnrolFaceAmbiguousError` names the
   photo and its faces so that the caller can ask.
2. `build_profile`: the person's embeddings (for matching), their direction (the unit
   centroid per surrogate: every upload's cosine to it is lowered), and the personal cloak
   (`veil.personal.compute_personal_cloak`, through every shipped recogniser, with
   progress), computed once and scaled to each strength.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from veil import imageio, optimizer, personal
from veil.align import aligned_pixels, alignment_matrix, warp_crop
from veil.errors import EnrolError, EnrolFaceAmbiguousError, ErrorCode
from veil.profiles import (
    MATCH_MODELS,
    MATCH_THRESHOLD,
    MATCHING_VERSION,
    Profile,
    check_name,
    match_scores,
    new_profile_id,
    profile_fingerprints,
)

F32 = npt.NDArray[np.float32]

MIN_PHOTOS = 3
MAX_PHOTOS = 20
AMBIGUITY_MARGIN = 0.1
"""With several faces in a photo, the best match must beat the next by this much."""


@dataclass(frozen=True)
class EnrolPhoto:
    label: str  # file name or the options page's label, for messages
    data: bytes
    face: int | None = None  # which face (0-based, left to right) when the caller chose
    aligned: bool = False  # already a 112-px ArcFace crop (`veil enrol --aligned`)


@dataclass(frozen=True)
class FoundFace:
    photo: int
    crop: F32  # [112,112,3] RGB 0..1
    box: tuple[int, int, int, int]  # x, y, width, height in the photo


def _aligned_crop(photo: EnrolPhoto, max_pixels: int) -> F32:
    decoded = imageio.decode(photo.data, max_pixels=max_pixels)
    if decoded.width != decoded.height:
        raise EnrolError(f"{photo.label}: --aligned expects square ArcFace crops")
    return aligned_pixels(decoded.pixels, decoded.max_value, optimizer.CROP_SIZE)


def _faces_of(
    engine: object, photo: EnrolPhoto, max_pixels: int
) -> list[tuple[F32, tuple[int, int, int, int]]]:
    decoded = imageio.decode(photo.data, max_pixels=max_pixels)
    found = engine.find_faces(decoded.pixels)  # type: ignore[attr-defined]
    found = sorted(found, key=lambda f: f.box.x0)
    out = []
    for face in found:
        matrix = alignment_matrix(face.landmarks, optimizer.CROP_SIZE)
        crop = warp_crop(decoded.pixels, matrix, optimizer.CROP_SIZE)  # float 0..1
        box = (face.box.x0, face.box.y0, face.box.width, face.box.height)
        out.append((np.asarray(np.clip(crop, 0, 1), np.float32), box))
    return out


def _embed(engine: object, crops: F32) -> dict[str, F32]:
    return {
        s.name: s.embed(crops)
        for s in engine.surrogates  # type: ignore[attr-defined]
        if s.name in MATCH_MODELS
    }


def gallery_embeddings(engine: object, crops: F32) -> dict[str, F32]:
    """What a profile keeps to recognise the person: per matching recogniser, the
    embeddings of the enrolment crops [N,S,S,3] and of their mirror images, [2N,D].

    Why mirrored: a face turned the other way than in every enrolment photo scored low
    against them; the mirror images fill that side. Measured on the 24 people of
    `aligned/` (`veil-research match`): own crops matched 94.7% -> 95.1% at zero false
    matches (with `profiles.MATCH_TOP` 5 instead of 3)."""
    taken = _embed(engine, crops)
    mirrored = _embed(engine, np.ascontiguousarray(crops[:, :, ::-1]))
    return {m: np.concatenate([taken[m], mirrored[m]]) for m in taken}


def face_embeddings(engine: object, data: bytes, *, mirrored: bool = False) -> list[dict[str, F32]]:
    """Matching embeddings of every face in a photo (research: `veil-research match`);
    `mirrored`: of each face's mirror image."""
    faces = _faces_of(engine, EnrolPhoto("photo", data), engine.max_pixels)  # type: ignore[attr-defined]
    if not faces:
        return []
    crops = np.stack([c for c, _ in faces])
    emb = _embed(engine, np.ascontiguousarray(crops[:, :, ::-1]) if mirrored else crops)
    return [{m: e[i] for m, e in emb.items()} for i in range(len(faces))]


def enrolment_faces(engine: object, photos: Sequence[EnrolPhoto]) -> list[FoundFace]:
    """The person's face in every photo (see the module docstring)."""
    if len(photos) < MIN_PHOTOS:
        raise EnrolError(
            f"enrolment needs at least {MIN_PHOTOS} photos of you (got {len(photos)}); "
            f"more, up to {MAX_PHOTOS}, in different light and angles protect better",
            code=ErrorCode.ENROL_TOO_FEW_PHOTOS,
        )
    if len(photos) > MAX_PHOTOS:
        raise EnrolError(
            f"enrolment takes at most {MAX_PHOTOS} photos (got {len(photos)})",
            code=ErrorCode.ENROL_TOO_FEW_PHOTOS,
        )
    max_pixels = int(engine.max_pixels)  # type: ignore[attr-defined]
    chosen: dict[int, FoundFace] = {}
    several: dict[int, list[tuple[F32, tuple[int, int, int, int]]]] = {}
    for i, photo in enumerate(photos):
        if photo.aligned:
            crop = _aligned_crop(photo, max_pixels)
            chosen[i] = FoundFace(i, crop, (0, 0, crop.shape[1], crop.shape[0]))
            continue
        faces = _faces_of(engine, photo, max_pixels)
        if not faces:
            raise EnrolError(f"{photo.label}: no face found; use a photo where your face is clear")
        if photo.face is not None:
            if not 0 <= photo.face < len(faces):
                raise EnrolError(
                    f"{photo.label}: there is no face {photo.face + 1} (found {len(faces)})"
                )
            crop, box = faces[photo.face]
            chosen[i] = FoundFace(i, crop, box)
        elif len(faces) == 1:
            chosen[i] = FoundFace(i, faces[0][0], faces[0][1])
        else:
            several[i] = faces
    if several:
        if not chosen:
            first = min(several)
            raise EnrolFaceAmbiguousError(
                f"{photos[first].label}: {len(several[first])} faces; say which one is you",
                photo=first,
                boxes=[b for _, b in several[first]],
            )
        reference = gallery_embeddings(engine, np.stack([f.crop for f in chosen.values()]))
        for i, faces in sorted(several.items()):
            scores = match_scores(_embed(engine, np.stack([c for c, _ in faces])), reference)
            order = np.argsort(scores)[::-1]
            best = int(order[0])
            runner_up = float(scores[order[1]]) if len(order) > 1 else -1.0
            if scores[best] < MATCH_THRESHOLD or scores[best] - runner_up < AMBIGUITY_MARGIN:
                raise EnrolFaceAmbiguousError(
                    f"{photos[i].label}: {len(faces)} faces and none is clearly the one in "
                    "your other photos; say which one is you",
                    photo=i,
                    boxes=[b for _, b in faces],
                )
            chosen[i] = FoundFace(i, faces[best][0], faces[best][1])
    return [chosen[i] for i in sorted(chosen)]


def build_profile(
    engine: object,
    faces: Sequence[FoundFace],
    name: str,
    *,
    strength: personal.Strength,
    surrogates: Sequence[optimizer.Surrogate],
    plan: personal.EnrolPlan | None = None,
    progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Profile:
    """The profile of the person in `faces`: embeddings, direction, a cloak per strength.

    `surrogates` are the recognisers the cloak is computed through (every shipped one:
    enrolment runs once and may spend minutes). `progress(share)` gets 0..1.
    """
    label = check_name(name)
    crops = np.stack([f.crop for f in faces]).astype(np.float32)
    # The person's direction for every recogniser an upload's refining steps may use.
    by_name = {s.name: s for s in (*engine.surrogates, *engine.refiners)}  # type: ignore[attr-defined]
    engine_models = tuple(by_name.values())
    embeddings = gallery_embeddings(engine, crops)
    if not embeddings:
        raise EnrolError("the engine has no matching recogniser loaded")
    targets = {
        model.name: c
        for model, c in zip(engine_models, personal.centroids(crops, engine_models), strict=True)
    }
    every = {s.name: s for s in (*engine_models, *surrogates)}

    def step(done: int, total: int) -> None:
        if progress is not None:
            progress(done / max(total, 1))

    # Computed once (`ENROL_BUDGET`) and scaled to each strength; the upload's refining
    # steps then fit it to each photo at that strength.
    cloak = personal.compute_personal_cloak(
        crops,
        list(surrogates),
        personal.Strength.STRONG,
        seed=0,
        plan=plan,
        progress=step,
        should_stop=should_stop,
        budget=personal.ENROL_BUDGET,
    )
    return Profile(
        profile_id=new_profile_id(),
        name=label,
        created=time.time(),
        strength=personal.Strength(strength),
        algorithm=personal.PERSONAL_ALGORITHM_VERSION,
        models=profile_fingerprints(list(every.values())),
        embeddings=embeddings,
        targets=targets,
        universal=cloak,
        photos=len(faces),
        matching=MATCHING_VERSION,
    )
