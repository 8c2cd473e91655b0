"""PNG container: chunks, and metadata rewriting without recompressing pixels."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from veil.errors import CorruptImageError
from veil.imaging import bounds
from veil.imaging.metadata import MetadataReport, scrub_exif, xmp_is_identifying

SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Ancillary chunks that describe the picture independently of how pixels are packed, so they
# can travel from the original to a re-encoded file. tRNS, PLTE, sBIT, bKGD depend on the
# pixel format and are left to the encoder.
_PORTABLE = {
    b"iCCP",
    b"sRGB",
    b"gAMA",
    b"cHRM",
    b"pHYs",
    b"eXIf",
    b"tEXt",
    b"zTXt",
    b"iTXt",
    b"tIME",
}
_IDENTIFYING_KEYWORDS = {b"Author", b"Artist", b"Raw profile type exif", b"Raw profile type APP1",
                         b"Raw profile type iptc", b"Raw profile type xmp"}  # fmt: skip


def chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of each chunk; raises CorruptImageError when the file is cut short
    and ImageTooComplexError past the chunk limits of `bounds`."""
    if not data.startswith(SIGNATURE):
        raise CorruptImageError("not a PNG stream")
    pos = len(SIGNATURE)
    total = ancillary = 0
    while pos < len(data):
        if pos + 8 > len(data):
            raise CorruptImageError("the PNG is truncated")
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise CorruptImageError("the PNG is truncated")
        total += 1
        if kind != b"IDAT":
            ancillary += 1
        if total > bounds.MAX_PNG_CHUNKS:
            raise bounds.too_many("PNG chunks", bounds.MAX_PNG_CHUNKS)
        if ancillary > bounds.MAX_PNG_ANCILLARY_CHUNKS:
            raise bounds.too_many("PNG chunks besides IDAT", bounds.MAX_PNG_ANCILLARY_CHUNKS)
        yield kind, data[pos + 8 : pos + 8 + length]
        pos = end
        if kind == b"IEND":
            return
    raise CorruptImageError("the PNG is truncated (no IEND chunk)")


def check_structure(data: bytes) -> None:
    """Walk every chunk within the limits and inflate every compressed metadata chunk
    within its cap, before Pillow parses anything (Pillow walks chunks in Python and
    inflates text chunks after IDAT without our limits on their total)."""
    inflated = 0
    for kind, payload in chunks(data):
        if kind in (b"zTXt", b"iTXt", b"iCCP"):
            inflated += len(_text_of(kind, payload)[1])
            bounds.check_metadata_size(inflated, "PNG metadata (inflated)")
        elif kind in (b"tEXt", b"eXIf"):
            inflated += len(payload)
            bounds.check_metadata_size(inflated, "PNG metadata")


def chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return len(payload).to_bytes(4, "big") + kind + payload + crc.to_bytes(4, "big")


def _text_of(kind: bytes, payload: bytes) -> tuple[bytes, bytes]:
    """Keyword and text (inflated, within `bounds.MAX_INFLATED_BYTES`) of a text or iCCP
    chunk; a damaged stream gives empty text, a bomb raises ImageTooComplexError."""
    keyword, _, rest = payload.partition(b"\x00")
    what = f"PNG {kind.decode('latin-1')} chunk"
    try:
        if kind in (b"zTXt", b"iCCP"):
            return keyword, bounds.inflate(rest[1:], what)
        if kind == b"iTXt" and len(rest) >= 2 and rest[0] == 1:
            text = rest[2:].split(b"\x00", 2)[-1]
            return keyword, bounds.inflate(text, what)
    except zlib.error:
        return keyword, b""
    return keyword, rest


def _filter(
    kind: bytes, payload: bytes, *, keep_metadata: bool, cloaked: bool, report: MetadataReport
) -> bytes | None:
    """The chunk after the policy (None: dropped)."""
    if kind == b"eXIf":
        scrubbed = scrub_exif(
            payload,
            keep_identifying=keep_metadata,
            reset_orientation=cloaked,
            drop_thumbnail=cloaked or not keep_metadata,
            report=report,
        )
        return None if scrubbed is None else chunk(kind, scrubbed)
    if kind in (b"tEXt", b"zTXt", b"iTXt") and not keep_metadata:
        keyword, text = _text_of(kind, payload)
        if keyword in _IDENTIFYING_KEYWORDS:
            report.add("IPTC" if b"iptc" in keyword else keyword.decode("latin-1"))
            return None
        if keyword == b"XML:com.adobe.xmp" and xmp_is_identifying(text):
            report.add("XMP")
            return None
    return chunk(kind, payload)


def rewrite_metadata(data: bytes, *, keep_metadata: bool, report: MetadataReport) -> bytes:
    """The same PNG with the metadata policy applied; image data chunks byte-identical."""
    out = [SIGNATURE]
    for kind, payload in chunks(data):
        if kind in _PORTABLE:
            filtered = _filter(
                kind, payload, keep_metadata=keep_metadata, cloaked=False, report=report
            )
            if filtered is not None:
                out.append(filtered)
        else:
            out.append(chunk(kind, payload))
    return data if not report.removed else b"".join(out)


def splice_metadata(
    encoded: bytes, original: bytes, *, keep_metadata: bool, report: MetadataReport
) -> bytes:
    """A freshly encoded PNG with the original's portable chunks (policy applied) after IHDR."""
    carried = []
    for kind, payload in chunks(original):
        if kind in _PORTABLE:
            filtered = _filter(
                kind, payload, keep_metadata=keep_metadata, cloaked=True, report=report
            )
            if filtered is not None:
                carried.append(filtered)
    out = [SIGNATURE]
    for kind, payload in chunks(encoded):
        if kind in _PORTABLE:
            continue  # the original's versions win
        out.append(chunk(kind, payload))
        if kind == b"IHDR":
            out.extend(carried)
    return b"".join(out)
