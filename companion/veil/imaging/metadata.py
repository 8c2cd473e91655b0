"""Metadata policy: one allow-list for every container (JPEG, PNG, WebP, HEIC, AVIF).

Every EXIF tag, XMP property, IPTC dataset and PNG text key that leaves Veil is listed in the
tables below with one of four rules; anything not listed is dropped. Containers never copy a
metadata block through: EXIF, XMP and IPTC are parsed and rebuilt from the allowed entries
only, so an unknown field (or a known one in the wrong type) cannot slip through.

- KEEP: what a photographer expects: make and model, exposure, capture dates, copyright,
  description, colour profile, orientation (baked into the pixels when they are re-encoded).
- PERSONAL: locates or identifies the person or the device (GPS and every location field,
  serial numbers and unique ids, owner / author / creator names, comments, edit history):
  kept only with `--keep-metadata`.
- ORIGINAL: holds, signs or labels the original pixels (thumbnails, previews, motion-photo
  videos, depth maps, maker notes, face-region lists, C2PA/JUMBF manifests): kept only with
  `--keep-metadata` and only when no face was cloaked (a cloak would be undone by the copy).
- DROP: never written.

`docs/metadata.md` is the same table in words, with what happens to each secondary image.
"""

from __future__ import annotations

import enum
import numbers
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image


class Rule(enum.Enum):
    KEEP = "keep"
    PERSONAL = "keep only with --keep-metadata"
    ORIGINAL = "keep only with --keep-metadata when no face was cloaked"
    DROP = "drop"


@dataclass(frozen=True)
class Policy:
    """One call's settings: what the user asked for and whether pixels carry a cloak."""

    keep_metadata: bool
    cloaked: bool

    def allows(self, rule: Rule) -> bool:
        if rule is Rule.KEEP:
            return True
        if rule is Rule.PERSONAL:
            return self.keep_metadata
        if rule is Rule.ORIGINAL:
            return self.keep_metadata and not self.cloaked
        return False

    @property
    def keeps_originals(self) -> bool:
        return self.allows(Rule.ORIGINAL)


@dataclass
class MetadataReport:
    """Names of what was removed, for `CloakResult.metadata_removed` (no duplicates)."""

    removed: list[str] = field(default_factory=list)

    def add(self, name: str) -> None:
        if name not in self.removed:
            self.removed.append(name)


K, P, ORIG, D = Rule.KEEP, Rule.PERSONAL, Rule.ORIGINAL, Rule.DROP

# -- EXIF ---------------------------------------------------------------------------------

EXIF_PREFIX = b"Exif\x00\x00"
_IFD_EXIF = 0x8769
_IFD_GPS = 0x8825
_ORIENTATION = 0x0112

# Value kinds as Pillow decodes them; a tag whose value has another type is dropped.
ExifKind = Literal["ascii", "int", "real", "bytes", "any"]


@dataclass(frozen=True)
class ExifRow:
    name: str
    rule: Rule
    kind: ExifKind


# IFD0 (the image's own directory).
EXIF_IFD0: dict[int, ExifRow] = {
    0x010E: ExifRow("ImageDescription", K, "ascii"),
    0x010F: ExifRow("Make", K, "ascii"),
    0x0110: ExifRow("Model", K, "ascii"),
    0x0112: ExifRow("Orientation", K, "int"),
    0x011A: ExifRow("XResolution", K, "real"),
    0x011B: ExifRow("YResolution", K, "real"),
    0x0128: ExifRow("ResolutionUnit", K, "int"),
    0x0131: ExifRow("Software", K, "ascii"),
    0x0132: ExifRow("DateTime", K, "ascii"),
    0x013E: ExifRow("WhitePoint", K, "real"),
    0x013F: ExifRow("PrimaryChromaticities", K, "real"),
    0x0211: ExifRow("YCbCrCoefficients", K, "real"),
    0x0213: ExifRow("YCbCrPositioning", K, "int"),
    0x0214: ExifRow("ReferenceBlackWhite", K, "real"),
    0x8298: ExifRow("Copyright", K, "ascii"),
    0x9C9B: ExifRow("XPTitle", K, "bytes"),
    0x013B: ExifRow("Artist", P, "ascii"),
    0x013C: ExifRow("HostComputer", P, "ascii"),
    0x9C9C: ExifRow("XPComment", P, "bytes"),
    0x9C9D: ExifRow("XPAuthor", P, "bytes"),
    0x9C9E: ExifRow("XPKeywords", P, "bytes"),
    0x9C9F: ExifRow("XPSubject", P, "bytes"),
    0xC62F: ExifRow("CameraSerialNumber", P, "any"),
}

