"""What a video file is, from its first bytes and its container header, before decoding.

`sniff` tells videos from photos by signature (ISO-BMFF `ftyp` brands of video, QuickTime
atoms, the Matroska/WebM EBML header). `probe` opens the container with PyAV and checks
what its header announces against `VideoLimits`: one video stream that can be decoded and
re-encoded here, dimensions, duration, frame rate and stream count within the caps.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error

from veil.errors import (
    CorruptVideoError,
    UnsupportedCodecError,
    UnsupportedFormatError,
    VeilError,
)
from veil.video.codecs import EncoderPlan, plan_encoder
from veil.video.limits import VideoLimits
from veil.video.sniff import MEDIA_TYPES, sniff


@dataclass(frozen=True)
class AudioTrack:
    index: int
    codec: str


@dataclass(frozen=True)
class VideoInfo:
    """What the container header says, checked against the caps."""

    muxer: str  # "mp4", "mov", "3gp", "webm", "matroska"
    media_type: str
    video_index: int
    codec: str  # decoder name as FFmpeg reports it: "h264", "hevc", "vp9", "av1"
    width: int  # coded frame size, before the display matrix's rotation
    height: int
    pix_fmt: str
    time_base: Fraction
    average_rate: Fraction | None
    duration: float | None  # seconds, as announced (the decoded frames are counted anyway)
    frames_announced: int
    audio: tuple[AudioTrack, ...]
    other_streams: tuple[str, ...]  # kinds of the streams not carried over ("data", ...)
    encoder: EncoderPlan
    bytes: int


def probe(path: Path, limits: VideoLimits) -> VideoInfo:
    """Open `path` and check its header; raises a `VeilError` subclass, never an av error."""
    size = path.stat().st_size
    limits.check_bytes(size)
    with open(path, "rb") as handle:
        head = handle.read(64)
    muxer = sniff(head)
    if muxer is None:
        raise UnsupportedFormatError("not a video container Veil reads (MP4, MOV, WebM, MKV)")
    if size < 32:
        raise CorruptVideoError(f"the video file is truncated ({size} bytes)")
    try:
        with av.open(str(path), "r", options={"probesize": "10000000"}) as container:
            return _describe(container, muxer, size, limits)
    except VeilError:
        raise
    except Exception as exc:  # PyAV on hostile headers: FFmpeg errors, missing codecs, ...
        raise CorruptVideoError(f"the video container cannot be read: {exc}") from exc


def _describe(
    container: av.container.InputContainer, muxer: str, size: int, limits: VideoLimits
) -> VideoInfo:
    streams = list(container.streams)
    if len(streams) > limits.max_streams:
        raise CorruptVideoError(
            f"the container has {len(streams)} streams; Veil reads at most {limits.max_streams}"
        )
    videos = [s for s in container.streams.video]
    # Cover art / thumbnails are video streams with one attached picture: not the video.
    moving = [s for s in videos if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not moving:
        raise UnsupportedFormatError("the file holds no video stream")
    if len(moving) > 1:
        raise UnsupportedCodecError(
            f"the file holds {len(moving)} video streams (multi-angle or stereo video): "
            "Veil cloaks videos with one"
        )
    stream = moving[0]
    ctx = stream.codec_context
    if ctx is None or ctx.codec is None:
        raise UnsupportedCodecError("the video's codec is unknown to Veil's FFmpeg")
    codec = ctx.codec.canonical_name if ctx.codec else "unknown"
    limits.check_frame(int(ctx.width), int(ctx.height))
    rate = stream.average_rate
    if rate is not None and rate > 0 and float(rate) > limits.max_fps:
        raise CorruptVideoError(f"the video announces {float(rate):.0f} frames a second")
    duration = _duration(container, stream)
    if duration is not None:
        limits.check_duration(duration)
    if stream.time_base is None:
        raise CorruptVideoError("the video stream has no time base")
    plan = plan_encoder(codec, muxer, ctx.pix_fmt or "", int(ctx.width) * int(ctx.height))
    audio = tuple(AudioTrack(s.index, s.codec_context.name or "?") for s in container.streams.audio)
    others = tuple(s.type for s in streams if s is not stream and s.type != "audio")
    return VideoInfo(
        muxer=muxer,
        media_type=MEDIA_TYPES[muxer],
        video_index=stream.index,
        codec=codec,
        width=int(ctx.width),
        height=int(ctx.height),
        pix_fmt=ctx.pix_fmt or "",
        time_base=stream.time_base,
        average_rate=rate if rate else None,
        duration=duration,
        frames_announced=int(stream.frames or 0),
        audio=audio,
        other_streams=others,
        encoder=plan,
        bytes=size,
    )


def _duration(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float | None:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None
