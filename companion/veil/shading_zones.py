"""Where the personal cloak may darken and where it may lighten the face (crop space).

Why: at the visible strengths the optimiser puts its change where the recognisers look
hardest, and some of those places read as something wrong with the face rather than as
lighting or make-up: darkening under the eyes reads as bruises or sleepless nights,
alternating bands on the forehead as creases (older), darkening under the cheekbones as
hollow cheeks (thinner), and a dark patch between the brows as a frown. Make-up does the
opposite in those places (concealer lightens under the eyes). So each place gets a share of
the budget per direction: under the eyes only a little darkening, any lightening; elsewhere
both in full (brows, lids, the sides of the nose: brow pencil, eye shadow, contour).

Measured (docs/personal-cloak.md, "The look at 100% on close-ups"): with these zones at
13/255 the 8 hardest people keep the protection of the zoneless 12/255 (leave-one-out
0.70 / 0.63 against 0.70 / 0.61) and the faces' SSIMULACRA2 at 100% is as good or better;
the grey under the eyes is gone and the frown softer. Only the personal cloak uses zones;
the invisible default modes do not (their budget is too small to read as anything).

Positions are in the ArcFace 112-pixel template (eyes at 38.3 / 73.5, 51.6).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

TEMPLATE_SIZE = 112
FEATHER = 3.0
"""Template pixels: each zone's edge blurs in, so its outline never shows."""


@dataclass(frozen=True)
class Zone:
    """An ellipse of the template (centre and half-axes in template pixels) and the share
    of the budget it allows for darkening and for lightening (1 = all of it)."""

    centre: tuple[float, float]
    axes: tuple[float, float]
    dark: float
    light: float


Zones = tuple[Zone, ...]

PERSONAL_ZONES: Zones = (
    Zone((38.3, 62.0), (14.0, 6.5), dark=0.15, light=1.0),  # under the left eye
    Zone((73.5, 62.0), (14.0, 6.5), dark=0.15, light=1.0),  # under the right eye
    Zone((56.0, 43.0), (6.0, 8.0), dark=0.35, light=1.0),  # between the brows
    Zone((56.0, 14.0), (44.0, 20.0), dark=0.4, light=0.6),  # forehead
    Zone((27.0, 84.0), (10.0, 12.0), dark=0.4, light=1.0),  # under the left cheekbone
    Zone((85.0, 84.0), (10.0, 12.0), dark=0.4, light=1.0),  # under the right cheekbone
)


@lru_cache(maxsize=16)
def zone_bounds(size: int, zones: Zones) -> tuple[F32, F32]:
    """(dark, light), each [size, size]: the share of the budget each pixel of a
    `size`-pixel crop may spend darkening and lightening. Read-only arrays."""
    scale = size / TEMPLATE_SIZE
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    dark = np.ones((size, size), np.float32)
    light = np.ones((size, size), np.float32)
    for zone in zones:
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


def within_zones(change: npt.NDArray[np.floating], budget: object, zones: Zones) -> F32:
    """`change` [..., S, S, C] clipped to the zones' shares of `budget` (a number or an
    array broadcastable to `change`, e.g. the optimiser's per-pixel cap)."""
    if not zones:
        return np.asarray(change, np.float32)
    dark, light = zone_bounds(int(change.shape[-2]), zones)
    cap = np.asarray(budget, np.float32)
    lo = -cap * dark[:, :, None]
    hi = cap * light[:, :, None]
    return np.asarray(np.clip(change, lo, hi), np.float32)
