"""APNG and animated WebP assembled from full frames, one output frame per input frame.

Pillow's APNG writer and libwebp's animation encoder merge a frame identical to the one
before it into that one (its duration added): the animation looks the same, but has fewer
frames. Where that happened (`pillowframes.encode` counts), the file is assembled here
instead: every frame whole (x = y = 0, canvas size), shown for its own duration, replacing
the previous one (APNG: dispose none, blend source; WebP: no blending, dispose none), each
frame's bitstream encoded by Pillow as a still image.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from veil.imaging import png, webp


def apng(images: Sequence[Image.Image], durations: Sequence[int], loop: int, level: int) -> bytes:
    width, height = images[0].size
    out = [png.SIGNATURE]
    sequence = 0
    for index, image in enumerate(images):
        buffer = io.BytesIO()
        image.save(buffer, "PNG", compress_level=level)
        chunks = list(png.chunks(buffer.getvalue()))
        if index == 0:
            for kind, payload in chunks:
                if kind == b"IHDR":
                    out.append(png.chunk(kind, payload))
                    actl = len(images).to_bytes(4, "big") + loop.to_bytes(4, "big")
                    out.append(png.chunk(b"acTL", actl))
        fctl = (
            sequence.to_bytes(4, "big")
            + width.to_bytes(4, "big")
            + height.to_bytes(4, "big")
            + bytes(8)  # x and y offsets
            + min(int(durations[index]), 65535).to_bytes(2, "big")
            + (1000).to_bytes(2, "big")
            + b"\x00\x00"  # APNG_DISPOSE_OP_NONE, APNG_BLEND_OP_SOURCE
        )
        out.append(png.chunk(b"fcTL", fctl))
        sequence += 1
        for kind, payload in chunks:
            if index == 0 and kind in (b"PLTE", b"tRNS", b"IDAT"):
                out.append(png.chunk(kind, payload))
            elif kind == b"IDAT":
                out.append(png.chunk(b"fdAT", sequence.to_bytes(4, "big") + payload))
                sequence += 1
    out.append(png.chunk(b"IEND", b""))
    return b"".join(out)


def webp_animation(
    images: Sequence[Image.Image],
    durations: Sequence[int],
    loop: int,
    background: tuple[int, int, int, int] | None,
    options: dict[str, object],
    alpha: bool,
) -> bytes:
    """`options`: Pillow's still-WebP save options (lossless / quality, metadata)."""
    width, height = images[0].size
    frames = []
    for index, image in enumerate(images):
        buffer = io.BytesIO()
        frame_options = {
            k: v for k, v in options.items() if k not in ("exif", "xmp", "icc_profile")
        }
        image.save(buffer, "WEBP", **frame_options)
        bitstream = [
            (k, p) for k, p in webp.chunks(buffer.getvalue()) if k in (b"ALPH", b"VP8 ", b"VP8L")
        ]
        header = (
            bytes(6)  # x / 2 and y / 2 offsets
            + (width - 1).to_bytes(3, "little")
            + (height - 1).to_bytes(3, "little")
            + min(int(durations[index]), 0xFFFFFF).to_bytes(3, "little")
            + b"\x02"  # no blending, dispose none
        )
        frames.append((b"ANMF", header + _chunks(bitstream)))
    flags = 0x02 | (0x10 if alpha else 0)  # animation, alpha
    extra: list[tuple[bytes, bytes]] = []
    icc, exif, xmp = options.get("icc_profile"), options.get("exif"), options.get("xmp")
    if isinstance(icc, bytes):
        flags |= 0x20
        extra.append((b"ICCP", icc))
    vp8x = (
        bytes([flags, 0, 0, 0])
        + (width - 1).to_bytes(3, "little")
        + (height - 1).to_bytes(3, "little")
    )
    colour = background or (0, 0, 0, 0)
    anim = bytes([colour[2], colour[1], colour[0], colour[3]]) + loop.to_bytes(2, "little")
    parts = [(b"VP8X", vp8x), *extra, (b"ANIM", anim), *frames]
    if isinstance(exif, bytes):
        parts.append((b"EXIF", exif.removeprefix(b"Exif\x00\x00")))
        flags |= 0x08
    if isinstance(xmp, bytes):
        parts.append((b"XMP ", xmp))
        flags |= 0x04
    parts[0] = (b"VP8X", bytes([flags]) + vp8x[1:])
    body = _chunks(parts)
    return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body


def _chunks(parts: Sequence[tuple[bytes, bytes]]) -> bytes:
    return b"".join(
        kind + len(payload).to_bytes(4, "little") + payload + (b"\x00" if len(payload) & 1 else b"")
        for kind, payload in parts
    )