# The Exif sub-IFD.
EXIF_SUB: dict[int, ExifRow] = {
    0x829A: ExifRow("ExposureTime", K, "real"),
    0x829D: ExifRow("FNumber", K, "real"),
    0x8822: ExifRow("ExposureProgram", K, "int"),
    0x8827: ExifRow("ISOSpeedRatings", K, "int"),
    0x8830: ExifRow("SensitivityType", K, "int"),
    0x8832: ExifRow("RecommendedExposureIndex", K, "int"),
    0x9000: ExifRow("ExifVersion", K, "bytes"),
    0x9003: ExifRow("DateTimeOriginal", K, "ascii"),
    0x9004: ExifRow("DateTimeDigitized", K, "ascii"),
    0x9010: ExifRow("OffsetTime", K, "ascii"),
    0x9011: ExifRow("OffsetTimeOriginal", K, "ascii"),
    0x9012: ExifRow("OffsetTimeDigitized", K, "ascii"),
    0x9101: ExifRow("ComponentsConfiguration", K, "bytes"),
    0x9201: ExifRow("ShutterSpeedValue", K, "real"),
    0x9202: ExifRow("ApertureValue", K, "real"),
    0x9203: ExifRow("BrightnessValue", K, "real"),
    0x9204: ExifRow("ExposureBiasValue", K, "real"),
    0x9205: ExifRow("MaxApertureValue", K, "real"),
    0x9206: ExifRow("SubjectDistance", K, "real"),
    0x9207: ExifRow("MeteringMode", K, "int"),
    0x9208: ExifRow("LightSource", K, "int"),
    0x9209: ExifRow("Flash", K, "int"),
    0x920A: ExifRow("FocalLength", K, "real"),
    0x9290: ExifRow("SubSecTime", K, "ascii"),
    0x9291: ExifRow("SubSecTimeOriginal", K, "ascii"),
    0x9292: ExifRow("SubSecTimeDigitized", K, "ascii"),
    0xA000: ExifRow("FlashpixVersion", K, "bytes"),
    0xA001: ExifRow("ColorSpace", K, "int"),
    0xA002: ExifRow("PixelXDimension", K, "int"),
    0xA003: ExifRow("PixelYDimension", K, "int"),
    0xA20E: ExifRow("FocalPlaneXResolution", K, "real"),
    0xA20F: ExifRow("FocalPlaneYResolution", K, "real"),
    0xA210: ExifRow("FocalPlaneResolutionUnit", K, "int"),
    0xA217: ExifRow("SensingMethod", K, "int"),
    0xA300: ExifRow("FileSource", K, "bytes"),
    0xA301: ExifRow("SceneType", K, "bytes"),
    0xA401: ExifRow("CustomRendered", K, "int"),
    0xA402: ExifRow("ExposureMode", K, "int"),
    0xA403: ExifRow("WhiteBalance", K, "int"),
    0xA404: ExifRow("DigitalZoomRatio", K, "real"),
    0xA405: ExifRow("FocalLengthIn35mmFilm", K, "int"),
    0xA406: ExifRow("SceneCaptureType", K, "int"),
    0xA407: ExifRow("GainControl", K, "int"),
    0xA408: ExifRow("Contrast", K, "int"),
    0xA409: ExifRow("Saturation", K, "int"),
    0xA40A: ExifRow("Sharpness", K, "int"),
    0xA40C: ExifRow("SubjectDistanceRange", K, "int"),
    0xA432: ExifRow("LensSpecification", K, "real"),
    0xA433: ExifRow("LensMake", K, "ascii"),
    0xA434: ExifRow("LensModel", K, "ascii"),
    0xA460: ExifRow("CompositeImage", K, "int"),
    0x9286: ExifRow("UserComment", P, "bytes"),
    0xA420: ExifRow("ImageUniqueID", P, "ascii"),
    0xA430: ExifRow("CameraOwnerName", P, "ascii"),
    0xA431: ExifRow("BodySerialNumber", P, "ascii"),
    0xA435: ExifRow("LensSerialNumber", P, "ascii"),
    # Vendor blocks hold serial numbers and face-detection results, at offsets a rewrite breaks.
    0x927C: ExifRow("MakerNote", ORIG, "bytes"),
    # Where the main subject (on phones: the face) is.
    0x9214: ExifRow("SubjectArea", D, "any"),
    0xA214: ExifRow("SubjectLocation", D, "any"),
}

