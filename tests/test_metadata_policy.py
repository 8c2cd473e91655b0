"""The metadata allow-list, checked by an independent reader: Debian's exiftool.

Every container (JPEG, PNG, WebP, HEIC, AVIF) is built with every kind of metadata present
(tests/metadata_samples.py), sent through the two paths the engine uses (the no-face path,
which rewrites metadata without touching pixels, and the cloaked path, which re-encodes),
with and without --keep-metadata, and read back with `exiftool -j -G1 -a -u`. The expected
fate of each tag below is written by hand from the policy's four rules, not read from
`veil.imaging.metadata`.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from corpus import in_ci
from engine_support import jpeg_bytes, textured
from metadata_samples import (
    EXIFTOOL,
    FULL_XMP,
    exiftool_tags,
    full_exif,
    full_heif,
    full_jpeg,
    full_png,
    full_webp,
    png_chunk,
    segment,
)
from veil import imageio
from veil.imaging import metadata
from veil.imaging.metadata import MetadataReport, Policy

# Under CI a missing exiftool fails the run (exiftool_tags asserts) instead of skipping.
pytestmark = pytest.mark.skipif(EXIFTOOL is None and not in_ci(), reason="exiftool not installed")

KEEP, PERSONAL, ORIGINAL, DROP = "keep", "personal", "original", "drop"

COMMON: list[tuple[str, str]] = [
    ("IFD0:Make", KEEP),
    ("IFD0:Model", KEEP),
    ("IFD0:ImageDescription", KEEP),
    ("IFD0:Software", KEEP),
    ("IFD0:ModifyDate", KEEP),
    ("IFD0:Copyright", KEEP),
    ("IFD0:Artist", PERSONAL),
    ("IFD0:HostComputer", PERSONAL),
    ("IFD0:CameraSerialNumber", PERSONAL),
    ("IFD0:Rating", DROP),  # not listed
    ("ExifIFD:ExposureTime", KEEP),
    ("ExifIFD:FNumber", KEEP),
    ("ExifIFD:ISO", KEEP),
    ("ExifIFD:DateTimeOriginal", KEEP),
    ("ExifIFD:FocalLength", KEEP),
    ("ExifIFD:LensModel", KEEP),
    ("ExifIFD:UserComment", PERSONAL),
    ("ExifIFD:ImageUniqueID", PERSONAL),
    ("ExifIFD:OwnerName", PERSONAL),
    ("ExifIFD:SerialNumber", PERSONAL),
    ("ExifIFD:LensSerialNumber", PERSONAL),
    ("ExifIFD:SubjectArea", DROP),
    ("GPS:GPSLatitude", PERSONAL),
    ("GPS:GPSLongitude", PERSONAL),
    ("XMP-xmp:CreateDate", KEEP),
    ("XMP-xmp:Rating", KEEP),
    ("XMP-tiff:Make", KEEP),
    ("XMP-exif:ExposureTime", KEEP),
    ("XMP-exifEX:LensModel", KEEP),
    ("XMP-photoshop:DateCreated", KEEP),
    ("XMP-dc:Rights", KEEP),
    ("XMP-dc:Description", KEEP),
    ("XMP-exif:UserComment", PERSONAL),
    ("XMP-exif:GPSLatitude", PERSONAL),
    ("XMP-exifEX:ImageUniqueID", PERSONAL),
    ("XMP-exifEX:SerialNumber", PERSONAL),
    ("XMP-aux:SerialNumber", PERSONAL),
    ("XMP-photoshop:City", PERSONAL),
    ("XMP-photoshop:State", PERSONAL),
    ("XMP-photoshop:Country", PERSONAL),
    ("XMP-xmpMM:DocumentID", PERSONAL),
    ("XMP-xmpMM:HistoryChanged", PERSONAL),
    ("XMP-dc:Creator", PERSONAL),
    ("XMP-iptcCore:Location", PERSONAL),
    ("XMP-iptcExt:LocationCreatedCity", PERSONAL),
    ("XMP-iptcExt:LocationCreatedSublocation", PERSONAL),
    ("XMP-iptcExt:LocationShownCountryName", PERSONAL),
    ("XMP-iptcExt:PersonInImage", ORIGINAL),
    ("XMP-mwg-rs:RegionName", ORIGINAL),
    ("XMP-mwg-rs:RegionAreaX", ORIGINAL),
    ("XMP-GCamera:MicroVideo", ORIGINAL),
    ("XMP-acme:Secret", DROP),
]
PER_FORMAT: dict[str, list[tuple[str, str]]] = {
    "jpg": [
        ("IFD1:ThumbnailImage", ORIGINAL),
        ("IPTC:CopyrightNotice", KEEP),
        ("IPTC:Caption-Abstract", KEEP),
        ("IPTC:By-line", PERSONAL),
        ("IPTC:City", PERSONAL),
        ("IPTC:Country-PrimaryLocationName", PERSONAL),
        ("IPTC:Keywords", PERSONAL),
        ("IPTC:DocumentHistory", DROP),
        ("File:Comment", PERSONAL),
        ("JUMBF:JUMDLabel", ORIGINAL),
        ("Ducky:Quality", DROP),
    ],
    "png": [
        ("PNG:Title", KEEP),
        ("PNG:Copyright", KEEP),
        ("PNG:Author", PERSONAL),
        ("PNG:Comment", PERSONAL),
        ("PNG:Location", DROP),
        ("PNG:VirtualImageWidth", DROP),
    ],
    "webp": [],
    "heic": [],
    "avif": [],
}
# Byte strings only identifying fields hold: a default output must contain none of them
# (an oracle that needs no parser at all).
SECRETS = [
    b"BODY-SN",
    b"LENS-SN",
    b"CAM-SN",
    b"555-0100",
    b"Tournelle",
    b"Paris",
    b"VEILNOTE",
    b"Janes-MacBook",
    b"/Users/jane",
    b"4f2e8c1d",
    b"never pass",
    b"c2pa",
]


def expected(rule: str, *, keep: bool, cloaked: bool) -> bool:
    return {
        KEEP: True,
        PERSONAL: keep,
        ORIGINAL: keep and not cloaked,
        DROP: False,
    }[rule]


def build(ext: str) -> bytes:
    if ext == "jpg":
        return full_jpeg()
    if ext == "png":
        return full_png()
    if ext == "webp":
        return full_webp()
    if ext == "heic":
        return full_heif()
    return full_heif(fmt="AVIF")


def policy_output(data: bytes, *, keep: bool, cloaked: bool) -> bytes:
    """What the engine writes: the no-face path (metadata only) or the cloaked path."""
    info = imageio.probe(data)
    report = MetadataReport()
    if not cloaked:
        out = imageio.rewrite_metadata(data, info.format, keep_metadata=keep, report=report)
        if out is not None:
            return out
    decoded = imageio.decode(data)
    return imageio.encode(
        decoded, decoded.pixels, keep_metadata=keep, report=report, cloaked=cloaked
    )


FORMATS = ["jpg", "png", "webp"]
if imageio.HEIF_AVAILABLE:
    FORMATS.append("heic")
if "AVIF" in imageio.MEDIA_TYPES:
    FORMATS.append("avif")
CASES = [
    (ext, keep, cloaked) for ext in FORMATS for keep in (False, True) for cloaked in (False, True)
]


def case_name(ext: str, keep: bool, cloaked: bool) -> str:
    return f"{ext}-{'keep' if keep else 'default'}-{'cloaked' if cloaked else 'noface'}.{ext}"


@pytest.fixture(scope="module")
def read_back(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Inputs and every output, read by one exiftool run."""
    root = tmp_path_factory.mktemp("policy")
    files: dict[str, bytes] = {}
    for ext in FORMATS:
        data = build(ext)
        files[f"input.{ext}"] = data
        for _, keep, cloaked in (c for c in CASES if c[0] == ext):
            files[case_name(ext, keep, cloaked)] = policy_output(data, keep=keep, cloaked=cloaked)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return {"tags": exiftool_tags(sorted(root.iterdir())), "bytes": files}


