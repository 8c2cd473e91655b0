"""The adversarial optimiser: perturb ArcFace-aligned face crops so recognisers mis-embed them.

Everything here is numpy/cv2 around the surrogates' gradient graphs: the ONNX graphs run the
model only (crop and target in, cosine and its gradient out); augmentation, smoothing, the
low-frequency parameterisation and the budget projection happen in this module.

One step, for every crop at once (see `cloak_crops`):

1. The perturbation lives on a coarse grid (`ModeBudget.grid` cells a side) and is upsampled
   bilinearly to the crop: a smooth cloak survives JPEG and rescaling, transfers better to
   other recognisers, and does not look like pixel noise once pasted back at full resolution.
2. `copies` transformed versions of the cloaked crop (copy 0 untouched; the others randomly
   rescaled/shifted, blurred, or passed through a real JPEG encode with the gradient taken as
   identity (BPDA)) go through every surrogate in one batched call each; the surrogates run
   concurrently, one single-threaded ONNX Runtime session per core.
3. Each surrogate's gradient is mapped back through its transform, normalised per crop so
   no surrogate dominates, summed, smoothed with a Gaussian (translation-invariant attack),
   pulled back to the coarse grid and accumulated with momentum (MI-FGSM).
4. A signed step moves the perturbation away from the crop's own embeddings, projected on
   the per-pixel L-inf budget: `linf` scaled by a texture mask (more change where texture
   hides it, less on flat skin); then, per the budget, its colour part is capped and the
   whole is blurred (no hard edges), inside the same bounds.

Finally the perturbation is shrunk per crop, if needed, until the crop SSIM meets
`min_crop_ssim`. The engine separately enforces `min_face_ssim` and `min_image_ssim` at
output resolution.

The engine passes its paste mask as `region` (a feathered rounded square over 70% of the
crop, `veil.paste.face_mask`), so the budget is spent only where the cloak reaches the photo.

Budgets per mode (crop = 112x112 aligned face, values in 0..1 units of 1/255):

| mode | linf | steps | copies | grid | min crop SSIM | min face / whole-image SSIM (engine) |
|------|------|-------|--------|------|---------------|--------------------------------------|
| low  | 6    | 12    | 2      | 56   | 0.95          | 0.95 / 0.99                          |
| mid  | 18   | 10    | 2      | 56   | 0.90          | 0.90 / 0.98                          |
| high | 24   | 20    | 2      | 56   | 0.80          | 0.85 / 0.97                          |

MID and HIGH also cap colour change (the part that differs between R, G and B) at half their
L-inf (`colour_low_share` 0.5, at every scale above 0.75 crop pixels), and blur the capped
perturbation (`delta_blur`, sigma 1 crop pixel) so that it has no hard edges; their L-inf
is higher than it would be without the blur, for the same crop DSSIM. Measured protection,
quality and speed per mode are in `docs/protection.md`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from veil.errors import CloakFailedError
from veil.results import Mode
from veil.workers import compute_pool, physical_cores

F32 = npt.NDArray[np.float32]

CROP_SIZE = 112
"""Side of the aligned crops the optimiser works on (ArcFace 112x112 template)."""

ALGORITHM_VERSION = 4
"""Bumped whenever the algorithm changes its output for the same budget (benchmark caches)."""


class Surrogate(Protocol):
    """What the optimiser needs from a recogniser (`veil.recognizers.Recognizer` fits)."""

    @property
    def name(self) -> str: ...

    def embed(self, crops: F32) -> F32: ...

    def loss_and_grad(self, crops: F32, targets: F32) -> tuple[F32, F32, F32]: ...


@dataclass(frozen=True)
class ModeBudget:
    """How hard one mode pushes and how much visible change it may cost."""

    linf: float  # max |change| per channel on the crop, 0..1 units, before the texture mask
    steps: int  # optimisation steps
    copies: int  # transformed copies per step (copy 0 is the crop itself)
    grid: int  # side of the coarse grid the perturbation is optimised on
    min_crop_ssim: float  # the optimiser shrinks the cloak until the crop meets this
    min_face_ssim: float  # the engine enforces this on the face region at output resolution
    min_image_ssim: float = 0.98  # ... and this on the whole photo (matters for close-ups)
    momentum: float = 0.9  # MI-FGSM decay
    smooth_sigma: float = 1.5  # Gaussian smoothing of the gradient, crop pixels (0: off)
    jpeg_share: float = 1 / 3  # share of transformed copies that go through a real JPEG
    colour_low_share: float = 1.0  # cap on low-frequency colour change, share of linf (1: off)
    colour_sigma: float = 4.0  # crop pixels: colour blurred wider than this counts as a blotch
    delta_blur: float = 0.0  # crop px: Gaussian blur of the capped perturbation (0: off)
    texture_low: float = 0.5  # texture mask: budget factor on the flattest skin
    texture_high: float = 1.5  # ... and on the most textured parts (hair, brows, edges)


_MID = ModeBudget(
    linf=18 / 255,
    steps=10,
    copies=2,
    grid=56,
    min_crop_ssim=0.90,
    min_face_ssim=0.90,
    min_image_ssim=0.98,
    # Colour change capped at half the budget at every scale coarser than 0.75 crop px
    # (in practice all of it: the perturbation lives on a 56-cell grid), and the capped
    # perturbation blurred (sigma 1 crop px) so that cells at opposite caps no longer
    # meet in hard edges. Measured on the tuning split against L-inf 14 with the colour
    # cap at sigma 2: colour change 5.7 -> 3.7 /255 RMS and fine colour speckle 3.5 ->
    # 1.4 at the same crop DSSIM (0.045), protection within 0.01 against every attacker
    # (face-api +0.04); on all 24 people FaceNet measured 0.03 lower. The blur costs
    # strength that the higher L-inf (14 -> 18) buys back.
    colour_low_share=0.5,
    colour_sigma=0.75,
    delta_blur=1.0,
)

_BUDGETS: dict[Mode, ModeBudget] = {
    Mode.LOW: ModeBudget(
        linf=6 / 255,
        steps=12,
        copies=2,
        grid=56,
        min_crop_ssim=0.95,
        min_face_ssim=0.95,
        min_image_ssim=0.99,
    ),
    Mode.MID: _MID,
    # As MID (same colour cap and blur, same copies and grid), stronger: L-inf 18 -> 24
    # keeps the unseen recognisers' figures of the former HIGH (L-inf 18, colour capped at
    # sigma 2, no blur) for a little more crop DSSIM (0.066 -> 0.071).
    Mode.HIGH: replace(
        _MID,
        linf=24 / 255,
        steps=20,
        min_crop_ssim=0.80,
        min_face_ssim=0.85,
        min_image_ssim=0.97,
    ),
}


def mode_budget(mode: Mode) -> ModeBudget:
    """The budget of one strength mode (table in this module's docstring)."""
    return _BUDGETS[Mode(mode)]


def cloak_crops(
    crops: npt.NDArray[np.floating],
    mode: Mode,
    surrogates: Sequence[Surrogate],
    *,
    seed: int,
    budget: ModeBudget | None = None,
    region: npt.NDArray[np.floating] | None = None,
) -> F32:
    """Cloak ArcFace-aligned crops: float32 [N,S,S,3] RGB 0..1 in, same shape out.

    `region` [S,S] in 0..1 weighs where the cloak may go: the perturbation is multiplied
    by it, inside the loop, so the optimiser spends its budget only where the result will
    be pasted (the engine passes `veil.paste.face_mask`; None: the whole crop). `budget`
    overrides the mode's budget (research and benchmarks). Deterministic for a given seed.
    """
    x0 = _validated(crops)
    if not surrogates:
        raise CloakFailedError("no face-recognition surrogate is loaded")
    plan = budget or mode_budget(mode)
    n, size = x0.shape[0], x0.shape[1]
    if n == 0:
        return x0.copy()
    rng = np.random.default_rng(seed)
    targets = _targets(x0, surrogates)
    cap = plan.linf * _texture_mask(x0, plan.texture_low, plan.texture_high)
    weight = _region_weight(region, size)
    # Small random start on the grid so the first gradient is not taken exactly at x0.
    coarse = rng.uniform(-0.25, 0.25, (n, plan.grid, plan.grid, 3)).astype(np.float32) * plan.linf
    velocity = np.zeros_like(coarse)
    step = 2.5 * plan.linf / max(plan.steps, 1)
    for _ in range(plan.steps):
        x = np.clip(x0 + weight * _delta(coarse, cap, plan), 0.0, 1.0)
        grad = weight * _ensemble_gradient(x, surrogates, targets, plan, rng)
        if plan.smooth_sigma > 0:
            grad = _blur(grad, plan.smooth_sigma)
        coarse_grad = _downsample(grad, plan.grid)
        norm = np.mean(np.abs(coarse_grad), axis=(1, 2, 3), keepdims=True) + 1e-12
        velocity = plan.momentum * velocity + coarse_grad / norm
        # Descend: the loss is cosine similarity to the crop's own embedding.
        coarse = np.clip(
            coarse - step * np.sign(velocity).astype(np.float32),
            -1.5 * plan.linf,
            1.5 * plan.linf,
        )
        coarse = coarse.astype(np.float32)
        coarse = _limit_colour_blotches(coarse, plan, plan.grid / size)
    out = np.clip(x0 + weight * _delta(coarse, cap, plan), 0.0, 1.0).astype(np.float32)
    return _meet_ssim(x0, out, plan.min_crop_ssim)


def _region_weight(region: npt.NDArray[np.floating] | None, size: int) -> F32:
    """The region as a [1,S,S,1] multiplier (1 everywhere when None)."""
    if region is None:
        return np.ones((1, size, size, 1), dtype=np.float32)
    weight = np.asarray(region, dtype=np.float32)
    if weight.shape != (size, size):
        raise CloakFailedError(f"region must be {size}x{size}, got {list(weight.shape)}")
    if not np.all(np.isfinite(weight)) or weight.min() < 0 or weight.max() > 1:
        raise CloakFailedError("region weights must lie in 0..1")
    return weight[None, :, :, None]


def split_grey_colour(v: npt.NDArray[np.floating]) -> tuple[F32, F32]:
    """[..., 3] RGB change -> (grey part [..., 1]: the same change on R, G and B, i.e.
    brightness only; colour part [..., 3]: the rest, which sums to 0 over R, G, B)."""
    grey = np.asarray(np.mean(v, axis=-1, keepdims=True, dtype=np.float32))
    return grey, np.ascontiguousarray(v - grey, dtype=np.float32)


def _delta(coarse: F32, cap: F32, plan: ModeBudget) -> F32:
    """The crop-size perturbation of a coarse one: upsampled, colour-limited, capped."""
    size = cap.shape[1]
    delta = np.clip(_upsample(coarse, size), -cap, cap)
    if plan.colour_low_share < 1.0:
        delta = np.clip(_limit_colour_blotches(delta, plan, 1.0), -cap, cap)
    if plan.delta_blur > 0:
        # Signed steps drive most grid cells to the cap, so neighbouring cells of opposite
        # sign meet in a hard edge that shows as blocks once pasted large; soften the edges.
        delta = np.clip(_blur(np.ascontiguousarray(delta), plan.delta_blur), -cap, cap)
    return np.asarray(delta, dtype=np.float32)


def _limit_colour_blotches(v: F32, plan: ModeBudget, pixels_per_crop_pixel: float) -> F32:
    """Cap the low-frequency colour part of a perturbation at `colour_low_share * linf`.

    People see colour only coarsely (S-CIELAB filters chroma far wider than luminance), so a
    colour change spread over a region (yellowed teeth, a magenta cheek) shows at a few
    levels, while fine colour grain of the same amplitude does not. The perturbation is split
    into its grey part (the same change on R, G and B: brightness only), kept whole, and its
    colour part, whose blurred (low-frequency) component is clipped; its fine part is kept.
    """
    if plan.colour_low_share >= 1.0:
        return v
    grey, colour = split_grey_colour(v)
    limit = plan.colour_low_share * plan.linf
    sigma = plan.colour_sigma * pixels_per_crop_pixel
    # A blur is not a projection: clipping its output once leaves low-frequency colour well
    # above the cap, so repeat. Three passes bring a hard-edged patch to ~1.4x the cap (more
    # passes gain little: the edge itself keeps some).
    for _ in range(3):
        low = _blur(colour, sigma)
        excess = low - np.clip(low, -limit, limit)
        if not np.any(excess):
            break
        excess -= np.mean(excess, axis=3, keepdims=True)  # stay a pure colour change
        colour = np.ascontiguousarray(colour - excess, dtype=np.float32)
    return np.asarray(grey + colour, dtype=np.float32)


def _validated(crops: npt.NDArray[np.floating]) -> F32:
    arr = np.asarray(crops)
    if arr.ndim != 4 or arr.shape[3] != 3 or arr.shape[1] != arr.shape[2]:
        raise CloakFailedError(f"expected crops shaped [N,S,S,3], got {list(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise CloakFailedError("crops contain NaN or infinite values")
    if arr.size and (float(arr.min()) < -1e-3 or float(arr.max()) > 1 + 1e-3):
        raise CloakFailedError("crops must be RGB in 0..1")
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def _unit(v: F32) -> F32:
    norm = np.linalg.norm(v, axis=1, keepdims=True) + 1e-12
    return np.asarray(v / norm, dtype=np.float32)


def _targets(x0: F32, surrogates: Sequence[Surrogate]) -> list[F32]:
    """Per surrogate, the direction whose cosine the optimiser minimises: the crop's own."""
    return [_unit(model.embed(x0)) for model in surrogates]


def _ensemble_gradient(
    x: F32,
    surrogates: Sequence[Surrogate],
    targets: Sequence[F32],
    plan: ModeBudget,
    rng: np.random.Generator,
) -> F32:
    n = x.shape[0]
    first = [_identity_transform(n)]
    transforms = first + [
        _random_transform(n, x.shape[1], rng, plan.jpeg_share)
        for _ in range(plan.copies - len(first))
    ]
    batch = np.concatenate([t.forward(x) for t in transforms], axis=0)
    tiled = [np.tile(target, (len(transforms), 1)) for target in targets]
    total = np.zeros_like(x)
    for grad in _parallel_gradients(surrogates, batch, tiled):
        summed = np.zeros_like(x)
        for k, transform in enumerate(transforms):
            summed += transform.backward(grad[k * n : (k + 1) * n])
        norm = np.mean(np.abs(summed), axis=(1, 2, 3), keepdims=True) + 1e-12
        total += summed / norm
    return total


def _parallel_gradients(
    surrogates: Sequence[Surrogate], batch: F32, targets: Sequence[F32]
) -> list[F32]:
    """Each surrogate's d loss / d batch, computed concurrently.

    The gradient graphs run single-threaded (see `veil.modelstore`); each surrogate's batch
    is cut into one piece per core and all pieces share the pool. ONNX Runtime releases the
    GIL while it runs.
    """
    cores = physical_cores()
    # Every surrogate's batch is split over all cores, not one surrogate per core: the
    # surrogates differ in cost (SFace about 1.5x MobileFaceNet), so one per core leaves a
    # core idle for part of each step. Measured 1.85 s against 2.35 s a face at MID.
    pieces = max(1, min(len(batch), cores))
    bounds = np.linspace(0, len(batch), pieces + 1).astype(int)
    jobs = [
        (model, batch[a:b], target[a:b])
        for model, target in zip(surrogates, targets, strict=True)
        for a, b in itertools.pairwise(bounds)
    ]
    if len(jobs) == 1:
        results = [jobs[0][0].loss_and_grad(jobs[0][1], jobs[0][2])[2]]
    else:
        results = list(
            compute_pool().map(lambda job: job[0].loss_and_grad(job[1], job[2])[2], jobs)
        )
    grads = [np.asarray(g, dtype=np.float32) for g in results]
    return [np.concatenate(grads[i * pieces : (i + 1) * pieces]) for i in range(len(surrogates))]


@dataclass(frozen=True)
class _Transform:
    """One differentiable-in-numpy transform per crop: affine warp, blur, JPEG (BPDA)."""

    matrices: npt.NDArray[np.float64] | None  # [N,2,3] affine warps, None for identity
    blur_sigma: float
    jpeg_quality: int  # 0: no JPEG

    def forward(self, x: F32) -> F32:
        out = x
        if self.matrices is not None:
            out = _warp(out, self.matrices, inverse=False)
        if self.blur_sigma > 0:
            out = _blur(out, self.blur_sigma)
        if self.jpeg_quality:
            out = _jpeg(out, self.jpeg_quality)
        return out

    def backward(self, grad: F32) -> F32:
        # JPEG: straight-through (BPDA). Gaussian blur is self-adjoint. The inverse warp is the
        # adjoint of the warp up to a Jacobian factor close to 1 for these small rescales.
        out = grad
        if self.blur_sigma > 0:
            out = _blur(out, self.blur_sigma)
        if self.matrices is not None:
            out = _warp(out, self.matrices, inverse=True)
        return out


def _identity_transform(n: int) -> _Transform:
    return _Transform(matrices=None, blur_sigma=0.0, jpeg_quality=0)


def _random_transform(n: int, size: int, rng: np.random.Generator, jpeg_share: float) -> _Transform:
    scales = rng.uniform(0.9, 1.1, n)
    shifts = rng.uniform(-0.04, 0.04, (n, 2)) * size
    centre = (size - 1) / 2.0
    matrices = np.zeros((n, 2, 3))
    for i in range(n):
        s = scales[i]
        matrices[i] = [
            [s, 0.0, centre * (1 - s) + shifts[i, 0]],
            [0.0, s, centre * (1 - s) + shifts[i, 1]],
        ]
    kind = 2 if rng.random() < jpeg_share else int(rng.integers(0, 2))
    blur = float(rng.uniform(0.5, 1.2)) if kind == 1 else 0.0
    quality = int(rng.integers(60, 90)) if kind == 2 else 0
    return _Transform(matrices=matrices, blur_sigma=blur, jpeg_quality=quality)


def _warp(x: F32, matrices: npt.NDArray[np.float64], *, inverse: bool) -> F32:
    size = x.shape[1]
    out = np.empty_like(x)
    flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse else 0)
    for i in range(x.shape[0]):
        out[i] = cv2.warpAffine(
            x[i], matrices[i], (size, size), flags=flags, borderMode=cv2.BORDER_REFLECT_101
        )
    return out


def _blur(x: F32, sigma: float) -> F32:
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = cv2.GaussianBlur(x[i], (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    return out


def _jpeg(x: F32, quality: int) -> F32:
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        bgr = cv2.cvtColor(np.clip(x[i] * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is None:
            raise CloakFailedError("JPEG round trip failed inside the optimiser")
        out[i] = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return out


def _upsample(coarse: F32, size: int) -> F32:
    if coarse.shape[1] == size:
        return coarse
    out = np.empty((coarse.shape[0], size, size, 3), dtype=np.float32)
    for i in range(coarse.shape[0]):
        out[i] = cv2.resize(coarse[i], (size, size), interpolation=cv2.INTER_LINEAR)
    return out


def _downsample(fine: F32, grid: int) -> F32:
    # Area averaging is (up to scale) the adjoint of the bilinear upsampling above.
    if fine.shape[1] == grid:
        return fine
    out = np.empty((fine.shape[0], grid, grid, 3), dtype=np.float32)
    for i in range(fine.shape[0]):
        out[i] = cv2.resize(fine[i], (grid, grid), interpolation=cv2.INTER_AREA)
    return out


def _texture_mask(x0: F32, low: float = 0.5, high: float = 1.5) -> F32:
    """Per-pixel budget factor in [low, high]: local luminance contrast relative to the crop's
    (1 at the crop's median contrast)."""
    luma = x0 @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    out = np.empty(x0.shape, dtype=np.float32)
    for i in range(x0.shape[0]):
        mean = cv2.GaussianBlur(luma[i], (0, 0), 2.0)
        var = cv2.GaussianBlur(luma[i] * luma[i], (0, 0), 2.0) - mean * mean
        std = np.sqrt(np.maximum(var, 0.0))
        rel = std / (float(np.median(std)) + 1e-6)
        factor = np.clip(low + (1.0 - low) * rel, low, high)
        out[i] = cv2.GaussianBlur(factor, (0, 0), 2.0)[..., None]
    return out


def crop_ssim(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """SSIM per crop on luminance (Gaussian window, sigma 1.5; Wang et al. 2004), [N] in."""
    weights = np.array([0.299, 0.587, 0.114])
    la = np.asarray(a, dtype=np.float64) @ weights
    lb = np.asarray(b, dtype=np.float64) @ weights
    c1, c2 = 0.01**2, 0.03**2
    scores = np.empty(la.shape[0])
    for i in range(la.shape[0]):
        scores[i] = _ssim_2d(la[i], lb[i], c1, c2)
    return scores


def _ssim_2d(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], c1: float, c2: float) -> float:
    def g(img: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(cv2.GaussianBlur(img, (11, 11), 1.5), dtype=np.float64)

    mu_a, mu_b = g(a), g(b)
    var_a = g(a * a) - mu_a**2
    var_b = g(b * b) - mu_b**2
    cov = g(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def _meet_ssim(x0: F32, out: F32, min_ssim: float) -> F32:
    """Shrink each crop's perturbation (bisection on its scale) until its SSIM >= min_ssim."""
    scores = crop_ssim(x0, out)
    result = out.copy()
    for i in np.flatnonzero(scores < min_ssim):
        delta = out[i] - x0[i]
        lo, hi = 0.0, 1.0
        for _ in range(8):
            mid = (lo + hi) / 2
            if crop_ssim(x0[i : i + 1], x0[i : i + 1] + mid * delta)[0] >= min_ssim:
                lo = mid
            else:
                hi = mid
        result[i] = np.clip(x0[i] + lo * delta, 0.0, 1.0)
    return result


def with_overrides(budget: ModeBudget, **changes: float | int | bool) -> ModeBudget:
    """A copy of `budget` with some fields changed (research scripts, `veil-research eval`)."""
    return replace(budget, **changes)  # type: ignore[arg-type]
