"""Gain-map HDR renditions (Ultra HDR / ISO 21496-1 JPEGs), to check that a cloak survives.

A gain-map JPEG shows its primary (SDR) image on ordinary screens; HDR screens show the
primary multiplied, pixel by pixel, by 2^(gain) read from a second, smaller JPEG. After a
cloak the primary carries the cloak and the gain map is the original's: the engine renders
the HDR view of the original and of the cloaked photo here and keeps the gain map only
when the recognisers' cosines show that the HDR view carries the cloak (see
`Engine._gain_map_carries_cloak`). The rendering follows the Ultra HDR formula with the
gain map's hdrgm parameters (defaults where absent), tone-mapped back to 8 bits with one
scale for both renditions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from veil.errors import CorruptImageError

_FLOAT = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


@dataclass(frozen=True)
class GainMapParams:
    """hdrgm parameters (log2 units), averaged over channels where given per channel."""

    gain_min: float = 0.0
    gain_max: float = 2.0
    gamma: float = 1.0
    offset_sdr: float = 1 / 64
    offset_hdr: float = 1 / 64


def params_of(gain_map_jpeg: bytes) -> GainMapParams:
    head = gain_map_jpeg[:0x10000].decode("latin-1")
    values: dict[str, float] = {}
    for name in ("GainMapMin", "GainMapMax", "Gamma", "OffsetSDR", "OffsetHDR"):
        found = re.search(rf'hdrgm:{name}="{_FLOAT}"', head) or re.search(
            rf"<hdrgm:{name}>(?:\s*<rdf:Seq>)?((?:\s*<rdf:li>{_FLOAT}</rdf:li>)+|{_FLOAT})", head
        )
        if found:
            numbers = [float(x) for x in re.findall(_FLOAT, found.group(1))]
            if numbers:
                values[name] = float(np.mean(numbers))
    defaults = GainMapParams()
    return GainMapParams(
        values.get("GainMapMin", defaults.gain_min),
        values.get("GainMapMax", defaults.gain_max),
        max(values.get("Gamma", defaults.gamma), 1e-3),
        values.get("OffsetSDR", defaults.offset_sdr),
        values.get("OffsetHDR", defaults.offset_hdr),
    )


def _srgb_to_linear(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _linear_to_srgb(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(
        np.float32
    )


class HdrRendition:
    """Renders the HDR view of [H, W, 3] uint8 upright pixels under one gain map."""

    def __init__(
        self,
        gain_map_jpeg: bytes,
        stored_size: tuple[int, int],
        orientation: int,
        region: tuple[int, int, int, int],
    ) -> None:
        from veil.imaging.decode import orient

        gain = cv2.imdecode(np.frombuffer(gain_map_jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
        if gain is None:
            raise CorruptImageError("the gain map is damaged")
        if gain.ndim == 3:
            gain = cv2.cvtColor(gain, cv2.COLOR_BGR2RGB)
        gain = cv2.resize(gain, stored_size, interpolation=cv2.INTER_LINEAR)
        gain = orient(gain, orientation)
        x0, y0, x1, y1 = region
        self.params = params_of(gain_map_jpeg)
        g = gain[y0:y1, x0:x1].astype(np.float32) / 255.0
        if g.ndim == 2:
            g = g[:, :, None]
        g = np.power(g, 1.0 / self.params.gamma)
        log_boost = self.params.gain_min * (1 - g) + self.params.gain_max * g
        self.boost = np.exp2(log_boost).astype(np.float32)
        self.region = region
        self.scale: float | None = None

    def render(self, pixels: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
        """The HDR view of `pixels[region]`, tone-mapped to 8 bits (the first call fixes the
        scale, so later renditions are comparable)."""
        x0, y0, x1, y1 = self.region
        sdr = _srgb_to_linear(pixels[y0:y1, x0:x1].astype(np.float32) / 255.0)
        p = self.params
        hdr = (sdr + p.offset_sdr) * self.boost - p.offset_hdr
        if self.scale is None:
            self.scale = max(float(np.percentile(hdr, 99.5)), 1e-6)
        out = _linear_to_srgb(hdr / self.scale) * 255.0
        rendered: npt.NDArray[np.uint8] = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return rendered
