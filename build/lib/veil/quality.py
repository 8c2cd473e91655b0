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

from veil.workers import compute_pool

F32 = npt.NDArray[np.float32]

_SIGMA = 1.5
_KSIZE = (11, 11)
WINDOW_RADIUS = 5  # pixels beyond a change that can still move the SSIM map


def _blur(x: F32) -> F32:
    return np.asarray(
        cv2.GaussianBlur(x, _KSIZE, _SIGMA, borderType=cv2.BORDER_REFLECT), np.float32
    )


STRIP_ROWS = 256  # rows per strip: bounded scratch memory and cache-friendly


def _ssim_map_2d(x: F32, y: F32, c1: float, c2: float) -> F32:
    """SSIM map of one float32 channel, in place where possible (8 arrays of scratch)."""
    mu_x, mu_y = _blur(x), _blur(y)
    s_xx, s_yy, s_xy = _blur(x * x), _blur(y * y), _blur(x * y)
    mu_xy = mu_x * mu_y
    mu_x *= mu_x
    mu_y *= mu_y
    s_xx -= mu_x
    s_yy -= mu_y
    s_xy -= mu_xy
    mu_xy *= 2
    mu_xy += c1
    s_xy *= 2
    s_xy += c2
    mu_xy *= s_xy  # numerator
    mu_x += mu_y
    mu_x += c1
    s_xx += s_yy
    s_xx += c2
    mu_x *= s_xx  # denominator
    mu_xy /= mu_x
    return mu_xy


def ssim_map(a: npt.NDArray[Any], b: npt.NDArray[Any], data_range: float = 255.0) -> F32:
    """Per-pixel SSIM of two single-channel images."""
    return ssim_map_mean(a, b, data_range)


def ssim_map_mean(a: npt.NDArray[Any], b: npt.NDArray[Any], data_range: float = 255.0) -> F32:
    """Per-pixel SSIM averaged over channels ([H, W] or [H, W, C] inputs).

    Computed in horizontal strips that overlap by the window radius, which gives exactly the
    whole-image result with scratch memory bounded by the strip size.
    """
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    c1 = float((0.01 * data_range) ** 2)
    c2 = float((0.03 * data_range) ** 2)
    height, width = a.shape[:2]
    pairs = list(zip(_channels(a), _channels(b), strict=True))
    # Where the two images agree over a whole window the map is 1: only the columns of each
    # strip that hold a difference (plus the window radius) are computed.
    out = np.ones((height, width), np.float32)

    def strip(top: int) -> None:
        bottom = min(top + STRIP_ROWS, height)
        lo, hi = max(top - WINDOW_RADIUS, 0), min(bottom + WINDOW_RADIUS, height)
        differs = a[lo:hi] != b[lo:hi]
        columns = np.flatnonzero(differs.any(axis=(0, 2)) if differs.ndim == 3 else differs.any(0))
        if columns.size == 0:
            return
        left = max(int(columns[0]) - 2 * WINDOW_RADIUS, 0)
        right = min(int(columns[-1]) + 2 * WINDOW_RADIUS + 1, width)
        total = np.zeros((bottom - top, right - left), np.float32)
        for ca, cb in pairs:
            piece = _ssim_map_2d(
                ca[lo:hi, left:right].astype(np.float32),
                cb[lo:hi, left:right].astype(np.float32),
                c1,
                c2,
            )
            total += piece[top - lo : top - lo + bottom - top]
        if len(pairs) > 1:
            total /= np.float32(len(pairs))
        # Columns within one radius of the cut see a reflected border; they are far enough
        # from every difference (2 radii) that their true value is 1 anyway.
        inner_l = WINDOW_RADIUS if left > 0 else 0
        inner_r = (right - left) - (WINDOW_RADIUS if right < width else 0)
        out[top:bottom, left + inner_l : left + inner_r] = total[:, inner_l:inner_r]

    tops = range(0, height, STRIP_ROWS)
    if len(tops) > 1:
        # Strips write disjoint rows; OpenCV and numpy release the GIL on these sizes.
        list(compute_pool().map(strip, tops))
    else:
        strip(0)
    return out


def ssim_sum(a: npt.NDArray[Any], b: npt.NDArray[Any], data_range: float = 255.0) -> float:
    """Sum over pixels of the channel-mean SSIM map (for area-weighted combinations)."""
    return float(ssim_map_mean(a, b, data_range).sum(dtype=np.float64))


def _channels(a: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
    return [a] if a.ndim == 2 else [a[:, :, c] for c in range(a.shape[2])]


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
