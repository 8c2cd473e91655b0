"""Write a cloaked GIF with the input's structure: same blocks, palettes, disposal, delays.

The writer keeps a model of what a browser shows while it writes (`gif.draw` / `gif.dispose`
on its own output), and for each frame compares that with the frame it must show (the
original frame with the cloak added). A frame that already shows right is copied byte for
byte; any other is re-encoded with the same palette (local or global), graphic control
(disposal, delay, transparency) and interlacing, over its own rectangle grown just enough
to cover the pixels that differ (a face the frame does not redraw, or a cloak a previous
frame left behind). Pixels that must change are mapped to the frame's own palette: the
cloaked face with Floyd-Steinberg error diffusion (so the palette's steps, coarser than the
cloak, carry its local means), the rest to the exact or nearest palette colour. The palette
itself never changes, so its size, and a global palette shared by every frame, are kept.

Extensions go through the metadata allow-list: the loop count and ICC profile are kept,
comments are personal, XMP is rebuilt from its allowed properties, anything else dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from PIL import Image

from veil.animated import gif
from veil.animated.gif import Extension, Frame, GifFile
from veil.imaging.metadata import MetadataReport, Policy, container_rule, filter_xmp

U8 = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]

_XMP_APP = b"XMP DataXMP"
_XMP_MAGIC = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"  # trailer + block terminator
_ICC_APP = b"ICCRGBG1012"
_LOOP_APPS = (b"NETSCAPE2.0", b"ANIMEXTS1.0")


def write(
    source: GifFile,
    desired: Iterable[tuple[U8, Mask | None]],
    policy: Policy,
    report: MetadataReport,
) -> bytes:
    """The GIF that shows `desired` (per frame: RGBA canvas [H, W, 4], and the mask [H, W]
    of cloaked pixels to error-diffuse, None for none)."""
    out = [source.header]
    if source.global_palette:
        out.append(source.global_palette)
    canvas = np.zeros((source.height, source.width, 4), np.uint8)
    wanted = iter(desired)
    for block in source.blocks:
        if isinstance(block, Extension):
            kept = _extension(block, policy, report)
            if kept is not None:
                out.append(kept)
            continue
        target, cloaked = next(wanted)
        out.append(_frame(source, block, canvas, target, cloaked))
    out.append(b";")
    return b"".join(out)


def rewrite_metadata(source: GifFile, policy: Policy, report: MetadataReport) -> bytes:
    """The same GIF with the allow-list applied to its extensions; image blocks as stored."""
    out = [source.header]
    if source.global_palette:
        out.append(source.global_palette)
    for block in source.blocks:
        if isinstance(block, Extension):
            kept = _extension(block, policy, report)
            if kept is not None:
                out.append(kept)
        else:
            out.append(block.raw)
    out.append(b";")
    return b"".join(out)


def _extension(block: Extension, policy: Policy, report: MetadataReport) -> bytes | None:
    if block.label == 0xFF and block.identifier[:11] in _LOOP_APPS:
        return block.raw
    if block.label == 0xFF and block.identifier[:11] == _ICC_APP:
        return block.raw if policy.allows(container_rule("GIF ICC profile")) else None
    if block.label == 0xFF and block.identifier[:11] == _XMP_APP:
        raw = block.raw
        if not raw.endswith(_XMP_MAGIC) or len(raw) < 14 + len(_XMP_MAGIC):
            report.add("XMP (unreadable)")
            return None
        packet = filter_xmp(raw[14 : -len(_XMP_MAGIC)], policy, report)
        if packet is None:
            return None
        return b"\x21\xff\x0b" + _XMP_APP + packet + _XMP_MAGIC
    if block.label == 0xFE:
        if policy.allows(container_rule("GIF comment")):
            return block.raw
        report.add("GIF comment")
        return None
    if block.label == 0x01:
        report.add("GIF plain text")
        return None
    name = block.identifier[:8].decode("latin-1", "replace") if block.label == 0xFF else ""
    report.add(f"GIF application extension {name}".strip() if name else "GIF extension")
    return None


def _frame(source: GifFile, frame: Frame, canvas: U8, target: U8, cloaked: Mask | None) -> bytes:
    """One frame's bytes; `canvas` (what is shown so far) is updated as a browser would."""
    indices = gif.indices_of(frame)
    before = canvas[frame.slices()].copy() if frame.disposal == 3 else None
    shown = canvas.copy()
    gif.draw(shown, source, frame, indices)
    differs = np.any(shown != target, axis=2)
    if not differs.any():
        canvas[...] = shown
        gif.dispose(canvas, frame, before)
        return frame.raw
    ys, xs = np.nonzero(differs)
    x0, y0 = min(frame.left, int(xs.min())), min(frame.top, int(ys.min()))
    x1 = max(frame.left + frame.width, int(xs.max()) + 1)
    y1 = max(frame.top + frame.height, int(ys.max()) + 1)
    grown = dataclasses.replace(frame, left=x0, top=y0, width=x1 - x0, height=y1 - y0)
    palette = source.palette_of(frame)
    size = min(len(palette) // 3, 256)
    transparency = frame.transparency
    block, transparency = _indices(
        frame, grown, indices, canvas, differs, transparency, palette, size
    )
    need = differs[grown.slices()]
    region = target[grown.slices()]
    mask = None if cloaked is None else cloaked[grown.slices()] & need
    block[need] = _map_colours(region, need, mask, palette, size, transparency)
    control = frame.control
    added = transparency if transparency != frame.transparency else None
    if control is None and added is not None:
        control = gif.Control(0x00, 0, 0)
    if added is not None and control is not None:
        grown = dataclasses.replace(
            grown, control=gif.Control(control.packed | 0x01, control.delay, added)
        )
    written = canvas[grown.slices()].copy() if grown.disposal == 3 else None
    gif.draw(canvas, source, grown, block)
    gif.dispose(canvas, grown, written)
    head = grown.control.encode() if grown.control is not None else b""
    descriptor = b"," + _u16(x0) + _u16(y0) + _u16(x1 - x0) + _u16(y1 - y0)
    flags = bytes([frame.flags])
    local = frame.local_palette or b""
    return head + descriptor + flags + local + _lzw(block, frame.interlaced)


def _indices(
    frame: Frame,
    grown: Frame,
    indices: U8,
    canvas: U8,
    differs: Mask,
    transparency: int | None,
    palette: bytes,
    size: int,
) -> tuple[U8, int | None]:
    """The grown rectangle's indices before the differing pixels are set: the frame's own
    inside its original rectangle; outside it, "leave as shown" (transparent, or the shown
    colour where the frame has no transparent index and none is free)."""
    height, width = grown.height, grown.width
    block = np.zeros((height, width), np.uint8)
    oy, ox = frame.top - grown.top, frame.left - grown.left
    inside = np.zeros((height, width), bool)
    inside[oy : oy + frame.height, ox : ox + frame.width] = True
    block[inside] = indices.reshape(-1)
    outside = ~inside & ~differs[grown.slices()]
    if not outside.any():
        return block, transparency
    if transparency is None:
        used = set(np.unique(indices).tolist())
        free = [i for i in range(size) if i not in used]
        if free:
            transparency = free[0]
    if transparency is not None:
        block[outside] = transparency
        return block, transparency
    shown = canvas[grown.slices()]
    block[outside] = _nearest(shown[outside][:, :3], palette, size, None)
    return block, None


def _map_colours(
    region: U8,
    need: Mask,
    cloaked: Mask | None,
    palette: bytes,
    size: int,
    transparency: int | None,
) -> U8:
    """Palette indices for the pixels `need` of `region` (RGBA): error-diffused over the
    cloaked ones, nearest colour for the others, transparent where the target is."""
    chosen = np.zeros(region.shape[:2], np.uint8)
    plain = need if cloaked is None else need & ~cloaked
    chosen[plain] = _nearest(region[plain][:, :3], palette, size, transparency)
    if cloaked is not None and cloaked.any():
        ys, xs = np.nonzero(cloaked)
        box = (slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1))
        dithered = _diffuse(region[box][:, :, :3], palette, size, transparency)
        part = chosen[box]
        part[cloaked[box]] = dithered[cloaked[box]]
    clear = need & (region[:, :, 3] == 0)
    if transparency is not None:
        chosen[clear] = transparency
    return chosen[need]


