"""Pass 2: decode again, paste each track's cloak on its frames, encode, remux the audio.

Video frames go decode -> cloak -> encode one at a time (the encoder's own look-ahead is
the only buffer), so memory does not grow with the video's length. Audio packets are
copied as they are (remux: bit-identical payloads and timestamps). The output container is
the input's kind (MP4, MOV, 3GP, WebM, MKV) with the video stream's resolution, time base,
timestamps (variable frame rate kept), colour tags and display matrix (rotation).

A video without any face skips the re-encode: its video packets are copied too, and only
the metadata policy applies (as for photos without a face).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import av
import av.error
from av.video.frame import VideoFrame

from veil.align import alignment_matrix
from veil.cancel import checkpoint
from veil.errors import CorruptVideoError
from veil.imaging.metadata import MetadataReport, Policy
from veil.video import metadata
from veil.video.cloaks import TrackCloak
from veil.video.frames import FrameCopy
from veil.video.hdr import Hdr10
from veil.video.lumapaste import paste_luma
from veil.video.probe import VideoInfo
from veil.video.scan import frame_time
from veil.video.tracking import TrackPath

if TYPE_CHECKING:
    from veil.engine import StageTimer


DECODE_THREADS = 2
"""Decoder threads in pass 2: FFmpeg's default (cores + 1) holds one more 4K frame in
flight each, while the encoder is the bottleneck anyway."""


@dataclass(frozen=True)
class WriteStats:
    frames: int
    face_frames: int  # (frame, track) pairs a cloak was pasted on
    audio_packets: int


@dataclass(frozen=True)
class Plan:
    """What pass 2 pastes: each track's path and cloak (no tracks: a plain remux)."""

    paths: Sequence[TrackPath]
    cloaks: dict[int, TrackCloak]
    display_matrix: tuple[int, ...] | None
    reencode: bool  # False: copy the video packets (no face found)
    decoder_options: dict[str, str] = field(default_factory=dict)
    frames: int = 0  # frames pass 1 decoded (the progress figure's total; 0: the header's)
    hdr: Hdr10 | None = None  # HDR10 static metadata to write again (x265, SVT-AV1)


def write_video(
    src: Path,
    handle: IO[bytes],
    info: VideoInfo,
    plan: Plan,
    policy: Policy,
    report: MetadataReport,
    timer: StageTimer,
    progress: Callable[[float], None] | None = None,
) -> WriteStats:
    try:
        with av.open(str(src), "r") as source:
            return _write(source, handle, info, plan, policy, report, timer, progress)
    except (av.error.FFmpegError, ValueError, OverflowError, EOFError) as exc:
        raise CorruptVideoError(f"the video cannot be re-encoded: {exc}") from exc


def _open_output(handle: IO[bytes], info: VideoInfo, tags: dict[str, str]) -> Any:
    options: dict[str, str] = {}
    if info.muxer in {"mp4", "mov", "3gp"} and metadata.needs_metadata_keys(tags):
        options["movflags"] = "use_metadata_tags"
    return av.open(handle, "w", format=info.muxer, options=options)


