"""Paste a crop-space cloak back into the full-resolution photo.

Only the DELTA (cloaked crop - original crop) travels back: it is confined to a feathered
mask in crop space (the optimiser works inside the same mask), warped to the photo through
the inverse alignment with bicubic interpolation (smooth at any upscale: no 112-pixel
blocks), and added to the original pixels.
Pixels outside the crop footprint are never touched. The perceptual budget is then enforced
at output resolution: if the face box SSIM, or the mean SSIM over all pixels the paste
changes, is below its minimum, the delta is scaled down by bisection until both are met.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from veil.align import F32, F64, Box, invert_affine, transform_points
from veil.quality import WINDOW_RADIUS, ssim_map_mean

BISECTION_STEPS = 7  # strength resolution 1/128


# The cloak's reach in crop space: a superellipse (a rounded square) centred on the crop.
# Measured on 8 tuning crops at MID (SFace cosine to the clean face, lower = stronger; the
# whole crop gives 0.06): the former ellipse over the face alone (45% of the crop) left
# 0.29, rounded squares like this one (70-75% of the crop, feather 0.2-0.3) 0.12-0.16.
# Recognisers read hairline, jaw and ears too, and a cloak confined to the inner face
# loses most of its effect once pasted into a photo.
_MASK_EXPONENT = 4.0  # 2: ellipse; larger: closer to the crop square
_MASK_RADIUS = 0.5  # half-axis as a share of the crop side: reaches the edge midpoints
_MASK_FEATHER = 0.25  # smoothstep over the outer quarter of the radius: no seam


@lru_cache(maxsize=4)
def face_mask(size: int) -> F32:
    """Where the cloak goes in ArcFace crop space: 1 over the face and its surroundings
    (hairline, jaw, ears), feathered to 0 at the crop's edges and corners."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    mask: F32 = _smoothstep(_mask_radius(xs, ys, size)).astype(np.float32)
    mask.setflags(write=False)  # shared through the cache
    return mask


def _mask_radius(xs: F32, ys: F32, size: int) -> F32:
    half = _half_axis(size)
    dx = np.abs(xs - size / 2) / half
    dy = np.abs(ys - size / 2) / half
    return np.asarray((dx**_MASK_EXPONENT + dy**_MASK_EXPONENT) ** (1 / _MASK_EXPONENT), np.float32)


def _half_axis(size: int) -> float:
    # Half a pixel short of the edge, so the outermost pixel centres get exactly 0.
    return _MASK_RADIUS * size - 0.5


def _smoothstep(radius: F32) -> F32:
    t = np.clip((1.0 - radius) / _MASK_FEATHER, 0.0, 1.0)
    return np.asarray(t * t * (3.0 - 2.0 * t), np.float32)


def change_box(matrix: F64, size: int, width: int, height: int) -> Box:
    """Image-space box outside which the pasted cloak is exactly zero (mask support + the
    bicubic kernel's reach), clipped to the image."""
    angles = np.linspace(0.0, 2.0 * np.pi, 144, endpoint=False)
    c, s = np.cos(angles), np.sin(angles)
    # The support's outline: the superellipse |x|^p + |y|^p = r^p in parametric form.
    power = 2.0 / _MASK_EXPONENT
    half = _half_axis(size)
    outline = np.stack(
        [
            size / 2 + half * np.sign(c) * np.abs(c) ** power,
            size / 2 + half * np.sign(s) * np.abs(s) ** power,
        ],
        axis=1,
    )
    pts = transform_points(invert_affine(matrix), outline)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    margin = int(np.ceil(3.0 / max(scale, 1e-6))) + 1  # 2 crop px of bicubic reach, rounded up
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + margin
    return Box(max(0, int(x0)), max(0, int(y0)), min(width, int(x1)), min(height, int(y1)))


def ssim_box(matrix: F64, size: int, width: int, height: int) -> Box:
    """Pixels whose SSIM can change when this face is pasted (change box + window radius)."""
    return change_box(matrix, size, width, height).grow(WINDOW_RADIUS + 1, width, height)


