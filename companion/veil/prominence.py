"""How prominent each face will be where people look at the photo: a feed, 1080 px across.

The optimiser's perceptual budget (`veil.optimizer`) is set on the 112-px aligned crop, about
the size of a face in most photos once a feed shrinks them to 1080 px. When faces fill much
of the frame AND are shown large (a close-up portrait, a couple filling the picture), the
same change per face pixel is seen over a larger share of the frame and at a size where the
crop's detail is magnified instead of averaged away, so the cloak shows more. Each face's
budget is scaled down by

    strength = clamp(sqrt(REFERENCE / prominence), FLOOR, 1)
    prominence = (face's long side at display size, px) x (share of the frame all faces cover)

which leaves the typical face (prominence below REFERENCE) untouched.

REFERENCE was calibrated once, on the 50 photos of the shared corpus at algorithm v5: the
display SSIMULACRA2 of the default cloak falls as prominence rises (correlation -0.86, where
face size alone gives -0.70 and the share of the frame alone -0.80), and the photos with
prominence above ~90 were the ones under the display floor. The rule uses only geometry (no
judge runs in the product); the numbers it was calibrated on are in docs/visibility.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from veil.align import Box

DISPLAY_LONG_SIDE = 1080
"""Long side of the photo as a feed shows it (the visibility benchmark's display scale)."""

REFERENCE = 80.0
"""Prominence (display px x frame share) up to which a face keeps its mode's full budget."""

FLOOR = 0.5
"""Least strength: a face that fills the frame still gets half its mode's budget."""


def display_factor(width: int, height: int) -> float:
    """Scale from the photo's pixels to a 1080-px-wide feed (never enlarges)."""
    return min(1.0, DISPLAY_LONG_SIDE / max(width, height, 1))


def face_strengths(boxes: Sequence[Box], width: int, height: int) -> list[float]:
    """Per face, the share (FLOOR..1) of its mode's budget the optimiser may use."""
    area = float(max(width * height, 1))
    covered = sum(_clipped_area(box, width, height) for box in boxes)
    share = min(1.0, covered / area)
    scale = display_factor(width, height)
    out = []
    for box in boxes:
        prominence = max(box.width, box.height) * scale * share
        strength = 1.0 if prominence <= REFERENCE else math.sqrt(REFERENCE / prominence)
        out.append(max(FLOOR, min(1.0, strength)))
    return out


def _clipped_area(box: Box, width: int, height: int) -> float:
    w = max(0, min(box.x1, width) - max(box.x0, 0))
    h = max(0, min(box.y1, height) - max(box.y0, 0))
    return float(w * h)
