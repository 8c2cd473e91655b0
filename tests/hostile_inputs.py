"""Hostile uploads built in memory: decompression bombs, work bombs, mutations of real photos.

Shared by the hardening and fuzz tests and by `build/bench/fuzz_companion.py` (which adds
this folder to sys.path). No pytest here: plain functions returning bytes.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

MiB = 1024 * 1024


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def small_png(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "PNG")
    return out.getvalue()


def _insert_png_chunks(png: bytes, extra: bytes, *, after_idat: bool) -> bytes:
    """`extra` (whole chunks) inserted after IHDR, or just before IEND."""
    if after_idat:
        iend = png.rindex(b"IEND") - 4
        return png[:iend] + extra + png[iend:]
    ihdr_end = 8 + 12 + 13
    return png[:ihdr_end] + extra + png[ihdr_end:]


def _zeros_deflated(inflated: int) -> bytes:
    compressor = zlib.compressobj(9)
    block = b"\x00" * MiB
    parts = [compressor.compress(block) for _ in range(inflated // MiB)]
    parts.append(compressor.flush())
    return b"".join(parts)


def png_ztxt_bomb(inflated: int = 1024 * MiB) -> bytes:
    """A zTXt chunk after IDAT that inflates to `inflated` bytes (about 1 MB on the wire)."""
    payload = b"Comment\x00\x00" + _zeros_deflated(inflated)
    return _insert_png_chunks(small_png(), png_chunk(b"zTXt", payload), after_idat=True)


def png_itxt_bomb(inflated: int = 1024 * MiB) -> bytes:
    """A compressed iTXt XMP packet that inflates to `inflated` bytes."""
    payload = b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + _zeros_deflated(inflated)
    return _insert_png_chunks(small_png(), png_chunk(b"iTXt", payload), after_idat=False)


def png_iccp_bomb(inflated: int = 1024 * MiB) -> bytes:
    payload = b"icc\x00\x00" + _zeros_deflated(inflated)
    return _insert_png_chunks(small_png(), png_chunk(b"iCCP", payload), after_idat=False)


def png_exif_profile_bomb(inflated: int = 1024 * MiB) -> bytes:
    """ImageMagick's "Raw profile type exif" zTXt (hex EXIF) as a bomb."""
    payload = b"Raw profile type exif\x00\x00" + _zeros_deflated(inflated)
    return _insert_png_chunks(small_png(), png_chunk(b"zTXt", payload), after_idat=False)


def png_many_chunks(count: int = 3_600_000) -> bytes:
    """Millions of tiny ancillary chunks before IDAT (12 bytes each)."""
    tiny = png_chunk(b"tEXt", b"")
    return _insert_png_chunks(small_png(), tiny * count, after_idat=False)


def small_jpeg(width: int = 64, height: int = 48, seed: int = 0, **options: object) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "JPEG", **options)
    return out.getvalue()


def jpeg_ff_run(length: int = 24 * MiB) -> bytes:
    """SOI then a run of fill bytes: no marker ever comes."""
    return b"\xff\xd8" + b"\xff" * length


def jpeg_many_comments(count: int = 10_000_000) -> bytes:
    """Millions of empty COM segments (4 bytes each) before a real tiny JPEG."""
    body = small_jpeg()
    return body[:2] + b"\xff\xfe\x00\x02" * count + body[2:]


def jpeg_many_exif(count: int = 700) -> bytes:
    """Hundreds of 64 KB EXIF APP1 segments (each a full TIFF IFD to parse)."""
    exif = Image.Exif()
    exif[0x010F] = "x" * 60000
    tiff = exif.tobytes()
    segment = b"\xff\xe1" + (len(tiff) + 2).to_bytes(2, "big") + tiff
    body = small_jpeg()
    return body[:2] + segment * count + body[2:]


def jpeg_quant_tables_1_and_2() -> bytes:
    """A valid JPEG whose DQT tables are numbered 1 and 2 (no table 0)."""
    data = bytearray(small_jpeg(quality=80))
    pos = 2
    while pos < len(data):
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDB:  # DQT: renumber each table id t -> t + 1
            at = pos + 4
            while at < pos + 2 + length:
                precision, table = data[at] >> 4, data[at] & 0x0F
                data[at] = (precision << 4) | (table + 1)
                at += 1 + 64 * (2 if precision else 1)
        elif marker == 0xC0:  # SOF0: components' table selectors t -> t + 1
            components = data[pos + 9]
            for index in range(components):
                data[pos + 10 + 3 * index + 2] += 1
        elif marker == 0xDA:
            break
        pos += 2 + length
    return bytes(data)


def jpeg_wrong_type_exif() -> bytes:
    """EXIF where a numeric tag (ImageWidth) is stored as ASCII, plus a tag to strip (Artist)."""
    order = b"II*\x00" + struct.pack("<I", 8)
    entries = [
        struct.pack("<HHI", 0x0100, 2, 4) + b"abc\x00",  # ImageWidth as ASCII "abc"
        struct.pack("<HHI", 0x013B, 2, 4) + b"Jan\x00",  # Artist
    ]
    ifd = struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0)
    tiff = order + ifd
    payload = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    body = small_jpeg()
    return body[:2] + segment + body[2:]


