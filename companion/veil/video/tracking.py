"""Face tracks across frames: association between detection rounds, and each track's
landmarks on every frame (interpolated between sightings, extrapolated at its ends).

The detector runs every `every` frames. Each round, every live track's landmarks are
predicted (constant velocity) to the round's frame and matched to the new detections by
overlap or centre distance, nearest first; unmatched detections start new tracks. A track
survives `max_missed` rounds without a sighting (the detector misses a turned or blurred
face now and then), so one person keeps one track, and the frames between two sightings
are covered by interpolation. Before its first and after its last sighting a track is
extended by the frames where the face may have been but was not detected (up to the
rounds it could have been missed), so no frame of a tracked face goes uncloaked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from veil.align import Box

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

MIN_IOU = 0.2
"""Overlap of the predicted and the detected box that links a detection to a track."""
MAX_CENTRE_SHIFT = 0.75
"""... or the centre distance, in units of the face's size, when they barely overlap."""
MAX_SCALE_CHANGE = 1.8
"""Largest change of face size between two rounds of the same track."""
DUPLICATE_IOU = 0.4
"""A sighting overlapping another of the same round this much, that found no track of its
own, is the detector seeing one face twice: it starts no track (a track born of one
sighting would be held for a whole pad of frames, pasting a second cloak over the face)."""


@dataclass(frozen=True)
class Sighting:
    """One detection of a tracked face, in full-resolution frame coordinates."""

    frame: int
    time: float
    box: Box
    landmarks: F64  # [5, 2]
    score: float

    @property
    def size(self) -> float:
        return float(np.sqrt(max(self.box.width * self.box.height, 1)))

    @property
    def centre(self) -> F64:
        return np.array([(self.box.x0 + self.box.x1) / 2, (self.box.y0 + self.box.y1) / 2])


@dataclass(frozen=True)
class Candidate:
    """A sighting kept as a possible keyframe for the track's cloak: its aligned crop."""

    sighting: Sighting
    crop: npt.NDArray[np.float16]  # [S, S, 3] RGB 0..1


@dataclass
class Track:
    id: int
    sightings: list[Sighting]
    candidates: list[Candidate] = field(default_factory=list)
    missed: int = 0  # detection rounds in a row without a sighting

    @property
    def last(self) -> Sighting:
        return self.sightings[-1]

    def predict(self, frame: int) -> tuple[Box, float]:
        """Box expected at `frame` (constant velocity from the last two sightings)."""
        last = self.last
        if len(self.sightings) < 2:
            return last.box, last.size
        prev = self.sightings[-2]
        span = max(last.frame - prev.frame, 1)
        step = (last.centre - prev.centre) / span * (frame - last.frame)
        dx, dy = (round(float(v)) for v in step)
        box = Box(last.box.x0 + dx, last.box.y0 + dy, last.box.x1 + dx, last.box.y1 + dy)
        return box, last.size

    def keep_candidate(self, candidate: Candidate, limit: int) -> None:
        """Keep at most `limit` candidates spread over the track: when full, every other
        one is dropped (the survivors stay evenly spaced in time)."""
        self.candidates.append(candidate)
        if len(self.candidates) > limit:
            self.candidates = self.candidates[::2]


def iou(a: Box, b: Box) -> float:
    ix = max(0, min(a.x1, b.x1) - max(a.x0, b.x0))
    iy = max(0, min(a.y1, b.y1) - max(a.y0, b.y0))
    inter = ix * iy
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


