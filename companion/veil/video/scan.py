"""Pass 1: decode every frame, detect faces every few frames, track them, keep crops.

Nothing is written in this pass; it only reads. What it keeps is small whatever the
video's length: per track its sightings (a box and 5 landmarks each) and at most
`MAX_CANDIDATES` aligned 112x112 crops (the cloak is optimised on a few of them). Frames
are dropped as soon as they are read. Every cap of `VideoLimits` that depends on decoding
(frame count, pixel total, duration, a frame size that changes mid-stream) is checked here,
before anything is encoded.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import av.error
import numpy as np
from av.video.frame import VideoFrame

from veil import optimizer
from veil.align import alignment_matrix, warp_crop
from veil.cancel import checkpoint
from veil.errors import CorruptVideoError, TooManyFacesError, VideoTooLargeError
from veil.video.frames import rgb
from veil.video.limits import VideoLimits
from veil.video.probe import VideoInfo
from veil.video.tracking import Candidate, Sighting, Track, Tracker

if TYPE_CHECKING:
    from veil.engine import Engine, StageTimer

MAX_CANDIDATES = 24
"""Aligned crops kept per track (evenly spread in time) to pick its keyframes from."""


@dataclass(frozen=True)
class Scan:
    frames: int
    rounds: int  # detection rounds run
    tracks: list[Track]
    display_matrix: tuple[int, ...] | None  # the first frame's, FFmpeg's 9-int layout
    first_time: float  # presentation time of the first frame, seconds
    last_time: float  # ... and of the last


def frame_time(frame: VideoFrame, index: int, info: VideoInfo) -> float:
    """Presentation time of a frame in seconds (its timestamp; its index when it has none)."""
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base)
    rate = float(info.average_rate) if info.average_rate else 30.0
    return index / rate


def display_matrix(frame: VideoFrame) -> tuple[int, ...] | None:
    """The rotation/flip matrix the container gives this frame, None when there is none."""
    items: Any = frame.side_data
    for item in items:
        if item.type.name == "DISPLAYMATRIX":
            raw = bytes(item)
            if len(raw) == 36:
                return tuple(struct.unpack("<9i", raw))
    return None


def scan(
    engine: Engine,
    path: Path,
    info: VideoInfo,
    limits: VideoLimits,
    *,
    every: int,
    max_missed: int,
    timer: StageTimer,
    progress: Callable[[float], None] | None = None,
) -> Scan:
    tracker = Tracker(max_missed=max_missed)
    size = optimizer.CROP_SIZE
    index = 0
    pixels = 0
    rounds = 0
    matrix: tuple[int, ...] | None = None
    first_time = last_time = 0.0
    long_side = max(info.width, info.height)
    factor = min(1.0, engine.detect_long_side / long_side)
    detect_w = max(32, round(info.width * factor))
    detect_h = max(32, round(info.height * factor))
    try:
        with av.open(str(path), "r") as container:
            stream = next(s for s in container.streams.video if s.index == info.video_index)
            stream.thread_type = "AUTO"
            stream.codec_context.options = limits.decoder_options()
            for frame in container.decode(stream):
                timer.lap("decode")
                if frame.width != info.width or frame.height != info.height:
                    raise VideoTooLargeError(
                        f"the frame size changes mid-stream ({info.width}x{info.height} to "
                        f"{frame.width}x{frame.height}); Veil cloaks videos of one size"
                    )
                if frame.format.name != info.pix_fmt:
                    raise CorruptVideoError("the pixel format changes mid-stream")
                pixels += frame.width * frame.height
                last_time = frame_time(frame, index, info)
                if index == 0:
                    first_time = last_time
                # The span decoded so far: a stream may start at any timestamp.
                limits.check_frames(index + 1, pixels, last_time - first_time)
                if index == 0:
                    matrix = display_matrix(frame)
                if index % every == 0:
                    checkpoint()
                    rounds += 1
                    _detect(
                        engine, tracker, frame, index, last_time, (detect_w, detect_h), size, timer
                    )
                    if len(tracker.live()) > engine.max_faces:
                        raise TooManyFacesError(
                            f"more than {engine.max_faces} faces at once; Veil never cloaks "
                            "only some of them"
                        )
                    if progress is not None:
                        progress(_share(index, last_time - first_time, info))
                index += 1
    except (av.error.FFmpegError, ValueError, OverflowError, EOFError) as exc:
        raise CorruptVideoError(f"the video cannot be decoded: {exc}") from exc
    if index == 0:
        raise CorruptVideoError("the video has no decodable frame")
    return Scan(index, rounds, tracker.tracks, matrix, first_time, last_time)


def _share(index: int, elapsed: float, info: VideoInfo) -> float:
    """How far pass 1 is: by frames when the header counts them (MP4, MOV), else by time
    against the announced duration (WebM and MKV rarely count frames)."""
    if info.frames_announced:
        return min(1.0, index / info.frames_announced)
    if info.duration:
        return min(1.0, max(0.0, elapsed / info.duration))
    return 0.0


def _detect(
    engine: Engine,
    tracker: Tracker,
    frame: VideoFrame,
    index: int,
    time: float,
    detect_size: tuple[int, int],
    size: int,
    timer: StageTimer,
) -> None:
    preview = rgb(frame, *detect_size)
    scale = (detect_size[0] / frame.width, detect_size[1] / frame.height)
    faces = engine.detect_faces(preview, scale)
    timer.lap("detect")
    sightings = [Sighting(index, time, f.box, f.landmarks, f.score) for f in faces]
    linked = tracker.update(sightings)
    if not linked:
        return
    full = rgb(frame)
    for track, sighting in linked:
        crop = warp_crop(full, alignment_matrix(sighting.landmarks, size), size)
        track.keep_candidate(Candidate(sighting, crop.astype(np.float16)), MAX_CANDIDATES)
    timer.lap("track")
