"""5-point similarity alignment to the ArcFace template, and its inverse.

A 2x3 matrix `M` maps full-image pixel coordinates to crop coordinates (the direction
`cv2.warpAffine(..., WARP_INVERSE_MAP)` wants for sampling the image into the crop and also
for sampling a crop-space delta back into the image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

# ArcFace/InsightFace template for 112x112 crops: left eye, right eye, nose tip, left and
# right mouth corners (left/right as seen in the image).
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def arcface_template(size: int) -> F64:
    """The template scaled to an S x S crop."""
    return ARCFACE_TEMPLATE_112 * (size / 112.0)


def similarity_transform(src: npt.ArrayLike, dst: npt.ArrayLike) -> F64:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst.

    Umeyama's closed form: deterministic, unlike RANSAC/LMEDS estimators.
    """
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    s_mean, d_mean = s.mean(axis=0), d.mean(axis=0)
    s_c, d_c = s - s_mean, d - d_mean
    cov = d_c.T @ s_c / len(s)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    var = (s_c**2).sum() / len(s)
    scale = float((sigma * sign).sum() / var) if var > 0 else 1.0
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rot
    matrix[:, 2] = d_mean - scale * rot @ s_mean
    return matrix


def alignment_matrix(landmarks: npt.ArrayLike, size: int) -> F64:
    """M mapping image coordinates to the S x S ArcFace crop, from 5 landmarks [5, 2]."""
    return similarity_transform(landmarks, arcface_template(size))


def invert_affine(matrix: F64) -> F64:
    return np.asarray(cv2.invertAffineTransform(matrix), dtype=np.float64)


def transform_points(matrix: F64, points: npt.ArrayLike) -> F64:
    p = np.asarray(points, dtype=np.float64)
    return p @ matrix[:, :2].T + matrix[:, 2]


def scale_of(matrix: F64) -> float:
    """Crop pixels per image pixel (the similarity's scale factor)."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


@dataclass(frozen=True)
class Box:
    """Axis-aligned pixel box [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0

    def grow(self, margin: int, width: int, height: int) -> Box:
        return Box(
            max(0, self.x0 - margin),
            max(0, self.y0 - margin),
            min(width, self.x1 + margin),
            min(height, self.y1 + margin),
        )

    def overlaps(self, other: Box) -> bool:
        return not (
            self.x1 <= other.x0 or other.x1 <= self.x0 or self.y1 <= other.y0 or other.y1 <= self.y0
        )

    def union(self, other: Box) -> Box:
        return Box(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
        )

    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def footprint(matrix: F64, size: int, width: int, height: int) -> Box:
    """The image-space box covered by the S x S crop, clipped to the image (+1 px margin)."""
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64)
    pts = transform_points(invert_affine(matrix), corners)
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 1
    return Box(max(0, int(x0)), max(0, int(y0)), min(width, int(x1)), min(height, int(y1)))


def merge_boxes(boxes: list[Box]) -> list[Box]:
    """Union overlapping boxes until the remaining boxes are pairwise disjoint."""
    merged = [b for b in boxes if not b.empty]
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                if merged[i].overlaps(merged[j]):
                    merged[i] = merged[i].union(merged.pop(j))
                    changed = True
                    break
            if changed:
                break
    return merged


def warp_crop(image: npt.NDArray[Any], matrix: F64, size: int) -> F32:
    """Sample the S x S aligned crop from an [H, W, 3] uint8/uint16 image, as float32 0..1.

    When the face is much larger than the crop, the image region is first shrunk with area
    averaging so that the bilinear warp does not alias (the recogniser would see noise).
    """
    maxval = 65535.0 if image.dtype == np.uint16 else 255.0
    height, width = image.shape[:2]
    scale = scale_of(matrix)
    m = matrix.copy()
    source = image
    if scale < 0.5:
        box = footprint(matrix, size, width, height).grow(2, width, height)
        if box.empty:
            return np.zeros((size, size, 3), np.float32)
        region = image[box.slices()]
        shrink = min(1.0, 2.0 * scale)  # leaves the warp a 2x downscale, which bilinear handles
        new_w = max(1, round(region.shape[1] * shrink))
        new_h = max(1, round(region.shape[0] * shrink))
        source = cv2.resize(region, (new_w, new_h), interpolation=cv2.INTER_AREA)
        sx, sy = region.shape[1] / new_w, region.shape[0] / new_h
        # crop = M @ (image point) and image point = (box origin + (sx, sy) * source point).
        m[:, 0] = matrix[:, 0] * sx
        m[:, 1] = matrix[:, 1] * sy
        m[:, 2] = matrix[:, :2] @ np.array([box.x0, box.y0], dtype=np.float64) + matrix[:, 2]
    crop = cv2.warpAffine(
        source, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return (crop.astype(np.float32) / np.float32(maxval)).astype(np.float32)


def aligned_pixels(pixels: npt.NDArray[Any], max_value: float, size: int) -> F32:
    """An already aligned square crop (`veil cloak --aligned`, `veil enrol --aligned`) as
    float RGB 0..1 at the optimiser's `size` (shrunk by area averaging when larger)."""
    crop: F32 = np.asarray(pixels, np.float32) / np.float32(max_value)
    if crop.shape[0] != size or crop.shape[1] != size:
        crop = np.asarray(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA), np.float32)
    return crop
