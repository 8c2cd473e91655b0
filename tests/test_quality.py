"""SSIM, DSSIM and PSNR against a plain float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

from veil.quality import dssim, psnr, ssim, ssim_map_mean


def reference_ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Wang et al. SSIM with an 11x11 Gaussian (sigma 1.5), float64, valid region only."""
    ax = np.arange(11) - 5
    g = np.exp(-(ax**2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    x, y = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for i in range(0, x.shape[0] - 10, 3):
        for j in range(0, x.shape[1] - 10, 3):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (window * px).sum(), (window * py).sum()
            vx = (window * (px - mx) ** 2).sum()
            vy = (window * (py - my) ** 2).sum()
            cxy = (window * (px - mx) * (py - my)).sum()
            values.append(
                ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
            )
    return float(np.mean(values))


def test_identical_images_score_one() -> None:
    a = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert dssim(a, a) == pytest.approx(0.0, abs=1e-6)
    assert psnr(a, a) == float("inf")


def test_ssim_matches_the_reference_away_from_borders() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (80, 80), dtype=np.uint8)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    ours = ssim_map_mean(a, b)[5:-5:3, 5:-5:3]
    assert float(ours.mean()) == pytest.approx(reference_ssim(a, b), abs=2e-3)


def test_ssim_falls_as_noise_grows() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    scores = [
        ssim(a, np.clip(a + rng.normal(0, s, a.shape), 0, 255).astype(np.uint8)) for s in (2, 8, 32)
    ]
    assert scores[0] > scores[1] > scores[2]


def test_psnr_of_a_known_error() -> None:
    a = np.full((10, 10, 3), 100, np.uint8)
    assert psnr(a, a + 1) == pytest.approx(20 * np.log10(255), abs=1e-9)
    assert psnr(a.astype(np.uint16) * 257, a.astype(np.uint16) * 257 + 257, 65535) == pytest.approx(
        20 * np.log10(255), abs=1e-6
    )
