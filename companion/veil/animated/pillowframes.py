"""Animated WebP and APNG through Pillow: composited frames in, the same animation out.

Pillow composites each frame onto the canvas (WebP through libwebp's animation decoder,
APNG with its disposal and blend operations), so every frame comes out as the full picture
a browser shows. They are written back as full frames: libwebp's animation encoder and
Pillow's APNG writer cut each to the rectangle that changed and pick disposal and blending
themselves (where they merged identical frames, `assemble` writes one whole frame per input
frame instead), so the frames shown, their durations, the loop count, lossless or lossy (WebP)
and the alpha channel are kept, not the input's exact rectangles (only GIFs keep those,
`veil.animated.gifwrite`). Metadata: EXIF and XMP through the allow-list, the ICC profile
kept, as for still WebP and PNG.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from veil.animated import assemble
from veil.errors import CorruptImageError, ImageTooLargeError
from veil.imaging import png, webp
from veil.imaging.metadata import MetadataReport, Policy, filter_exif, filter_xmp

U8 = npt.NDArray[np.uint8]

LOSSY_QUALITY = 95
"""Lossy WebP quality, as for still WebP (there is no quality to read back)."""
PNG_COMPRESS_LEVEL = 3


@dataclass(frozen=True)
class Animation:
    """The composited frames and how they are played."""

    format: str  # "WEBP" or "PNG"
    frames: list[U8]  # RGBA [H, W, 4] each
    durations: list[int]  # milliseconds
    loop: int  # 0: forever
    has_alpha: bool  # any frame not wholly opaque
    background: tuple[int, int, int, int] | None  # WebP canvas background
    # An APNG's default image that is not part of the animation (what viewers without APNG
    # support show): a picture of its own, never cloaked, so never written back.
    default_image: bool = False


def decode(data: bytes, frame_count: int) -> Animation:
    """Every frame as shown (RGBA); CorruptImageError for damaged or truncated data."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or ""
            frames: list[U8] = []
            durations: list[int] = []
            # Pillow counts an APNG's separate default image as frame 0.
            skip = 1 if fmt == "PNG" and image.info.get("default_image") else 0
            for index in range(frame_count):
                image.seek(index + skip)
                image.load()
                frames.append(np.array(image.convert("RGBA"), np.uint8))
                durations.append(int(image.info.get("duration", 0) or 0))
            loop = int(image.info.get("loop", 0) or 0)
            background = image.info.get("background")
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image too large to decode: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImageError(f"the animation's data is damaged or truncated: {exc}") from exc
    if not frames:
        raise CorruptImageError("the animation has no frame")
    has_alpha = any(bool((f[:, :, 3] != 255).any()) for f in frames)
    bg = None
    if isinstance(background, tuple) and len(background) == 4:
        r, g, b, a = (int(v) for v in background)
        bg = (r, g, b, a)
    return Animation(fmt, frames, durations, loop, has_alpha, bg, bool(skip))


def encode(
    source: bytes,
    animation: Animation,
    frames: Sequence[U8],
    policy: Policy,
    report: MetadataReport,
) -> bytes:
    """The frames (RGBA) as the input's kind of animation."""
    mode = "RGBA" if animation.has_alpha else "RGB"
    images = [Image.fromarray(np.ascontiguousarray(f if mode == "RGBA" else f[:, :, :3]), mode)
              for f in frames]  # fmt: skip
    buffer = io.BytesIO()
    if animation.format == "WEBP":
        options = _webp_metadata(source, policy, report)
        if is_lossless(source):
            options.update(lossless=True, exact=True)
        else:
            options.update(quality=LOSSY_QUALITY)
        if animation.background is not None:
            options["background"] = animation.background
        images[0].save(
            buffer,
            "WEBP",
            save_all=True,
            append_images=images[1:],
            duration=list(animation.durations),
            loop=animation.loop,
            minimize_size=False,
            allow_mixed=False,
            **options,
        )
        out = buffer.getvalue()
        if sum(1 for kind, _ in webp.chunks(out) if kind == b"ANMF") == len(images):
            return out
        return assemble.webp_animation(
            images,
            animation.durations,
            animation.loop,
            animation.background,
            options,
            animation.has_alpha,
        )
    images[0].save(
        buffer,
        "PNG",
        save_all=True,
        append_images=images[1:],
        duration=list(animation.durations),
        loop=animation.loop,
        disposal=0,
        blend=0,
        default_image=False,
        compress_level=PNG_COMPRESS_LEVEL,
    )
    if animation.default_image:
        report.add("APNG default image")
    out = buffer.getvalue()
    if _apng_frames(out) != len(images):
        out = assemble.apng(images, animation.durations, animation.loop, PNG_COMPRESS_LEVEL)
    return png.splice_metadata(out, source, keep_metadata=policy.keep_metadata, report=report)


def _apng_frames(data: bytes) -> int:
    for kind, payload in png.chunks(data):
        if kind == b"acTL":
            return int.from_bytes(payload[:4], "big")
    return 1


def is_lossless(data: bytes) -> bool:
    """Whether an animated WebP's frames are lossless (VP8L), looking inside its frames."""
    for kind, payload in webp.chunks(data):
        if kind == b"ANMF" and len(payload) >= 24:
            return payload[16:20] == b"VP8L"
    return webp.is_lossless(data)


def _webp_metadata(data: bytes, policy: Policy, report: MetadataReport) -> dict[str, object]:
    options: dict[str, object] = {}
    for kind, payload in webp.chunks(data):
        if kind == b"ICCP":
            options["icc_profile"] = payload
        elif kind == b"EXIF":
            exif = filter_exif(payload, policy, report, reset_orientation=True)
            if exif:
                options["exif"] = exif
        elif kind == b"XMP ":
            xmp = filter_xmp(payload, policy, report)
            if xmp:
                options["xmp"] = xmp
        elif kind not in (b"VP8X", b"ANIM", b"ANMF", b"VP8 ", b"VP8L", b"ALPH"):
            report.add(f"WebP chunk {kind.decode('latin-1').strip()}")
    return options