# Every GPS tag is a location: the GPS IFD travels only with --keep-metadata.
EXIF_GPS_RULE = P
EXIF_THUMBNAIL_RULE = ORIG  # IFD1: a small copy of the original pixels


def _value_ok(value: Any, kind: ExifKind) -> bool:
    items = value if isinstance(value, tuple) else (value,)
    if kind == "any":
        return True
    if kind == "ascii":
        return isinstance(value, str)
    if kind == "bytes":
        return isinstance(value, bytes)
    if not items:
        return False
    if kind == "int":
        return all(isinstance(v, int) and not isinstance(v, bool) for v in items)
    return all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and _finite(v) for v in items
    )


def _finite(value: Any) -> bool:
    try:
        as_float = float(value)
    except (ZeroDivisionError, ValueError, OverflowError):
        return False
    return as_float == as_float and abs(as_float) != float("inf")


def _serialisable(ifd: int | None, tag: int, value: Any) -> bool:
    """Whether Pillow writes this one tag without raising (the type it guesses may clash)."""
    probe = Image.Exif()
    try:
        if ifd is None:
            probe[tag] = value
        else:
            probe.get_ifd(ifd)[tag] = value
        probe.tobytes()
    except Exception:
        return False
    return True


def scrub_exif(
    raw: bytes,
    *,
    keep_identifying: bool,
    reset_orientation: bool,
    drop_thumbnail: bool,
    report: MetadataReport,
) -> bytes | None:
    """Compatibility wrapper of `filter_exif` (old keyword names)."""
    policy = Policy(keep_metadata=keep_identifying, cloaked=reset_orientation or drop_thumbnail)
    return filter_exif(raw, policy, report, reset_orientation=reset_orientation)


def filter_exif(
    raw: bytes, policy: Policy, report: MetadataReport, *, reset_orientation: bool
) -> bytes | None:
    """EXIF rebuilt from the allowed tags (same "Exif\\0\\0" prefix convention as `raw`).

    None when nothing allowed remains. The input comes back byte-identical only when the
    policy keeps originals and nothing was dropped (maker note and thumbnail offsets intact).
    Malformed blocks and wrong-type values are dropped, never raised on.
    """
    prefixed = raw.startswith(EXIF_PREFIX)
    source = Image.Exif()
    try:
        source.load(raw)
        sub = dict(source.get_ifd(_IFD_EXIF)) if _IFD_EXIF in source else {}
        gps = dict(source.get_ifd(_IFD_GPS)) if _IFD_GPS in source else {}
        ifd0 = {k: v for k, v in source.items() if k not in (_IFD_EXIF, _IFD_GPS)}
    except Exception:  # malformed EXIF is dropped, never trusted or crashed on
        report.add("EXIF (unreadable)")
        return None
    dropped = False
    out = Image.Exif()
    for tag, value in ifd0.items():
        dropped |= not _copy_tag(out, None, tag, value, EXIF_IFD0.get(tag), policy, report)
    if sub:
        out_sub = out.get_ifd(_IFD_EXIF)
        for tag, value in sub.items():
            row = EXIF_SUB.get(tag)
            if row is None and tag in EXIF_IFD0:  # IFD0 tags written into the sub-IFD
                row = EXIF_IFD0[tag]
            dropped |= not _copy_tag(out, _IFD_EXIF, tag, value, row, policy, report)
        if not out_sub:
            del out[_IFD_EXIF]
    if gps:
        if policy.allows(EXIF_GPS_RULE):
            out_gps = out.get_ifd(_IFD_GPS)
            for tag, value in gps.items():
                if _serialisable(_IFD_GPS, tag, value):
                    out_gps[tag] = value
                else:
                    report.add("GPS (malformed)")
                    dropped = True
            if not out_gps:
                del out[_IFD_GPS]
        else:
            report.add("GPS")
            dropped = True
    thumbnail = None
    if _has_ifd1(raw):
        if policy.allows(EXIF_THUMBNAIL_RULE):
            thumbnail = _thumbnail_of(raw)
        if thumbnail is None:
            report.add("thumbnail")
            dropped = True
    orientation = out.get(_ORIENTATION, 1)
    reset = reset_orientation and orientation != 1
    if not dropped and not reset and policy.keeps_originals:
        return raw
    if reset:
        out[_ORIENTATION] = 1
    if len(out) == 0:
        return None
    try:
        data = out.tobytes()
    except Exception:  # every tag passed alone; a clash of several is still not a crash
        report.add("EXIF (unwritable)")
        return None
    if thumbnail is not None:
        data = _append_thumbnail(data, thumbnail)
    return data if prefixed else data[len(EXIF_PREFIX) :]