def warp_delta(delta: F32, matrix: F64, region: Box, *, premasked: bool = False) -> F32:
    """Masked crop delta [S, S, 3] -> image-space delta over `region` [h, w, 3], same units.

    `premasked`: the delta already carries `face_mask` (the optimiser applied it, see
    `veil.optimizer.cloak_crops(region=...)`), so it is not multiplied a second time; it is
    still cut to the mask's support, which keeps `change_box` exact.
    """
    size = delta.shape[0]
    mask = face_mask(size)
    weight = (mask > 0).astype(np.float32) if premasked else mask
    masked = np.ascontiguousarray(delta * weight[:, :, None], dtype=np.float32)
    m = matrix.copy()
    m[:, 2] = matrix[:, :2] @ np.array([region.x0, region.y0], dtype=np.float64) + matrix[:, 2]
    warped = cv2.warpAffine(
        masked,
        m,
        (region.width, region.height),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0.0, 0.0, 0.0),
    )
    return np.asarray(warped, np.float32)


@dataclass(frozen=True)
class PasteOutcome:
    strength: float  # 1.0 = the optimiser's full cloak, less when the budget scaled it down
    face_ssim: float  # SSIM of the face box, before vs after, at output resolution
    box: Box  # where SSIM was measured (every pixel whose SSIM can have changed)
    ssim_sum: float  # sum of the SSIM map over `box` (for the whole-image SSIM)


def paste(
    canvas: npt.NDArray[Any],
    delta: F32,
    matrix: F64,
    face_box: Box,
    *,
    min_face_ssim: float,
    min_region_ssim: float = 0.0,
    premasked: bool = False,
) -> PasteOutcome:
    """Add the warped, masked delta (0..1 units) to `canvas` in place, within the budget.

    `canvas` is [H, W, 3] uint8 or uint16; SSIM is judged on `face_box` (clipped to where the
    cloak can reach), from one SSIM map that also serves the whole-image figure.
    `min_region_ssim` bounds the mean SSIM over every pixel the paste can change (the
    engine derives it from the whole-image floor). `premasked`: see `warp_delta`.
    """
    height, width = canvas.shape[:2]
    region = ssim_box(matrix, delta.shape[0], width, height)
    maxval = 65535.0 if canvas.dtype == np.uint16 else 255.0
    view = canvas[region.slices()]
    before = view.copy()
    change = warp_delta(delta, matrix, region, premasked=premasked)
    change *= np.float32(maxval)
    depth = cv2.CV_16U if canvas.dtype == np.uint16 else cv2.CV_8U
    fx0, fy0 = max(face_box.x0 - region.x0, 0), max(face_box.y0 - region.y0, 0)
    fx1 = min(face_box.x1 - region.x0, region.width)
    fy1 = min(face_box.y1 - region.y0, region.height)
    if fx1 - fx0 < 8 or fy1 - fy0 < 8:  # face box outside the cloak's reach: judge the region
        fx0, fy0, fx1, fy1 = 0, 0, region.width, region.height
    face = (slice(fy0, fy1), slice(fx0, fx1))

    def candidate(strength: float) -> npt.NDArray[Any]:
        # before + strength * change, rounded half-to-even and saturated, in one pass.
        return np.asarray(cv2.addWeighted(before, 1.0, change, strength, 0.0, dtype=depth))

    def judge(pixels: npt.NDArray[Any]) -> tuple[float, float]:
        ssim = ssim_map_mean(before, pixels, maxval)
        return float(ssim[face].mean(dtype=np.float64)), float(ssim.sum(dtype=np.float64))

    area = float(region.width * region.height)

    def within_budget(face_ssim: float, region_sum: float) -> bool:
        return face_ssim >= min_face_ssim and region_sum / area >= min_region_ssim

    best = candidate(1.0)
    quality, total = judge(best)
    strength = 1.0
    if not within_budget(quality, total):
        lo, hi = 0.0, 1.0
        best, quality, total = before, 1.0, area
        for _ in range(BISECTION_STEPS):
            mid = (lo + hi) / 2
            trial = candidate(mid)
            trial_quality, trial_total = judge(trial)
            if within_budget(trial_quality, trial_total):
                lo, best, quality, total = mid, trial, trial_quality, trial_total
            else:
                hi = mid
        strength = lo
    view[...] = best
    return PasteOutcome(strength, quality, region, total)
