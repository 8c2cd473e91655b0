"""Test files that carry every kind of metadata the policy lists (and some it does not).

Built in code: EXIF through Pillow's `Image.Exif`, XMP and IPTC as text / bytes, so the
tests never depend on the module they check. `exiftool_tags` reads files back with Debian's
exiftool, an independent parser (the oracle of tests/test_metadata_policy.py).
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from engine_support import jpeg_bytes, textured, with_thumbnail

EXIFTOOL = shutil.which("exiftool")


def full_exif(orientation: int = 1) -> Image.Exif:
    """EXIF with harmless camera fields, every identifying field and a few unlisted ones."""
    exif = Image.Exif()
    exif[0x010E] = "Sunset over the bay"  # ImageDescription
    exif[0x010F] = "VeilCam"  # Make
    exif[0x0110] = "Model 7"  # Model
    exif[0x0112] = orientation
    exif[0x0131] = "VeilOS 3.1"  # Software
    exif[0x0132] = "2024:06:01 18:30:00"  # DateTime
    exif[0x8298] = "(c) Jane Doe 2024"  # Copyright
    exif[0x013B] = "Jane Doe"  # Artist
    exif[0x013C] = "Janes-MacBook"  # HostComputer
    exif[0xC62F] = "CAM-SN-0001"  # CameraSerialNumber
    exif[0x4746] = 5  # Rating: not listed, so dropped
    sub = exif.get_ifd(0x8769)
    sub[0x829A] = 0.01  # ExposureTime
    sub[0x829D] = 2.8  # FNumber
    sub[0x8827] = 200  # ISO
    sub[0x9003] = "2024:06:01 18:30:00"  # DateTimeOriginal
    sub[0x920A] = 4.2  # FocalLength
    sub[0xA434] = "VeilLens 24mm"  # LensModel
    sub[0x9286] = b"ASCII\x00\x00\x00call me on 555-0100"  # UserComment
    sub[0xA420] = "4f2e8c1d9a7b6e5f4f2e8c1d9a7b6e5f"  # ImageUniqueID
    sub[0xA430] = "Jane Doe"  # CameraOwnerName
    sub[0xA431] = "BODY-SN-12345"  # BodySerialNumber
    sub[0xA435] = "LENS-SN-67890"  # LensSerialNumber
    sub[0x927C] = b"VEILNOTE\x00serial=BODY-SN-12345;faces=1"  # MakerNote
    sub[0x9214] = (1200, 800, 300, 300)  # SubjectArea: where the face is
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 24.0)
    gps[3], gps[4] = "E", (2.0, 21.0, 3.0)
    return exif


def full_exif_bytes(orientation: int = 1, thumbnail: bytes | None = None) -> bytes:
    thumbnail = thumbnail or jpeg_bytes(textured(16, 12), quality=70)
    return with_thumbnail(full_exif(orientation).tobytes(), thumbnail)


FULL_XMP = b"""<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#"
    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:exifEX="http://cipa.jp/exif/1.0/"
    xmlns:aux="http://ns.adobe.com/exif/1.0/aux/"
    xmlns:tiff="http://ns.adobe.com/tiff/1.0/"
    xmlns:Iptc4xmpCore="http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
    xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
    xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#"
    xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#"
    xmlns:GCamera="http://ns.google.com/photos/1.0/camera/"
    xmlns:acme="http://example.com/acme/1.0/"
    xmp:CreateDate="2024-06-01T18:30:00"
    xmp:Rating="4"
    tiff:Make="VeilCam"
    exif:ExposureTime="1/100"
    exif:UserComment="call me on 555-0100"
    exif:GPSLatitude="48,51.4N"
    exifEX:ImageUniqueID="4f2e8c1d9a7b6e5f4f2e8c1d9a7b6e5f"
    exifEX:BodySerialNumber="BODY-SN-12345"
    exifEX:LensModel="VeilLens 24mm"
    aux:SerialNumber="BODY-SN-12345"
    photoshop:City="Paris"
    photoshop:State="Ile-de-France"
    photoshop:Country="France"
    photoshop:DateCreated="2024-06-01"
    xmpMM:DocumentID="xmp.did:0123456789"
    GCamera:MicroVideo="1"
    acme:Secret="unknown properties never pass">
   <dc:rights><rdf:Alt><rdf:li xml:lang="x-default">(c) Jane Doe 2024</rdf:li></rdf:Alt></dc:rights>
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">Sunset over the bay</rdf:li>
   </rdf:Alt></dc:description>
   <dc:creator><rdf:Seq><rdf:li>Jane Doe</rdf:li></rdf:Seq></dc:creator>
   <Iptc4xmpCore:Location>Quai de la Tournelle</Iptc4xmpCore:Location>
   <Iptc4xmpExt:LocationCreated><rdf:Bag><rdf:li rdf:parseType="Resource">
     <Iptc4xmpExt:City>Paris</Iptc4xmpExt:City>
     <Iptc4xmpExt:Sublocation>5 Quai de la Tournelle</Iptc4xmpExt:Sublocation>
   </rdf:li></rdf:Bag></Iptc4xmpExt:LocationCreated>
   <Iptc4xmpExt:LocationShown><rdf:Bag><rdf:li rdf:parseType="Resource">
     <Iptc4xmpExt:CountryName>France</Iptc4xmpExt:CountryName>
   </rdf:li></rdf:Bag></Iptc4xmpExt:LocationShown>
   <Iptc4xmpExt:PersonInImage><rdf:Bag><rdf:li>Jane Doe</rdf:li></rdf:Bag>
   </Iptc4xmpExt:PersonInImage>
   <xmpMM:History><rdf:Seq><rdf:li rdf:parseType="Resource">
     <stEvt:action>saved</stEvt:action>
     <stEvt:changed>/Users/jane/Pictures/holiday/IMG_0042.jpg</stEvt:changed>
   </rdf:li></rdf:Seq></xmpMM:History>
   <mwg-rs:Regions rdf:parseType="Resource">
    <mwg-rs:AppliedToDimensions stDim:w="4000" stDim:h="3000" stDim:unit="pixel"/>
    <mwg-rs:RegionList><rdf:Bag><rdf:li rdf:parseType="Resource">
      <mwg-rs:Name>Jane Doe</mwg-rs:Name>
      <mwg-rs:Type>Face</mwg-rs:Type>
      <mwg-rs:Area stArea:x="0.5" stArea:y="0.4" stArea:w="0.2" stArea:h="0.3"
        stArea:unit="normalized"/>
    </rdf:li></rdf:Bag></mwg-rs:RegionList>
   </mwg-rs:Regions>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