def _thumbnail_of(raw: bytes) -> bytes | None:
    """The IFD1 JPEG thumbnail's bytes (None when absent, damaged or not a JPEG)."""
    tiff = raw[len(EXIF_PREFIX) :] if raw.startswith(EXIF_PREFIX) else raw
    order: Literal["little", "big"] = "little" if tiff[:2] == b"II" else "big"

    def u(at: int, size: int) -> int:
        return int.from_bytes(tiff[at : at + size], order)

    ifd0 = u(4, 4)
    ifd1 = u(ifd0 + 2 + 12 * u(ifd0, 2), 4)
    if not 8 <= ifd1 <= len(tiff) - 2:
        return None
    offset = length = 0
    for i in range(min(u(ifd1, 2), 64)):
        at = ifd1 + 2 + 12 * i
        if at + 12 > len(tiff):
            return None
        if u(at, 2) == 0x0201:
            offset = u(at + 8, 4)
        elif u(at, 2) == 0x0202:
            length = u(at + 8, 4)
    thumbnail = tiff[offset : offset + length]
    if length <= 0 or len(thumbnail) != length or not thumbnail.startswith(b"\xff\xd8"):
        return None
    return thumbnail


def _append_thumbnail(exif: bytes, thumbnail: bytes) -> bytes:
    """Pillow writes IFD0 only: link an IFD1 that holds a JPEG thumbnail."""
    tiff = bytearray(exif[len(EXIF_PREFIX) :])
    order: Literal["little", "big"] = "little" if tiff[:2] == b"II" else "big"
    ifd0 = int.from_bytes(tiff[4:8], order)
    count = int.from_bytes(tiff[ifd0 : ifd0 + 2], order)
    link = ifd0 + 2 + 12 * count
    ifd1 = len(tiff) + (len(tiff) & 1)
    tiff += b"\x00" * (ifd1 - len(tiff))
    data_at = ifd1 + 2 + 2 * 12 + 4

    def entry(tag: int, value: int) -> bytes:
        return b"".join(
            (tag.to_bytes(2, order), (4).to_bytes(2, order), (1).to_bytes(4, order),
             value.to_bytes(4, order))
        )  # fmt: skip

    tiff += (2).to_bytes(2, order) + entry(0x0201, data_at) + entry(0x0202, len(thumbnail))
    tiff += (0).to_bytes(4, order) + thumbnail
    tiff[link : link + 4] = ifd1.to_bytes(4, order)
    return EXIF_PREFIX + bytes(tiff)


def _copy_tag(
    out: Image.Exif,
    ifd: int | None,
    tag: int,
    value: Any,
    row: ExifRow | None,
    policy: Policy,
    report: MetadataReport,
) -> bool:
    """Copy one tag if the policy allows it; False when it was dropped."""
    if tag in (_IFD_EXIF, _IFD_GPS, 0xA005):  # pointers are rebuilt, the Interop IFD is not kept
        return tag == _IFD_EXIF
    if row is None:
        report.add(f"EXIF 0x{tag:04X}")
        return False
    if not policy.allows(row.rule):
        report.add(row.name)
        return False
    if not _value_ok(value, row.kind) or not _serialisable(ifd, tag, value):
        report.add(f"{row.name} (malformed)")
        return False
    if ifd is None:
        out[tag] = value
    else:
        out.get_ifd(ifd)[tag] = value
    return True


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


