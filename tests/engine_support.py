"""Shared helpers for the engine tests: the shared faces folder and hand-built test files."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from corpus import require_faces

if TYPE_CHECKING:
    from veil.engine import Engine
    from veil.profiles import Profile

REPO = Path(__file__).resolve().parents[1]


def faces_dir() -> Path:
    """The face corpus (corpus.py); skips the test when it is absent, fails it under CI."""
    return require_faces()


def face_photo(max_side: int = 1200) -> bytes:
    """A real one-face photo, shrunk so that tests stay fast, as a quality-92 JPEG."""
    src = faces_dir() / "photos" / "Scarlett_Johansson" / "img49.jpg"
    with Image.open(src) as image:
        image.draft("RGB", (max_side, max_side))
        image = image.convert("RGB")
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        return jpeg_bytes(image, quality=92)


def textured(width: int, height: int, seed: int = 0) -> Image.Image:
    """A deterministic face-free picture: smooth gradient plus fine noise texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 200, y / height * 200, (x + y) / (width + height) * 255], axis=2)
    noise = rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(base + noise + 20, 0, 255).astype(np.uint8), "RGB")


def jpeg_bytes(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def identifying_exif(orientation: int = 1) -> Image.Exif:
    """EXIF with GPS, serial numbers, owner names and harmless camera fields."""
    exif = Image.Exif()
    exif[0x010F] = "VeilCam"  # Make
    exif[0x0110] = "Model 7"  # Model
    exif[0x013B] = "Jane Doe"  # Artist
    exif[0x0112] = orientation
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 24.0)
    gps[3], gps[4] = "E", (2.0, 21.0, 3.0)
    sub = exif.get_ifd(0x8769)
    sub[0xA431] = "BODY-SN-12345"  # BodySerialNumber
    sub[0xA435] = "LENS-SN-67890"  # LensSerialNumber
    sub[0xA430] = "Jane Doe"  # CameraOwnerName
    sub[0x829A] = 0.01  # ExposureTime
    return exif


def with_thumbnail(exif_bytes: bytes, thumbnail: bytes) -> bytes:
    """Add an IFD1 (JPEG thumbnail) to Pillow-written EXIF bytes ("Exif\\0\\0" + TIFF)."""
    prefix, tiff = exif_bytes[:6], bytearray(exif_bytes[6:])
    order = "<" if tiff[:2] == b"II" else ">"
    ifd0 = struct.unpack(order + "I", tiff[4:8])[0]
    count = struct.unpack(order + "H", tiff[ifd0 : ifd0 + 2])[0]
    link = ifd0 + 2 + 12 * count
    ifd1 = len(tiff) + (len(tiff) & 1)
    tiff += b"\x00" * (ifd1 - len(tiff))
    data_at = ifd1 + 2 + 2 * 12 + 4
    tiff += struct.pack(order + "H", 2)
    tiff += struct.pack(order + "HHII", 0x0201, 4, 1, data_at)
    tiff += struct.pack(order + "HHII", 0x0202, 4, 1, len(thumbnail))
    tiff += struct.pack(order + "I", 0) + thumbnail
    tiff[link : link + 4] = struct.pack(order + "I", ifd1)
    return prefix + bytes(tiff)


def huge_png_header(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG whose header announces width x height pixels (no real pixel data)."""
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def gif_bomb() -> bytes:
    """A tiny GIF whose logical screen claims 65535 x 65535 pixels."""
    header = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00"
    image = b"\x2c" + struct.pack("<HHHH", 0, 0, 65535, 65535) + b"\x00"
    return header + image + b"\x02\x02\x4c\x01\x00\x3b"


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'


def enrol_matt_damon(engine: Engine) -> Profile:
    """Matt Damon enrolled (the product's `build_profile`, every recogniser, 2 optimiser
    steps so that tests stay fast) from three of his photos; `img33.jpg` is kept back as an
    upload. Returns the profile (not saved)."""
    from veil import personal
    from veil.enrolment import EnrolPhoto, build_profile, enrolment_faces
    from veil.modelstore import get_store
    from veil.recognizers import load_recognizers

    folder = faces_dir() / "photos" / "Matt_Damon"
    enrol = [p for p in sorted(folder.glob("*.jpg")) if p.name != "img33.jpg"][:3]
    faces = enrolment_faces(engine, [EnrolPhoto(p.name, p.read_bytes()) for p in enrol])
    store = get_store()
    everyone = load_recognizers(store.names(role="recogniser"), store)
    return build_profile(
        engine,
        faces,
        "me",
        strength=personal.Strength.MEDIUM,
        surrogates=everyone,
        plan=personal.EnrolPlan(steps=2),
    )
