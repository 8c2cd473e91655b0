"""JPEG container: segments, quality estimate, and metadata rewriting without touching pixels."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from veil.errors import CorruptImageError
from veil.imaging import bounds
from veil.imaging.metadata import (
    XMP_NAMESPACES,
    MetadataReport,
    Policy,
    build_xmp,
    container_directory,
    container_rule,
    filter_exif,
    filter_photoshop_irb,
    filter_xmp,
)

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
    trailing: int  # bytes after EOI (MPF secondary images, motion-photo videos)


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


_ICC = b"ICC_PROFILE\x00"
_ISO_GAIN_MAP = b"urn:iso:std:iso:ts:21496:-1\x00"
_MPF = b"MPF\x00"
_GCONTAINER = XMP_NAMESPACES["Container"]


def filter_metadata(
    segments: Sequence[bytes],
    policy: Policy,
    report: MetadataReport,
    *,
    xmp_extra: Sequence[ET.Element] = (),
    rebuild_directory: bool = False,
) -> list[bytes]:
    """Apply the allow-list (`veil.imaging.metadata`) to JPEG APPn/COM segments.

    EXIF, XMP and IPTC are rebuilt from their allowed entries; every segment kind not listed
    is dropped. MPF segments are dropped here: `assemble` writes a fresh one for the
    secondary images it keeps. `xmp_extra`: generated XMP properties (a container directory
    for kept secondary images, which replaces the original's when `rebuild_directory`).
    """
    kept: list[bytes] = []
    xmp_seen = False
    for seg in segments:
        marker, payload = seg[1], _payload(seg)
        if marker == 0xE0 and payload.startswith(b"JFIF\x00"):
            thumbnail = len(payload) >= 14 and payload[12] * payload[13] > 0
            if thumbnail and not policy.allows(container_rule("JPEG JFIF/JFXX thumbnail")):
                report.add("thumbnail")
                seg = _segment(0xE0, payload[:12] + b"\x00\x00")
        elif marker == 0xE0 and payload.startswith(b"JFXX\x00"):
            if not policy.allows(container_rule("JPEG JFIF/JFXX thumbnail")):
                report.add("thumbnail")
                continue
        elif marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            scrubbed = filter_exif(payload, policy, report, reset_orientation=policy.cloaked)
            if scrubbed is None:
                continue
            if scrubbed is not payload:
                if len(scrubbed) + 2 > 0xFFFF:
                    report.add("EXIF (too large)")
                    continue
                seg = _segment(0xE1, scrubbed)
        elif marker == 0xE1 and payload.startswith(_XMP):
            if xmp_seen:  # a second standard packet is not valid XMP: never trusted
                report.add("XMP (second packet)")
                continue
            xmp_seen = True
            drop = (_GCONTAINER,) if rebuild_directory else ()
            packet = filter_xmp(payload[len(_XMP) :], policy, report, extra=xmp_extra, drop=drop)
            if packet is None or len(packet) + len(_XMP) + 2 > 0xFFFF:
                continue
            seg = _segment(0xE1, _XMP + packet)
        elif marker == 0xE1 and payload.startswith(_XMP_EXT):
            if not policy.allows(container_rule("JPEG extended XMP (depth maps, original image)")):
                report.add("XMP extension")
                continue
        elif marker == 0xE2 and payload.startswith(_ICC):
            pass  # colour profile: kept
        elif marker == 0xE2 and payload.startswith(_ISO_GAIN_MAP):
            pass  # ISO 21496-1 gain-map parameters: kept with the gain map (see `assemble`)
        elif marker == 0xE2 and payload.startswith(_MPF):
            continue  # rewritten by `assemble` for the secondary images kept
        elif marker == 0xE2 and payload.startswith(b"FPXR\x00"):
            if not policy.allows(container_rule("JPEG FlashPix (FPXR) previews")):
                report.add("thumbnail")
                continue
        elif marker == 0xED:  # Photoshop IRB: IPTC and Photoshop thumbnails
            irb = filter_photoshop_irb(payload, policy, report)
            if irb is None:
                continue
            seg = _segment(0xED, irb)
        elif marker == 0xEB:  # JUMBF/C2PA: signs (and previews) the original pixels
            if not policy.allows(container_rule("C2PA / JUMBF manifest")):
                report.add("C2PA")
                continue
        elif marker == 0xEE and payload.startswith(b"Adobe"):
            pass  # colour transform of the scan data
        elif marker == 0xFE:
            if not policy.allows(container_rule("JPEG comment")):
                report.add("JPEG comment")
                continue
        else:
            report.add(f"APP{marker - 0xE0}" if marker != 0xFE else "COM")
            continue
        kept.append(seg)
    if xmp_extra and not xmp_seen:
        kept.append(_segment(0xE1, _XMP + build_xmp({}, list(xmp_extra))))
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


# -- secondary images (MPF) and trailers -----------------------------------------------------

SecondaryKind = Literal["preview", "multi-view", "gain map", "other"]
_MP_REPRESENTATIVE = 0x20000000
_MP_PRIMARY = 0x030000


@dataclass(frozen=True)
class SecondaryImage:
    kind: SecondaryKind
    attribute: int  # the MP entry's attribute word (type code and flags)
    data: bytes  # the whole embedded JPEG

    @property
    def label(self) -> str:
        return {
            "preview": "MPF preview image",
            "multi-view": "MPF stereo / multi-view image",
            "gain map": "gain map (HDR)",
            "other": "MPF secondary image",
        }[self.kind]


@dataclass(frozen=True)
class JpegLayout:
    """A JPEG file: the primary image, its MPF secondary images, and what trails them."""

    parts: JpegParts
    secondaries: tuple[SecondaryImage, ...]
    trailer: bytes  # bytes after the last image (motion-photo video, vendor blocks)

    @property
    def gain_map(self) -> SecondaryImage | None:
        return next((s for s in self.secondaries if s.kind == "gain map"), None)


def layout(data: bytes) -> JpegLayout:
    """Split a file into primary, MPF secondary images and trailer; malformed MPF indexes
    leave everything after the primary as trailer (dropped unless originals are kept)."""
    parts = split(data)
    primary_end = len(data) - parts.trailing
    secondaries: list[SecondaryImage] = []
    end = primary_end
    offset = _mpf_base(data)
    if offset is not None:
        for attribute, size, start in _mp_entries(data, offset):
            if start == 0:
                continue  # the primary image itself
            begin = offset + start
            if begin < primary_end or begin + size > len(data) or data[begin : begin + 2] != SOI:
                continue
            image = data[begin : begin + size]
            secondaries.append(SecondaryImage(_classify(attribute, image), attribute, image))
            end = max(end, begin + size)
    return JpegLayout(parts, tuple(secondaries), data[end:])


def gain_map_of(data: bytes) -> bytes | None:
    """The gain-map JPEG of an Ultra HDR / ISO 21496-1 file, if it has one."""
    try:
        image = layout(data).gain_map
    except CorruptImageError:
        return None
    return None if image is None else image.data


def _mpf_base(data: bytes) -> int | None:
    """File offset of the MPF TIFF header (MP entry offsets count from there)."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA or length < 2:
            return None
        if marker == 0xE2 and data[pos + 4 : pos + 8] == _MPF:
            return pos + 8
        pos += 2 + length
    return None


def _mp_entries(data: bytes, base: int) -> list[tuple[int, int, int]]:
    """(attribute, size, offset) of each MP entry; [] when the index is unreadable."""
    tiff = data[base : base + 0xFFFF]
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return []
    order: Literal["little", "big"] = "little" if tiff[:2] == b"II" else "big"

    def u(at: int, size: int) -> int:
        return int.from_bytes(tiff[at : at + size], order)

    ifd = u(4, 4)
    if ifd + 2 > len(tiff):
        return []
    count, number, entries_at = u(ifd, 2), 0, 0
    for i in range(min(count, 64)):
        at = ifd + 2 + 12 * i
        if at + 12 > len(tiff):
            return []
        tag, value = u(at, 2), u(at + 8, 4)
        if tag == 0xB001:
            number = value
        elif tag == 0xB002:
            entries_at = value
    if not 0 < number <= 64 or entries_at + 16 * number > len(tiff):
        return []
    return [
        (u(entries_at + 16 * i, 4), u(entries_at + 16 * i + 4, 4), u(entries_at + 16 * i + 8, 4))
        for i in range(number)
    ]


def _classify(attribute: int, image: bytes) -> SecondaryKind:
    code = attribute & 0x00FFFFFF
    if code in (0x010001, 0x010002):
        return "preview"
    if code in (0x020001, 0x020002, 0x020003):
        return "multi-view"
    head = image[:0x20000]
    if b"hdrgm:" in head or b"hdr-gain-map" in head or _ISO_GAIN_MAP in head:
        return "gain map"
    return "other"


def _mpf_segment(sizes: Sequence[int], attributes: Sequence[int], base: int) -> bytes:
    """An APP2 MPF segment indexing images of `sizes` laid out back to back; `base` is the
    file offset of this segment's TIFF header."""
    n = len(sizes)
    ifd_entries = 3
    entries_at = 8 + 2 + 12 * ifd_entries + 4
    ifd = bytearray(b"II*\x00" + (8).to_bytes(4, "little"))
    ifd += ifd_entries.to_bytes(2, "little")
    ifd += (0xB000).to_bytes(2, "little") + (7).to_bytes(2, "little") + (4).to_bytes(4, "little")
    ifd += b"0100"
    ifd += (0xB001).to_bytes(2, "little") + (4).to_bytes(2, "little") + (1).to_bytes(4, "little")
    ifd += n.to_bytes(4, "little")
    ifd += (0xB002).to_bytes(2, "little") + (7).to_bytes(2, "little")
    ifd += (16 * n).to_bytes(4, "little") + entries_at.to_bytes(4, "little")
    ifd += (0).to_bytes(4, "little")
    position = 0
    for size, attribute in zip(sizes, attributes, strict=True):
        offset = 0 if position == 0 else position - base
        ifd += attribute.to_bytes(4, "little") + size.to_bytes(4, "little")
        ifd += offset.to_bytes(4, "little") + b"\x00\x00\x00\x00"
        position += size
    return _segment(0xE2, _MPF + bytes(ifd))


def assemble(
    metadata: Sequence[bytes],
    structure: bytes,
    secondaries: Sequence[SecondaryImage],
    trailer: bytes,
) -> bytes:
    """Primary + secondary images (indexed by a fresh MPF segment) + trailer."""
    if not secondaries:
        return join(metadata, structure) + trailer
    # The MPF segment goes after APP0/APP1 (EXIF, XMP), as cameras write it.
    split_at = sum(1 for _ in _leading_app01(metadata))
    head, rest = list(metadata[:split_at]), list(metadata[split_at:])
    mpf_len = len(_mpf_segment([0] * (len(secondaries) + 1), [0] * (len(secondaries) + 1), 0))
    base = len(SOI) + sum(len(s) for s in head) + 8
    primary_size = len(join([*head, *rest], structure)) + mpf_len
    sizes = [primary_size, *(len(s.data) for s in secondaries)]
    attributes = [_MP_REPRESENTATIVE | _MP_PRIMARY, *(s.attribute for s in secondaries)]
    mpf = _mpf_segment(sizes, attributes, base)
    primary = join([*head, mpf, *rest], structure)
    assert len(primary) == primary_size
    return primary + b"".join(s.data for s in secondaries) + trailer


def _leading_app01(metadata: Sequence[bytes]) -> Iterator[bytes]:
    for seg in metadata:
        if seg[1] not in (0xE0, 0xE1):
            return
        yield seg


def _filtered_secondary(image: SecondaryImage, policy: Policy, report: MetadataReport) -> bytes:
    parts = split(image.data)
    kept = filter_metadata(parts.metadata, policy, report)
    return join(kept, parts.structure)


def rebuild(
    original: bytes,
    structure: bytes,
    policy: Policy,
    report: MetadataReport,
    *,
    keep_gain_map: bool,
    encoder_segments: Sequence[bytes] = (),
    gain_map: bytes | None = None,
) -> bytes:
    """The output file: `structure` (the primary's coded pixels) with the metadata of
    `original` after the policy, and the secondary images and trailer of `original` that
    the policy keeps (see docs/metadata.md)."""
    file = layout(original)
    keep_originals = policy.keeps_originals
    kept: list[SecondaryImage] = []
    for image in file.secondaries:
        if image.kind == "gain map":
            if keep_originals:
                kept.append(image)  # byte-identical, as the container directory lists it
            elif keep_gain_map:
                if gain_map is not None:
                    image = SecondaryImage(image.kind, image.attribute, gain_map)
                filtered = _filtered_secondary(image, policy, report)
                kept.append(SecondaryImage(image.kind, image.attribute, filtered))
            else:
                report.add(image.label)
            continue
        item = "MPF preview / thumbnail image" if image.kind == "preview" else "MPF other image"
        if policy.allows(container_rule(item)):
            kept.append(image)
        else:
            report.add(image.label)
    trailer = file.trailer
    if trailer and not policy.allows(
        container_rule("trailer after the last image (motion-photo video)")
    ):
        report.add("motion-photo video" if b"ftyp" in trailer[:64] else "trailing data")
        trailer = b""
    extra: list[ET.Element] = []
    rebuild_directory = not keep_originals and any(k.kind == "gain map" for k in kept)
    if rebuild_directory:
        items = [("Primary", "image/jpeg", 0)]
        items += [("GainMap", "image/jpeg", len(k.data)) for k in kept]
        extra.append(container_directory(items))
    meta = filter_metadata(
        file.parts.metadata, policy, report, xmp_extra=extra, rebuild_directory=rebuild_directory
    )
    if not any(k.kind == "gain map" for k in kept):
        meta = [s for s in meta if not (s[1] == 0xE2 and _payload(s).startswith(_ISO_GAIN_MAP))]
    if encoder_segments:
        # The encoder's Adobe APP14 describes the new scan data; its JFIF goes in only where
        # the original had none.
        meta = [s for s in meta if s[1] != 0xEE]
        had_jfif = any(s[1] == 0xE0 for s in meta)
        head = [s for s in encoder_segments if s[1] == 0xE0 and not had_jfif]
        adobe = [s for s in encoder_segments if s[1] == 0xEE]
        jfif = [s for s in meta if s[1] == 0xE0]
        rest = [s for s in meta if s[1] != 0xE0]
        meta = [*head, *jfif, *rest, *adobe]
    return assemble(meta, structure, kept, trailer)


def rewrite_metadata(data: bytes, *, keep_metadata: bool, report: MetadataReport) -> bytes:
    """The same JPEG with the policy applied and the pixel data byte-identical (no cloak)."""
    policy = Policy(keep_metadata=keep_metadata, cloaked=False)
    structure = split(data).structure
    return rebuild(data, structure, policy, report, keep_gain_map=True)


def splice_metadata(
    encoded: bytes,
    original: bytes,
    *,
    keep_metadata: bool,
    report: MetadataReport,
    keep_gain_map: bool = False,
    gain_map: bytes | None = None,
) -> bytes:
    """Freshly encoded (cloaked) pixels with the original's metadata, policy applied.

    `keep_gain_map`: the engine measured that the HDR rendition (cloaked primary x the
    gain map) still carries the cloak; otherwise the gain map is dropped. `gain_map`: the
    engine's version of it (face regions flattened) to write instead of the original's.
    """
    new = split(encoded)
    policy = Policy(keep_metadata=keep_metadata, cloaked=True)
    return rebuild(
        original,
        new.structure,
        policy,
        report,
        keep_gain_map=keep_gain_map,
        encoder_segments=new.metadata,
        gain_map=gain_map,
    )
