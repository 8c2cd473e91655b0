"""Which uploads are animations, and how many frames of what size, from the container alone.

GIF (every GIF, one frame or many: the photo encoders cannot write GIF), PNG with an `acTL`
chunk announcing more than one frame (APNG), WebP with more than one `ANMF` frame. The walk
reads block and chunk headers only (bounded by `veil.imaging.bounds`), and stops as soon as
the frames seen pass the budget of `limits.check_frames`: a 10,000-frame 4000x4000 GIF is
refused after its first frame's header, before any pixel is decoded.
"""

from __future__ import annotations

from veil.animated import gif, limits
from veil.errors import CorruptImageError
from veil.imaging import png, webp
from veil.imaging.probe import ImageInfo

GIF_TYPE = "image/gif"
APNG_TYPE = "image/apng"
WEBP_TYPE = "image/webp"


def kind_of(data: bytes) -> str | None:
    """ "GIF", "PNG" (APNG) or "WEBP" for an animation Veil cloaks frame by frame, None for
    anything else (stills go the photo way). Raises the typed errors of the walk."""
    if gif.is_gif(data):
        return "GIF"
    if data.startswith(png.SIGNATURE) and _apng_frames(data)[0] > 1:
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and _webp_frames(data)[0] > 1:
        return "WEBP"
    return None


def probe_animation(data: bytes, *, max_pixels: int) -> ImageInfo:
    """Format, canvas and frame count; ImageTooLargeError past the limits."""
    kind = kind_of(data)
    if kind == "GIF":
        if len(data) < 13:
            raise CorruptImageError("the GIF is truncated")
        width = int.from_bytes(data[6:8], "little")
        height = int.from_bytes(data[8:10], "little")
        limits.check_frames(1, width, height, max_pixels)
        budget = min(limits.MAX_FRAMES, max_pixels // (width * height))
        try:
            parsed = gif.parse(data, max_frames=budget)
        except gif.TooManyFramesError:
            limits.check_frames(budget + 1, width, height, max_pixels)  # the typed message
            raise
        frames = len(parsed.frames)
        limits.check_frames(frames, width, height, max_pixels)
        return ImageInfo("GIF", GIF_TYPE, width, height, "P", frames > 1, frames=frames)
    if kind == "PNG":
        frames, width, height = _apng_frames(data)
        limits.check_frames(frames, width, height, max_pixels)
        return ImageInfo("PNG", APNG_TYPE, width, height, "RGBA", True, frames=frames)
    if kind == "WEBP":
        frames, width, height = _webp_frames(data)
        limits.check_frames(frames, width, height, max_pixels)
        return ImageInfo("WEBP", WEBP_TYPE, width, height, "RGBA", True, frames=frames)
    raise CorruptImageError("not an animated image")


def _apng_frames(data: bytes) -> tuple[int, int, int]:
    """(frames announced by acTL, width, height); (1, w, h) for a still PNG."""
    width = height = 0
    for kind, payload in png.chunks(data):
        if kind == b"IHDR" and len(payload) >= 8:
            width = int.from_bytes(payload[0:4], "big")
            height = int.from_bytes(payload[4:8], "big")
        elif kind == b"acTL" and len(payload) >= 8:
            return int.from_bytes(payload[0:4], "big"), width, height
        elif kind == b"IDAT":
            break
    return 1, width, height


def _webp_frames(data: bytes) -> tuple[int, int, int]:
    """(ANMF frames, canvas width, canvas height) of an extended WebP; (1, 0, 0) otherwise."""
    chunks = webp.chunks(data)
    if not chunks or chunks[0][0] != b"VP8X" or len(chunks[0][1]) < 10:
        return 1, 0, 0
    header = chunks[0][1]
    width = int.from_bytes(header[4:7], "little") + 1
    height = int.from_bytes(header[7:10], "little") + 1
    frames = sum(1 for kind, _ in chunks if kind == b"ANMF")
    return max(frames, 1), width, height
