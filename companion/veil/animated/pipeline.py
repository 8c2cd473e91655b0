"""One animated image end to end: probe, track faces (pass 1), one cloak per track, write.

`cloak_animation` is what `Engine.cloak_bytes` calls for GIF, APNG and animated WebP; it
returns the same `CloakResult` as a photo (one `FaceReport` per track). A single-frame GIF
is cloaked as a photo (`Engine._cloak_faces`: the photo's per-face budgets) and written
back as a GIF. Nothing is written unless every frame that shows a tracked face comes out
changed on that face: the output is decoded again and checked (fail closed).

Progress (`veil.progress`, the server's job figure) is measured as for videos, with the
video's shares: "scanning" 0 to 0.15 (frames searched for faces), "cloaking" 0.15 to 0.40
(each track's optimiser steps), "encoding" 0.40 to 1 (frames written, then checked). A
single-frame GIF keeps the photo's coarse steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from veil import progress
from veil.animated import faces as tracking
from veil.animated import gif, gifwrite, pillowframes
from veil.cancel import checkpoint
from veil.errors import CloakFailedError
from veil.imaging import png, webp
from veil.imaging.decode import DecodedImage
from veil.imaging.metadata import MetadataReport, Policy
from veil.imaging.probe import ImageInfo
from veil.quality import ssim
from veil.results import CloakResult, FaceReport, Mode
from veil.ssimulacra2 import face_ssimulacra2
from veil.video.pipeline import CLOAK_SHARE, SCAN_SHARE
from veil.video.tracking import Track

if TYPE_CHECKING:
    from veil.engine import Engine, StageTimer

U8 = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]

WRITTEN = 0.88
"""The job's figure once every frame is written; the re-decode check takes the rest (on 120
frames of 480x270: write 3.3 s, check 0.9 s, docs/video.md)."""
PREPARED = 0.64
"""APNG and WebP: the figure once every frame is prepared, before Pillow's encoder runs (it
reports nothing while it works); a GIF writes each frame as it is prepared."""


@dataclass
class _Measure:
    """Where each track's visibility is judged: the frame of its largest sighting."""

    frame: dict[int, int]
    reports: dict[int, tuple[float, float | None]]  # track -> (crop SSIM, SSIMULACRA2)
    whole: list[float]  # whole-frame SSIM on those frames


def cloak_animation(
    engine: Engine,
    data: bytes,
    info: ImageInfo,
    *,
    mode: Mode,
    keep_metadata: bool,
    timer: StageTimer,
) -> CloakResult:
    start = time.perf_counter()
    report = MetadataReport()
    if info.format == "GIF":
        source = gif.parse(data, max_frames=info.frames)
        timer.lap("decode")
        if len(source.frames) == 1:
            return _single_gif(engine, data, info, source, mode, keep_metadata, timer, start)
        progress.report("scanning", 0.0)
        scanned = progress.part("scanning", 0.0, SCAN_SHARE)
        tracks, _ = tracking.track_faces(engine, gif.composites(source), info.frames, scanned)
    else:
        progress.report("scanning", 0.0)
        animation = pillowframes.decode(data, info.frames)
        timer.lap("decode")
        scanned = progress.part("scanning", 0.0, SCAN_SHARE)
        tracks, _ = tracking.track_faces(engine, animation.frames, len(animation.frames), scanned)
    timer.lap("detect")
    checkpoint()
    if not tracks:
        if info.format == "PNG" and animation.default_image:
            # The default image is a picture never searched for faces: not kept as stored.
            policy = Policy(keep_metadata=keep_metadata, cloaked=False)
            out = pillowframes.encode(data, animation, animation.frames, policy, report)
        else:
            out = _rewrite_metadata(data, info, keep_metadata, report)
        timer.lap("metadata")
        return _result(out, info, (), start, None, report, 0)
    size = (info.width, info.height)
    progress.report("cloaking", SCAN_SHARE)
    cloaked = progress.part("cloaking", SCAN_SHARE, CLOAK_SHARE)
    cloaks = tracking.cloak_tracks(engine, tracks, info.frames, mode, size, cloaked)
    timer.lap("optimize")
    checkpoint()
    policy = Policy(keep_metadata=keep_metadata, cloaked=True)
    measure = _Measure(_largest_sightings(cloaks), {}, [])
    pasted: list[int] = []
    begun = SCAN_SHARE + CLOAK_SHARE
    progress.report("encoding", begun)
    if info.format == "GIF":
        written = progress.part("encoding", begun, WRITTEN - begun)
        targets = _targets(gif.composites(source), cloaks, measure, pasted, info.frames, written)
        out = gifwrite.write(source, targets, policy, report)
    else:
        prepared = progress.part("encoding", begun, PREPARED - begun)
        frames = [
            target
            for target, _ in _targets(
                animation.frames, cloaks, measure, pasted, info.frames, prepared
            )
        ]
        out = pillowframes.encode(data, animation, frames, policy, report)
    progress.report("encoding", WRITTEN)
    timer.lap("encode")
    checkpoint()
    originals = gif.composites(source) if info.format == "GIF" else animation.frames
    checked = progress.part("encoding", WRITTEN, 1.0 - WRITTEN)
    _check_output(out, info, originals, cloaks, checked)
    checked(1.0)
    timer.lap("verify")
    reports = tuple(_track_report(t, cloaks, measure) for t in cloaks.tracks)
    whole = min(measure.whole) if measure.whole else None
    return _result(out, info, reports, start, whole, report, sum(pasted))


