"""A bounded walk of a HEIC/AVIF (ISO-BMFF) container before libheif parses it.

libheif has its own security limits (1,000 items, 32 extents per item, 512 MB per memory
block), but within them one item may list the same file bytes again and again: a 2 MB file
whose Exif item has 32 extents over its own `mdat` asks libheif for 64 MB, and pillow-heif
hands every metadata block back whole before Veil could check its size. This walk reads the
top-level boxes and the `meta` box's item locations (`iloc`) only, and refuses a file whose
items declare more bytes than the file holds plus `bounds.MAX_METADATA_BYTES`, or that has
more boxes, items or extents than `bounds` allows.
"""

from __future__ import annotations

from veil.errors import CorruptImageError
from veil.imaging import bounds


def _boxes(
    data: bytes, start: int, end: int, limit: int, where: str
) -> list[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the boxes in data[start:end], at most `limit`.
    Stops at the first box that does not fit (trailing bytes are libheif's concern)."""
    found: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end:
        size, kind, header = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8], 8
        if size == 1:
            if pos + 16 > end:
                break
            size, header = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        if len(found) >= limit:
            raise bounds.too_many(f"boxes in the {where}", limit)
        found.append((kind, pos + header, pos + size))
        pos += size
    return found


def _uint(data: bytes, pos: int, size: int, end: int) -> tuple[int, int]:
    if pos + size > end:
        raise CorruptImageError("the HEIC item location box (iloc) is truncated")
    return int.from_bytes(data[pos : pos + size], "big"), pos + size


def declared_item_bytes(data: bytes, start: int, end: int) -> int:
    """Sum of the extent lengths an `iloc` payload declares (a length of 0, "to the end",
    counts as the whole file), within the item and extent bounds."""
    version, pos = _uint(data, start, 1, end)
    pos += 3  # flags
    if version > 2:
        raise CorruptImageError(f"the HEIC item location box has unknown version {version}")
    sizes, pos = _uint(data, pos, 1, end)
    offset_size, length_size = sizes >> 4, sizes & 15
    sizes, pos = _uint(data, pos, 1, end)
    base_offset_size, index_size = sizes >> 4, (sizes & 15 if version else 0)
    if any(s not in (0, 4, 8) for s in (offset_size, length_size, base_offset_size, index_size)):
        raise CorruptImageError("the HEIC item location box has an invalid field size")
    count, pos = _uint(data, pos, 4 if version == 2 else 2, end)
    if count > bounds.MAX_HEIF_ITEMS:
        raise bounds.too_many("HEIC items", bounds.MAX_HEIF_ITEMS)
    total = 0
    for _ in range(count):
        pos += (4 if version == 2 else 2) + (2 if version else 0) + 2 + base_offset_size
        extents, pos = _uint(data, pos, 2, end)
        if extents > bounds.MAX_HEIF_EXTENTS_PER_ITEM:
            raise bounds.too_many("extents in one HEIC item", bounds.MAX_HEIF_EXTENTS_PER_ITEM)
        for _ in range(extents):
            pos += index_size + offset_size
            length, pos = _uint(data, pos, length_size, end)
            total += length or len(data)
    return total


def check_structure(data: bytes) -> None:
    """Refuse (HTTP 413 `image_too_large`) a HEIC/AVIF whose container asks for more work
    or memory than the bounds allow; see the module docstring."""
    top = _boxes(data, 0, len(data), bounds.MAX_HEIF_BOXES, "file")
    total = 0
    for kind, start, end in top:
        if kind != b"meta":
            continue
        for child, child_start, child_end in _boxes(
            data, start + 4, end, bounds.MAX_HEIF_BOXES, "HEIC meta box"
        ):
            if child == b"iloc":
                total += declared_item_bytes(data, child_start, child_end)
    limit = len(data) + bounds.MAX_METADATA_BYTES
    if total > limit:
        raise bounds.ImageTooComplexError(
            f"the HEIC items declare {total / 1e6:.0f} MB in a {len(data) / 1e6:.1f} MB file "
            "(the same bytes listed many times); Veil accepts at most "
            f"{bounds.MAX_METADATA_BYTES // (1024 * 1024)} MB more than the file holds"
        )