def png_corrupt_pixels() -> bytes:
    """A PNG whose IDAT stream is damaged in the middle (CRC fixed, so only inflate fails)."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "PNG")
    data = bytearray(out.getvalue())
    start = data.index(b"IDAT") - 4
    length = int.from_bytes(data[start : start + 4], "big")
    payload = bytearray(data[start + 8 : start + 8 + length])
    for at in range(length // 2, length // 2 + 64):
        payload[at] ^= 0x5A
    fixed = png_chunk(b"IDAT", bytes(payload))
    return bytes(data[:start]) + fixed + bytes(data[start + 12 + length :])


def webp_header_100mp(width: int = 10_000, height: int = 10_000) -> bytes:
    """A 42-byte lossless WebP whose VP8L header announces width x height, then no data."""
    bits = (width - 1) | ((height - 1) << 14)
    payload = b"\x2f" + bits.to_bytes(4, "little") + b"\x00" * 16
    body = b"VP8L" + len(payload).to_bytes(4, "little") + payload
    return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body


def webp_solid(width: int = 10_000, height: int = 10_000) -> bytes:
    """A real lossless WebP of one colour: a few KB that decode to width x height pixels."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (120, 90, 60)).save(out, "WEBP", lossless=True, method=0)
    return out.getvalue()


BOMBS: dict[str, Callable[[], bytes]] = {
    "png-ztxt-after-idat": png_ztxt_bomb,
    "png-itxt-xmp": png_itxt_bomb,
    "png-iccp": png_iccp_bomb,
    "png-exif-profile": png_exif_profile_bomb,
    "png-3.6M-chunks": png_many_chunks,
    "jpeg-24MB-ff-run": jpeg_ff_run,
    "jpeg-10M-comments": jpeg_many_comments,
    "jpeg-700-exif": jpeg_many_exif,
    "webp-100MP-header": webp_header_100mp,
    "webp-100MP-solid": webp_solid,
}


def mutations(seeds: list[bytes], count: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """`count` mutated copies of the seed files: byte flips, truncation, chunk duplication,
    length-field damage, inserted junk. Deterministic for a given `seed`."""
    rng = np.random.default_rng(seed)
    kinds = ("flip", "truncate", "splice", "length", "insert", "zero-run")
    for index in range(count):
        original = seeds[index % len(seeds)]
        data = bytearray(original)
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "flip":
            for at in rng.integers(2, len(data), int(rng.integers(1, 16))):
                data[at] = int(rng.integers(256))
        elif kind == "truncate":
            data = data[: int(rng.integers(8, len(data)))]
        elif kind == "splice":
            a, b = sorted(int(v) for v in rng.integers(2, len(data), 2))
            at = int(rng.integers(2, len(data)))
            data = data[:at] + data[a:b] + data[at:]
        elif kind == "length":
            # Damage a 2- or 4-byte field near a marker/chunk boundary in the header area.
            at = int(rng.integers(2, min(len(data) - 4, 4096)))
            data[at : at + 2] = rng.integers(0, 256, 2, dtype=np.uint8).tobytes()
        elif kind == "insert":
            at = int(rng.integers(2, len(data)))
            junk = rng.integers(0, 256, int(rng.integers(1, 512)), dtype=np.uint8).tobytes()
            data = data[:at] + junk + data[at:]
        else:
            at = int(rng.integers(2, len(data)))
            run = min(int(rng.integers(1, 256)), len(data) - at)
            data[at : at + run] = b"\x00" * run
        yield f"{index:04d}-{kind}", bytes(data)


def jpeg_broken_exif(entries: int = 500) -> bytes:
    """EXIF whose every entry points past the end of the block: Pillow warns once per entry."""
    head = b"II*\x00" + struct.pack("<I", 8)
    ifd = struct.pack("<H", entries)
    for index in range(entries):
        ifd += struct.pack("<HHII", 0x8000 + index, 4, 1000, 0x7FFF0000)
    tiff = head + ifd + struct.pack("<I", 0)
    payload = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    body = small_jpeg()
    return body[:2] + segment + body[2:]


def face_mosaic(faces_dir: Path, rows: int, cols: int, tile: int = 200) -> bytes:
    """A JPEG grid of rows x cols real face photos (square centre crops), tile px each."""
    photos = sorted((faces_dir / "photos").glob("*/*.jpg"))
    tiles = []
    for path in photos[: rows * cols]:
        with Image.open(path) as image:
            image = image.convert("RGB")
            w, h = image.size
            side = min(w, h)
            box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
            tiles.append(np.asarray(image.crop(box).resize((tile, tile))))
    grid = np.zeros((rows * tile, cols * tile, 3), np.uint8)
    for index in range(rows * cols):
        r, c = divmod(index, cols)
        grid[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = tiles[index % len(tiles)]
    out = io.BytesIO()
    Image.fromarray(grid).save(out, "JPEG", quality=90)
    return out.getvalue()


def _corpus() -> Path:
    import os

    return Path(
        os.environ.get("VEIL_FACES_DIR", Path(__file__).resolve().parents[2] / "shared" / "faces")
    )


# Needs the face corpus (../shared/faces): the benchmark's worst case for the optimiser.
BOMBS["faces-16x16-mosaic"] = lambda: face_mosaic(_corpus(), 16, 16, tile=160)
