"""Research (issue 11): a geometric cloak, a smooth sub-pixel warp of the face (flow-field
attack in the manner of stAdv), instead of, or on top of, the shipped pixel cloak.

Not shipped: `companion/veil` imports nothing from here. Measured by
build/research/warp_study.py; figures in docs/visibility-data/warp-study.jsonl.

The displacement field lives on a coarse G x G control grid over the 112-px aligned crop (two
channels, dx and dy in crop pixels), is upsampled bilinearly and smoothed with a Gaussian
(both convex combinations, so the per-control-point bound also bounds every pixel), and is
multiplied by the engine's feathered face mask, so it fades to 0 where the paste stops. The
crop is resampled at p + flow(p) (bicubic: a bilinear resample at half-pixel offsets is
itself a blur, which the recognisers would read as part of the attack and a full-resolution
warp would not carry). Gradient by the chain rule: dL/dflow_x(p) = sum_c dL/dwarped_c(p) *
d src_c/dx at p + flow(p) (the source's Sobel derivative, sampled at the same point), with
dL/dwarped from the shipped optimiser's own ensemble gradient (the same input-diversity
copies: rescale/shift, blur, JPEG). Adam steps; each control vector's length is clipped to
`max_disp` crop pixels after every step.

`warp_photo` applies a crop-space field at full resolution: it is mapped through the
alignment's similarity transform (a crop-pixel vector f at crop point M q becomes the image
vector A^-1 f at image point q, A the linear part of M) and the region is resampled with
Lanczos4, so pixels where the field is 0 stay exactly as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from veil import optimizer
from veil.align import invert_affine
from veil.paste import change_box
from veil.results import Mode

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class WarpPlan:
    """One warp cloak setting."""

    grid: int = 7  # control points per side
    max_disp: float = 0.6  # crop pixels (112-px crop), per control point and so per pixel
    steps: int = 12
    copies: int = 2  # as the shipped budget: copy 0 the crop itself, 1 transformed copy
    smooth: float = 0.5  # Gaussian sigma after upsampling, as a share of one grid cell


def field(coarse: F32, size: int, plan: WarpPlan, weight: F32) -> F32:
    """[N,G,G,2] control displacements -> [N,S,S,2] smooth, masked field (crop pixels)."""
    sigma = plan.smooth * size / plan.grid
    out = np.empty((coarse.shape[0], size, size, 2), dtype=np.float32)
    for i in range(coarse.shape[0]):
        up = cv2.resize(coarse[i], (size, size), interpolation=cv2.INTER_LINEAR)
        if sigma > 0:
            up = cv2.GaussianBlur(up, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
        out[i] = up
    return np.asarray(out * weight, dtype=np.float32)


def field_adjoint(grad: F32, plan: WarpPlan, weight: F32) -> F32:
    """[N,S,S,2] gradient on the field -> [N,G,G,2] on the control points (up to a scale)."""
    size = grad.shape[1]
    sigma = plan.smooth * size / plan.grid
    masked = np.ascontiguousarray(grad * weight, dtype=np.float32)
    out = np.empty((grad.shape[0], plan.grid, plan.grid, 2), dtype=np.float32)
    for i in range(grad.shape[0]):
        g = masked[i]
        if sigma > 0:
            g = cv2.GaussianBlur(g, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
        out[i] = cv2.resize(g, (plan.grid, plan.grid), interpolation=cv2.INTER_AREA)
    return out


def _maps(flow: npt.NDArray[np.floating]) -> tuple[F32, F32]:
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return (xs + flow[..., 0]).astype(np.float32), (ys + flow[..., 1]).astype(np.float32)


def apply_flow(x: F32, flow: F32, interpolation: int = cv2.INTER_CUBIC) -> F32:
    """Resample each crop at p + flow(p)."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        mx, my = _maps(flow[i])
        out[i] = cv2.remap(x[i], mx, my, interpolation, borderMode=cv2.BORDER_REFLECT_101)
    return np.asarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


