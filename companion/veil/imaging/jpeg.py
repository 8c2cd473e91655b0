"""JPEG container: segments, quality estimate, and metadata rewriting without touching pixels."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from veil.errors import CorruptImageError
from veil.imaging import bounds
from veil.imaging.metadata import MetadataReport, scrub_exif, xmp_is_identifying

SOI = b"\xff\xd8"
# A marker inside entropy-coded data: FF then anything but 00 (stuffing), D0-D7 (restart)
# or FF (fill byte; the marker starts at the last FF of a run).
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_FILL_RUN = re.compile(rb"\xff\xff+")
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXT = b"http://ns.adobe.com/xmp/extension/\x00"

# IJG standard luminance and chrominance tables (ITU T.81 Annex K), quality 50.
_STD_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
_STD_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
)  # fmt: skip


@dataclass(frozen=True)
class JpegParts:
    """A JPEG split into metadata segments (APPn, COM) and everything that codes pixels."""

    metadata: tuple[bytes, ...]  # whole segments, marker included, in file order
    structure: bytes  # DQT/SOF/DHT/SOS/scan data ... EOI, byte-identical to the input
    trailing: int  # bytes after EOI (MPF previews, gain maps): never copied


def split(data: bytes, *, header_only: bool = False) -> JpegParts:
    """Split a JPEG; raises CorruptImageError where the marker structure is broken and
    ImageTooComplexError past the segment, metadata and scan limits of `bounds`.

    `header_only`: stop at the first scan (what Pillow's header parser reads), so a probe
    of a file cut short in its pixel data still succeeds; `structure` is then incomplete."""
    if not data.startswith(SOI):
        raise CorruptImageError("not a JPEG stream (no SOI marker)")
    meta: list[bytes] = []
    structure = bytearray()
    pos, size = 2, len(data)
    segments = scans = 0
    while True:
        if pos + 2 > size or data[pos] != 0xFF:
            raise CorruptImageError("the JPEG is truncated or its markers are damaged")
        # Fill bytes: a marker may be preceded by any number of FF; skip the run in C (a
        # Python loop over a 24 MB run took seconds).
        fill = _FILL_RUN.match(data, pos)
        if fill is not None:
            pos = fill.end() - 1
        if pos + 2 > size:
            raise CorruptImageError("the JPEG is truncated or its markers are damaged")
        marker = data[pos + 1]
        segments += 1
        if segments > bounds.MAX_JPEG_SEGMENTS:
            raise bounds.too_many("JPEG marker segments", bounds.MAX_JPEG_SEGMENTS)
        if marker == 0xD9:  # EOI
            structure += data[pos : pos + 2]
            return JpegParts(tuple(meta), bytes(structure), size - pos - 2)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            structure += data[pos : pos + 2]
            pos += 2
            continue
        if pos + 4 > size:
            raise CorruptImageError("the JPEG is truncated")
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > size:
            raise CorruptImageError("the JPEG is truncated")
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            meta.append(data[pos:end])
            if len(meta) > bounds.MAX_JPEG_METADATA_SEGMENTS:
                raise bounds.too_many("metadata segments", bounds.MAX_JPEG_METADATA_SEGMENTS)
            pos = end
            continue
        if marker != 0xDA:
            structure += data[pos:end]
            pos = end
            continue
        if header_only:
            return JpegParts(tuple(meta), bytes(structure), 0)
        scans += 1
        if scans > bounds.MAX_JPEG_SCANS:
            raise bounds.too_many("scans", bounds.MAX_JPEG_SCANS)
        # SOS: entropy-coded data runs to the next marker that is not stuffing (FF00) or RST.
        found = _NEXT_MARKER.search(data, end)
        if found is None:
            raise CorruptImageError("the JPEG is truncated (no end-of-image marker)")
        structure += data[pos : found.start()]
        pos = found.start()


def join(metadata: Sequence[bytes], structure: bytes) -> bytes:
    return SOI + b"".join(metadata) + structure


def _payload(segment: bytes) -> bytes:
    return segment[4:]


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def filter_metadata(
    segments: Sequence[bytes],
    *,
    keep_metadata: bool,
    cloaked: bool,
    report: MetadataReport,
) -> list[bytes]:
    """Apply the metadata policy (see `veil.imaging.metadata`) to JPEG APPn/COM segments.

    `cloaked`: pixels were re-encoded, so orientation is reset and anything that holds a copy
    of the original pixels (thumbnails, previews, depth/extended XMP, C2PA) goes regardless.
    """
    drop_copies = cloaked or not keep_metadata
    kept: list[bytes] = []
    for seg in segments:
        marker, payload = seg[1], _payload(seg)
        if marker == 0xE0 and payload.startswith(b"JFXX\x00"):
            if drop_copies:
                report.add("thumbnail")
                continue
        elif marker == 0xE0 and payload.startswith(b"JFIF\x00") and len(payload) >= 14:
            if payload[12] * payload[13] and drop_copies:
                report.add("thumbnail")
                seg = _segment(0xE0, payload[:12] + b"\x00\x00")
        elif marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            scrubbed = scrub_exif(
                payload,
                keep_identifying=keep_metadata,
                reset_orientation=cloaked,
                drop_thumbnail=drop_copies,
                report=report,
            )
            if scrubbed is None:
                continue
            if scrubbed is not payload:
                if len(scrubbed) + 2 > 0xFFFF:
                    report.add("EXIF (too large)")
                    continue
                seg = _segment(0xE1, scrubbed)
        elif marker == 0xE1 and payload.startswith(_XMP):
            if not keep_metadata and xmp_is_identifying(payload):
                report.add("XMP")
                continue
        elif marker == 0xE1 and payload.startswith(_XMP_EXT):
            if drop_copies:
                report.add("XMP extension")
                continue
        elif marker == 0xE2 and payload.startswith((b"MPF\x00", b"FPXR\x00")):
            if drop_copies:
                report.add("thumbnail")
                continue
        elif marker == 0xED:  # Photoshop IRB: IPTC and Photoshop thumbnails
            if drop_copies:
                report.add("IPTC")
                continue
        elif marker == 0xEB and cloaked:  # JUMBF/C2PA: signs and previews the original pixels
            report.add("C2PA")
            continue
        kept.append(seg)
    return kept


def estimate_quality(image: Image.Image) -> int | None:
    """The IJG quality (1..100) whose standard tables are closest to this JPEG's.

    Compares table sums, which does not depend on the table order; cameras that use their own
    tables get the nearest IJG quality, a fair stand-in for "how much detail survived".
    """
    tables = getattr(image, "quantization", None)
    if not tables:
        return None
    # Tables are keyed by their DQT id, which need not start at 0 (ids 1 and 2 are legal
    # and decode fine): the lowest id is luma's by convention, the next one chroma's.
    ids = sorted(tables)
    luma = sum(tables[ids[0]])
    chroma = sum(tables[ids[1]]) if len(ids) > 1 else None
    best, best_err = 0, float("inf")
    for quality in range(1, 101):
        scale = 5000 / quality if quality < 50 else 200 - 2 * quality
        err = abs(_scaled_sum(_STD_LUMA, scale) - luma)
        if chroma is not None:
            err += abs(_scaled_sum(_STD_CHROMA, scale) - chroma)
        if err < best_err:
            best, best_err = quality, err
    return best


def _scaled_sum(table: Sequence[int], scale: float) -> int:
    return sum(min(max((q * scale + 50) // 100, 1), 255) for q in table)  # type: ignore[misc]


def rewrite_metadata(data: bytes, *, keep_metadata: bool, report: MetadataReport) -> bytes:
    """The same JPEG with the metadata policy applied and the pixel data byte-identical."""
    parts = split(data)
    kept = filter_metadata(
        parts.metadata, keep_metadata=keep_metadata, cloaked=False, report=report
    )
    if parts.trailing and not keep_metadata:
        report.add("trailing previews")  # MPF previews, motion-photo videos after EOI
    if not report.removed:
        return data
    trailer = data[len(data) - parts.trailing :] if keep_metadata and parts.trailing else b""
    return join(kept, parts.structure) + trailer


def splice_metadata(
    encoded: bytes, original: bytes, *, keep_metadata: bool, report: MetadataReport
) -> bytes:
    """Freshly encoded pixels with the original's metadata (policy applied) spliced in.

    The encoder's own Adobe APP14 is kept (its colour-transform flag describes the new scan
    data); the original's JFIF APP0 replaces the encoder's when there was one.
    """
    new = split(encoded)
    old_meta = split(original).metadata
    kept = filter_metadata(old_meta, keep_metadata=keep_metadata, cloaked=True, report=report)
    kept = [s for s in kept if s[1] != 0xEE]
    had_jfif = any(s[1] == 0xE0 for s in kept)
    head = [s for s in new.metadata if s[1] == 0xE0 and not had_jfif]
    adobe = [s for s in new.metadata if s[1] == 0xEE]
    jfif = [s for s in kept if s[1] == 0xE0]
    rest = [s for s in kept if s[1] != 0xE0]
    return join([*head, *jfif, *rest, *adobe], new.structure)
