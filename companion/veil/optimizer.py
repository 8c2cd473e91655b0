"""The adversarial optimiser: perturb ArcFace-aligned face crops so recognisers mis-embed them.

Everything here is numpy/cv2 around the surrogates' gradient graphs: the ONNX graphs run the
model only (crop and target in, cosine and its gradient out); augmentation, smoothing, the
perceptual budget and the steps happen in this module.

One step, for every crop at once (see `cloak_crops`):

1. The perturbation lives on a `ModeBudget.grid` grid (v5: the crop's own 112 px; older
   budgets used a coarse 56-cell grid, which pasted onto a close-up face as blobs) and is
   clipped per pixel to the perceptual cap: `linf` x texture mask (x0.2 on flat skin up to
   x2.5 where hair, brows or stubble hide a change) x luminance adaptation (more in shadows)
   [x (1 - edge protection) along coherent edges: a research knob, off in every mode].
2. `copies` transformed versions of the cloaked crop (copy 0 untouched; the others randomly
   rescaled/shifted, blurred, or passed through a real JPEG encode with the gradient taken as
   identity (BPDA)) go through every surrogate in one batched call each; the surrogates run
   concurrently, one single-threaded ONNX Runtime session per core.
3. Each surrogate's gradient is mapped back through its transform, normalised per crop so
   no surrogate dominates, summed and smoothed with a Gaussian (translation-invariant
   attack). `colour_scale` 0 keeps only its brightness part: the cloak never tints skin.
4. With `penalty` > 0 (every v5 mode), an Adam step on the cosine to the crop's own
   embedding plus `penalty` x the visibility cost mean((change / cap)^2): change costs little
   where the cap is large and much on flat skin, and the optimiser spends it where it moves
   the embedding most (Fawkes did the same with a DSSIM penalty). With `penalty` 0 (v4 and
   research), signed MI-FGSM steps that fill the cap.

Each crop's budget (cap, start, step) is scaled by its `strength` (v6): the engine gives a
face that fills a large photo less (`veil.prominence`), because a feed shows it large.

Finally the perturbation is shrunk per crop, if needed, until the crop SSIM meets
`min_crop_ssim`. The engine separately enforces `min_face_ssim` and `min_image_ssim` at
output resolution (with v5 budgets neither binds on the test photos).

The engine passes its paste mask as `region` (a feathered rounded square over most of the
crop, `veil.paste.face_mask`), so the budget is spent only where the cloak reaches the photo.

Budgets per mode (crop = 112x112 aligned face, linf in 1/255 before the per-pixel factors;
all: luma only, 12 steps, 2 copies, texture 0.2-2.5, luminance adaptation, blur 0.5 crop
px; edge protection was tried and is off):

| mode | linf | penalty | min crop SSIM | min face / whole-image SSIM (engine) |
|------|------|---------|---------------|--------------------------------------|
| low  | 2    | 4       | 0.95          | 0.95 / 0.99                          |
| mid  | 2.5  | 2       | 0.90          | 0.90 / 0.98                          |
| high | 5    | 4       | 0.80          | 0.85 / 0.97                          |

Measured visibility (SSIMULACRA2, FLIP), protection and speed per mode, and the variants
tried, are in `docs/visibility.md`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from veil.errors import CloakFailedError
from veil.results import Mode
from veil.shading_zones import Zones, within_zones
from veil.workers import compute_pool, physical_cores

F32 = npt.NDArray[np.float32]

CROP_SIZE = 112
"""Side of the aligned crops the optimiser works on (ArcFace 112x112 template)."""

ALGORITHM_VERSION = 6
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
    colour_scale: float = 1.0  # weight of the colour (non-grey) part of each step (0: luma only)
    delta_blur: float = 0.0  # crop px: Gaussian blur of the capped perturbation (0: off)
    texture_low: float = 0.5  # texture mask: budget factor on the flattest skin
    texture_high: float = 1.5  # ... and on the most textured parts (hair, brows, edges)
    luminance_adapt: bool = False  # scale the budget by a luminance-adaptation factor
    penalty: float = 0.0  # > 0: Adam steps on (adversarial loss + penalty * visibility cost)
    edge_protect: float = 0.0  # share of the budget taken away on strong edges (0: off)
    # > 0: the texture mask's contrast reference is this absolute local luminance std (0..1)
    # instead of the crop's median, so that a face of smooth skin counts as flat (personal
    # cloaks: no blotches on smooth skin); 0: relative to the crop (the default modes).
    texture_reference: float = 0.0
    # Per-place shares of the cap for darkening and lightening (`veil.shading_zones`):
    # the personal cloak's refining steps; () for the default modes.
    zones: Zones = ()


# v5: a perceptual budget. Brightness only (no colour change, so no tint on skin), optimised
# at the crop's full 112 px (no coarse grid, so no blobs), with a per-pixel cap that follows
# what hides a change: local texture (x0.2 on flat skin up to x2.5 in hair, brows, stubble),
# and luminance (more in shadows).
# Adam steps minimise the recognisers' cosine plus `penalty` times the visibility cost
# mean((change / cap)^2), so the change goes where it buys the most protection per unit
# of visibility instead of filling the box. Measured per mode (visibility on the quick
# photo set, protection leave-one-out on the tuning split) in docs/visibility.md.
_PERCEPTUAL = ModeBudget(
    linf=2.5 / 255,
    steps=12,
    copies=2,
    grid=112,
    min_crop_ssim=0.90,
    min_face_ssim=0.90,
    min_image_ssim=0.98,
    colour_scale=0.0,
    texture_low=0.2,
    texture_high=2.5,
    luminance_adapt=True,
    delta_blur=0.5,
    penalty=2.0,
)

_BUDGETS: dict[Mode, ModeBudget] = {
    Mode.LOW: replace(
        _PERCEPTUAL,
        linf=2 / 255,
        penalty=4.0,
        min_crop_ssim=0.95,
        min_face_ssim=0.95,
        min_image_ssim=0.99,
    ),
    Mode.MID: _PERCEPTUAL,
    Mode.HIGH: replace(
        _PERCEPTUAL,
        linf=5 / 255,
        penalty=4.0,
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
    strength: Sequence[float] | None = None,
    targets: Sequence[npt.NDArray[np.floating]] | None = None,
    start: npt.NDArray[np.floating] | None = None,
    on_step: Callable[[float], None] | None = None,
    shared: bool = False,
) -> F32:
    """Cloak ArcFace-aligned crops: float32 [N,S,S,3] RGB 0..1 in, same shape out.

    `region` [S,S] in 0..1 weighs where the cloak may go: the perturbation is multiplied
    by it, inside the loop, so the optimiser spends its budget only where the result will
    be pasted (the engine passes `veil.paste.face_mask`; None: the whole crop). `strength`
    (one factor in 0..1 per crop) scales each crop's budget: the engine passes
    `veil.prominence.face_strengths`, less for faces that fill a large photo. `budget`
    overrides the mode's budget (research and benchmarks). `targets` (per surrogate, [N,D]
    or [D] unit vectors) are the directions whose cosine is lowered; by default each crop's
    own embedding. `start` [N,S,S,3] is a perturbation to start from (an enrolled person's
    cloak) instead of a small random one. `on_step` gets the share of the steps done
    after each one (a video's progress figure). `shared`: the crops are views of one face
    (a video track's keyframes) and get one change, optimised on all of them at once (each
    crop's own perceptual cap still shapes it), instead of one change each. Deterministic
    for a given seed.
    """
    x0 = _validated(crops)
    if not surrogates:
        raise CloakFailedError("no face-recognition surrogate is loaded")
    plan = budget or mode_budget(mode)
    n, size = x0.shape[0], x0.shape[1]
    if n == 0:
        return x0.copy()
    rng = np.random.default_rng(seed)
    if targets is None:
        targets = _targets(x0, surrogates)
    else:
        targets = [
            np.ascontiguousarray(np.broadcast_to(np.asarray(t, np.float32), (n, t.shape[-1])))
            for t in targets
        ]
    scale = _strength_factors(strength, n)
    cap = (
        plan.linf
        * scale
        * _texture_mask(x0, plan.texture_low, plan.texture_high, plan.texture_reference)
    )
    if plan.luminance_adapt:
        cap = cap * _luminance_factor(x0)
    if plan.edge_protect > 0:
        cap = cap * (1.0 - plan.edge_protect * _edge_map(x0))
    weight = _region_weight(region, size)
    # Small random start on the grid so the first gradient is not taken exactly at x0.
    draws = 1 if shared else n
    coarse = rng.uniform(-0.25, 0.25, (draws, plan.grid, plan.grid, 3)).astype(np.float32)
    coarse = np.repeat(coarse, n // draws, axis=0)
    coarse = _scale_colour(coarse * plan.linf * scale, plan.colour_scale)  # luma-only: grey
    if start is not None:
        coarse = _downsample(np.asarray(start, np.float32), plan.grid) + 0.1 * coarse
    velocity = np.zeros_like(coarse)
    second = np.zeros_like(coarse)  # Adam's second moment (penalty variant)
    step = 2.5 * plan.linf * scale / max(plan.steps, 1)
    bound = np.maximum(1.5 * plan.linf * scale, np.max(cap, axis=(1, 2, 3), keepdims=True))
    if shared:  # one change: the same step and bound for every view
        coarse = np.repeat(coarse.mean(axis=0, keepdims=True), n, axis=0)
        step = np.repeat(np.max(np.broadcast_to(step, (n, 1, 1, 1)), keepdims=True), n, axis=0)
        bound = np.repeat(np.max(bound, axis=0, keepdims=True), n, axis=0)
    for k in range(plan.steps):
        delta = _delta(coarse, cap, plan)
        x = np.clip(x0 + weight * delta, 0.0, 1.0)
        grad = weight * _ensemble_gradient(x, surrogates, targets, plan, rng)
        if plan.smooth_sigma > 0:
            grad = _blur(grad, plan.smooth_sigma)
        coarse_grad = _scale_colour(_downsample(grad, plan.grid), plan.colour_scale)
        if shared:
            coarse_grad = np.repeat(coarse_grad.mean(axis=0, keepdims=True), n, axis=0)
        norm = np.mean(np.abs(coarse_grad), axis=(1, 2, 3), keepdims=True) + 1e-12
        if plan.penalty > 0:
            # Visibility cost: mean of (change / local budget)^2, so change is cheap where
            # texture and luminance hide it and dear on flat skin; its gradient, in units of
            # the normalised adversarial gradient, is penalty * change / budget.
            cost = _downsample(np.ascontiguousarray(weight * delta / cap), plan.grid)
            total = coarse_grad / norm + plan.penalty * _scale_colour(cost, plan.colour_scale)
            if shared:
                total = np.repeat(total.mean(axis=0, keepdims=True), n, axis=0)
            velocity = plan.momentum * velocity + (1 - plan.momentum) * total
            second = 0.99 * second + 0.01 * total * total
            m_hat = velocity / (1 - plan.momentum ** (k + 1))
            v_hat = second / (1 - 0.99 ** (k + 1))
            coarse = np.clip(coarse - step * m_hat / (np.sqrt(v_hat) + 1e-8), -bound, bound)
        else:
            velocity = plan.momentum * velocity + coarse_grad / norm
            # Descend: the loss is cosine similarity to the crop's own embedding.
            coarse = np.clip(coarse - step * np.sign(velocity).astype(np.float32), -bound, bound)
        coarse = _scale_colour(coarse.astype(np.float32), plan.colour_scale)
        coarse = _limit_colour_blotches(coarse, plan, plan.grid / size)
        if on_step is not None:
            on_step((k + 1) / plan.steps)
    out = np.clip(x0 + weight * _delta(coarse, cap, plan), 0.0, 1.0).astype(np.float32)
    return _meet_ssim(x0, out, plan.min_crop_ssim)


def _strength_factors(strength: Sequence[float] | None, n: int) -> F32:
    """Per-crop budget factors as [N,1,1,1] (1 for every crop when None)."""
    if strength is None:
        return np.ones((n, 1, 1, 1), dtype=np.float32)
    factors = np.asarray(strength, dtype=np.float32).reshape(-1)
    if factors.shape != (n,):
        raise CloakFailedError(f"expected {n} strength factors, got {factors.size}")
    if not np.all(np.isfinite(factors)) or factors.min() <= 0 or factors.max() > 1:
        raise CloakFailedError("strength factors must lie in (0, 1]")
    return factors[:, None, None, None]


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


def _scale_colour(v: F32, scale: float) -> F32:
    """Keep the grey part of v and `scale` times its colour part (`split_grey_colour`)."""
    if scale >= 1.0:
        return v
    grey, colour = split_grey_colour(v)
    return np.asarray(grey + scale * colour, dtype=np.float32)


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
    if plan.zones:
        delta = within_zones(delta, cap, plan.zones)
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
    for grad in parallel_gradients(surrogates, batch, tiled):
        summed = np.zeros_like(x)
        for k, transform in enumerate(transforms):
            summed += transform.backward(grad[k * n : (k + 1) * n])
        norm = np.mean(np.abs(summed), axis=(1, 2, 3), keepdims=True) + 1e-12
        total += summed / norm
    return total


def parallel_gradients(
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


def _texture_mask(x0: F32, low: float = 0.5, high: float = 1.5, reference: float = 0.0) -> F32:
    """Per-pixel budget factor in [low, high]: local luminance contrast relative to the crop's
    (1 at the crop's median contrast), or to `reference` when it is > 0."""
    luma = x0 @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    out = np.empty(x0.shape, dtype=np.float32)
    for i in range(x0.shape[0]):
        mean = cv2.GaussianBlur(luma[i], (0, 0), 2.0)
        var = cv2.GaussianBlur(luma[i] * luma[i], (0, 0), 2.0) - mean * mean
        std = np.sqrt(np.maximum(var, 0.0))
        rel = std / ((reference if reference > 0 else float(np.median(std))) + 1e-6)
        factor = np.clip(low + (1.0 - low) * rel, low, high)
        out[i] = cv2.GaussianBlur(factor, (0, 0), 2.0)[..., None]
    return out


def _edge_map(x0: F32) -> F32:
    """[N,S,S,3] in 0..1: 1 on and next to strong, coherent edges (face outline, eyelids,
    lips, nostrils), 0 elsewhere. Texture (hair, stubble, pores) hides a change; an edge does
    not: a change along it moves or re-shades the edge, which people see (Yang et al. 2005
    protect edges in their JND model for the same reason)."""
    luma = np.clip(255.0 * (x0 @ np.array([0.299, 0.587, 0.114], dtype=np.float32)), 0, 255)
    out = np.empty(x0.shape, dtype=np.float32)
    for i in range(x0.shape[0]):
        smooth = cv2.GaussianBlur(luma[i].astype(np.uint8), (0, 0), 1.0)
        edges = cv2.Canny(smooth, 60, 150).astype(np.float32) / 255.0
        out[i] = np.clip(cv2.GaussianBlur(edges, (0, 0), 1.0) * 2.0, 0.0, 1.0)[..., None]
    return out


def _luminance_factor(x0: F32) -> F32:
    """Per-pixel budget factor from the local background luminance (Chou & Li 1995's
    visibility threshold, relative to mid-grey): a change of a few levels shows on mid-tone
    skin, less in shadows and highlights. In [1, 3]."""
    luma = 255.0 * (x0 @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    out = np.empty(x0.shape, dtype=np.float32)
    for i in range(x0.shape[0]):
        bg = cv2.GaussianBlur(luma[i], (0, 0), 2.0)
        dark = 17.0 * (1.0 - np.sqrt(np.clip(bg, 0, 127) / 127.0)) + 3.0
        bright = 3.0 / 128.0 * (bg - 127.0) + 3.0
        threshold = np.where(bg <= 127.0, dark, bright)
        out[i] = np.clip(threshold / 3.0, 1.0, 3.0)[..., None]
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


def with_overrides(budget: ModeBudget, **changes: float | int | bool | Zones) -> ModeBudget:
    """A copy of `budget` with some fields changed (research scripts, `veil-research eval`)."""
    return replace(budget, **changes)  # type: ignore[arg-type]