def _source_gradients(x0: F32) -> tuple[F32, F32]:
    gx = np.empty_like(x0)
    gy = np.empty_like(x0)
    for i in range(x0.shape[0]):
        gx[i] = cv2.Sobel(x0[i], cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
        gy[i] = cv2.Sobel(x0[i], cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
    return gx, gy


def _clip_length(coarse: F32, bound: F32) -> F32:
    length = np.sqrt(np.sum(coarse * coarse, axis=3, keepdims=True)) + 1e-12
    return np.asarray(coarse * np.minimum(1.0, bound / length), dtype=np.float32)


def warp_crops(
    crops: npt.NDArray[np.floating],
    surrogates: Sequence[optimizer.Surrogate],
    *,
    plan: WarpPlan,
    seed: int,
    region: npt.NDArray[np.floating] | None = None,
    strength: Sequence[float] | None = None,
) -> tuple[F32, F32]:
    """Warp-cloak [N,S,S,3] RGB 0..1 crops; returns (warped crops, fields [N,S,S,2])."""
    x0 = np.clip(np.asarray(crops, dtype=np.float32), 0.0, 1.0)
    n, size = x0.shape[0], x0.shape[1]
    rng = np.random.default_rng(seed)
    budget = optimizer.with_overrides(optimizer.mode_budget(Mode.MID), copies=plan.copies)
    targets = optimizer._targets(x0, surrogates)
    weight = (
        np.ones((1, size, size, 1), np.float32)
        if region is None
        else np.asarray(region, dtype=np.float32)[None, :, :, None]
    )
    factors = np.ones(n, np.float32) if strength is None else np.asarray(strength, np.float32)
    bound = (plan.max_disp * factors)[:, None, None, None].astype(np.float32)
    gx, gy = _source_gradients(x0)
    coarse = _clip_length(
        rng.uniform(-0.1, 0.1, (n, plan.grid, plan.grid, 2)).astype(np.float32) * bound, bound
    )
    first = np.zeros_like(coarse)
    second = np.zeros_like(coarse)
    lr = 2.5 * bound / max(plan.steps, 1)
    for k in range(plan.steps):
        flow = field(coarse, size, plan, weight)
        x = apply_flow(x0, flow)
        # d cosine / d warped crop, summed over surrogates and input-diversity copies.
        g = optimizer._ensemble_gradient(x, surrogates, targets, budget, rng)
        sx, sy = _remap_signed(gx, flow), _remap_signed(gy, flow)
        d_flow = np.stack([np.sum(g * sx, axis=3), np.sum(g * sy, axis=3)], axis=3)
        d_coarse = field_adjoint(d_flow.astype(np.float32), plan, weight)
        d_coarse /= np.mean(np.abs(d_coarse), axis=(1, 2, 3), keepdims=True) + 1e-12
        first = 0.9 * first + 0.1 * d_coarse
        second = 0.99 * second + 0.01 * d_coarse * d_coarse
        m_hat = first / (1 - 0.9 ** (k + 1))
        v_hat = second / (1 - 0.99 ** (k + 1))
        coarse = _clip_length(
            np.asarray(coarse - lr * m_hat / (np.sqrt(v_hat) + 1e-8), np.float32), bound
        )
    flow = field(coarse, size, plan, weight)
    return apply_flow(x0, flow), flow


def _remap_signed(v: F32, flow: F32) -> F32:
    """Like `apply_flow` (bilinear) for signed data: no clipping to 0..1."""
    out = np.empty_like(v)
    for i in range(v.shape[0]):
        mx, my = _maps(flow[i])
        out[i] = cv2.remap(v[i], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return out


def warp_photo(
    pixels: npt.NDArray[np.uint8], matrix: F64, flow: F32, *, pad: int = 8
) -> npt.NDArray[np.uint8]:
    """Apply one face's crop-space field [S,S,2] to the full-resolution uint8 RGB photo."""
    height, width = pixels.shape[:2]
    size = flow.shape[0]
    box = change_box(matrix, size, width, height).grow(pad, width, height)
    if box.empty:
        return pixels
    m = matrix.copy()
    m[:, 2] = matrix[:, :2] @ np.array([box.x0, box.y0], dtype=np.float64) + matrix[:, 2]
    # f(M q) for every image pixel q of the box: the crop field sampled back into the image.
    crop_vectors = cv2.warpAffine(
        np.ascontiguousarray(flow, dtype=np.float32),
        m,
        (box.width, box.height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0.0, 0.0),
    )
    a_inv = invert_affine(matrix)[:, :2]
    image_vectors = (crop_vectors.reshape(-1, 2) @ a_inv.T).reshape(box.height, box.width, 2)
    mx, my = _maps(image_vectors)
    region = pixels[box.slices()].astype(np.float32)
    moved = cv2.remap(region, mx, my, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT_101)
    out = pixels.copy()
    out[box.slices()] = np.clip(np.rint(moved), 0, 255).astype(np.uint8)
    return out
