"""The personal cloak: one cloak per enrolled person, computed once, applied to every upload
of that person, always pushing the same way.

Why: a tracker builds its picture of a person from many uploads. Per-photo cloaks push
each upload its own way, and in the tracker's gallery the pushes average out; measured
(docs/protection.md), the invisible default moves recognisers Veil never saw less than a
change of photo does. A cloak that moves every upload of the person in one fixed direction
moves the whole gallery (Fawkes v0.3's consistency, OPOM's one mask per person), and a
visible budget makes the move large.

Two parts, both brightness only (no tint), both inside the paste mask:

1. At enrolment (`compute_personal_cloak`, minutes): one change `delta` [112,112] in
   ArcFace crop space, universal over the person's enrolment crops. Each step takes a
   batch of them, each made into another photo of the same person (pose: scale, shift,
   rotation; lighting: gain, offset, a side light; blur; JPEG), adds the change and
   descends the mean cosine, through every shipped recogniser, to the person's direction:
   the unit centroid of their clean embeddings per recogniser. The change is low-passed
   (`StrengthBudget.smooth`) so it reads as shading, not grain, and kept to the shading
   zones (`veil.shading_zones`: little darkening under the eyes, between the brows, on the
   forehead and under the cheekbones, where it read as bruises, a frown or hollow cheeks).
2. At upload (`personal_delta`, `REFINE_STEPS` steps): the engine's per-photo optimiser
   starts from that change and refines it on the photo itself toward the same fixed
   direction, within the strength's budget (`refine_budget`: the perceptual caps of the
   default modes, which spend more in hair, brows and shadows and little on flat skin, and
   the same zones).

Measured on 8 people, cloak without FaceNet and FaceNet as the tracker (linf 9/255):
the universal change alone 0.12/0.14 protection, six refining steps from nothing
0.88/0.89, both 0.96/0.99. The pilot behind the direction (shared/research): toward the
person's own centroid protects nearly as well as toward a decoy identity (0.71/0.74
against 0.76/0.79 at linf 7, per photo 0.33/0.28), so Veil ships no decoy faces.
Strengths and what each buys: the README and docs/protection.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np
import numpy.typing as npt

from veil.errors import CloakFailedError
from veil.optimizer import (
    CROP_SIZE,
    F32,
    ModeBudget,
    Surrogate,
    cloak_crops,
    mode_budget,
    parallel_gradients,
    with_overrides,
)
from veil.paste import face_mask
from veil.results import Mode
from veil.shading_zones import PERSONAL_ZONES, Zones, within_zones

PERSONAL_ALGORITHM_VERSION = 3
"""Stored with every profile; a profile made by another version is recomputed or refused."""


class Strength(StrEnum):
    """How visible the personal cloak may be (figures per strength in the README)."""

    LIGHT = "light"
    MEDIUM = "medium"
    STRONG = "strong"


@dataclass(frozen=True)
class StrengthBudget:
    linf: float  # max |change| on the crop, 0..1 units (brightness)
    smooth: float  # crop px: Gaussian low-pass of the universal change (shading, not grain)
    # The refining steps' look (`refine_budget`): the per-pixel cap follows texture against
    # an absolute reference (`texture_reference`: smooth skin counts as flat even on a face
    # that is mostly smooth skin, so no blotches on cheeks and forehead) and not luminance
    # (the default modes' extra budget in shadows darkened eye sockets like bruises). The
    # change goes to brows, lashes, eye and nose contours, hairline: it reads as make-up.
    blur: float = 0.5
    texture_low: float = 0.2
    texture_high: float = 2.5
    luminance: bool = False
    texture_reference: float = 0.06
    # Where it may darken and where lighten (`veil.shading_zones`: no grey under the eyes,
    # no frown, no hollow cheeks), at enrolment and in the refining steps.
    zones: Zones = PERSONAL_ZONES


STRENGTHS: dict[Strength, StrengthBudget] = {
    Strength.LIGHT: StrengthBudget(linf=7.6 / 255, smooth=1.0),
    Strength.MEDIUM: StrengthBudget(linf=9.75 / 255, smooth=1.0),
    Strength.STRONG: StrengthBudget(linf=13 / 255, smooth=1.0),
}
# v3: the zones take budget away where shading read as bruises, a frown or hollow cheeks;
# each strength's cap went up by 13/12 so the protection stays (v2: 7, 9, 12).


ENROL_BUDGET = StrengthBudget(linf=9 / 255, smooth=1.0)
"""The universal cloak's budget: computed once at enrolment, scaled to each strength
(`strength_cloak`); the refining steps at upload spend the strength's own budget."""