def _valid(size: int, transparency: int | None) -> npt.NDArray[np.int64]:
    return np.array([i for i in range(size) if i != transparency], np.int64)


def _nearest(rgb: U8, palette: bytes, size: int, transparency: int | None) -> U8:
    """Nearest palette entry (squared RGB distance) of each colour [N, 3]."""
    valid = _valid(size, transparency)
    table = gif.colours(palette)[valid].astype(np.int32)
    out = np.empty(len(rgb), np.uint8)
    for start in range(0, len(rgb), 4096):
        part = rgb[start : start + 4096].astype(np.int32)
        distance = ((part[:, None, :] - table[None, :, :]) ** 2).sum(axis=2)
        out[start : start + 4096] = valid[distance.argmin(axis=1)]
    return out


def _diffuse(rgb: U8, palette: bytes, size: int, transparency: int | None) -> U8:
    """Floyd-Steinberg onto the palette (Pillow), never choosing the transparent index or
    an entry past the palette's end."""
    valid = _valid(size, transparency)
    table = gif.colours(palette)
    lookup = np.zeros(256, np.uint8)
    entries = np.zeros((256, 3), np.uint8)
    allowed = set(valid.tolist())
    for slot in range(256):
        index = slot if slot in allowed else int(valid[0])
        lookup[slot] = index
        entries[slot] = table[index]
    holder = Image.new("P", (1, 1))
    holder.putpalette(entries.tobytes())
    image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    quantised = image.quantize(palette=holder, dither=Image.Dither.FLOYDSTEINBERG)
    return lookup[np.asarray(quantised, np.uint8)]


def _lzw(indices: U8, interlaced: bool) -> bytes:
    """Minimum code size 8, the LZW sub-blocks (Pillow's encoder), the terminator."""
    image = Image.fromarray(np.ascontiguousarray(indices), "P")
    return b"\x08" + image.tobytes("gif", "P", 8, int(interlaced)) + b"\x00"


def _u16(value: int) -> bytes:
    return value.to_bytes(2, "little")
