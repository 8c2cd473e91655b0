"""One cloak per track: optimised once on a few keyframes, pasted on every frame.

A cloak that changed from frame to frame would flicker (visible) and would average out for
a tracker that takes several frames of a person. So each track gets one crop-space change,
the same on every frame, warped onto the face through that frame's own alignment:

- an enrolled person (`veil enrol`; most keyframes match the same profile) gets their
  personal cloak (`Engine.personal_track_delta`: refined on all their keyframes at once,
  scaled by prominence as for photos);
- anyone else gets a cloak optimised with `veil.optimizer.cloak_crops`: first on the best
  keyframe (highest detector score x size), then refined from there on all keyframes at
  once and averaged, so it holds over the track's poses and sizes, not one frame.

The result is brightness only (the optimiser's budgets are luma-only), so it is kept as one
[S, S] plane. The mode's crop SSIM floor is then enforced on every kept crop of the track
(the change is scaled down once, for the whole track, never per frame); a personal cloak
is as visible as its person chose, as for photos.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from veil import optimizer
from veil.align import Box
from veil.cancel import checkpoint, guard_surrogates
from veil.errors import CloakFailedError
from veil.paste import face_mask
from veil.prominence import face_strengths
from veil.results import Mode
from veil.video.tracking import Candidate, Track

if TYPE_CHECKING:
    from veil.engine import Engine

F32 = npt.NDArray[np.float32]

KEYFRAMES = 3
"""Keyframes per track the cloak is optimised on."""
REFINE_STEPS = 6
"""Optimiser steps of the refinement on all keyframes (after the mode's full run on the
best one): about 1.7 s + 2.6 s a track on the shared 2-core machine."""


@dataclass(frozen=True)
class TrackCloak:
    track_id: int
    luma: F32  # [S, S] change of brightness in 0..1 units, premasked (`paste.face_mask`)
    keyframes: tuple[int, ...]  # frame indices the cloak was optimised on
    scale: float  # share of the optimised change kept by the SSIM floor (1: all of it)
    profile: str | None = None  # the enrolled person whose personal cloak this is
    strength: str | None = None


def pick_keyframes(candidates: Sequence[Candidate], count: int) -> list[Candidate]:
    """`count` candidates spread over the track: the best (score x size) of each stretch,
    the overall best first."""
    if not candidates:
        return []
    chunks = np.array_split(np.arange(len(candidates)), min(count, len(candidates)))
    picked = [
        max((candidates[i] for i in chunk), key=lambda c: c.sighting.score * c.sighting.size)
        for chunk in chunks
    ]
    picked.sort(key=lambda c: -c.sighting.score * c.sighting.size)
    return picked


def track_seed(crops: F32, mode: Mode) -> int:
    digest = hashlib.sha256(mode.value.encode() + b"\x00" + crops.tobytes()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def cloak_track(
    engine: Engine,
    track: Track,
    mode: Mode,
    frame_size: tuple[int, int],
    progress: Callable[[float], None] | None = None,
) -> TrackCloak:
    """The track's one cloak; `progress` gets the share done (optimiser steps) as it goes."""
    keys = pick_keyframes(track.candidates, KEYFRAMES)
    if not keys:
        raise CloakFailedError(f"track {track.id} has no crop to compute its cloak on")
    crops = np.stack([k.crop.astype(np.float32) for k in keys])
    frames = tuple(k.sighting.frame for k in keys)
    seed = track_seed(crops, mode)
    checkpoint()
    width, height = frame_size
    boxes = [c.sighting.box for c in track.candidates]
    strength = _strength(boxes, width, height)
    matches = engine.match_faces(crops)
    person = majority_person([m.profile.profile_id if m is not None else None for m in matches])
    if person is not None:
        # One refinement on all of this person's keyframes at once: a refinement fitted
        # to one frame, pasted on the others, moves a recogniser less there.
        chosen = [
            i for i, m in enumerate(matches) if m is not None and m.profile.profile_id == person
        ]
        match = matches[chosen[0]]
        assert match is not None
        # Close-ups get less, as for photos (the prominence rule, `veil.prominence`).
        delta = engine.personal_track_delta(crops[chosen], match, seed, strength)
        profile = match.profile
        luma = _luma(delta)
        return TrackCloak(track.id, luma, frames, 1.0, profile.name, profile.strength.value)
    delta = _optimise(engine, crops, mode, seed, strength, progress)
    all_crops = np.stack([c.crop.astype(np.float32) for c in track.candidates])
    scale = _meet_floor(all_crops, delta, optimizer.mode_budget(mode).min_crop_ssim)
    return TrackCloak(track.id, _luma(delta * scale), frames, scale)


