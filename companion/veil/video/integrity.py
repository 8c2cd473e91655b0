"""Is the whole video there? Pass 1's count of what it read, against what the container
declares.

A file cut short (a download or a copy that stopped) or with damaged bytes still demuxes
and decodes in part: FFmpeg stops quietly at the end of the data, and conceals a damaged
frame with its neighbours' pixels. Cloaked as it is, the output would be the first part of
the video, or carry the damage, and nothing would say so. So pass 1 demuxes every stream
(only the video is decoded: no second decoding pass) and `Ledger` keeps, per stream, the
packets read and where the last one ends, and for the video the frames decoded and where
the last one ends. The video is refused (`CorruptVideoError`: 422 `corrupt_image`) when:

- the demuxer flags a video or audio packet as damaged (a packet cut by the end of the
  file: the last one an MP4 cut mid-`mdat` delivers), or the decoder flags a frame as
  corrupt (it concealed missing or damaged data);
- a video or audio stream delivered fewer packets than its index declares (MP4/MOV count
  every sample), or the video decoded fewer frames than declared (packets the container
  marks to be dropped, the lead-in of an edit list, count as decoded), by more than one;
- the video's last frame ends more than one frame before the stream's declared duration;
  an audio stream's last packet more than `AUDIO_SLACK_S` before its own;
- where no stream declares a duration (WebM, MKV), the last packet of every stream ends
  more than one frame before the container's duration (the muxer writes the longest
  stream's end there).

A decoder that raises mid-stream is refused by pass 1 itself. The tolerances keep what
valid files do: x264's B-frame delay and edit lists, variable frame rates, audio that ends
before or after the video (each audio stream is held to its own declared duration, never
the video's), a second audio track. Measured on the shapes tests/test_video_hostile.py
builds; docs/video.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import av
from av.video.frame import VideoFrame

from veil.errors import CorruptVideoError

AUDIO_SLACK_S = 0.2
"""How far before its declared duration an audio stream may end: more than encoder
priming and padding (AAC: 2,112 samples, 44 ms at 48 kHz; Opus: 6.5 ms), less than a lost
chunk of interleaved audio in practice (a muxer writes about half a second to a second)."""

EPSILON_S = 0.001
"""Rounding of timestamps between time bases (the container's, the stream's)."""


@dataclass
class _Stream:
    kind: str  # "video", "audio", ...
    declared_frames: int  # 0: not declared (WebM, MKV, fragmented MP4)
    declared_end: float | None  # seconds; None: not declared
    packets: int = 0
    discarded: int = 0  # packets the container marks to be dropped after decoding
    end: float | None = None  # where the last packet read ends, seconds


class Ledger:
    """What pass 1 read of one container, checked by `check` once the demuxer is done."""

    def __init__(
        self, container: av.container.InputContainer, video: av.video.stream.VideoStream
    ) -> None:
        self._video = video.index
        self._streams = {s.index: _describe(s) for s in container.streams}
        start = container.start_time or 0
        self._container_end = (
            (start + container.duration) / av.time_base if container.duration else None
        )
        rate = video.average_rate or video.guessed_rate
        self._step = 1.0 / float(rate) if rate else 1.0 / 30  # one frame, nominal
        self.frames = 0  # video frames decoded
        self._frame_end: float | None = None  # where the last one ends
        self._last_step = self._step

    @property
    def video_packets(self) -> int:
        return self._streams[self._video].packets

    def packet(self, packet: av.packet.Packet[Any]) -> None:
        """Count one demuxed packet (the demuxer's empty end-of-stream packets aside)."""
        if packet.size == 0:
            return
        stream = self._streams.get(packet.stream.index)
        if stream is None:  # a stream the header did not list: nothing declared about it
            stream = self._streams[packet.stream.index] = _describe(packet.stream)
        if packet.is_corrupt and stream.kind in {"video", "audio"}:
            raise CorruptVideoError(
                f"the video is truncated or damaged: the container gives a damaged "
                f"{stream.kind} packet (at {_at(packet)})"
            )
        stream.packets += 1
        stream.discarded += int(packet.is_discard)
        at = packet.pts if packet.pts is not None else packet.dts
        if at is not None and packet.time_base is not None:
            end = float((at + (packet.duration or 0)) * packet.time_base)
            stream.end = end if stream.end is None else max(stream.end, end)

    def frame(self, frame: VideoFrame, start: float) -> None:
        """Count one decoded video frame that starts at `start` seconds."""
        if frame.is_corrupt:
            raise CorruptVideoError(
                f"the video is damaged: frame {self.frames + 1} (at {start:.3f} s) could not "
                "be decoded whole"
            )
        self.frames += 1
        step = self._step
        if frame.duration and frame.time_base is not None:
            step = float(frame.duration * frame.time_base)
        self._last_step = max(step, self._step)
        self._frame_end = start + step

    def check(self) -> None:
        """Raise `CorruptVideoError` when less was read than the container declares."""
        video = self._streams[self._video]
        if video.declared_frames:
            decoded = self.frames + video.discarded
            if decoded < video.declared_frames - 1:
                raise CorruptVideoError(
                    f"the video is truncated or damaged: its container declares "
                    f"{video.declared_frames} frames, {decoded} could be decoded"
                )
        if video.declared_end is not None and self._frame_end is not None:
            short = video.declared_end - self._frame_end
            if short > self._last_step + EPSILON_S:
                raise CorruptVideoError(
                    f"the video is truncated: its frames stop at {self._frame_end:.3f} s of "
                    f"the {video.declared_end:.3f} s its container declares"
                )
        for stream in self._streams.values():
            if stream.kind not in {"video", "audio"}:
                continue
            if stream.declared_frames and stream.packets < stream.declared_frames - 1:
                raise CorruptVideoError(
                    f"the video is truncated or damaged: its {stream.kind} stream declares "
                    f"{stream.declared_frames} packets, {stream.packets} could be read"
                )
            if stream.kind == "audio" and stream.declared_end is not None:
                end = stream.end if stream.end is not None else 0.0
                if stream.declared_end - end > AUDIO_SLACK_S:
                    raise CorruptVideoError(
                        f"the video is truncated: its audio stops at {end:.3f} s of the "
                        f"{stream.declared_end:.3f} s its container declares"
                    )
        if video.declared_end is None and self._container_end is not None:
            ends = [s.end for s in self._streams.values() if s.end is not None]
            if self._frame_end is not None:
                ends.append(self._frame_end)
            reached = max(ends, default=0.0)
            if self._container_end - reached > self._last_step + EPSILON_S:
                raise CorruptVideoError(
                    f"the video is truncated: its streams stop at {reached:.3f} s of the "
                    f"{self._container_end:.3f} s its container declares"
                )


def _describe(stream: Any) -> _Stream:
    end = None
    if stream.duration and stream.time_base is not None:
        end = float(((stream.start_time or 0) + stream.duration) * stream.time_base)
    return _Stream(stream.type, int(stream.frames or 0), end)


def _at(packet: av.packet.Packet[Any]) -> str:
    at = packet.pts if packet.pts is not None else packet.dts
    if at is None or packet.time_base is None:
        return "an unknown time"
    return f"{float(at * packet.time_base):.3f} s"