@pytest.mark.parametrize("ext", FORMATS)
def test_inputs_carry_every_tag_the_table_checks(read_back: dict[str, Any], ext: str) -> None:
    tags = read_back["tags"][f"input.{ext}"]
    missing = [tag for tag, _ in COMMON + PER_FORMAT[ext] if tag not in tags]
    assert not missing, f"the sample lacks {missing}: the golden test would prove nothing"


@pytest.mark.parametrize(("ext", "keep", "cloaked"), CASES, ids=[case_name(*c) for c in CASES])
def test_each_policy_row_survives_exactly_as_its_rule_says(
    read_back: dict[str, Any], ext: str, keep: bool, cloaked: bool
) -> None:
    tags = read_back["tags"][case_name(ext, keep, cloaked)]
    wrong = []
    for tag, rule in COMMON + PER_FORMAT[ext]:
        if (tag in tags) != expected(rule, keep=keep, cloaked=cloaked):
            wrong.append(f"{tag} ({rule}): {'kept' if tag in tags else 'dropped'}")
    assert not wrong, wrong


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("cloaked", [False, True])
def test_default_outputs_hold_no_identifying_bytes(
    read_back: dict[str, Any], ext: str, cloaked: bool
) -> None:
    data = read_back["bytes"][case_name(ext, False, cloaked)]
    assert [s for s in SECRETS if s in data] == []
    assert [s for s in SECRETS if s in read_back["bytes"][f"input.{ext}"]] == SECRETS or ext in (
        "png",
        "webp",
        "heic",
        "avif",
    )


