"""Pasting a crop-space cloak back at full resolution."""

from __future__ import annotations

import numpy as np

from veil.align import ARCFACE_TEMPLATE_112, Box, alignment_matrix, transform_points
from veil.paste import change_box, face_mask, paste, ssim_box, warp_delta


def face_matrix(scale: float, x: float, y: float, angle: float = 0.2) -> np.ndarray:
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    to_image = np.array([[c, -s, x], [s, c, y]])
    return alignment_matrix(transform_points(to_image, ARCFACE_TEMPLATE_112), 112)


def noise_delta(seed: int, amplitude: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-amplitude, amplitude, (112, 112, 3)).astype(np.float32)


def test_mask_is_one_on_the_face_and_zero_at_the_crop_edge() -> None:
    mask = face_mask(112)
    assert mask[56, 56] == 1.0
    assert mask[0].max() == 0.0 and mask[-1].max() == 0.0
    assert mask[:, 0].max() == 0.0 and mask[:, -1].max() == 0.0
    assert np.abs(np.diff(mask, axis=1)).max() < 0.12  # feathered: no step


def test_upscaled_delta_is_smooth_not_blocky() -> None:
    """A 10x upscale of pixel noise varies slowly between neighbouring output pixels."""
    delta = noise_delta(0, 0.04)
    matrix = face_matrix(10.0, 300, 300)
    region = change_box(matrix, 112, 2000, 2000)
    warped = warp_delta(delta, matrix, region)
    steps = np.abs(np.diff(warped, axis=1)).max()
    assert warped.std() > 0.005
    assert steps < 0.2 * 0.08  # a blocky (nearest) upscale would jump by up to 0.08


def test_pixels_outside_the_cloak_reach_stay_bit_identical() -> None:
    rng = np.random.default_rng(1)
    canvas = rng.integers(0, 256, (900, 1200, 3), dtype=np.uint8)
    original = canvas.copy()
    matrix = face_matrix(4.0, 400, 200)
    face = Box(450, 300, 800, 700)
    outcome = paste(canvas, noise_delta(2, 0.03), matrix, face, min_face_ssim=0.0)
    reach = change_box(matrix, 112, 1200, 900)
    outside = np.ones(canvas.shape[:2], bool)
    outside[reach.slices()] = False
    assert np.array_equal(canvas[outside], original[outside])
    assert np.abs(canvas[reach.slices()].astype(int) - original[reach.slices()]).max() > 0
    assert outcome.strength == 1.0
    assert outcome.box == ssim_box(matrix, 112, 1200, 900)


def test_budget_scales_the_delta_down_until_face_ssim_is_met() -> None:
    rng = np.random.default_rng(3)
    canvas = np.clip(rng.normal(128, 10, (400, 400, 3)), 0, 255).astype(np.uint8)
    original = canvas.copy()
    matrix = face_matrix(2.0, 90, 60)
    face = Box(120, 110, 300, 320)
    strong = noise_delta(4, 0.2)
    free = paste(canvas.copy(), strong, matrix, face, min_face_ssim=0.0)
    assert free.face_ssim < 0.9
    outcome = paste(canvas, strong, matrix, face, min_face_ssim=0.9)
    assert 0.0 < outcome.strength < 1.0
    assert outcome.face_ssim >= 0.9
    assert not np.array_equal(canvas, original)


def test_sixteen_bit_canvas_gets_the_same_cloak_in_16_bit_units() -> None:
    rng = np.random.default_rng(5)
    canvas8 = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    canvas16 = canvas8.astype(np.uint16) * 257
    matrix = face_matrix(1.5, 60, 40)
    delta = noise_delta(6, 0.02)
    paste(canvas8, delta, matrix, Box(80, 80, 200, 220), min_face_ssim=0.0)
    paste(canvas16, delta, matrix, Box(80, 80, 200, 220), min_face_ssim=0.0)
    assert np.abs(canvas16.astype(float) / 257 - canvas8).max() <= 1.0


def test_region_floor_scales_the_delta_down_too() -> None:
    rng = np.random.default_rng(3)
    canvas = np.clip(rng.normal(128, 10, (400, 400, 3)), 0, 255).astype(np.uint8)
    matrix = face_matrix(2.0, 90, 60)
    face = Box(120, 110, 300, 320)
    delta = noise_delta(4, 0.05)
    free = paste(canvas.copy(), delta, matrix, face, min_face_ssim=0.0)
    region_mean = free.ssim_sum / (free.box.width * free.box.height)
    floor = (1.0 + region_mean) / 2  # halfway between what it gave and no change at all
    outcome = paste(canvas, delta, matrix, face, min_face_ssim=0.0, min_region_ssim=floor)
    assert 0.0 < outcome.strength < 1.0
    assert outcome.ssim_sum / (outcome.box.width * outcome.box.height) >= floor