def _targets(
    frames: Iterator[U8] | Sequence[U8],
    cloaks: tracking.FrameCloaks,
    measure: _Measure,
    pasted: list[int],
    total: int,
    done: Callable[[float], None],
) -> Iterator[tuple[U8, Mask | None]]:
    """Each frame as it must be shown (RGBA, the cloak added to the opaque pixels' R, G and
    B alike: brightness only) and the mask of changed pixels; `done` gets the share of the
    `total` frames asked for so far."""
    for index, frame in enumerate(frames):
        checkpoint()
        done(index / total)
        height, width = frame.shape[:2]
        change, count = cloaks.change(index, width, height)
        pasted.append(count)
        if not count:
            yield frame, None
            continue
        codes = np.rint(change * 255.0).astype(np.int16)
        opaque = frame[:, :, 3] > 0
        mask = (codes != 0) & opaque
        target = frame.copy()
        rgb = frame[:, :, :3].astype(np.int16) + codes[:, :, None]
        target[:, :, :3] = np.where(mask[:, :, None], np.clip(rgb, 0, 255), frame[:, :, :3])
        _measure(index, frame, target, cloaks, measure)
        yield target, mask


def _largest_sightings(cloaks: tracking.FrameCloaks) -> dict[int, int]:
    out = {}
    for track in cloaks.tracks:
        best = max(track.sightings, key=lambda s: s.box.width * s.box.height)
        out[track.id] = best.frame
    return out


def _measure(
    index: int, before: U8, after: U8, cloaks: tracking.FrameCloaks, measure: _Measure
) -> None:
    judged = False
    for track in cloaks.tracks:
        if measure.frame.get(track.id) != index:
            continue
        sighting = next(s for s in track.sightings if s.frame == index)
        box = sighting.box
        height, width = before.shape[:2]
        x0, y0 = max(box.x0, 0), max(box.y0, 0)
        x1, y1 = min(box.x1, width), min(box.y1, height)
        a, b = before[y0:y1, x0:x1, :3], after[y0:y1, x0:x1, :3]
        visibility = face_ssimulacra2(a, b)
        measure.reports[track.id] = (ssim(a, b), None if visibility is None else float(visibility))
        judged = True
    if judged:
        measure.whole.append(ssim(before[:, :, :3], after[:, :, :3]))


def _track_report(track: Track, cloaks: tracking.FrameCloaks, measure: _Measure) -> FaceReport:
    best = max(track.sightings, key=lambda s: s.box.width * s.box.height)
    box = best.box
    crop_ssim, visibility = measure.reports.get(track.id, (1.0, None))
    cloak = cloaks.cloaks[track.id]
    return FaceReport(
        (box.x0, box.y0, box.width, box.height),
        max(s.score for s in track.sightings),
        crop_ssim,
        visibility,
        cloak.profile,
        cloak.strength,
    )