def _write(
    source: av.container.InputContainer,
    handle: IO[bytes],
    info: VideoInfo,
    plan: Plan,
    policy: Policy,
    report: MetadataReport,
    timer: StageTimer,
    progress: Callable[[float], None] | None,
) -> WriteStats:
    vin = next(s for s in source.streams.video if s.index == info.video_index)
    ains = [s for s in source.streams.audio]
    tags = metadata.filter_tags(source.metadata, metadata.CONTAINER_TAGS, policy, report)
    for kind in info.other_streams:
        report.add(f"{kind} stream")
    output = _open_output(handle, info, tags)
    try:
        output.metadata.update(tags)
        if plan.reencode:
            vout = _video_encoder(output, vin, info, plan)
        else:
            vout = output.add_stream_from_template(vin)
        vout.metadata.update(
            metadata.filter_tags(vin.metadata, metadata.STREAM_TAGS, policy, report)
        )
        aouts = {}
        for ain in ains:
            aout = output.add_stream_from_template(ain)
            aout.metadata.update(
                metadata.filter_tags(ain.metadata, metadata.STREAM_TAGS, policy, report)
            )
            aouts[ain.index] = aout
        vin.thread_type = "AUTO"
        vin.codec_context.thread_count = DECODE_THREADS
        vin.codec_context.options = dict(plan.decoder_options)
        frames = face_frames = audio_packets = 0
        total = max(plan.frames or info.frames_announced, 1)
        copy = FrameCopy()  # the frames pasted on, one buffer for all
        for packet in source.demux(vin, *ains):
            if packet.stream.index != vin.index:
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream marker
                packet.stream = aouts[packet.stream.index]
                output.mux(packet)
                audio_packets += 1
                continue
            if not plan.reencode:
                # Only the empty end-of-stream marker is left out: a Matroska B-frame stream
                # has packets without a decoding time (the first two of ffmpeg's), and
                # leaving those out lost its first keyframe.
                if packet.size == 0:
                    continue
                packet.stream = vout
                output.mux(packet)
                frames += 1
                checkpoint()
                if progress is not None and frames % 30 == 0:
                    progress(min(1.0, frames / total))
                continue
            timer.lap("mux")
            for frame in packet.decode():
                timer.lap("decode")
                if not isinstance(frame, VideoFrame):
                    continue
                frame, pasted = _cloak_frame(frame, frames, info, plan, copy)
                face_frames += pasted
                timer.lap("paste")
                frames += 1
                output.mux(_encode(vout, frame))
                timer.lap("encode")
                # Every frame: a cancelled job stops within one frame's encode (a 4K frame
                # takes about 0.15 s), not within a second or more of video.
                checkpoint()
                if progress is not None and frames % 5 == 0:
                    progress(min(1.0, frames / total))
        if plan.reencode:  # the demuxer's last (empty) packet flushed the decoder
            output.mux(vout.encode(None))
            timer.lap("encode")
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to report
            output.close()
        raise
    output.close()
    timer.lap("mux")
    return WriteStats(frames, face_frames, audio_packets)


def _video_encoder(
    output: Any, vin: av.video.stream.VideoStream, info: VideoInfo, plan: Plan
) -> Any:
    encoder = info.encoder
    options = dict(encoder.options)
    if plan.hdr is not None and encoder.encoder == "libx265":
        options["x265-params"] = f"{options['x265-params']}:{plan.hdr.x265_params()}"
    if plan.hdr is not None and encoder.encoder == "libsvtav1":
        extra = plan.hdr.svtav1_params()
        if extra:
            joined = ":".join(p for p in (options.get("svtav1-params", ""), extra) if p)
            options["svtav1-params"] = joined
    vout = output.add_stream(encoder.encoder, rate=info.average_rate, options=options)
    vin_ctx = vin.codec_context
    ctx = vout.codec_context
    ctx.width, ctx.height = info.width, info.height
    ctx.pix_fmt = encoder.pix_fmt
    ctx.time_base = info.time_base
    vout.time_base = info.time_base
    if vin_ctx.sample_aspect_ratio:
        ctx.sample_aspect_ratio = vin_ctx.sample_aspect_ratio
    for name in ("color_range", "color_primaries", "color_trc", "colorspace"):
        setattr(ctx, name, getattr(vin_ctx, name))
    if encoder.codec_tag:
        ctx.codec_tag = encoder.codec_tag
    if plan.display_matrix is not None:
        vout.set_display_matrix(list(plan.display_matrix))
    return vout


def _encode(vout: Any, frame: VideoFrame) -> list[Any]:
    frame.pict_type = av.video.frame.PictureType.NONE
    if frame.format.name != vout.codec_context.pix_fmt:
        frame = frame.reformat(format=vout.codec_context.pix_fmt)
    packets: list[Any] = vout.encode(frame)
    return packets


def _cloak_frame(
    frame: VideoFrame, index: int, info: VideoInfo, plan: Plan, copy: FrameCopy
) -> tuple[VideoFrame, int]:
    """Paste every track that covers this frame, on its copy in `copy` (the decoder's
    frame is left alone); returns the frame to encode and how many were pasted."""
    time = None
    pasted = 0
    target = frame
    for path in plan.paths:
        if not path.covers(index):
            continue
        if time is None:
            time = frame_time(frame, index, info)
        landmarks = path.at(index, time)
        cloak = plan.cloaks.get(path.track_id)
        if landmarks is None or cloak is None:
            continue
        if target is frame:
            target = copy.of(frame)
        pasted += int(
            paste_luma(target, cloak.luma, alignment_matrix(landmarks, cloak.luma.shape[0]))
        )
    return target, pasted