# -- XMP ----------------------------------------------------------------------------------

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMP_NAMESPACES: dict[str, str] = {
    "x": "adobe:ns:meta/",
    "rdf": RDF,
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "xmpNote": "http://ns.adobe.com/xmp/note/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "exifEX": "http://cipa.jp/exif/1.0/",
    "aux": "http://ns.adobe.com/exif/1.0/aux/",
    "Iptc4xmpCore": "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "mwg-rs": "http://www.metadataworkinggroup.com/schemas/regions/",
    "MP": "http://ns.microsoft.com/photo/1.2/",
    "MicrosoftPhoto": "http://ns.microsoft.com/photo/1.0/",
    "apple-fi": "http://ns.apple.com/faceinfo/1.0/",
    "GCamera": "http://ns.google.com/photos/1.0/camera/",
    "Container": "http://ns.google.com/photos/1.0/container/",
    "Item": "http://ns.google.com/photos/1.0/container/item/",
    "GDepth": "http://ns.google.com/photos/1.0/depthmap/",
    "GImage": "http://ns.google.com/photos/1.0/image/",
    "GAudio": "http://ns.google.com/photos/1.0/audio/",
    "GFocus": "http://ns.google.com/photos/1.0/focus/",
    "hdrgm": "http://ns.adobe.com/hdr-gain-map/1.0/",
    "plus": "http://ns.useplus.org/ldf/xmp/1.0/",
    "crs": "http://ns.adobe.com/camera-raw-settings/1.0/",
}
for _prefix, _uri in XMP_NAMESPACES.items():
    ET.register_namespace(_prefix, _uri)

_EXIF_KEPT = (
    "ExposureTime FNumber ExposureProgram ISOSpeedRatings DateTimeOriginal DateTimeDigitized "
    "ShutterSpeedValue ApertureValue BrightnessValue ExposureBiasValue MaxApertureValue "
    "MeteringMode LightSource Flash FocalLength FocalLengthIn35mmFilm PixelXDimension "
    "PixelYDimension ColorSpace WhiteBalance ExposureMode SceneCaptureType DigitalZoomRatio "
    "Contrast Saturation Sharpness ExifVersion FlashpixVersion SensingMethod SubjectDistance "
    "SubjectDistanceRange CustomRendered GainControl FileSource SceneType"
)
_EXIF_GPS = (
    "GPSVersionID GPSLatitude GPSLongitude GPSLatitudeRef GPSLongitudeRef GPSAltitude "
    "GPSAltitudeRef GPSTimeStamp GPSDateStamp GPSSatellites GPSStatus GPSMeasureMode GPSDOP "
    "GPSSpeedRef GPSSpeed GPSTrackRef GPSTrack GPSImgDirectionRef GPSImgDirection GPSMapDatum "
    "GPSDestLatitude GPSDestLongitude GPSDestBearing GPSDestBearingRef GPSDestDistance "
    "GPSDestDistanceRef GPSProcessingMethod GPSAreaInformation GPSDifferential "
    "GPSHPositioningError"
)


def _rows(prefix: str, names: str, rule: Rule) -> dict[tuple[str, str], Rule]:
    return {(XMP_NAMESPACES[prefix], name): rule for name in names.split()}


