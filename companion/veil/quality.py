"""Image-quality measures: SSIM (Wang et al. 2004, Gaussian 11x11, sigma 1.5), DSSIM, PSNR.

Arrays are [H, W] or [H, W, C] of any numeric dtype; `data_range` is the value span (255 for
uint8). Colour SSIM is the mean of the per-channel SSIM. Float32 and one channel at a time,
so a 14 MP photo costs ~60 MB of scratch, not gigabytes.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

_SIGMA = 1.5
_KSIZE = (11, 11)
WINDOW_RADIUS = 5  # pixels beyond a change that can still move the SSIM map


def _blur(x: F32) -> F32:
    return np.asarray(
        cv2.GaussianBlur(x, _KSIZE, _SIGMA, borderType=cv2.BORDER_REFLECT), np.float32
    )


def ssim_map(a: npt.NDArray[Any], b: npt.NDArray[Any], data_range: float = 255.0) -> F32:
    """Per-pixel SSIM of two single-channel images."""
    x = a.astype(np.float32)
    y = b.astype(np.float32)
    c1 = np.float32((0.01 * data_range) ** 2)
    c2 = np.float32((0.03 * data_range) ** 2)
    mu_x, mu_y = _blur(x), _blur(y)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    sigma_x = _blur(x * x) - mu_xx
    sigma_y = _blur(y * y) - mu_yy
    sigma_xy = _blur(x * y) - mu_xy
    num = (2 * mu_xy + c1) * (2 * sigma_xy + c2)
    den = (mu_xx + mu_yy + c1) * (sigma_x + sigma_y + c2)
    return np.asarray(num / den, np.float32)


def ssim_map_mean(a: npt.NDArray[Any], b: npt.NDArray[Any], data_range: float = 255.0) -> F32:
    """Per-pixel SSIM averaged over channels ([H, W] or [H, W, C] inputs)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    pairs = list(zip(_channels(a), _channels(b), strict=True))
    total = ssim_map(*pairs[0], data_range)
    for ca, cb in pairs[1:]:
        total += ssim_map(ca, cb, data_range)
    if len(pairs) > 1:
        total /= np.float32(len(pairs))
    return total


def _channels(a: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
    return [a] if a.ndim == 2 else [a[:, :, c] for c in range(a.shape[2])]


def ssim_sum(a: npt.NDArray[Any], b: npt.NDArray[Any], data_range: float = 255.0) -> float:
    """Sum over pixels of the channel-mean SSIM map (for area-weighted combinations)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    chans = list(zip(_channels(a), _channels(b), strict=True))
    total = 0.0
    for ca, cb in chans:
        total += float(ssim_map(ca, cb, data_range).sum(dtype=np.float64))
    return total / len(chans)


def ssim(a: npt.NDArray[Any], b: npt.NDArray[Any], data_range: float = 255.0) -> float:
    """Mean SSIM, 1.0 for identical images."""
    pixels = a.shape[0] * a.shape[1]
    return ssim_sum(a, b, data_range) / pixels if pixels else 1.0


def dssim(a: npt.NDArray[Any], b: npt.NDArray[Any], data_range: float = 255.0) -> float:
    """Structural dissimilarity (1 - SSIM) / 2, the measure Fawkes budgets in."""
    return (1.0 - ssim(a, b, data_range)) / 2.0


def psnr(a: npt.NDArray[Any], b: npt.NDArray[Any], data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB; inf for identical images."""
    total, count = 0.0, 0
    for ca, cb in zip(_channels(a), _channels(b), strict=True):
        diff = ca.astype(np.float32) - cb.astype(np.float32)
        total += float(np.square(diff).sum(dtype=np.float64))
        count += diff.size
    mse = total / max(count, 1)
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))
