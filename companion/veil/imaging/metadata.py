"""Metadata policy: what identifies the photographer is removed, everything else is kept.

Removed by default (`keep_metadata=False`):

- GPS: the whole EXIF GPS IFD.
- Serial numbers and unique ids: BodySerialNumber, LensSerialNumber, CameraSerialNumber (DNG),
  ImageUniqueID, and the MakerNote (vendors store the body serial number in it).
- Owner names: CameraOwnerName, Artist, XPAuthor, HostComputer (often "Jane's MacBook").
  Copyright is kept: it is a legal notice the owner chose to publish.
- Embedded thumbnails: EXIF IFD1 is never written back, and JPEG FlashPix/MPF segments with
  preview images are dropped. When faces were cloaked the thumbnail is dropped even with
  `keep_metadata=True`, because it would carry the uncloaked face.
- IPTC (Photoshop APP13 / IRB): by-line, city and contact fields, with no safe way to keep only
  the harmless part, so the block is dropped.
- XMP packets that mention GPS, serial numbers, creators or owners are dropped whole (filtering
  XML in place is fragile); harmless XMP (ratings, edit history) is kept.

Kept: camera make and model, exposure settings, dates, ICC profile, copyright, comments.
Orientation: pixels are rotated upright and the tag set to 1 whenever pixels are re-encoded;
the lossless no-face path keeps pixels and the Orientation tag untouched (same display).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

EXIF_PREFIX = b"Exif\x00\x00"

_IFD_EXIF = 0x8769
_IFD_GPS = 0x8825
_ORIENTATION = 0x0112

# Tags removed from IFD0 and from the Exif IFD (either may hold them in practice).
IDENTIFYING_TAGS: dict[int, str] = {
    0x013B: "Artist",
    0x013C: "HostComputer",
    0x9C9D: "XPAuthor",
    0xC62F: "CameraSerialNumber",
    0xA420: "ImageUniqueID",
    0xA430: "CameraOwnerName",
    0xA431: "BodySerialNumber",
    0xA435: "LensSerialNumber",
    0x927C: "MakerNote",
}

_XMP_IDENTIFYING = re.compile(
    rb"GPS(Latitude|Longitude|Altitude|Position)|SerialNumber|OwnerName|dc:creator|"
    rb"CreatorContactInfo|photoshop:Credit|photoshop:AuthorsPosition|Iptc4xmpCore:Location|"
    rb"photoshop:City|photoshop:Country|tiff:Artist|xmpRights:Owner"
)


@dataclass
class MetadataReport:
    """Names of what was removed, for `CloakResult.metadata_removed` (no duplicates)."""

    removed: list[str] = field(default_factory=list)

    def add(self, name: str) -> None:
        if name not in self.removed:
            self.removed.append(name)


def xmp_is_identifying(packet: bytes) -> bool:
    return _XMP_IDENTIFYING.search(packet) is not None


def scrub_exif(
    raw: bytes,
    *,
    keep_identifying: bool,
    reset_orientation: bool,
    drop_thumbnail: bool,
    report: MetadataReport,
) -> bytes | None:
    """Apply the policy to EXIF bytes (with or without the "Exif\\0\\0" prefix).

    Returns TIFF bytes with the same prefix convention as the input, or None when nothing is
    left worth writing. When nothing has to change the input comes back untouched (lossless,
    thumbnail included).
    """
    prefixed = raw.startswith(EXIF_PREFIX)
    exif = Image.Exif()
    try:
        exif.load(raw)
    except Exception:  # malformed EXIF is dropped, never trusted or crashed on
        report.add("EXIF (unreadable)")
        return None
    has_thumbnail = _has_ifd1(raw)
    changed = False
    if not keep_identifying:
        sub = exif.get_ifd(_IFD_EXIF) if _IFD_EXIF in exif else None
        for ifd in (exif, sub):
            if ifd is None:
                continue
            for tag, name in IDENTIFYING_TAGS.items():
                if tag in ifd:
                    del ifd[tag]
                    report.add(name)
                    changed = True
        if _IFD_GPS in exif:
            exif.get_ifd(_IFD_GPS)  # load it so Pillow forgets it on delete
            del exif[_IFD_GPS]
            report.add("GPS")
            changed = True
    if reset_orientation and exif.get(_ORIENTATION, 1) != 1:
        exif[_ORIENTATION] = 1
        changed = True
    if has_thumbnail and (drop_thumbnail or changed):
        # Pillow never writes IFD1 back, so any rewrite drops the thumbnail.
        report.add("thumbnail")
        changed = True
    if not changed:
        return raw
    if _IFD_EXIF in exif:
        exif.get_ifd(_IFD_EXIF)  # make sure the sub-IFD is serialised
    if len(exif) == 0:
        return None
    try:
        out = exif.tobytes()
    except Exception:  # a tag stored with the wrong type cannot be written back: drop it all
        report.add("EXIF (unreadable)")
        return None
    return out if prefixed else out[len(EXIF_PREFIX) :]


def _has_ifd1(raw: bytes) -> bool:
    """Whether IFD0 links to a next IFD (IFD1 holds the embedded thumbnail)."""
    tiff = raw[len(EXIF_PREFIX) :] if raw.startswith(EXIF_PREFIX) else raw
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return False
    order: Literal["little", "big"] = "little" if tiff[:2] == b"II" else "big"
    ifd0 = int.from_bytes(tiff[4:8], order)
    if ifd0 + 2 > len(tiff):
        return False
    count = int.from_bytes(tiff[ifd0 : ifd0 + 2], order)
    link = ifd0 + 2 + 12 * count
    if link + 4 > len(tiff):
        return False
    return int.from_bytes(tiff[link : link + 4], order) != 0