def majority_person(keyframe_people: Sequence[str | None]) -> str | None:
    """The enrolled person (profile id) most of a track's keyframes show, or None: a track
    gets a personal cloak only when more than half of its keyframes match the same person,
    so one stray keyframe never gives a stranger someone's visible cloak."""
    named = Counter(p for p in keyframe_people if p is not None)
    if not named:
        return None
    person, votes = named.most_common(1)[0]
    return person if votes * 2 > len(keyframe_people) else None


def _strength(boxes: Sequence[Box], width: int, height: int) -> float:
    """The track's prominence factor (`veil.prominence`) for its median face size."""
    sizes = sorted(boxes, key=lambda b: b.width * b.height)
    return face_strengths([sizes[len(sizes) // 2]], width, height)[0]


def _optimise(
    engine: Engine,
    crops: F32,
    mode: Mode,
    seed: int,
    strength: float,
    progress: Callable[[float], None] | None = None,
) -> F32:
    """One change [S, S, 3] for all keyframe crops (see the module docstring)."""
    size = optimizer.CROP_SIZE
    region = face_mask(size)
    surrogates = guard_surrogates(engine.surrogates)
    budget = optimizer.mode_budget(mode)
    refine = min(REFINE_STEPS, budget.steps) if len(crops) > 1 else 0
    # The refinement's steps run on every keyframe at once: about twice a first step's time.
    first_share = budget.steps / (budget.steps + 2 * refine)

    def part(offset: float, weight: float) -> Callable[[float], None] | None:
        if progress is None:
            return None
        report = progress
        return lambda share: report(offset + weight * share)

    first = optimizer.cloak_crops(
        crops[:1],
        mode,
        surrogates,
        seed=seed,
        region=region,
        strength=[strength],
        on_step=part(0.0, first_share),
    )
    delta = np.asarray(first[0] - crops[0], np.float32)
    _check(delta)
    if len(crops) == 1:
        return delta
    checkpoint()
    # `start` is the perturbation before the region weighting: undo the mask where it is
    # non-zero (cloak_crops multiplies by it again).
    unmasked = delta / np.maximum(region, 1e-3)[:, :, None]
    start = np.repeat(unmasked[None], len(crops), axis=0)
    refined = optimizer.cloak_crops(
        crops,
        mode,
        surrogates,
        seed=seed + 1,
        budget=optimizer.with_overrides(budget, steps=refine),
        region=region,
        strength=[strength] * len(crops),
        start=start,
        on_step=part(first_share, 1.0 - first_share),
    )
    _check(refined)
    return np.asarray((refined - crops).mean(axis=0), np.float32)


def _check(values: F32) -> None:
    if not np.all(np.isfinite(values)):
        raise CloakFailedError("the optimiser returned NaNs")


def _meet_floor(crops: F32, delta: F32, min_ssim: float) -> float:
    """Largest share of `delta` (bisection, 1/128) with which every crop keeps `min_ssim`."""

    def ok(scale: float) -> bool:
        cloaked = np.clip(crops + scale * delta[None], 0.0, 1.0)
        return bool(optimizer.crop_ssim(crops, cloaked).min() >= min_ssim)

    if ok(1.0):
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(7):
        mid = (lo + hi) / 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _luma(delta: npt.NDArray[np.floating]) -> F32:
    """The brightness part of an [S, S, 3] change (the mean over R, G, B) as [S, S]."""
    return np.ascontiguousarray(np.asarray(delta, np.float32).mean(axis=2), dtype=np.float32)