@pytest.mark.parametrize("ext", FORMATS)
def test_cloaked_outputs_are_upright_with_orientation_1(ext: str, tmp_path: Path) -> None:
    exif = full_exif(orientation=6)
    image = textured(64, 48)
    if ext == "jpg":
        data = jpeg_bytes(image, quality=93, exif=exif.tobytes())
    else:
        buffer = io.BytesIO()
        fmt = {"png": "PNG", "webp": "WEBP", "heic": "HEIF", "avif": "AVIF"}[ext]
        image.save(buffer, fmt, exif=exif.tobytes(), **({"quality": 90} if ext != "png" else {}))
        data = buffer.getvalue()
    out = policy_output(data, keep=False, cloaked=True)
    (tmp_path / f"o.{ext}").write_bytes(out)
    tags = exiftool_tags([tmp_path / f"o.{ext}"])[f"o.{ext}"]
    assert tags.get("IFD0:Orientation", 1) == 1
    with Image.open(io.BytesIO(out)) as im:
        assert im.size == (48, 64)


def test_xmp_leaks_the_old_deny_list_missed_are_gone(tmp_path: Path) -> None:
    # None of these matched the old regex, so the whole packet used to survive.
    packet = FULL_XMP.split(b"<x:xmpmeta")[0] + (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        b'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        b'xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:exifEX="http://cipa.jp/exif/1.0/" '
        b'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        b'exifEX:ImageUniqueID="4f2e8c1d" exif:UserComment="call me on 555-0100">'
        b"<dc:rights><rdf:Alt><rdf:li xml:lang='x-default'>(c) 2024</rdf:li></rdf:Alt></dc:rights>"
        b"<Iptc4xmpExt:LocationCreated><rdf:Bag><rdf:li rdf:parseType='Resource'>"
        b"<Iptc4xmpExt:City>Paris</Iptc4xmpExt:City></rdf:li></rdf:Bag>"
        b"</Iptc4xmpExt:LocationCreated></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    data = jpeg_bytes(textured(64, 48), quality=90, xmp=packet)
    for cloaked in (False, True):
        out = policy_output(data, keep=False, cloaked=cloaked)
        (tmp_path / f"{cloaked}.jpg").write_bytes(out)
        tags = exiftool_tags([tmp_path / f"{cloaked}.jpg"])[f"{cloaked}.jpg"]
        assert "XMP-dc:Rights" in tags
        leaked = [t for t in tags if t.startswith("XMP-") and t != "XMP-dc:Rights"]
        assert leaked == [] and b"Paris" not in out and b"555-0100" not in out


# -- malformed and wrong-type EXIF --------------------------------------------------------


Entry = tuple[int, int, int, bytes]  # tag, TIFF type, count, value bytes


def tiff_with(entries: list[Entry], sub: list[Entry]) -> bytes:
    """Little-endian TIFF: IFD0 `entries` (+ an Exif IFD with `sub`); values as raw bytes."""

    def ifd(at: int, items: list[Entry]) -> bytes:
        data_at = at + 2 + 12 * len(items) + 4
        head, tail = struct.pack("<H", len(items)), b""
        for tag, kind, count, value in items:
            if len(value) <= 4:
                head += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")
            else:
                head += struct.pack("<HHII", tag, kind, count, data_at + len(tail))
                tail += value + (b"\x00" if len(value) & 1 else b"")
        return head + b"\x00\x00\x00\x00" + tail

    first = [*entries, (0x8769, 4, 1, b"\x00\x00\x00\x00")]
    size0 = len(ifd(8, first))
    sub_at = 8 + size0
    first[-1] = (0x8769, 4, 1, struct.pack("<I", sub_at))
    return b"II*\x00" + struct.pack("<I", 8) + ifd(8, first) + ifd(sub_at, sub)


def wrong_type_exif() -> bytes:
    entries = [
        (0x010F, 3, 1, struct.pack("<H", 7)),  # Make as SHORT (should be ASCII)
        (0x0110, 2, 8, b"Model 7\x00"),  # Model: fine
        (0x0112, 2, 2, b"6\x00"),  # Orientation as ASCII (should be SHORT)
        (0x011A, 5, 1, struct.pack("<II", 72, 0)),  # XResolution 72/0
        (0x013B, 3, 1, struct.pack("<H", 9)),  # Artist as SHORT
        (0x8298, 7, 5, b"\xff\xfe\x00\x01\x02"),  # Copyright as UNDEFINED
    ]
    sub = [
        (0x829A, 2, 6, b"1/100\x00"),  # ExposureTime as ASCII (should be RATIONAL)
        (0x9003, 3, 1, struct.pack("<H", 2024)),  # DateTimeOriginal as SHORT
        (0xA431, 4, 1, struct.pack("<I", 12345)),  # BodySerialNumber as LONG
        (0x8827, 3, 1, struct.pack("<H", 200)),  # ISO: fine
    ]
    return b"Exif\x00\x00" + tiff_with(entries, sub)


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("cloaked", [False, True])
def test_wrong_type_exif_tags_are_dropped_never_raised_on(keep: bool, cloaked: bool) -> None:
    raw = wrong_type_exif()
    report = MetadataReport()
    out = metadata.filter_exif(
        raw, Policy(keep_metadata=keep, cloaked=cloaked), report, reset_orientation=cloaked
    )
    assert out is not None
    exif = Image.Exif()
    exif.load(out)
    assert exif.get(0x0110) == "Model 7"
    assert exif.get_ifd(0x8769).get(0x8827) == 200
    for tag in (0x010F, 0x011A, 0x013B, 0x8298):
        assert tag not in exif
    assert exif.get(0x0112, 1) in (1,)  # the ASCII orientation never passes
    sub = exif.get_ifd(0x8769)
    assert 0x829A not in sub and 0x9003 not in sub and 0xA431 not in sub
    assert any("malformed" in name for name in report.removed)


@pytest.mark.parametrize("ext", ["jpg", "png", "webp"])
def test_wrong_type_exif_goes_through_every_container(ext: str) -> None:
    raw = wrong_type_exif()
    image = textured(64, 48)
    if ext == "jpg":
        data = jpeg_bytes(image, quality=90)
        data = data[:2] + segment(0xE1, raw) + data[2:]
    elif ext == "png":
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        plain = buffer.getvalue()
        data = plain[:33] + png_chunk(b"eXIf", raw[6:]) + plain[33:]
    else:
        buffer = io.BytesIO()
        image.save(buffer, "WEBP", lossless=True, exif=raw)
        data = buffer.getvalue()
    for keep in (False, True):
        for cloaked in (False, True):
            out = policy_output(data, keep=keep, cloaked=cloaked)
            with Image.open(io.BytesIO(out)) as im:
                assert im.getexif().get(0x0110) == "Model 7"
                assert 0x010F not in im.getexif()


@pytest.mark.parametrize(
    "raw",
    [
        b"Exif\x00\x00II*\x00\xff\xff\xff\x7f",  # IFD0 far outside the block
        b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff",  # 65535 entries announced
        b"Exif\x00\x00garbage",
        b"",
    ],
)
def test_unreadable_exif_is_dropped(raw: bytes) -> None:
    report = MetadataReport()
    out = metadata.filter_exif(raw, Policy(False, True), report, reset_orientation=True)
    assert out is None or b"garbage" not in out


@pytest.mark.parametrize(
    "packet",
    [
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&a;</x:xmpmeta>',
        b"<x:xmpmeta not closed",
        b"\x00\x01\x02",
    ],
)
def test_unreadable_or_entity_xmp_is_dropped_whole(packet: bytes) -> None:
    report = MetadataReport()
    assert metadata.filter_xmp(packet, Policy(True, False), report) is None
    assert "XMP (unreadable)" in report.removed


def test_docs_name_every_row_of_the_policy_table() -> None:
    """docs/metadata.md is the table in words: a row added to the code must appear there."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "metadata.md").read_text()
    names = [row.name for row in (*metadata.EXIF_IFD0.values(), *metadata.EXIF_SUB.values())]
    names += [name for (_, name), _ in metadata.XMP_PROPERTIES.items() if name != "*"]
    listed = {ns for ns, _ in metadata.XMP_PROPERTIES}
    names += [f"| {p} |" for p, ns in metadata.XMP_NAMESPACES.items() if ns in listed]
    names += [name for name, _ in metadata.IPTC_DATASETS.values()]
    names += [key.decode() for key in metadata.PNG_TEXT_KEYS]
    names += list(metadata.CONTAINER_ITEMS)
    missing = [name for name in names if name not in docs]
    assert missing == []


def test_deeply_nested_xmp_is_dropped_not_crashed_on() -> None:
    depth = 20000
    body = b"<rdf:Bag>" * depth + b"x" + b"</rdf:Bag>" * depth
    packet = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        b'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="3">'
        b"<dc:description>" + body + b"</dc:description></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    report = MetadataReport()
    out = metadata.filter_xmp(packet, Policy(False, True), report)
    assert out is not None and b"Rating" in out and b"description" not in out
    assert "XMP dc:description (too deep)" in report.removed
