"""5-point alignment to the ArcFace template and its inverse."""

from __future__ import annotations

import numpy as np
import pytest

from veil.align import (
    ARCFACE_TEMPLATE_112,
    Box,
    alignment_matrix,
    arcface_template,
    footprint,
    invert_affine,
    merge_boxes,
    scale_of,
    transform_points,
    warp_crop,
)


def similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty]])


@pytest.mark.parametrize(("angle", "scale"), [(0.0, 1.0), (0.4, 7.5), (-1.2, 0.6), (3.0, 2.0)])
def test_alignment_recovers_a_known_similarity(angle: float, scale: float) -> None:
    to_image = similarity(angle, scale, 900.0, 640.0)
    landmarks = transform_points(to_image, ARCFACE_TEMPLATE_112)
    matrix = alignment_matrix(landmarks, 112)
    assert np.allclose(matrix, invert_affine(to_image), atol=1e-9)
    assert np.allclose(transform_points(matrix, landmarks), ARCFACE_TEMPLATE_112, atol=1e-6)
    assert scale_of(matrix) == pytest.approx(1.0 / scale)


def test_template_scales_with_crop_size() -> None:
    assert np.allclose(arcface_template(224), ARCFACE_TEMPLATE_112 * 2)


def test_crop_then_inverse_warp_round_trip() -> None:
    """Sampling the crop from a smooth image and mapping crop pixels back agree."""
    height, width = 1200, 1600
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack(
        [127 + 100 * np.sin(xs / 90), 127 + 100 * np.cos(ys / 70), (xs + ys) / 11 % 255], axis=2
    ).astype(np.uint8)
    to_image = similarity(0.3, 6.0, 700.0, 400.0)
    matrix = alignment_matrix(transform_points(to_image, ARCFACE_TEMPLATE_112), 112)
    crop = warp_crop(image, matrix, 112)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.float32
    # Pixel (u, v) of the crop shows image point inverse(M) @ (u, v).
    for u, v in [(20, 30), (56, 56), (90, 100)]:
        x, y = transform_points(invert_affine(matrix), [[u, v]])[0]
        expected = image[round(y), round(x)].astype(np.float32) / 255
        assert np.abs(crop[v, u] - expected).max() < 0.06


def test_large_face_crop_is_antialiased() -> None:
    """A face 10x larger than the crop is area-averaged, not point-sampled (no aliasing)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (2000, 2000, 3), dtype=np.uint8)  # pure pixel noise
    matrix = alignment_matrix(
        transform_points(similarity(0.0, 10.0, 400, 400), ARCFACE_TEMPLATE_112), 112
    )
    crop = warp_crop(image, matrix, 112)
    # Averaging ~100 noise pixels per crop pixel leaves a small spread around 0.5.
    assert float(crop.std()) < 0.08


def test_footprint_covers_the_crop_and_clips_to_the_image() -> None:
    matrix = invert_affine(similarity(0.0, 2.0, -50.0, 10.0))
    box = footprint(matrix, 112, 300, 300)
    assert box == Box(0, 9, 175, 235)


def test_merge_boxes_makes_disjoint_unions() -> None:
    boxes = [Box(0, 0, 10, 10), Box(5, 5, 20, 20), Box(30, 30, 40, 40), Box(19, 19, 31, 31)]
    assert merge_boxes(boxes) == [Box(0, 0, 40, 40)]
    assert merge_boxes([Box(0, 0, 5, 5), Box(6, 6, 9, 9)]) == [Box(0, 0, 5, 5), Box(6, 6, 9, 9)]