def strength_cloak(cloak: F32, strength: Strength) -> F32:
    """The enrolment's universal cloak as the start for one strength: scaled down to the
    strength's cap where that is smaller."""
    factor = min(1.0, STRENGTHS[Strength(strength)].linf / ENROL_BUDGET.linf)
    return np.asarray(cloak * np.float32(factor), np.float32)


@dataclass(frozen=True)
class EnrolPlan:
    """How much compute the enrolment spends (minutes on 2 cores for 20 photos)."""

    steps: int = 40
    batch: int = 8  # enrolment crops per step
    copies: int = 1  # augmented copies of each crop per step
    lr: float = 0.1  # Adam step, share of linf


ProgressCallback = Callable[[int, int], None]
"""progress(done_steps, total_steps), called after every step (and once at 0)."""


def centroids(crops: F32, surrogates: Sequence[Surrogate]) -> list[F32]:
    """Per surrogate, the unit mean of the crops' unit embeddings."""
    out = []
    for model in surrogates:
        emb = model.embed(crops)
        mean = emb.mean(axis=0)
        out.append(np.asarray(mean / (np.linalg.norm(mean) + 1e-12), np.float32))
    return out


def compute_personal_cloak(
    crops: npt.NDArray[np.floating],
    surrogates: Sequence[Surrogate],
    strength: Strength,
    *,
    seed: int,
    plan: EnrolPlan | None = None,
    targets: Sequence[F32] | None = None,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    budget: StrengthBudget | None = None,
) -> F32:
    """The person's cloak [112,112] (brightness change, 0..1 units, premasked) from their
    enrolment crops [N,112,112,3] RGB 0..1. Deterministic for a given seed.

    `targets` (per surrogate, unit vectors) are the directions whose cosine is lowered;
    by default each surrogate's centroid of the crops. `should_stop` is polled every step
    (a cancelled enrolment raises `CloakFailedError`).
    """
    x0 = np.clip(np.asarray(crops, dtype=np.float32), 0.0, 1.0)
    if x0.ndim != 4 or x0.shape[1:] != (CROP_SIZE, CROP_SIZE, 3) or len(x0) == 0:
        raise CloakFailedError(f"expected enrolment crops [N,112,112,3], got {list(x0.shape)}")
    if not surrogates:
        raise CloakFailedError("no face-recognition surrogate is loaded")
    plan = plan or EnrolPlan()
    budget = budget or STRENGTHS[Strength(strength)]
    goal = list(targets) if targets is not None else centroids(x0, surrogates)
    rng = np.random.default_rng(seed)
    mask = face_mask(CROP_SIZE)[None, :, :, None]
    theta = np.zeros((CROP_SIZE, CROP_SIZE), np.float32)
    first = np.zeros_like(theta)
    second = np.zeros_like(theta)
    lr = plan.lr * budget.linf
    if progress:
        progress(0, plan.steps)
    for k in range(plan.steps):
        if should_stop is not None and should_stop():
            raise CloakFailedError("enrolment was cancelled")
        pick = rng.choice(len(x0), size=min(plan.batch, len(x0)), replace=False)
        base = x0[pick]
        delta = _shade(theta, budget)
        grad_delta = np.zeros((CROP_SIZE, CROP_SIZE), np.float32)
        for _ in range(plan.copies):
            lit = _relight(base, rng)
            aug = _Augment.random(len(base), rng)
            batch = aug.forward(np.clip(lit + mask * delta[None, :, :, None], 0.0, 1.0))
            tiled = [np.tile(t[None], (len(batch), 1)) for t in goal]
            for grad in parallel_gradients(surrogates, batch, tiled):
                back = aug.backward(grad)
                g = np.sum(mask * back, axis=(0, 3))
                grad_delta += g / (np.mean(np.abs(g)) + 1e-12)
        # Through the low-pass (self-adjoint) to theta; Adam, then project to the box.
        g_theta = _blur2d(grad_delta, budget.smooth)
        first = 0.9 * first + 0.1 * g_theta
        second = 0.999 * second + 0.001 * g_theta * g_theta
        m_hat = first / (1 - 0.9 ** (k + 1))
        v_hat = second / (1 - 0.999 ** (k + 1))
        theta = np.clip(theta - lr * m_hat / (np.sqrt(v_hat) + 1e-8), -budget.linf, budget.linf)
        theta = theta.astype(np.float32)
        if not np.all(np.isfinite(theta)):
            raise CloakFailedError("the personal cloak diverged (a recogniser gave NaN)")
        if progress:
            progress(k + 1, plan.steps)
    return np.asarray(face_mask(CROP_SIZE) * _shade(theta, budget), np.float32)


