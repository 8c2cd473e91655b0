"""Decoded video frames as numpy: the luma plane (written in place) and RGB copies.

The cloak changes brightness only (the optimiser's budgets are luma-only), and a grey
change of g (0..1) in RGB is a change of g x (the luma range) in Y' and none in Cb, Cr
for every YCbCr matrix (BT.601, 709, 2020: the three weights sum to 1). So the cloak is
added to the Y plane of the decoded frame itself: no RGB round trip for the frame, no
chroma re-subsampling, the input's bit depth and colour tags kept as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from av.video.frame import VideoFrame

from veil.video.codecs import LUMA_FORMATS

_UNSPECIFIED = 2  # AVCOL_SPC_UNSPECIFIED
_JPEG_RANGE = 2  # AVCOL_RANGE_JPEG (full range)


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