# (namespace URI, property name) -> rule; name "*" covers a whole namespace.
XMP_PROPERTIES: dict[tuple[str, str], Rule] = {
    **_rows("dc", "title description rights format", K),
    **_rows("dc", "creator contributor publisher subject", P),
    **_rows("xmp", "CreateDate ModifyDate MetadataDate CreatorTool Rating Label", K),
    **_rows("xmp", "Thumbnails", ORIG),
    **_rows("xmpRights", "Marked WebStatement UsageTerms Certificate", K),
    **_rows("xmpRights", "Owner", P),
    **_rows("xmpMM", "DocumentID InstanceID OriginalDocumentID History DerivedFrom", P),
    **_rows("xmpMM", "Ingredients Pantry Manifest", P),
    **_rows("xmpNote", "HasExtendedXMP", ORIG),
    **_rows("photoshop", "DateCreated Headline ColorMode ICCProfile", K),
    **_rows("photoshop", "City State Country Credit Source AuthorsPosition CaptionWriter", P),
    **_rows("photoshop", "TransmissionReference DocumentAncestors History", P),
    **_rows("tiff", "Make Model Orientation XResolution YResolution ResolutionUnit", K),
    **_rows("tiff", "ImageWidth ImageLength Software DateTime ImageDescription Copyright", K),
    **_rows("tiff", "Artist", P),
    **_rows("exif", _EXIF_KEPT, K),
    **_rows("exif", _EXIF_GPS + " UserComment ImageUniqueID", P),
    **_rows("exif", "SubjectArea SubjectLocation", D),
    **_rows("exifEX", "LensMake LensModel LensSpecification PhotographicSensitivity", K),
    **_rows("exifEX", "SensitivityType RecommendedExposureIndex", K),
    **_rows("exifEX", "BodySerialNumber LensSerialNumber CameraOwnerName ImageUniqueID", P),
    **_rows("exifEX", "OffsetTime OffsetTimeOriginal OffsetTimeDigitized", K),
    **_rows("aux", "Lens LensInfo LensID", K),
    **_rows("aux", "SerialNumber LensSerialNumber OwnerName ImageNumber", P),
    **_rows("Iptc4xmpCore", "Location CountryCode CreatorContactInfo SubjectCode", P),
    **_rows("Iptc4xmpExt", "LocationCreated LocationShown City CountryName Sublocation", P),
    **_rows("Iptc4xmpExt", "ProvinceState WorldRegion ArtworkOrObject", P),
    # Who is in the picture: identity labels on the face a cloak protects.
    **_rows("Iptc4xmpExt", "PersonInImage PersonInImageWDetails", ORIG),
    **_rows("mwg-rs", "Regions", ORIG),
    **_rows("MP", "RegionInfo", ORIG),
    **_rows("MicrosoftPhoto", "LastKeywordXMP LastKeywordIPTC", P),
    **_rows("apple-fi", "*", ORIG),
    **_rows("GCamera", "*", ORIG),  # motion photo / micro video: the video holds the face
    **_rows("Container", "*", ORIG),  # rebuilt by the JPEG writer for what it keeps
    **_rows("GDepth", "*", ORIG),
    **_rows("GImage", "*", ORIG),  # GImage:Data is the original photo
    **_rows("GAudio", "*", ORIG),
    **_rows("GFocus", "*", ORIG),
    # Gain-map parameters: the HDR rendition's gain map is decided on separately (jpeg.py).
    **_rows("hdrgm", "*", K),
}


def xmp_rule(namespace: str, name: str) -> Rule | None:
    return XMP_PROPERTIES.get((namespace, name)) or XMP_PROPERTIES.get((namespace, "*"))


