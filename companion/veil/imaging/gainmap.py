"""Gain-map HDR renditions (Ultra HDR / ISO 21496-1 JPEGs), to check that a cloak survives.

A gain-map JPEG shows its primary (SDR) image on ordinary screens; HDR screens show the
primary multiplied, pixel by pixel, by 2^(gain) read from a second, smaller JPEG. After a
cloak the primary carries the cloak and the gain map is the original's: the engine renders
the HDR view of the original and of the cloaked photo here and keeps the gain map only
when the recognisers' cosines show that the HDR view carries the cloak (see
`Engine._gain_map_carries_cloak`). The rendering follows the Ultra HDR formula with the
gain map's hdrgm parameters (defaults where absent), tone-mapped back to 8 bits with one
exposure for the whole photo, the same for the original and the cloaked rendition.
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
        self.params = params_of(gain_map_jpeg)
        self.small_boost = self._boost(orient(gain, orientation))
        gain = cv2.resize(gain, stored_size, interpolation=cv2.INTER_LINEAR)
        gain = orient(gain, orientation)
        x0, y0, x1, y1 = region
        self.boost = self._boost(gain[y0:y1, x0:x1])
        self.region = region
        self.scale: float | None = None

    def _boost(self, gain: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        g = gain.astype(np.float32) / 255.0
        if g.ndim == 2:
            g = g[:, :, None]
        g = np.power(g, 1.0 / self.params.gamma)
        log_boost = self.params.gain_min * (1 - g) + self.params.gain_max * g
        boost: npt.NDArray[np.float32] = np.exp2(log_boost).astype(np.float32)
        return boost

    def _hdr(self, pixels: npt.NDArray[Any], boost: npt.NDArray[np.float32]) -> Any:
        sdr = _srgb_to_linear(pixels.astype(np.float32) / 255.0)
        return (sdr + self.params.offset_sdr) * boost - self.params.offset_hdr

    def fix_scale(self, pixels: npt.NDArray[Any]) -> None:
        """Tone-map with one exposure for the whole photo: the 99.5th percentile of its HDR
        view (computed at the gain map's resolution) maps to white."""
        height, width = self.small_boost.shape[:2]
        small = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
        self.scale = max(float(np.percentile(self._hdr(small, self.small_boost), 99.5)), 1e-6)

    def mean_boost(self, box: tuple[int, int, int, int]) -> float:
        """Mean gain (linear factor) over a box of the full photo (inside the region)."""
        x0, y0, x1, y1 = box
        rx, ry = self.region[0], self.region[1]
        part = self.boost[max(y0 - ry, 0) : y1 - ry, max(x0 - rx, 0) : x1 - rx]
        return float(part.mean()) if part.size else 1.0

    def expose(self, crop: npt.NDArray[np.float32], boost: float) -> npt.NDArray[np.float32]:
        """An SDR crop (float 0..1) shown with one constant gain and this rendition's
        exposure: the HDR view the face would have if the gain map were flat over it."""
        assert self.scale is not None
        p = self.params
        hdr = (_srgb_to_linear(crop) + p.offset_sdr) * boost - p.offset_hdr
        return _linear_to_srgb(hdr / self.scale)

    def render(self, pixels: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
        """The HDR view of `pixels[region]` (full-size upright pixels), tone-mapped to
        8 bits with the scale of `fix_scale` (that of the first rendition if not called)."""
        x0, y0, x1, y1 = self.region
        hdr = self._hdr(pixels[y0:y1, x0:x1], self.boost)
        if self.scale is None:
            self.scale = max(float(np.percentile(hdr, 99.5)), 1e-6)
        out = _linear_to_srgb(hdr / self.scale) * 255.0
        rendered: npt.NDArray[np.uint8] = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return rendered


_INVERSE_ORIENTATION = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}


def flatten_regions(gain_map_jpeg: bytes, mask: npt.NDArray[np.float32], orientation: int) -> bytes:
    """The gain map with the masked regions (upright full-size `mask`, 0..1) replaced by
    their mean gain, feathered at the edges: there the gain map no longer draws the face
    (seen alone it was a grey copy of it) and the HDR view of the face is the cloaked
    primary times a constant. The gain map's own metadata segments are kept."""
    from veil.imaging import jpeg
    from veil.imaging.decode import orient

    gain = cv2.imdecode(np.frombuffer(gain_map_jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    if gain is None:
        raise CorruptImageError("the gain map is damaged")
    stored_mask = orient(mask, _INVERSE_ORIENTATION.get(orientation, 1))
    small = cv2.resize(
        stored_mask, (gain.shape[1], gain.shape[0]), interpolation=cv2.INTER_AREA
    ).astype(np.float32)
    weight = small if gain.ndim == 2 else small[:, :, None]
    inside = small > 0.5
    if not inside.any():
        return gain_map_jpeg
    mean = gain[inside].mean(axis=0)
    flat = gain.astype(np.float32) * (1 - weight) + mean * weight
    out = np.clip(np.rint(flat), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:  # pragma: no cover - OpenCV fails only on impossible shapes
        raise CorruptImageError("the gain map could not be re-encoded")
    original = jpeg.split(gain_map_jpeg)
    kept = [s for s in original.metadata if s[1] not in (0xE0, 0xEE)]
    new = jpeg.split(encoded.tobytes())
    head = [s for s in new.metadata if s[1] in (0xE0, 0xEE)]
    return jpeg.join([*head, *kept], new.structure)
