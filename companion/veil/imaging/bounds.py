"""Work and memory bounds for parsing untrusted photos, checked before Pillow sees them.

A photo of at most 50 MB must never cost more than a bounded amount of memory or parsing
time. Pillow's own parsers walk JPEG segments and PNG chunks one at a time in Python and
inflate PNG text chunks on demand, so a small upload could ask for gigabytes or minutes
(tests/hostile_inputs.py has the bombs; build/bench/fuzz_companion.py measures them). The
container walkers in `jpeg`, `png` and `webp` count what they see against these limits and
refuse with `ImageTooComplexError` (HTTP 413 `image_too_large`) as soon as one is passed.
"""

from __future__ import annotations

import zlib

from PIL import PngImagePlugin

from veil.errors import ImageTooLargeError

MAX_INFLATED_BYTES = PngImagePlugin.MAX_TEXT_CHUNK
"""One compressed metadata item (PNG zTXt/iTXt/iCCP, which hold EXIF/XMP profiles too)
inflates to at most this: Pillow's own per-chunk limit (1 MiB), so both parsers agree."""

MAX_METADATA_BYTES = 16 * 1024 * 1024
"""All metadata of one photo together (inflated text, EXIF, XMP, ICC), HEIC boxes included."""

MAX_JPEG_SEGMENTS = 1024
"""Marker segments in one JPEG (a camera JPEG has 10 to 40; a progressive one ~30 more)."""

MAX_JPEG_METADATA_SEGMENTS = 128
"""APPn and COM segments: 128 x 64 KB = 8 MB of metadata (extended XMP depth maps fit).
Pillow's APPn handling is quadratic in their number (700 took 11 s)."""

MAX_JPEG_SCANS = 256
"""Scans (SOS) in one JPEG: libjpeg re-walks the coefficients for each one; a real
progressive JPEG has about 10 (libjpeg-turbo's own tools refuse more than 500)."""

MAX_PNG_CHUNKS = 65536
"""Chunks in one PNG: a 50 MB file written with 8 KB IDAT chunks (libpng) has ~6,400."""

MAX_PNG_ANCILLARY_CHUNKS = 1024
"""Chunks other than IDAT: a few dozen in any real file."""

MAX_WEBP_CHUNKS = 4096
"""RIFF chunks in one WebP (a still image has at most a handful; an animated one has one
ANMF chunk per frame, and at most `veil.animated.limits.MAX_FRAMES` frames)."""

MAX_HEIF_BOXES = 1024
"""Boxes at the top level of a HEIC/AVIF, and inside its `meta` box (a photo has ~10)."""

MAX_HEIF_ITEMS = 1000
"""Items in a HEIC `iloc` box: libheif's own default limit (a 512-px-tiled 48 MP photo
has ~200 tiles plus thumbnails and metadata)."""

MAX_HEIF_EXTENTS_PER_ITEM = 32
"""Extents of one HEIC item: libheif's own default limit."""


class ImageTooComplexError(ImageTooLargeError):
    """The file is within the byte limit but asks for more parsing work or memory than
    Veil spends on one photo (a decompression or parser bomb)."""


def inflate(data: bytes, what: str, *, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """zlib-inflate at most `limit` bytes; refuse (never truncate) a stream that has more."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, limit)  # zlib.error for a damaged stream: caller's call
    if inflater.unconsumed_tail:
        raise ImageTooComplexError(
            f"the {what} inflates to more than {limit // 1024} KB (a decompression bomb?)"
        )
    return out


def check_metadata_size(size: int, what: str) -> None:
    if size > MAX_METADATA_BYTES:
        raise ImageTooComplexError(
            f"the {what} is {size / 1e6:.1f} MB; Veil accepts at most "
            f"{MAX_METADATA_BYTES // (1024 * 1024)} MB of metadata per photo"
        )


def too_many(count_name: str, limit: int) -> ImageTooComplexError:
    return ImageTooComplexError(
        f"the file has more than {limit} {count_name}; Veil does not parse that many"
    )
