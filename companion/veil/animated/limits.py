"""What one animated image may cost, checked from its container before any frame is decoded.

A GIF of a few kilobytes can announce a 4000x4000 canvas and 10,000 one-pixel frames: each
frame composited onto the canvas is a full 16-megapixel picture to detect faces on. So the
frame count and the decoded pixel total (frames x canvas) are bounded, from the header walk
(`veil.animated.probe`), with typed refusals (413 `image_too_large`).
"""

from __future__ import annotations

from veil.errors import ImageTooLargeError

MAX_FRAMES = 2000
"""Most frames in one animated image (a 20 s GIF at 50 fps has 1,000)."""

MAX_CANVAS_SIDE = 16384
"""Longest canvas side (GIF and APNG can announce 65,535)."""


def check_frames(frames: int, width: int, height: int, max_pixels: int) -> None:
    """Refuse an animation whose frames, all decoded, exceed `max_pixels` in total (the
    photo limit, 100 megapixels by default: as much memory and detection work as the
    largest photo), or that has more than `MAX_FRAMES` frames."""
    if width <= 0 or height <= 0:
        raise ImageTooLargeError(f"the animation announces an empty canvas ({width}x{height})")
    if max(width, height) > MAX_CANVAS_SIDE:
        raise ImageTooLargeError(
            f"the animation's canvas is {width}x{height}; Veil decodes at most "
            f"{MAX_CANVAS_SIDE} pixels a side"
        )
    if frames > MAX_FRAMES:
        raise ImageTooLargeError(
            f"the animation has more than {MAX_FRAMES} frames; Veil does not decode that many"
        )
    total = frames * width * height
    if total > max_pixels:
        raise ImageTooLargeError(
            f"{frames} frames of {width}x{height} are {total / 1e6:.0f} megapixels decoded; "
            f"the limit is {max_pixels / 1e6:.0f} (a decompression bomb?)"
        )
