"""HDR10 static metadata: read from the decoded video, written again by x265 or SVT-AV1.

An HDR10 video carries, besides its PQ transfer and BT.2020 tags, the colour volume of the
display it was mastered on (SMPTE ST 2086: the primaries, white point and luminance range)
and its content light levels (CTA-861.3: MaxCLL, MaxFALL). FFmpeg's decoder puts them on
every frame as side data (from the HEVC stream's SEI messages; FFmpeg also copies a
container's `mdcv`/`clli` boxes there, untested here). The encoder does not take them from
the frames (FFmpeg's libx265 wrapper reads them from the encoder context's side data, which
PyAV cannot set), so they are passed to x265 as its own parameters, which write the same
SEI messages into the new stream. SVT-AV1 takes them the same way (`svtav1-params`) and
writes AV1's metadata OBUs.

HEVC (libx265) and AV1 (libsvtav1) keep them. VP9 cannot: its HDR10 metadata lives only in
the WebM container's Colour element, which FFmpeg's muxer fills from stream side data that
PyAV cannot set either. Dolby Vision RPUs are not re-written (docs/video.md).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from av.video.frame import VideoFrame

from veil.video.frames import side_data

CHROMA_UNIT = 50000
"""x265's (and the SEI message's) unit for a chromaticity coordinate: 0.00002."""
LUMINANCE_UNIT = 10000
"""... and for a luminance: 0.0001 cd/m2."""

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Hdr10:
    """The input's static HDR metadata, in x265's integer units."""

    # (green x, y, blue x, y, red x, y, white x, y) in CHROMA_UNIT, then max and min
    # luminance in LUMINANCE_UNIT: x265's `master-display` order. None: not in the input.
    mastering: tuple[int, ...] | None
    light: tuple[int, int] | None  # MaxCLL, MaxFALL (cd/m2); None: not in the input
    # The same mastering display as read, in plain units (chromaticity, cd/m2): SVT-AV1
    # takes decimals, and AV1 stores finer steps than x265's units (1/65536).
    mastering_exact: tuple[float, ...] | None = None

    def x265_params(self) -> str:
        """The x265 parameters that write the same metadata (":"-joined, no leading ":")."""
        params = []
        if self.mastering is not None:
            g, b, r, w = (self.mastering[i : i + 2] for i in (0, 2, 4, 6))
            high, low = self.mastering[8:]
            params.append(
                f"master-display=G({g[0]},{g[1]})B({b[0]},{b[1]})R({r[0]},{r[1]})"
                f"WP({w[0]},{w[1]})L({high},{low})"
            )
        if self.light is not None:
            # hdr10=1: x265 writes the light level message even when both are 0 ("unknown",
            # still what the input said); it writes none unless told or given a non-zero value.
            params += [f"max-cll={self.light[0]},{self.light[1]}", "hdr10=1"]
        else:
            # With a mastering display x265 would add a light level message of 0,0 that the
            # input did not have.
            params.append("cll=0")
        return ":".join(params)

    def svtav1_params(self) -> str:
        """The SVT-AV1 parameters that write the same metadata (":"-joined)."""
        params = []
        exact = self.mastering_exact
        if exact is not None:
            g, b, r, w = (exact[i : i + 2] for i in (0, 2, 4, 6))
            high, low = exact[8:]
            params.append(
                f"mastering-display=G({_dec(g[0])},{_dec(g[1])})B({_dec(b[0])},{_dec(b[1])})"
                f"R({_dec(r[0])},{_dec(r[1])})WP({_dec(w[0])},{_dec(w[1])})"
                f"L({_dec(high)},{_dec(low)})"
            )
        if self.light is not None:
            params.append(f"content-light={self.light[0]},{self.light[1]}")
        return ":".join(params)


def _dec(value: float) -> str:
    """A decimal SVT-AV1 parses back to the same AV1 fixed-point value (9 places)."""
    return f"{value:.9f}".rstrip("0").rstrip(".") or "0"


_HDR10_SIDE_DATA = frozenset({"MASTERING_DISPLAY_METADATA", "CONTENT_LIGHT_LEVEL"})


def read_hdr10(frame: VideoFrame) -> Hdr10 | None:
    """The frame's mastering display and content light level side data, None without
    either. Values outside what the SEI messages can hold (a hostile file) are left out."""
    mastering = light = exact = None
    for name, raw in side_data(frame, _HDR10_SIDE_DATA):
        if name == "MASTERING_DISPLAY_METADATA":
            found = _mastering(raw)
            mastering, exact = found if found is not None else (None, None)
        elif name == "CONTENT_LIGHT_LEVEL" and len(raw) == 8:
            cll, fall = struct.unpack("<2I", raw)
            if cll <= _U16 and fall <= _U16:
                light = (cll, fall)
    if mastering is None and light is None:
        return None
    return Hdr10(mastering, light, exact)


def _mastering(raw: bytes) -> tuple[tuple[int, ...], tuple[float, ...]] | None:
    """FFmpeg's AVMasteringDisplayMetadata: 10 rationals (red, green, blue x/y; white x/y;
    min, max luminance), then has_primaries and has_luminance. x265 wants both parts.
    Returns the values in x265's order twice: in x265's units, and as plain numbers."""
    if len(raw) != 88:
        return None
    ints = struct.unpack("<22i", raw)
    rationals = [(ints[2 * k], ints[2 * k + 1]) for k in range(10)]
    has_primaries, has_luminance = ints[20:]
    if not (has_primaries and has_luminance):
        return None
    order = (2, 3, 4, 5, 0, 1, 6, 7, 9, 8)  # red, green, blue, white, min, max -> x265's
    units = (CHROMA_UNIT,) * 8 + (LUMINANCE_UNIT,) * 2
    ceilings = (_U16,) * 8 + (_U32,) * 2
    values = [
        _units(rationals[k], unit, ceiling)
        for k, unit, ceiling in zip(order, units, ceilings, strict=True)
    ]
    if any(v is None for v in values):
        return None
    exact = tuple(rationals[k][0] / rationals[k][1] for k in order)
    return tuple(v for v in values if v is not None), exact


def _units(rational: tuple[int, int], unit: int, ceiling: int) -> int | None:
    num, den = rational
    if den <= 0 or num < 0:
        return None
    value = round(num * unit / den)
    return value if value <= ceiling else None