def iptc_irb() -> bytes:
    """An APP13 payload: Photoshop IRB with IPTC IIM datasets (kept, personal, unlisted)."""

    def dataset(record: int, number: int, value: bytes) -> bytes:
        return bytes((0x1C, record, number)) + struct.pack(">H", len(value)) + value

    iim = b"".join(
        [
            dataset(1, 90, b"\x1b%G"),  # UTF-8
            dataset(2, 0, b"\x00\x04"),
            dataset(2, 80, b"Jane Doe"),  # By-line
            dataset(2, 90, b"Paris"),  # City
            dataset(2, 101, b"France"),  # Country
            dataset(2, 116, b"(c) Jane Doe 2024"),  # CopyrightNotice
            dataset(2, 120, b"Sunset over the bay"),  # Caption
            dataset(2, 25, b"jane"),  # Keywords
            dataset(2, 231, b"unlisted dataset"),
        ]
    )
    pad = b"\x00" if len(iim) & 1 else b""
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iim)) + iim + pad
    return b"Photoshop 3.0\x00" + resource


def jumbf_box() -> bytes:
    """A minimal C2PA-labelled JUMBF superbox (what signs the original pixels)."""
    uuid = bytes.fromhex("6332706100110010800000aa00389b71")  # "c2pa" manifest store
    jumd = b"jumd" + uuid + b"\x03" + b"c2pa\x00"
    jumd = struct.pack(">I", len(jumd) + 4) + jumd
    body = b"jumb" + jumd
    return struct.pack(">I", len(body) + 4) + body


def segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def insert_segments(jpeg: bytes, segments: Sequence[bytes]) -> bytes:
    """Insert APPn segments right after SOI (and any APP0 JFIF)."""
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":
        pos = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:pos] + b"".join(segments) + jpeg[pos:]


def full_jpeg(
    image: Image.Image | None = None, quality: int = 93, thumbnail: bytes | None = None
) -> bytes:
    """A JPEG with EXIF (+thumbnail), XMP, IPTC, a comment, C2PA (JUMBF) and an APP12."""
    exif = full_exif_bytes(thumbnail=thumbnail)
    base = jpeg_bytes(image or textured(160, 120), quality=quality, exif=exif)
    extra = [
        segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + FULL_XMP),
        segment(0xED, iptc_irb()),
        segment(0xEB, b"JP\x00\x01\x00\x00\x00\x01" + jumbf_box()),
        segment(0xEC, b"Ducky\x00\x01\x00\x04\x00\x00\x00\x5a"),
        segment(0xFE, b"shot at 5 Quai de la Tournelle"),
    ]
    exif_end = _after_segment(base, b"Exif\x00\x00")
    return base[:exif_end] + b"".join(extra) + base[exif_end:]


def _after_segment(jpeg: bytes, prefix: bytes) -> int:
    pos = 2
    while jpeg[pos] == 0xFF and jpeg[pos + 1] != 0xDA:
        length = struct.unpack(">H", jpeg[pos + 2 : pos + 4])[0]
        if jpeg[pos + 4 : pos + 4 + len(prefix)] == prefix:
            return pos + 2 + length
        pos += 2 + length
    return 2


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def full_png(image: Image.Image | None = None) -> bytes:
    """A PNG with eXIf, XMP (iTXt), text keys (kept, personal, unlisted) and a private chunk."""
    buffer = io.BytesIO()
    (image or textured(160, 120)).save(buffer, "PNG")
    data = buffer.getvalue()
    chunks = [
        png_chunk(b"eXIf", full_exif().tobytes()[6:]),
        png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + FULL_XMP),
        png_chunk(b"tEXt", b"Title\x00Sunset over the bay"),
        png_chunk(b"tEXt", b"Copyright\x00(c) Jane Doe 2024"),
        png_chunk(b"tEXt", b"Author\x00Jane Doe"),
        png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"call me on 555-0100")),
        png_chunk(b"tEXt", b"Location\x00Paris"),
        png_chunk(b"caBX", b"c2pa manifest of the original"),
        png_chunk(b"vpAg", b"\x00" * 9),
    ]
    ihdr_end = 8 + 25
    return data[:ihdr_end] + b"".join(chunks) + data[ihdr_end:]


def full_webp(image: Image.Image | None = None, lossless: bool = True) -> bytes:
    buffer = io.BytesIO()
    options: dict[str, Any] = {"lossless": True} if lossless else {"quality": 90}
    (image or textured(160, 120)).save(
        buffer, "WEBP", exif=full_exif().tobytes(), xmp=FULL_XMP, **options
    )
    return buffer.getvalue()


def full_heif(image: Image.Image | None = None, fmt: str = "HEIF") -> bytes:
    buffer = io.BytesIO()
    (image or textured(160, 120)).save(
        buffer, fmt, quality=90, exif=full_exif().tobytes(), xmp=FULL_XMP
    )
    return buffer.getvalue()


def exiftool_tags(paths: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """{file name: {"Group:Tag": value}} as exiftool reads them (-G1 -a: every group, dups)."""
    assert EXIFTOOL, "exiftool is not installed (Debian: libimage-exiftool-perl)"
    run = subprocess.run(
        [EXIFTOOL, "-j", "-G1", "-a", "-u", "-n", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.stdout, run.stderr
    out = {}
    for entry in json.loads(run.stdout):
        name = Path(entry.pop("SourceFile")).name
        out[name] = entry
    return out
