"""PNG container: chunks, and metadata rewriting without recompressing pixels."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from veil.errors import CorruptImageError
from veil.imaging import bounds
from veil.imaging.metadata import (
    PNG_TEXT_KEYS,
    XMP_PNG_KEY,
    MetadataReport,
    Policy,
    container_rule,
    filter_exif,
    filter_xmp,
)

SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Ancillary chunks that describe the picture independently of how pixels are packed, so they
# travel from the original to a re-encoded file (text and EXIF after the allow-list).
# tRNS, PLTE, sBIT, bKGD, hIST depend on the pixel format and come from the encoder.
_PORTABLE = {b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"cICP", b"pHYs", b"tIME"}
_TEXT = {b"tEXt", b"zTXt", b"iTXt"}
_PIXEL_FORMAT = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"sBIT", b"bKGD", b"hIST"}
# APNG: the animation control and the other frames' data come with the pixels, never from
# the metadata path (a cloaked APNG's are the encoder's; `veil.animated.pillowframes`).
_PIXEL_FORMAT |= {b"acTL", b"fcTL", b"fdAT"}
_C2PA = b"caBX"


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
        if kind not in (b"IDAT", b"fdAT", b"fcTL"):  # APNG frames: bounded by their count
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
        if kind == b"iTXt" and len(rest) >= 2:
            text = rest[2:].split(b"\x00", 2)[-1]  # after language tag and translated keyword
            return keyword, bounds.inflate(text, what) if rest[0] == 1 else text
    except zlib.error:
        return keyword, b""
    return keyword, rest


def _filter(kind: bytes, payload: bytes, policy: Policy, report: MetadataReport) -> bytes | None:
    """The metadata chunk after the allow-list (None: dropped)."""
    if kind in _PORTABLE:
        return chunk(kind, payload)
    if kind == b"eXIf":
        scrubbed = filter_exif(payload, policy, report, reset_orientation=policy.cloaked)
        return None if scrubbed is None else chunk(kind, scrubbed)
    if kind in _TEXT:
        keyword, text = _text_of(kind, payload)
        if keyword == XMP_PNG_KEY:
            packet = filter_xmp(text, policy, report)
            if packet is None:
                return None
            return chunk(b"iTXt", XMP_PNG_KEY + b"\x00\x00\x00\x00\x00" + packet)
        rule = PNG_TEXT_KEYS.get(keyword)
        if rule is None or not policy.allows(rule):
            report.add(f"PNG text {keyword.decode('latin-1')!r}")
            return None
        return chunk(kind, payload)
    if kind == _C2PA and policy.allows(container_rule("PNG C2PA (caBX)")):
        return chunk(kind, payload)
    report.add("C2PA" if kind == _C2PA else f"PNG chunk {kind.decode('latin-1')}")
    return None


def rewrite_metadata(data: bytes, *, keep_metadata: bool, report: MetadataReport) -> bytes:
    """The same PNG with the allow-list applied; image data chunks byte-identical."""
    policy = Policy(keep_metadata=keep_metadata, cloaked=False)
    out = [SIGNATURE]
    for kind, payload in chunks(data):
        if kind in _PIXEL_FORMAT:
            out.append(chunk(kind, payload))
            continue
        filtered = _filter(kind, payload, policy, report)
        if filtered is not None:
            out.append(filtered)
    return b"".join(out)


def splice_metadata(
    encoded: bytes, original: bytes, *, keep_metadata: bool, report: MetadataReport
) -> bytes:
    """A freshly encoded (cloaked) PNG with the original's metadata chunks, after the
    allow-list, right after IHDR."""
    policy = Policy(keep_metadata=keep_metadata, cloaked=True)
    carried = []
    for kind, payload in chunks(original):
        if kind in _PIXEL_FORMAT:
            continue
        filtered = _filter(kind, payload, policy, report)
        if filtered is not None:
            carried.append(filtered)
    out = [SIGNATURE]
    for kind, payload in chunks(encoded):
        if kind not in _PIXEL_FORMAT:
            continue  # the original's versions (after the policy) win
        out.append(chunk(kind, payload))
        if kind == b"IHDR":
            out.extend(carried)
    return b"".join(out)
