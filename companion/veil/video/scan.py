"""Pass 1: decode every frame, detect faces every few frames, track them, keep crops.

Nothing is written in this pass; it only reads. Every stream is demuxed, the video alone
decoded, and what was read is held against what the container declares
(`integrity.Ledger`): a truncated or damaged video is refused here, before anything is
cloaked. What it keeps is small whatever the video's length: per track its sightings (a box
and 5 landmarks each) and at most `MAX_CANDIDATES` aligned 112x112 crops (the cloak is
optimised on a few of them). Frames are dropped as soon as they are read. Every cap of
`VideoLimits` that depends on decoding (frame count, pixel total, duration, a frame size
that changes mid-stream) is checked here, before anything is encoded.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.video.frame import VideoFrame

from veil import optimizer
from veil.align import F64, alignment_matrix, scale_of, warp_crop
from veil.cancel import checkpoint
from veil.errors import CorruptVideoError, TooManyFacesError, VideoTooLargeError
from veil.video.frames import rgb, side_data
from veil.video.hdr import Hdr10, read_hdr10
from veil.video.integrity import Ledger
from veil.video.limits import VideoLimits
from veil.video.probe import VideoInfo
from veil.video.tracking import Candidate, Sighting, Track, Tracker

if TYPE_CHECKING:
    from veil.engine import Engine, StageTimer

MAX_CANDIDATES = 24
"""Aligned crops kept per track (evenly spread in time) to pick its keyframes from."""

DECODE_THREADS = 4
"""Most decoder threads in pass 1 (fewer on a machine with fewer cores). FFmpeg's default is
a thread per core plus one, up to 16, and each frame thread holds frames of its own:
decoding a 4K 10-bit HEVC clip alone peaked 244 MB above the interpreter with 2 threads,
303 MB with 3 (this 2-core machine's default), 332 MB with 4, 487 MB with 8 and 837 MB with
16 (a 16-core machine's default: pass 1 would then outgrow pass 2). The cost is pass 1's
decoding speed on machines with more than 3 cores; decoding is about a tenth of a 4K HEVC
cloak's time (the encoder takes most of it, docs/video.md)."""


@dataclass(frozen=True)
class Scan:
    frames: int
    rounds: int  # detection rounds run
    tracks: list[Track]
    display_matrix: tuple[int, ...] | None  # the first frame's, FFmpeg's 9-int layout
    first_time: float  # presentation time of the first frame, seconds
    last_time: float  # ... and of the last
    video_packets: int  # video packets demuxed (what a plain remux must copy)
    hdr: Hdr10 | None  # the first frame's HDR10 static metadata


def frame_time(frame: VideoFrame, index: int, info: VideoInfo) -> float:
    """Presentation time of a frame in seconds (its timestamp; its index when it has none)."""
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base)
    rate = float(info.average_rate) if info.average_rate else 30.0
    return index / rate


_DISPLAY_MATRIX = frozenset({"DISPLAYMATRIX"})


def display_matrix(frame: VideoFrame) -> tuple[int, ...] | None:
    """The rotation/flip matrix the container gives this frame, None when there is none."""
    for _, raw in side_data(frame, _DISPLAY_MATRIX):
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
    hdr: Hdr10 | None = None
    first_time = last_time = 0.0
    long_side = max(info.width, info.height)
    factor = min(1.0, engine.detect_long_side / long_side)
    detect_w = max(32, round(info.width * factor))
    detect_h = max(32, round(info.height * factor))
    try:
        with av.open(str(path), "r") as container:
            stream = next(s for s in container.streams.video if s.index == info.video_index)
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = min(DECODE_THREADS, (os.cpu_count() or 1) + 1)
            stream.codec_context.options = limits.decoder_options()
            ledger = Ledger(container, stream)
            # Every stream is demuxed (only the video decoded) so that what each delivered
            # can be held against what the container declares (integrity.py).
            for frame in _decode(container, stream, ledger):
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
                ledger.frame(frame, last_time)
                if index == 0:
                    first_time = last_time
                # The span decoded so far: a stream may start at any timestamp.
                limits.check_frames(index + 1, pixels, last_time - first_time)
                if index == 0:
                    matrix = display_matrix(frame)
                    hdr = read_hdr10(frame)
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
            if index == 0:
                raise CorruptVideoError("the video has no decodable frame")
            ledger.check()
    except (av.error.FFmpegError, ValueError, OverflowError, EOFError) as exc:
        raise CorruptVideoError(f"the video cannot be decoded: {exc}") from exc
    return Scan(
        index,
        rounds,
        tracker.tracks,
        matrix,
        first_time,
        last_time,
        ledger.video_packets,
        hdr,
    )


def _decode(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, ledger: Ledger
) -> Iterator[VideoFrame]:
    """The video's frames, every packet of every stream counted on the way."""
    for packet in container.demux():
        ledger.packet(packet)
        if packet.stream.index == stream.index:
            for frame in packet.decode():
                if isinstance(frame, VideoFrame):
                    yield frame


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
    matrices = [alignment_matrix(sighting.landmarks, size) for _, sighting in linked]
    image, matrices = _crop_source(frame, matrices)
    for (track, sighting), matrix in zip(linked, matrices, strict=True):
        crop = warp_crop(image, matrix, size)
        track.keep_candidate(Candidate(sighting, crop.astype(np.float16)), MAX_CANDIDATES)
    timer.lap("track")


def _crop_source(frame: VideoFrame, matrices: list[F64]) -> tuple[npt.NDArray[np.uint8], list[F64]]:
    """The frame in RGB for `warp_crop`, and each face's alignment onto it.

    `warp_crop` shrinks a face region to twice the crop's resolution (area averaging)
    before its bilinear warp; where every face on the frame is at least that large, the
    frame is converted at that reduced size at once (also area averaging, by swscale): a 4K
    frame costs a 0.2x conversion instead of a full one. The crops differ from the full-size
    path's by 1.3-1.6 levels (of 255) mean absolute on the 4K benchmark clip, 0.85 of it a
    uniform brightness offset (swscale's rounding), the rest where the averaging blocks
    fall."""
    factor = min(1.0, 2.0 * max(scale_of(m) for m in matrices))
    if factor >= 0.9:
        return rgb(frame), matrices
    width = max(32, round(frame.width * factor))
    height = max(32, round(frame.height * factor))
    image = rgb(frame, width, height)
    fx, fy = width / frame.width, height / frame.height
    # Frame point p = q / f for a point q of the smaller image: the mapping `warp_crop` uses
    # for its own shrink (a centre-aligned one moved the crops by a fraction of a pixel
    # against the full-size path's: 3 levels mean absolute difference instead of 1.3-1.6).
    to_frame = np.array([[1 / fx, 0.0, 0.0], [0.0, 1 / fy, 0.0]])
    return image, [_compose(m, to_frame) for m in matrices]


def _compose(outer: F64, inner: F64) -> F64:
    """The 2x3 affine map `outer` after `inner`."""
    linear = outer[:, :2] @ inner[:, :2]
    offset = outer[:, :2] @ inner[:, 2] + outer[:, 2]
    return np.concatenate([linear, offset[:, None]], axis=1)
