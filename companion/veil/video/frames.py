"""Decoded video frames as numpy: the luma plane (written in place) and RGB copies.

The cloak changes brightness only (the optimiser's budgets are luma-only), and a grey
change of g (0..1) in RGB is a change of g x (the luma range) in Y' and none in Cb, Cr
for every YCbCr matrix (BT.601, 709, 2020: the three weights sum to 1). So the cloak is
added to the Y plane of the decoded frame (of its copy in one reused buffer, `FrameCopy`):
no RGB round trip for the frame, no chroma re-subsampling, the input's bit depth and colour
tags kept as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from av.video.frame import VideoFrame

from veil.video.codecs import LUMA_FORMATS

_UNSPECIFIED = 2  # AVCOL_SPC_UNSPECIFIED
_JPEG_RANGE = 2  # AVCOL_RANGE_JPEG (full range)


def side_data(frame: VideoFrame, wanted: frozenset[str]) -> list[tuple[str, bytes]]:
    """The frame's side data of the `wanted` types, as (type name, raw bytes). PyAV 18.1.1
    made the container a mapping whose iteration yields the types (18.1.0 yielded the
    entries, and its mapping methods then fail), so both shapes are read here, in one place.
    Only the wanted entries are copied out: pass 1 asks this of every frame."""
    container: Any = frame.side_data
    out = []
    for entry in container:
        is_item = hasattr(entry, "type")  # 18.1.0: the entry itself; 18.1.1: its type
        name = str((entry.type if is_item else entry).name)
        if name in wanted:
            out.append((name, bytes(entry if is_item else container[entry])))
    return out


def luma_plane(frame: VideoFrame) -> npt.NDArray[Any]:
    """The frame's Y plane [H, W] (uint8, or uint16 above 8 bits), a writable view."""
    frame.make_writable()
    plane = frame.planes[0]
    depth = LUMA_FORMATS[frame.format.name]
    dtype = np.uint8 if depth == 8 else np.dtype("<u2")
    itemsize = np.dtype(dtype).itemsize
    buffer: npt.NDArray[Any] = np.frombuffer(memoryview(plane), dtype=dtype)
    rows = buffer[: plane.height * (plane.line_size // itemsize)]
    view: npt.NDArray[Any] = rows.reshape(plane.height, plane.line_size // itemsize)
    return view[:, : plane.width]


class FrameCopy:
    """One writable frame, reused: pass 2 copies each decoded frame it pastes on into it.

    A decoded frame shares its buffer with the decoder, which may still predict later
    frames from it, so a paste needs a copy. `VideoFrame.make_writable` makes that copy in
    a fresh allocation every frame; at 4K (12-25 MB a frame) glibc serves those from the
    heap between the encoder's long-lived frames and does not hand the freed ones back
    (4K 10-bit HEVC, decoder and x265 alone: peak RSS +106 MB, against +24 MB, one frame,
    with this buffer). The encoders copy their input (x264, x265, libvpx, SVT-AV1), so once
    `encode` returns nothing else refers to this buffer and the next frame can be copied
    over it; were it still referenced, `make_writable` below detaches it first.

    The copy carries what the encoders read from a frame besides its pixels: timestamp,
    time base, duration and colour tags. Side data stays behind (PyAV cannot set it; with
    Veil's encoder options none of it is read)."""

    def __init__(self) -> None:
        self._frame: VideoFrame | None = None

    def of(self, frame: VideoFrame) -> VideoFrame:
        """`frame`'s pixels and timing in the reused buffer (writable)."""
        own = self._frame
        if own is None or (own.width, own.height, own.format.name) != (
            frame.width,
            frame.height,
            frame.format.name,
        ):
            own = self._frame = VideoFrame(frame.width, frame.height, frame.format.name)
        own.make_writable()  # a no-op unless an encoder kept a reference
        for mine, theirs in zip(own.planes, frame.planes, strict=True):
            row = min(mine.line_size, theirs.line_size)  # both hold the visible width
            dst = np.frombuffer(memoryview(mine), np.uint8).reshape(-1, mine.line_size)
            src = np.frombuffer(memoryview(theirs), np.uint8).reshape(-1, theirs.line_size)
            dst[: mine.height, :row] = src[: mine.height, :row]
        own.pts = frame.pts
        own.time_base = frame.time_base
        own.duration = frame.duration
        for name in ("color_range", "colorspace", "color_primaries", "color_trc"):
            setattr(own, name, getattr(frame, name))
        return own


def luma_range(frame: VideoFrame) -> tuple[float, float, float]:
    """(black, white, peak) codes of the Y plane: the cloak's 0..1 units scale to
    white - black, and results are clipped to [0, peak]."""
    depth = LUMA_FORMATS[frame.format.name]
    peak = float((1 << depth) - 1)
    full = frame.format.name.startswith("yuvj") or frame.color_range == _JPEG_RANGE
    if full or frame.format.name.startswith("gray"):
        return 0.0, peak, peak
    unit = float(1 << (depth - 8))
    return 16.0 * unit, 235.0 * unit, peak


def _src_colorspace(frame: VideoFrame) -> int | str:
    if frame.colorspace != _UNSPECIFIED:
        return int(frame.colorspace)
    # FFmpeg's own guess for untagged video: BT.709 from HD up, BT.601 below.
    return "ITU709" if frame.height >= 720 else "ITU601"


def rgb(
    frame: VideoFrame, width: int | None = None, height: int | None = None
) -> npt.NDArray[np.uint8]:
    """The frame as [H, W, 3] 8-bit RGB, optionally resized (area averaging)."""
    converted = frame.reformat(
        width=width,
        height=height,
        format="rgb24",
        src_colorspace=_src_colorspace(frame),
        interpolation="AREA" if width is not None else None,
    )
    return np.ascontiguousarray(converted.to_ndarray(format="rgb24"), dtype=np.uint8)
