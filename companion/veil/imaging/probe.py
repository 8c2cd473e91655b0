"""Probe: what an upload is (format, size) from its header alone, before any pixel is decoded.

The server calls `probe` to refuse oversized photos before decoding them; the decoder calls it
first for the same reason. Pillow's `Image.open` is lazy: it parses the header only.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, features

from veil.errors import CorruptImageError, ImageTooLargeError, UnsupportedFormatError

DEFAULT_MAX_PIXELS = 100_000_000
"""Largest photo Veil decodes: 100 megapixels (about 300 MB of RGB pixels)."""

# Pillow's own bomb guard warns above MAX_IMAGE_PIXELS and raises above twice that. We check
# sizes ourselves against `max_pixels`; Pillow's guard stays as a backstop for code paths that
# open images without us (it raises DecompressionBombError, which we map to a typed error).
Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS

# Pillow's warnings (bomb warnings, "Corrupt EXIF data", "Truncated File Read"...) are about
# input Veil judges itself: silence them once, process-wide. A `catch_warnings` block per
# call reset Python's "print once" registry, so every call printed them again (4 MB of log
# for one JPEG with a broken EXIF block), and it is not thread-safe either.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
warnings.filterwarnings("ignore", module="PIL")

try:  # HEIC/HEIF where pillow-heif is installed (optional dependency `veil[heic]`).
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the installation
    HEIF_AVAILABLE = False

# Pillow format name -> media type, for the formats Veil cloaks.
MEDIA_TYPES: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
}
if HEIF_AVAILABLE:
    MEDIA_TYPES["HEIF"] = "image/heic"
AVIF_AVAILABLE = bool(features.check("avif"))  # Pillow >= 11.2 built with libavif
if AVIF_AVAILABLE:
    MEDIA_TYPES["AVIF"] = "image/avif"

# File signatures of formats we cloak: bytes that start like this but fail to parse are
# corrupt, not "some other format".
_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    (0, b"\xff\xd8"),  # JPEG
    (0, b"\x89PNG\r\n\x1a\n"),  # PNG
    (8, b"WEBP"),  # RIFF....WEBP
    (4, b"ftypheic"),
    (4, b"ftypheix"),
    (4, b"ftypmif1"),
    (4, b"ftyphevc"),
    (4, b"ftypavif"),
    (4, b"ftypavis"),
)

# GIFs (and animations) are cloaked by `veil.animated`, never decoded as still photos; this
# is what the still path says if one reaches it anyway.
_REFUSED_REASON = {
    "GIF": "GIF goes through the animation path (veil.animated), not the photo decoder",
}


@dataclass(frozen=True)
class ImageInfo:
    """What the header says about an image."""

    format: str  # Pillow's name: "JPEG", "PNG", "WEBP", "HEIF"
    media_type: str  # "image/jpeg", ...
    width: int  # as stored, before EXIF orientation
    height: int
    mode: str  # Pillow mode as stored: "RGB", "L", "CMYK", "P", "I;16", ...
    animated: bool
    progressive: bool = False  # a progressive JPEG (every scan must be decoded, at any scale)
    frames: int = 1  # animations (`veil.animated`): the frames to decode

    @property
    def pixels(self) -> int:
        """Pixels decoded: every frame of an animation (what memory and work scale with)."""
        return self.width * self.height * self.frames


def looks_supported(data: bytes) -> bool:
    """Whether the bytes start with the signature of a format Veil cloaks."""
    return any(data[offset : offset + len(sig)] == sig for offset, sig in _SIGNATURES)


def check_container(data: bytes) -> None:
    """Walk the container within the work bounds of `veil.imaging.bounds` before Pillow
    parses it: marker and chunk structure, segment/chunk counts, inflated metadata sizes.
    HEIC/AVIF: boxes, items and the bytes their items declare (`veil.imaging.heif`);
    libheif applies its own limits too, and the metadata sizes are checked after opening."""
    from veil.imaging import heif, jpeg, png, webp  # they import metadata: Pillow

    if data.startswith(b"\xff\xd8"):
        jpeg.split(data, header_only=True)  # decode walks the scans (and counts them)
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        png.check_structure(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        webp.chunks(data)
    elif data[4:8] == b"ftyp" and (looks_supported(data) or _heif_accepts(data)):
        heif.check_structure(data)  # what libheif would parse; other ISO-BMFF (MP4) is not


def _heif_accepts(data: bytes) -> bool:
    """Whether pillow-heif would hand these bytes to libheif (its check: the major brand)."""
    return HEIF_AVAILABLE and bool(pillow_heif.is_supported(io.BytesIO(data[:12])))


def open_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[Image.Image, ImageInfo]:
    """Open lazily (header only) and validate: supported, not animated, not too large."""
    if not data:
        raise CorruptImageError("the file is empty (zero bytes)")
    if data.startswith((b"GIF87a", b"GIF89a")):  # refused before Pillow parses it at all
        raise UnsupportedFormatError(_REFUSED_REASON["GIF"])
    check_container(data)
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image too large to decode: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if looks_supported(data):
            raise CorruptImageError(f"the image header is damaged: {exc}") from exc
        raise UnsupportedFormatError(
            f"not a supported image ({', '.join(_supported_names())}); {_what_it_is(data)}"
        ) from exc
    fmt = image.format or ""
    multi_picture = fmt == "MPO"
    if multi_picture:
        # A JPEG whose MPF index lists secondary images (stereo views, previews, gain maps):
        # the primary image is an ordinary JPEG; the others are decided on in `jpeg.rebuild`.
        fmt = "JPEG"
    if fmt not in MEDIA_TYPES:
        image.close()
        reason = _REFUSED_REASON.get(fmt, f"{fmt or 'this'} images are not cloaked")
        raise UnsupportedFormatError(reason)
    width, height = image.size
    animated = not multi_picture and bool(getattr(image, "is_animated", False))
    progressive = fmt == "JPEG" and bool(
        image.info.get("progressive") or image.info.get("progression")
    )
    info = ImageInfo(fmt, MEDIA_TYPES[fmt], width, height, image.mode, animated, progressive)
    if width <= 0 or height <= 0:
        image.close()
        raise CorruptImageError("the image header announces an empty image")
    if info.pixels > max_pixels:
        image.close()
        raise ImageTooLargeError(
            f"{width}x{height} is {info.pixels / 1e6:.0f} megapixels; "
            f"the limit is {max_pixels / 1e6:.0f}"
        )
    if animated:  # `probe` sends animations to `veil.animated` before any decode
        image.close()
        raise UnsupportedFormatError("an animated image reached the still-photo decoder")
    return image, info


def _supported_names() -> list[str]:
    names = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "HEIF": "HEIC", "AVIF": "AVIF"}
    return [names[f] for f in MEDIA_TYPES]


# Signatures of formats Veil does not cloak, so the refusal names what the file is.
_KNOWN_OTHERS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"II*\x00", "a TIFF or camera raw file"),
    (0, b"MM\x00*", "a TIFF or camera raw file"),
    (0, b"BM", "a BMP image"),
    (0, b"\xff\x0a", "a JPEG XL image"),
    (0, b"\x00\x00\x00\x0cJXL ", "a JPEG XL image"),
    (0, b"%PDF", "a PDF document"),
    (0, b"<svg", "an SVG drawing"),
    (0, b"<?xml", "an XML document (SVG?)"),
    (4, b"ftypavif", "an AVIF image (this Pillow has no AVIF support)"),
    (4, b"ftypheic", "a HEIC image (install veil[heic] for HEIC support)"),
    (4, b"ftypqt", "a QuickTime video"),
    (4, b"ftypisom", "an MP4 video"),
    (4, b"ftypmp4", "an MP4 video"),
    (4, b"ftypcrx", "a Canon CR3 raw file"),
)


def _what_it_is(data: bytes) -> str:
    for offset, signature, name in _KNOWN_OTHERS:
        if data[offset : offset + len(signature)] == signature:
            return f"this is {name}"
    return "the file type was not recognised"


def probe(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Format and size from the header only, without decoding pixels.

    Raises UnsupportedFormatError, CorruptImageError or ImageTooLargeError. GIFs, APNGs and
    animated WebPs are probed by `veil.animated.probe` (frames x canvas within `max_pixels`).
    """
    from veil.animated.probe import kind_of, probe_animation

    if data and kind_of(data) is not None:
        return probe_animation(data, max_pixels=max_pixels)
    image, info = open_image(data, max_pixels=max_pixels)
    image.close()
    return info
