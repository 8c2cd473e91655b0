"""Research (issue 19, not shipped): where a visible personal cloak may darken or lighten
the face (crop space). `install()` makes the product's optimiser obey the zones, for this
process only (`veil-research personal --zones`, `personal_variants.py ... sh=1`,
`look_personal.py --zones`); measured and
dropped in docs/personal-cloak.md ("Zones").

Why: at the visible strengths the optimiser puts its change where the recognisers look
hardest, and some of those places read as something wrong with the face rather than as
lighting or make-up: darkening under the eyes reads as bruises or sleepless nights,
alternating bands on the forehead as creases (older), darkening under the cheekbones as
hollow cheeks (thinner), and a dark patch between the brows as a frown. Make-up does the
opposite in those places (concealer lightens under the eyes). So each place gets a share
of the budget per direction: under the eyes only a little darkening, any lightening;
elsewhere both in full (brows, lids, the sides of the nose: brow pencil, eye shadow,
contour). Template positions: the ArcFace 112-pixel template (eyes at 38.3/73.5, 51.6).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from veil import optimizer, personal

F32 = npt.NDArray[np.float32]

TEMPLATE_SIZE = 112


@dataclass(frozen=True)
class Zone:
    """An ellipse of the template (centre, half-axes in template pixels) and the share of
    the budget it allows for darkening and for lightening."""

    centre: tuple[float, float]
    axes: tuple[float, float]
    dark: float
    light: float


ZONES_V1: tuple[Zone, ...] = (
    Zone((38.3, 62.0), (14.0, 6.5), dark=0.15, light=1.0),  # under the left eye
    Zone((73.5, 62.0), (14.0, 6.5), dark=0.15, light=1.0),  # under the right eye
    Zone((56.0, 43.0), (6.0, 8.0), dark=0.35, light=1.0),  # between the brows
    Zone((56.0, 14.0), (44.0, 20.0), dark=0.4, light=0.6),  # forehead
    Zone((27.0, 84.0), (10.0, 12.0), dark=0.4, light=1.0),  # under the left cheekbone
    Zone((85.0, 84.0), (10.0, 12.0), dark=0.4, light=1.0),  # under the right cheekbone
)
# v2, after looking at v1 on Katy_Perry/img26 and Jennifer_Aniston/img12: the frown between
# the brows was still there (a wider zone, almost no darkening), a grey band ran down the
# nose bridge, and dark lines along the nasolabial folds made a face look thinner.
ZONES_V2: tuple[Zone, ...] = (
    *(z for z in ZONES_V1 if z.centre != (56.0, 43.0)),
    Zone((56.0, 44.0), (8.0, 9.0), dark=0.1, light=1.0),  # between the brows
    Zone((56.0, 58.0), (5.0, 9.0), dark=0.3, light=1.0),  # the nose bridge
    Zone((42.0, 82.0), (6.0, 10.0), dark=0.4, light=1.0),  # the left nasolabial fold
    Zone((70.0, 82.0), (6.0, 10.0), dark=0.4, light=1.0),  # the right nasolabial fold
)
ZONE_SETS = {"v1": ZONES_V1, "v2": ZONES_V2}

FEATHER = 3.0  # template pixels: the zones' edges blur in, no visible outline


_active = {"set": "v1"}


def shading_bounds(size: int = TEMPLATE_SIZE) -> tuple[F32, F32]:
    """`_bounds` of the zone set in use."""
    return _bounds(size, _active["set"])


@lru_cache(maxsize=8)
def _bounds(size: int, name: str) -> tuple[F32, F32]:
    """(dark, light) [size, size]: the share of the budget each pixel may spend darkening
    and lightening (1 = the whole budget)."""
    scale = size / TEMPLATE_SIZE
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    dark = np.ones((size, size), np.float32)
    light = np.ones((size, size), np.float32)
    for zone in ZONE_SETS[_active["set"]]:
        cx, cy = (c * scale for c in zone.centre)
        ax, ay = (a * scale for a in zone.axes)
        inside = ((xs + 0.5 - cx) / ax) ** 2 + ((ys + 0.5 - cy) / ay) ** 2 <= 1.0
        dark[inside] = np.minimum(dark[inside], zone.dark)
        light[inside] = np.minimum(light[inside], zone.light)
    sigma = FEATHER * scale
    dark = np.asarray(cv2.GaussianBlur(dark, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE))
    light = np.asarray(cv2.GaussianBlur(light, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE))
    dark.setflags(write=False)
    light.setflags(write=False)
    return dark, light


def within_shading(change: npt.NDArray[np.floating], budget: Any) -> F32:
    """`change` [..., S, S, C] clipped to the zones' shares of `budget` (broadcastable)."""
    size = change.shape[-2]
    dark, light = shading_bounds(size)
    lo = -np.asarray(budget, np.float32) * dark[:, :, None]
    hi = np.asarray(budget, np.float32) * light[:, :, None]
    return np.asarray(np.clip(change, lo, hi), np.float32)


_installed: dict[str, Any] = {}


def installed() -> str | None:
    """The zone set in use, None when not installed."""
    return _active["set"] if _installed else None


def install(name: str = "v1") -> None:
    """Both parts of the personal cloak obey the zones: the enrolment's universal change
    (`personal._shade`) and every optimiser step's change (`optimizer._delta`, which the
    refining steps at upload use; so would the default modes, which research runs with
    zones never measure)."""
    if name not in ZONE_SETS:
        raise ValueError(f"no zone set {name!r}: {sorted(ZONE_SETS)}")
    _active["set"] = name
    if _installed:
        return
    delta, shade = optimizer._delta, personal._shade
    _installed.update(delta=delta, shade=shade)

    def zoned_delta(coarse: F32, cap: F32, plan: optimizer.ModeBudget) -> F32:
        return within_shading(delta(coarse, cap, plan), cap)

    def zoned_shade(theta: F32, budget: personal.StrengthBudget) -> F32:
        out = within_shading(shade(theta, budget)[:, :, None], np.float32(budget.linf))
        return np.asarray(out[:, :, 0], np.float32)

    optimizer._delta = zoned_delta
    personal._shade = zoned_shade
