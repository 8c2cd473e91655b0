"""Faces across an animation's frames: the video's tracker and one cloak per track.

Pass 1 (`track_faces`) detects faces on the frames (every frame up to `DETECT_ALL_UP_TO`
frames, every few beyond), links them with `veil.video.tracking.Tracker` and keeps aligned
crops as the video scan does; `veil.video.cloaks.cloak_track` then computes each track's
one cloak (an enrolled person's personal cloak where the track is theirs). Pass 2
(`FrameCloaks.change`) gives each frame's brightness change: every track that covers the
frame (`TrackPath`: sightings interpolated, held over the frames a detection round may have
missed) warped onto the frame through that frame's own alignment (`lumapaste.warp_luma`).
Frames are indexed by number, so a GIF's zero-delay frames cannot confuse the interpolation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from veil import optimizer
from veil.align import alignment_matrix, warp_crop
from veil.cancel import checkpoint
from veil.errors import TooManyFacesError
from veil.paste import change_box
from veil.results import Mode
from veil.video.cloaks import TrackCloak, cloak_track
from veil.video.lumapaste import warp_luma
from veil.video.scan import MAX_CANDIDATES
from veil.video.tracking import Candidate, Sighting, Track, Tracker, TrackPath

if TYPE_CHECKING:
    from veil.engine import Engine

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

DETECT_ALL_UP_TO = 300
"""Animations with at most this many frames are searched for faces on every frame."""
MAX_MISSED = 2
"""Detection rounds a track survives without a sighting (as for videos)."""


def detect_every(frames: int) -> int:
    return max(1, -(-frames // DETECT_ALL_UP_TO))


@dataclass(frozen=True)
class FrameCloaks:
    """Each track's path over the frames and its one cloak."""

    paths: Sequence[TrackPath]
    cloaks: dict[int, TrackCloak]
    tracks: Sequence[Track]

    def change(self, index: int, width: int, height: int) -> tuple[F32, int]:
        """The frame's brightness change [H, W] (0..1 units) and how many tracks it got."""
        out = np.zeros((height, width), np.float32)
        pasted = 0
        for path in self.paths:
            landmarks = path.at(index, float(index))
            cloak = self.cloaks.get(path.track_id)
            if landmarks is None or cloak is None:
                continue
            size = cloak.luma.shape[0]
            matrix = alignment_matrix(landmarks, size)
            region = change_box(matrix, size, width, height)
            if region.empty:
                continue
            warped = warp_luma(
                cloak.luma, matrix, region.x0, region.y0, region.width, region.height
            )
            out[region.slices()] += warped
            pasted += 1
        return out, pasted


def track_faces(
    engine: Engine,
    frames: Iterable[U8],
    count: int,
    progress: Callable[[float], None] | None = None,
) -> tuple[list[Track], int]:
    """Pass 1 over RGB(A) frames [H, W, 3|4]: (tracks with sightings, detection rounds);
    `progress` gets the share of the `count` frames searched after each detection round."""
    every = detect_every(count)
    tracker = Tracker(max_missed=MAX_MISSED)
    size = optimizer.CROP_SIZE
    rounds = 0
    for index, frame in enumerate(frames):
        if index % every:
            continue
        checkpoint()
        rounds += 1
        rgb = np.ascontiguousarray(frame[:, :, :3])
        faces = engine.find_faces(rgb)
        sightings = [Sighting(index, float(index), f.box, f.landmarks, f.score) for f in faces]
        for track, sighting in tracker.update(sightings):
            crop = warp_crop(rgb, alignment_matrix(sighting.landmarks, size), size)
            track.keep_candidate(Candidate(sighting, crop.astype(np.float16)), MAX_CANDIDATES)
        if len(tracker.live()) > engine.max_faces:
            raise TooManyFacesError(
                f"more than {engine.max_faces} faces at once; Veil never cloaks only some of them"
            )
        if progress is not None:
            progress((index + 1) / max(count, 1))
    return [t for t in tracker.tracks if t.sightings], rounds


def cloak_tracks(
    engine: Engine,
    tracks: Sequence[Track],
    count: int,
    mode: Mode,
    size: tuple[int, int],
    progress: Callable[[float], None] | None = None,
) -> FrameCloaks:
    """One cloak per track, and each track's path (held over possibly missed rounds);
    `progress` gets the share done: each track an equal part, by optimiser step within it."""
    cloaks = {}
    for done, track in enumerate(tracks):
        checkpoint()
        cloaks[track.id] = cloak_track(engine, track, mode, size, _within(progress, done, tracks))
        if progress is not None:
            progress((done + 1) / len(tracks))
    pad = detect_every(count) * (MAX_MISSED + 1) - 1
    return FrameCloaks([TrackPath.of(t, pad) for t in tracks], cloaks, tracks)


def _within(
    progress: Callable[[float], None] | None, done: int, tracks: Sequence[Track]
) -> Callable[[float], None] | None:
    """The track's own share (0 to 1) as a share of all the tracks' work."""
    if progress is None:
        return None
    report = progress
    return lambda share: report((done + min(1.0, max(0.0, share))) / len(tracks))
