"""Videos told from photos by their first bytes, without importing PyAV (so `veil cloak`
on a folder of photos never loads FFmpeg)."""

from __future__ import annotations

from pathlib import Path

# ISO-BMFF major brands of still images: those files are photos (HEIC, AVIF), not videos.
_IMAGE_BRANDS = {
    b"heic",
    b"heix",
    b"heim",
    b"heis",
    b"hevc",
    b"hevx",
    b"mif1",
    b"msf1",
    b"avif",
    b"avis",
    b"jxl ",
    b"crx ",
}
# QuickTime files may start with one of these atoms instead of `ftyp`.
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip"}
_EBML = b"\x1a\x45\xdf\xa3"

MEDIA_TYPES = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "3gp": "video/3gpp",
    "webm": "video/webm",
    "matroska": "video/x-matroska",
}


def sniff(head: bytes) -> str | None:
    """The muxer name to write a video like this one ("mp4", "mov", "3gp", "webm",
    "matroska"), or None when the bytes do not start like a video container."""
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            return None
        if brand == b"qt  ":
            return "mov"
        if brand.startswith(b"3g"):
            return "3gp"
        return "mp4"
    if head[4:8] in _QUICKTIME_ATOMS:
        return "mov"
    if head.startswith(_EBML):
        return "webm" if b"webm" in head[:64] else "matroska"
    return None


def is_video_file(path: Path) -> bool:
    """Whether `path` starts like a video container (a few bytes read, nothing decoded)."""
    try:
        with open(path, "rb") as handle:
            return sniff(handle.read(64)) is not None
    except OSError:
        return False
