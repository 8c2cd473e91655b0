"""HEIC container bounds (issue 13, item 2: HEIC boxes): a HEIC whose items list the same
bytes many times, or that has thousands of boxes, is refused before libheif parses it."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from veil.errors import UnsupportedFormatError
from veil.imaging import bounds, heif, probe

pytestmark = pytest.mark.skipif(not probe.HEIF_AVAILABLE, reason="pillow-heif not installed")


def _heic(size: int = 256) -> bytes:
    """A real HEIC from pillow-heif with an Exif item (noise, so the mdat is not tiny)."""
    rng = np.random.default_rng(13)
    image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "Veil test"
    out = io.BytesIO()
    image.save(out, "HEIF", quality=90, exif=exif.tobytes())
    return out.getvalue()


def _top(data: bytes) -> list[tuple[bytes, int, int]]:
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        boxes.append((data[pos + 4 : pos + 8], pos, pos + size))
        pos += size
    return boxes


def _amplified(data: bytes, extents: int) -> bytes:
    """The same file with meta moved after mdat and its first metadata-sized item (Exif)
    given `extents` extents, each over the whole mdat payload."""
    boxes = {kind: (start, end) for kind, start, end in _top(data)}
    ftyp, meta, mdat = (data[slice(*boxes[k])] for k in (b"ftyp", b"meta", b"mdat"))
    shift = len(ftyp) - boxes[b"mdat"][0]  # mdat now follows ftyp directly
    mdat_payload = (len(ftyp) + 8, len(mdat) - 8)
    # meta: FullBox header, then children; rebuild its iloc (version 0/1, 4-byte fields).
    children, pos, out_children = meta[12:], 0, b""
    while pos < len(children):
        size, kind = int.from_bytes(children[pos : pos + 4], "big"), children[pos + 4 : pos + 8]
        body = children[pos + 8 : pos + size]
        if kind == b"iloc":
            body = _rewrite_iloc(body, shift, mdat_payload, extents)
        out_children += struct.pack(">I", 8 + len(body)) + kind + body
        pos += size
    new_meta = struct.pack(">I", 12 + len(out_children)) + b"meta" + meta[8:12] + out_children
    return ftyp + mdat + new_meta


def _rewrite_iloc(body: bytes, shift: int, payload: tuple[int, int], extents: int) -> bytes:
    version = body[0]
    offset_size, length_size = body[4] >> 4, body[4] & 15
    base_size, index_size = body[5] >> 4, (body[5] & 15) if version else 0
    assert version in (0, 1) and offset_size in (0, 4) and length_size in (0, 4)
    assert base_size in (0, 4) and index_size == 0
    count = int.from_bytes(body[6:8], "big")
    pos, items = 8, []
    for _ in range(count):
        head_len = 2 + (2 if version else 0) + 2
        head = body[pos : pos + head_len]
        pos += head_len
        base = int.from_bytes(body[pos : pos + base_size], "big") if base_size else 0
        pos += base_size
        n = int.from_bytes(body[pos : pos + 2], "big")
        pos += 2
        ext = []
        for _ in range(n):
            off = int.from_bytes(body[pos : pos + offset_size], "big")
            length = int.from_bytes(
                body[pos + offset_size : pos + offset_size + length_size], "big"
            )
            pos += offset_size + length_size
            ext.append((base + off + shift, length))
        items.append((head, ext))
    smallest = min(range(count), key=lambda i: sum(length for _, length in items[i][1]))
    items[smallest] = (items[smallest][0], [payload] * extents)  # the Exif item
    out = bytearray(body[:4] + bytes([0x44, 0x00]) + body[6:8])
    for head, ext in items:
        out += head + struct.pack(">H", len(ext))
        for off, length in ext:
            out += struct.pack(">II", off, length)
    return bytes(out)


def test_real_heic_passes_the_walk() -> None:
    data = _heic()
    heif.check_structure(data)
    _, info = probe.open_image(data)
    assert info.format == "HEIF"
    moved = _amplified(data, 1)  # the rebuild alone keeps a valid, openable file
    heif.check_structure(moved)
    with Image.open(io.BytesIO(moved)) as image:
        image.load()


def test_heic_items_listing_the_same_bytes_many_times_are_refused() -> None:
    """32 extents (libheif's own limit) over a ~600 KB mdat declare ~19 MB: more than the
    file plus the 16 MiB metadata allowance. Before this bound, libheif read all of them."""
    data = _amplified(_heic(640), 32)
    assert 32 * (len(data) - 2000) > len(data) + bounds.MAX_METADATA_BYTES
    with pytest.raises(bounds.ImageTooComplexError, match="declare"):
        heif.check_structure(data)
    with pytest.raises(bounds.ImageTooComplexError):
        probe.open_image(data)


def test_heic_with_thousands_of_boxes_is_refused() -> None:
    data = _heic() + b"\x00\x00\x00\x08free" * (bounds.MAX_HEIF_BOXES + 1)
    with pytest.raises(bounds.ImageTooComplexError, match="boxes"):
        probe.open_image(data)


def test_heic_with_too_many_extents_is_refused() -> None:
    data = _amplified(_heic(), bounds.MAX_HEIF_EXTENTS_PER_ITEM + 1)
    with pytest.raises(bounds.ImageTooComplexError, match="extents"):
        probe.open_image(data)


def test_other_iso_bmff_files_are_not_walked() -> None:
    """An MP4 (major brand isom) with many boxes is still 'unsupported', not 'too large':
    only what pillow-heif would hand to libheif is walked."""
    mp4 = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 12 + b"\x00\x00\x00\x08free" * 2000
    with pytest.raises(UnsupportedFormatError):
        probe.open_image(mp4)


def test_tiled_heic_like_a_phone_passes_the_walk() -> None:
    """A grid of tiles (as Apple writes them) with Exif and XMP: 6 tile items, all fine."""
    rng = np.random.default_rng(7)
    image = Image.fromarray(rng.integers(0, 256, (512, 768, 3), dtype=np.uint8))
    out = io.BytesIO()
    image.save(out, "HEIF", quality=50, tile_size=256, exif=Image.Exif().tobytes(), xmp=b"<x/>")
    _, info = probe.open_image(out.getvalue())
    assert (info.width, info.height) == (768, 512)