def _qualified(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return "", tag


def _label(namespace: str, name: str) -> str:
    prefix = next((p for p, uri in XMP_NAMESPACES.items() if uri == namespace), None)
    return f"XMP {prefix}:{name}" if prefix else f"XMP {{{namespace}}}{name}"


_UNSAFE_XML = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def xmp_properties(packet: bytes) -> Iterator[tuple[str, str, str | ET.Element]]:
    """(namespace, name, value) of each top-level property: attribute values are strings,
    element properties come as elements. Raises ValueError on unreadable packets."""
    if _UNSAFE_XML.search(packet):
        raise ValueError("XMP with a DOCTYPE or entities")
    text = packet.strip().lstrip(b"\xef\xbb\xbf").rstrip(b"\x00")
    root = ET.fromstring(text)
    rdf_root = root if root.tag == f"{{{RDF}}}RDF" else root.find(f".//{{{RDF}}}RDF")
    if rdf_root is None:
        return
    for node in rdf_root:
        if node.tag != f"{{{RDF}}}Description":  # typed nodes: not listed, dropped
            yield (*_qualified(node.tag), node)
            continue
        for attribute, value in node.attrib.items():
            namespace, name = _qualified(attribute)
            if namespace == RDF:
                continue
            yield namespace, name, value
        for child in node:
            yield (*_qualified(child.tag), child)


def filter_xmp(
    packet: bytes,
    policy: Policy,
    report: MetadataReport,
    *,
    extra: Iterable[ET.Element] = (),
    drop: Sequence[str] = (),
) -> bytes | None:
    """A fresh XMP packet holding only the allowed properties (None when none remain).

    `extra`: elements the caller generates (e.g. a container directory for what it kept);
    `drop`: namespaces the caller rebuilds itself and so removes here.
    """
    kept_attributes: dict[str, str] = {}
    kept_elements: list[ET.Element] = []
    try:
        properties = list(xmp_properties(packet))
    except (ET.ParseError, ValueError, RecursionError):
        report.add("XMP (unreadable)")
        properties = []
    for namespace, name, value in properties:
        rule = xmp_rule(namespace, name)
        if rule is None or namespace in drop or not policy.allows(rule):
            report.add(_label(namespace, name))
            continue
        if isinstance(value, str):
            kept_attributes[f"{{{namespace}}}{name}"] = value
        elif _depth(value) > _MAX_XMP_DEPTH:
            report.add(f"{_label(namespace, name)} (too deep)")
        else:
            kept_elements.append(value)
    kept_elements.extend(extra)
    if not kept_attributes and not kept_elements:
        return None
    return build_xmp(kept_attributes, kept_elements)


_MAX_XMP_DEPTH = 32  # real structures nest a handful of levels; deeper ones are not trusted


def _depth(element: ET.Element) -> int:
    deepest, stack = 0, [(element, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > _MAX_XMP_DEPTH:
            break
        stack.extend((child, level + 1) for child in node)
    return deepest


def build_xmp(attributes: dict[str, str], elements: Sequence[ET.Element]) -> bytes:
    meta = ET.Element(f"{{{XMP_NAMESPACES['x']}}}xmpmeta")
    rdf = ET.SubElement(meta, f"{{{RDF}}}RDF")
    description = ET.SubElement(rdf, f"{{{RDF}}}Description", {f"{{{RDF}}}about": ""})
    description.attrib.update(attributes)
    description.extend(elements)
    body: bytes = ET.tostring(meta, encoding="utf-8", xml_declaration=False)
    return (
        b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        + body
        + b'<?xpacket end="w"?>'
    )


def container_directory(items: Sequence[tuple[str, str, int]]) -> ET.Element:
    """A GContainer:Directory for (semantic, mime, length) items, primary first."""
    ns_c, ns_i = XMP_NAMESPACES["Container"], XMP_NAMESPACES["Item"]
    directory = ET.Element(f"{{{ns_c}}}Directory")
    seq = ET.SubElement(directory, f"{{{RDF}}}Seq")
    for semantic, mime, length in items:
        li = ET.SubElement(seq, f"{{{RDF}}}li", {f"{{{RDF}}}parseType": "Resource"})
        attrs = {f"{{{ns_i}}}Semantic": semantic, f"{{{ns_i}}}Mime": mime}
        if length:
            attrs[f"{{{ns_i}}}Length"] = str(length)
        ET.SubElement(li, f"{{{ns_c}}}Item", attrs)
    return directory


# -- IPTC (IIM datasets inside a Photoshop image resource block) ---------------------------

IPTC_DATASETS: dict[tuple[int, int], tuple[str, Rule]] = {
    (1, 90): ("CodedCharacterSet", K),
    (2, 0): ("ApplicationRecordVersion", K),
    (2, 5): ("ObjectName", K),
    (2, 55): ("DateCreated", K),
    (2, 60): ("TimeCreated", K),
    (2, 105): ("Headline", K),
    (2, 116): ("CopyrightNotice", K),
    (2, 120): ("Caption-Abstract", K),
    (2, 25): ("Keywords", P),
    (2, 80): ("By-line", P),
    (2, 85): ("By-lineTitle", P),
    (2, 90): ("City", P),
    (2, 92): ("Sub-location", P),
    (2, 95): ("Province-State", P),
    (2, 100): ("Country-PrimaryLocationCode", P),
    (2, 101): ("Country-PrimaryLocationName", P),
    (2, 103): ("OriginalTransmissionReference", P),
    (2, 110): ("Credit", P),
    (2, 115): ("Source", P),
    (2, 118): ("Contact", P),
    (2, 122): ("Writer-Editor", P),
}
# Photoshop image resources other than IPTC: thumbnails are copies of the original.
PHOTOSHOP_RESOURCES: dict[int, tuple[str, Rule]] = {
    0x0409: ("Photoshop thumbnail", ORIG),
    0x040C: ("Photoshop thumbnail", ORIG),
}
_IRB_SIGNATURE = b"Photoshop 3.0\x00"


def filter_photoshop_irb(payload: bytes, policy: Policy, report: MetadataReport) -> bytes | None:
    """An APP13 payload rebuilt from the allowed IPTC datasets and resources (or None)."""
    if not payload.startswith(_IRB_SIGNATURE):
        report.add("APP13")
        return None
    out = bytearray()
    try:
        for resource, data in _irb_resources(payload[len(_IRB_SIGNATURE) :]):
            if resource == 0x0404:
                iptc = _filter_iptc(data, policy, report)
                if iptc:
                    out += _irb_resource(resource, iptc)
                continue
            name, rule = PHOTOSHOP_RESOURCES.get(resource, (f"Photoshop 0x{resource:04X}", D))
            if policy.allows(rule):
                out += _irb_resource(resource, data)
            else:
                report.add(name)
    except ValueError:
        report.add("IPTC (unreadable)")
        return None
    return _IRB_SIGNATURE + bytes(out) if out else None


def _irb_resources(data: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos + 12 <= len(data):
        if data[pos : pos + 4] != b"8BIM":
            raise ValueError("not an image resource")
        resource = int.from_bytes(data[pos + 4 : pos + 6], "big")
        name_len = data[pos + 6]
        pos += 6 + ((name_len + 2) & ~1)
        size = int.from_bytes(data[pos : pos + 4], "big")
        pos += 4
        if pos + size > len(data):
            raise ValueError("truncated image resource")
        yield resource, data[pos : pos + size]
        pos += size + (size & 1)


def _irb_resource(resource: int, data: bytes) -> bytes:
    pad = b"\x00" if len(data) & 1 else b""
    return (
        b"8BIM"
        + resource.to_bytes(2, "big")
        + b"\x00\x00"
        + len(data).to_bytes(4, "big")
        + (data + pad)
    )


def _filter_iptc(data: bytes, policy: Policy, report: MetadataReport) -> bytes:
    out = bytearray()
    pos = 0
    while pos + 5 <= len(data):
        if data[pos] != 0x1C:
            raise ValueError("not an IIM dataset")
        record, dataset = data[pos + 1], data[pos + 2]
        size = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if size & 0x8000:  # extended length: never seen in photos; not trusted
            raise ValueError("extended IIM dataset")
        end = pos + 5 + size
        if end > len(data):
            raise ValueError("truncated IIM dataset")
        name, rule = IPTC_DATASETS.get((record, dataset), (f"{record}:{dataset}", D))
        if policy.allows(rule):
            out += data[pos:end]
        else:
            report.add(f"IPTC {name}")
        pos = end
    return bytes(out)


# -- PNG text chunks -----------------------------------------------------------------------

PNG_TEXT_KEYS: dict[bytes, Rule] = {
    b"Title": K,
    b"Description": K,
    b"Copyright": K,
    b"Creation Time": K,
    b"Software": K,
    b"Disclaimer": K,
    b"Warning": K,
    b"Author": P,
    b"Comment": P,
    b"Source": P,  # the device that made the picture
    # XML:com.adobe.xmp is rebuilt by `filter_xmp`; "Raw profile type ..." (ImageMagick's
    # hex-coded EXIF/IPTC/XMP copies) are not listed, so they are dropped.
}
XMP_PNG_KEY = b"XML:com.adobe.xmp"

# -- containers and secondary images -------------------------------------------------------

# What each container carries besides the primary image and its EXIF/XMP/IPTC.
CONTAINER_ITEMS: dict[str, Rule] = {
    "ICC profile": K,
    "JPEG JFIF header": K,
    "JPEG Adobe colour transform": K,
    "JPEG comment": P,
    "JPEG JFIF/JFXX thumbnail": ORIG,
    "JPEG FlashPix (FPXR) previews": ORIG,
    "JPEG extended XMP (depth maps, original image)": ORIG,
    "C2PA / JUMBF manifest": ORIG,
    "MPF preview / thumbnail image": ORIG,
    "MPF other image": ORIG,  # stereo / multi-view images, unknown types
    # A gain map (Ultra HDR / ISO 21496-1): kept without a cloak; after a cloak, flattened
    # over the faces and kept only if the HDR rendition carries the cloak
    # (`Engine.gain_map_check`); with --keep-metadata and no cloak, byte-identical.
    "MPF gain map": K,
    "trailer after the last image (motion-photo video)": ORIG,
    "PNG colour chunks (sRGB gAMA cHRM cICP pHYs)": K,
    "PNG tIME": K,
    "PNG C2PA (caBX)": ORIG,
    # pillow-heif writes the primary image only, so a HEIC with any of these is re-encoded
    # without them even when the rule would keep them.
    "HEIC thumbnails": D,
    "HEIC depth images": D,
    "HEIC auxiliary images (gain maps, mattes)": D,
    # GIF extensions (`veil.animated.gifwrite`): the loop count (NETSCAPE2.0) is always
    # kept; XMP goes through the XMP table; plain text and other application extensions
    # are dropped.
    "GIF comment": P,
    "GIF ICC profile": K,
}


def container_rule(name: str) -> Rule:
    return CONTAINER_ITEMS[name]
