"""WebP container (RIFF): metadata rewriting without re-encoding the bitstream."""

from __future__ import annotations

from veil.errors import CorruptImageError
from veil.imaging import bounds
from veil.imaging.metadata import MetadataReport, Policy, filter_exif, filter_xmp

_FLAG_EXIF = 0x08
_FLAG_XMP = 0x04


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise CorruptImageError("not a WebP stream")
    out: list[tuple[bytes, bytes]] = []
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        end = pos + 8 + length
        if end > len(data):
            raise CorruptImageError("the WebP is truncated")
        out.append((kind, data[pos + 8 : end]))
        if len(out) > bounds.MAX_WEBP_CHUNKS:
            raise bounds.too_many("WebP chunks", bounds.MAX_WEBP_CHUNKS)
        if kind in (b"EXIF", b"XMP ", b"ICCP"):
            bounds.check_metadata_size(length, f"WebP {kind.decode('latin-1').strip()} chunk")
        pos = end + (length & 1)
    return out


def _riff(parts: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(
        kind + len(payload).to_bytes(4, "little") + payload + (b"\x00" if len(payload) & 1 else b"")
        for kind, payload in parts
    )
    return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body


def is_lossless(data: bytes) -> bool:
    return any(kind == b"VP8L" for kind, _ in chunks(data))


_KEPT = {b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ICCP", b"ANIM", b"ANMF"}  # ANIM/ANMF: animation


def filter_chunks(
    parts: list[tuple[bytes, bytes]], policy: Policy, report: MetadataReport
) -> list[tuple[bytes, bytes]]:
    """Bitstream and ICC chunks as they are, EXIF and XMP after the allow-list, nothing else;
    the VP8X flags follow what is left."""
    kept: list[tuple[bytes, bytes]] = []
    flags_off = 0
    for kind, payload in parts:
        if kind == b"EXIF":
            scrubbed = filter_exif(payload, policy, report, reset_orientation=policy.cloaked)
            if scrubbed is None:
                flags_off |= _FLAG_EXIF
                continue
            payload = scrubbed
        elif kind == b"XMP ":
            packet = filter_xmp(payload, policy, report)
            if packet is None:
                flags_off |= _FLAG_XMP
                continue
            payload = packet
        elif kind not in _KEPT:
            report.add(f"WebP chunk {kind.decode('latin-1').strip()}")
            continue
        kept.append((kind, payload))
    if flags_off and kept and kept[0][0] == b"VP8X":
        header = bytearray(kept[0][1])
        header[0] &= ~flags_off & 0xFF
        kept[0] = (b"VP8X", bytes(header))
    return kept


def rewrite_metadata(data: bytes, *, keep_metadata: bool, report: MetadataReport) -> bytes:
    """The same WebP with the allow-list applied; the bitstream byte-identical."""
    policy = Policy(keep_metadata=keep_metadata, cloaked=False)
    return _riff(filter_chunks(chunks(data), policy, report))


def metadata_of(data: bytes) -> tuple[bytes | None, bytes | None]:
    """(EXIF, XMP) payloads of a WebP, if present."""
    exif = xmp = None
    for kind, payload in chunks(data):
        if kind == b"EXIF":
            exif = payload
        elif kind == b"XMP ":
            xmp = payload
    return exif, xmp