def apply_personal_cloak(crop: F32, cloak: F32) -> F32:
    """A crop [S,S,3] with the person's cloak [112,112] added (resized for other sizes)."""
    size = crop.shape[0]
    delta = cloak
    if size != cloak.shape[0]:
        delta = np.asarray(cv2.resize(cloak, (size, size), interpolation=cv2.INTER_CUBIC))
    return np.asarray(np.clip(crop + delta[:, :, None], 0.0, 1.0), np.float32)


def _shade(theta: F32, budget: StrengthBudget) -> F32:
    """The change the parameters stand for: low-passed, within +-linf and the zones."""
    smooth = np.clip(_blur2d(theta, budget.smooth), -budget.linf, budget.linf)
    zoned = within_zones(smooth[:, :, None], np.float32(budget.linf), budget.zones)
    return np.asarray(zoned[:, :, 0], np.float32)


def _blur2d(v: F32, sigma: float) -> F32:
    if sigma <= 0:
        return v
    return np.asarray(
        cv2.GaussianBlur(v, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101), np.float32
    )


def _relight(x: F32, rng: np.random.Generator) -> F32:
    """Another photo's lighting: per crop a gain and an offset on brightness, and a tilt
    (light from one side)."""
    n, size = x.shape[0], x.shape[1]
    gain = rng.uniform(0.8, 1.2, (n, 1, 1, 1)).astype(np.float32)
    offset = rng.uniform(-0.06, 0.06, (n, 1, 1, 1)).astype(np.float32)
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)[None, None, :, None]
    tilt = rng.uniform(-0.05, 0.05, (n, 1, 1, 1)).astype(np.float32) * ramp
    return np.clip(x * gain + offset + tilt, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class _Augment:
    """Pose (scale, shift, rotation), blur and JPEG, each with its adjoint for the gradient
    (JPEG: straight-through)."""

    matrices: npt.NDArray[np.float64]
    blur: float
    jpeg: int

    @staticmethod
    def random(n: int, rng: np.random.Generator) -> _Augment:
        size = CROP_SIZE
        centre = (size - 1) / 2.0
        matrices = np.zeros((n, 2, 3))
        for i in range(n):
            angle = float(rng.uniform(-10, 10))
            scale = float(rng.uniform(0.9, 1.1))
            m = np.asarray(cv2.getRotationMatrix2D((centre, centre), angle, scale), np.float64)
            m[:, 2] += rng.uniform(-0.04, 0.04, 2) * size
            matrices[i] = m
        kind = int(rng.integers(0, 3))
        blur = float(rng.uniform(0.4, 1.2)) if kind == 1 else 0.0
        jpeg = int(rng.integers(60, 90)) if kind == 2 else 0
        return _Augment(matrices, blur, jpeg)

    def forward(self, x: F32) -> F32:
        out = np.empty_like(x)
        for i in range(len(x)):
            out[i] = cv2.warpAffine(
                x[i],
                self.matrices[i],
                (CROP_SIZE, CROP_SIZE),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT_101,
            )
            if self.blur > 0:
                out[i] = cv2.GaussianBlur(out[i], (0, 0), self.blur)
            if self.jpeg:
                out[i] = _jpeg_round_trip(out[i], self.jpeg)
        return out

    def backward(self, grad: F32) -> F32:
        out = np.empty_like(grad)
        for i in range(len(grad)):
            g = grad[i]
            if self.blur > 0:
                g = cv2.GaussianBlur(g, (0, 0), self.blur)
            out[i] = cv2.warpAffine(
                g,
                self.matrices[i],
                (CROP_SIZE, CROP_SIZE),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_CONSTANT,
            )
        return out


def _jpeg_round_trip(rgb: F32, quality: int) -> F32:
    u8 = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    if decoded is None:
        raise CloakFailedError("JPEG round trip failed inside the personal optimiser")
    return np.asarray(decoded[:, :, ::-1], np.float32) / 255.0


REFINE_STEPS = 6
"""Optimiser steps on the photo itself, from the person's cloak, toward their direction."""
REFINE_MODELS = ("mobilefacenet", "sface")
"""The recognisers of the refining steps (the engine's `refiners`)."""
REFINE_COPIES = 4
"""Transformed copies of the crop per refining step (input diversity; the default modes
take 2): twice the refining compute for better transfer to recognisers Veil does not have
(docs/personal-cloak.md: against SFace and MobileFaceNet held out, *strong* +0.02 to +0.05)."""


def refine_budget(
    strength: Strength, steps: int, linf: float | None = None, look: StrengthBudget | None = None
) -> ModeBudget:
    """The per-photo optimiser's budget for refining a personal cloak: the strength's cap
    and look (`linf`, `look` override them: research), no SSIM floor (the person chose how
    visible)."""
    level = look or STRENGTHS[Strength(strength)]
    return with_overrides(
        mode_budget(Mode.HIGH),
        linf=level.linf if linf is None else linf,
        steps=steps,
        copies=REFINE_COPIES,
        min_crop_ssim=0.0,
        delta_blur=level.blur,
        texture_low=level.texture_low,
        texture_high=level.texture_high,
        luminance_adapt=level.luminance,
        texture_reference=level.texture_reference,
        zones=level.zones,
    )


def personal_delta(
    crop: F32,
    cloak: F32,
    strength: Strength,
    surrogates: Sequence[Surrogate],
    targets: Mapping[str, F32],
    *,
    seed: int,
    steps: int = REFINE_STEPS,
    linf: float | None = None,
    scale: float = 1.0,
    look: StrengthBudget | None = None,
) -> F32:
    """The change one upload of an enrolled person gets [S,S,3]: their cloak, then `steps`
    refining steps on this crop toward their fixed direction. `scale` (0..1] shrinks both
    (the engine's prominence rule for close-ups). One view of `shared_personal_delta`
    (with a single view its shared change is exactly the crop's own)."""
    return shared_personal_delta(
        crop[None],
        cloak,
        strength,
        surrogates,
        targets,
        seed=seed,
        steps=steps,
        scale=scale,
        linf=linf,
        look=look,
    )


def shared_personal_delta(
    crops: F32,
    cloak: F32,
    strength: Strength,
    surrogates: Sequence[Surrogate],
    targets: Mapping[str, F32],
    *,
    seed: int,
    steps: int = REFINE_STEPS,
    scale: float = 1.0,
    linf: float | None = None,
    look: StrengthBudget | None = None,
) -> F32:
    """One change [S,S,3] for several views of one enrolled face (a video track's
    keyframes [K,S,S,3]): `personal_delta`'s refinement optimised on all views at once, so
    it holds over the track's frames instead of fitting one of them (each view's own
    refinement, pasted on the others, lost a third of the photo's protection against
    FaceNet: `veil-research video --personal`). `linf` and `look` override the strength's
    budget (research)."""
    if not 0.0 < scale <= 1.0:
        raise CloakFailedError("a personal cloak's scale must lie in (0, 1]")
    views = np.asarray(crops, np.float32)
    shrunk = np.asarray(cloak, np.float32) * np.float32(scale)
    if steps <= 0:
        return np.asarray(apply_personal_cloak(views[0], shrunk) - views[0], np.float32)
    chosen = [s for s in surrogates if s.name in targets]
    if not chosen:
        raise CloakFailedError("the personal cloak's recognisers are not loaded")
    start = np.repeat(np.repeat(shrunk[None, :, :, None], 3, axis=3), len(views), axis=0)
    cloaked = cloak_crops(
        views,
        Mode.HIGH,
        chosen,
        seed=seed,
        budget=refine_budget(strength, steps, linf, look),
        region=face_mask(CROP_SIZE),
        targets=[targets[s.name] for s in chosen],
        start=start,
        strength=[scale] * len(views),
        shared=True,
    )
    return np.asarray((cloaked - views).mean(axis=0), np.float32)