class Tracker:
    """Links the detections of successive rounds into tracks (see the module docstring)."""

    def __init__(self, *, max_missed: int = 2) -> None:
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self._next_id = 0

    def live(self) -> list[Track]:
        return [t for t in self.tracks if t.missed <= self.max_missed]

    def update(self, sightings: Sequence[Sighting]) -> list[tuple[Track, Sighting]]:
        """One detection round (all `sightings` on one frame); returns (track, sighting) for
        every detection, linked to an existing track or a new one."""
        if not sightings:
            for track in self.live():
                track.missed += 1
            return []
        frame = sightings[0].frame
        live = self.live()
        pairs: list[tuple[float, int, int]] = []
        for ti, track in enumerate(live):
            predicted, size = track.predict(frame)
            for si, sighting in enumerate(sightings):
                ratio = sighting.size / max(size, 1.0)
                if not 1 / MAX_SCALE_CHANGE <= ratio <= MAX_SCALE_CHANGE:
                    continue
                overlap = iou(predicted, sighting.box)
                centre = np.array(
                    [(predicted.x0 + predicted.x1) / 2, (predicted.y0 + predicted.y1) / 2]
                )
                shift = float(np.linalg.norm(centre - sighting.centre)) / max(size, 1.0)
                if overlap >= MIN_IOU or shift <= MAX_CENTRE_SHIFT:
                    pairs.append((shift - overlap, ti, si))
        pairs.sort()
        used_tracks: set[int] = set()
        used: dict[int, Track] = {}
        for _, ti, si in pairs:
            if ti in used_tracks or si in used:
                continue
            used_tracks.add(ti)
            used[si] = live[ti]
        out: list[tuple[Track, Sighting]] = []
        for ti, track in enumerate(live):
            if ti not in used_tracks:
                track.missed += 1
        kept: list[Sighting] = [sightings[si] for si in used]
        for si, sighting in enumerate(sightings):
            found = used.get(si)
            if found is None and any(_same_face(sighting, k) for k in kept):
                continue
            if found is None:
                kept.append(sighting)
                track = Track(self._next_id, [])
                self._next_id += 1
                self.tracks.append(track)
            else:
                track = found
            track.sightings.append(sighting)
            track.missed = 0
            out.append((track, sighting))
        return out


def _same_face(a: Sighting, b: Sighting) -> bool:
    """Two detections of one round that are one face: overlapping much, or one's centre
    inside the other's box (a second, smaller box on the same face)."""
    if iou(a.box, b.box) >= DUPLICATE_IOU:
        return True
    return any(
        o.box.x0 <= s.centre[0] <= o.box.x1 and o.box.y0 <= s.centre[1] <= o.box.y1
        for s, o in ((a, b), (b, a))
    )


@dataclass(frozen=True)
class TrackPath:
    """A track's landmarks on any frame it covers: sightings interpolated in time, held or
    extrapolated for `pad` frames before the first and after the last."""

    track_id: int
    frames: npt.NDArray[np.int64]  # [N] frame index of each sighting, increasing
    times: npt.NDArray[np.float64]  # [N] seconds
    landmarks: npt.NDArray[np.float64]  # [N, 5, 2]
    pad: int

    @classmethod
    def of(cls, track: Track, pad: int) -> TrackPath:
        sightings = sorted(track.sightings, key=lambda s: s.frame)
        return cls(
            track.id,
            np.array([s.frame for s in sightings], np.int64),
            np.array([s.time for s in sightings], np.float64),
            np.stack([s.landmarks for s in sightings]).astype(np.float64),
            pad,
        )

    @property
    def first(self) -> int:
        return int(self.frames[0]) - self.pad

    @property
    def last(self) -> int:
        return int(self.frames[-1]) + self.pad

    def covers(self, frame: int) -> bool:
        return self.first <= frame <= self.last

    def at(self, frame: int, time: float) -> F64 | None:
        """Landmarks [5, 2] on `frame` (at `time` seconds), None outside the track."""
        if not self.covers(frame):
            return None
        times, marks = self.times, self.landmarks
        if len(times) == 1:
            return np.array(marks[0], np.float64)
        if time <= times[0]:
            return _extrapolate(marks[0], marks[1], times[0], times[1], time)
        if time >= times[-1]:
            return _extrapolate(marks[-1], marks[-2], times[-1], times[-2], time)
        k = int(np.searchsorted(times, time, side="right"))
        t0, t1 = times[k - 1], times[k]
        w = 0.0 if t1 <= t0 else (time - t0) / (t1 - t0)
        return np.asarray((1 - w) * marks[k - 1] + w * marks[k], np.float64)


def _extrapolate(edge: F64, inner: F64, t_edge: float, t_inner: float, time: float) -> F64:
    """Constant velocity beyond the track's end (velocity per second from its two outermost
    sightings, the move capped at one face width), so a face that keeps moving stays
    covered through the frames after its last detection."""
    span = t_edge - t_inner
    if span == 0:
        return edge.copy()
    move = (edge - inner) / span * (time - t_edge)
    face = float(np.linalg.norm(edge[1] - edge[0])) * 2.5  # about one face width
    norm = float(np.abs(move).max())
    if norm > face > 0:
        move = move * (face / norm)
    return np.asarray(edge + move, np.float64)