def _single_gif(
    engine: Engine,
    data: bytes,
    info: ImageInfo,
    source: gif.GifFile,
    mode: Mode,
    keep_metadata: bool,
    timer: StageTimer,
    start: float,
) -> CloakResult:
    """A one-frame GIF: the photo's cloak (per-face budgets, `Engine._cloak_faces`)."""
    from veil.engine import seed_for

    report = MetadataReport()
    canvas = next(gif.composites(source))
    rgb = np.ascontiguousarray(canvas[:, :, :3])
    found = engine.find_faces(rgb)
    timer.lap("detect")
    if not found:
        out = _rewrite_metadata(data, info, keep_metadata, report)
        return _result(out, info, (), start, None, report, 0)
    decoded = DecodedImage(data, info, rgb.copy(), None, 1, None, None, None, None, None)
    reports, whole = engine._cloak_faces(decoded, found, mode, seed_for(data, mode), timer)
    checkpoint()
    opaque = canvas[:, :, 3] > 0
    mask = np.any(decoded.pixels != rgb, axis=2) & opaque
    target = canvas.copy()
    target[mask, :3] = decoded.pixels[mask]
    policy = Policy(keep_metadata=keep_metadata, cloaked=True)
    out = gifwrite.write(source, [(target, mask)], policy, report)
    timer.lap("encode")
    changed = np.any(next(gif.composites(gif.parse(out, max_frames=1))) != canvas, axis=2)
    if not changed.any():
        raise CloakFailedError("the GIF's palette erased the cloak; nothing was written")
    return _result(out, info, reports, start, whole, report, len(reports))


def _rewrite_metadata(
    data: bytes, info: ImageInfo, keep_metadata: bool, report: MetadataReport
) -> bytes:
    """No face: the allow-list applied to the container, frames as stored."""
    if info.format == "GIF":
        source = gif.parse(data, max_frames=info.frames)
        return gifwrite.rewrite_metadata(source, Policy(keep_metadata, cloaked=False), report)
    if info.format == "PNG":
        return png.rewrite_metadata(data, keep_metadata=keep_metadata, report=report)
    return webp.rewrite_metadata(data, keep_metadata=keep_metadata, report=report)


def _check_output(
    out: bytes,
    info: ImageInfo,
    before: Iterator[U8] | Sequence[U8],
    cloaks: tracking.FrameCloaks,
    done: Callable[[float], None],
) -> None:
    """Fail closed: decode what was written and require, on every frame a track covers, a
    change inside that track's face (a palette or an encoder could erase a faint cloak)."""
    after: Iterator[U8] | Sequence[U8]
    if info.format == "GIF":
        after = gif.composites(gif.parse(out, max_frames=info.frames))
    else:
        after = pillowframes.decode(out, info.frames).frames
    count = 0
    for index, (a, b) in enumerate(zip(before, after, strict=True)):
        checkpoint()
        done(index / info.frames)
        count += 1
        height, width = a.shape[:2]
        for path in cloaks.paths:
            landmarks = path.at(index, float(index))
            if landmarks is None:
                continue
            x0, y0 = np.floor(landmarks.min(axis=0)).astype(int)
            x1, y1 = np.ceil(landmarks.max(axis=0)).astype(int) + 1
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
            if x1 <= x0 or y1 <= y0 or not (a[y0:y1, x0:x1, 3] > 0).any():
                continue  # the face is off the canvas or transparent on this frame
            if np.array_equal(a[y0:y1, x0:x1], b[y0:y1, x0:x1]):
                raise CloakFailedError(
                    f"frame {index} came out with track {path.track_id}'s face unchanged; "
                    "nothing was written"
                )
    if count != info.frames:
        raise CloakFailedError(f"wrote {count} frames where the input has {info.frames}")


def _result(
    out: bytes,
    info: ImageInfo,
    reports: tuple[FaceReport, ...],
    start: float,
    whole: float | None,
    report: MetadataReport,
    face_frames: int,
) -> CloakResult:
    return CloakResult(
        data=out,
        media_type=info.media_type,
        width=info.width,
        height=info.height,
        faces=reports,
        seconds=time.perf_counter() - start,
        ssim=whole,
        metadata_removed=tuple(report.removed),
        frames=info.frames,
        face_frames=face_frames,
    )
