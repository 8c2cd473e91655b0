"""A small corpus of phone-style files, built at test time from a real face photo.

Nothing here is committed with a face in it: every file is made in memory from
`../shared/faces` (engine_support.face_photo). One file per format / variant Veil must
handle: plain JPEG (EXIF thumbnail of the face), Ultra HDR JPEG (MPF + gain map), MPO
(stereo view + preview), motion photo (MP4 trailer holding a frame of the face), HEIC as
iPhones write it (grid tiles, 10-bit, thumbnail), AVIF, PNG and WebP, each with every kind
of metadata (tests/metadata_samples.py). The MPF writer below is the tests' own, so that the
files do not depend on the code they test.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from engine_support import face_photo, jpeg_bytes
from metadata_samples import (
    FULL_XMP,
    full_exif,
    full_heif,
    full_jpeg,
    full_png,
    full_webp,
    segment,
)

XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
MP_PRIMARY = 0x20030000  # representative + baseline primary image
MP_PREVIEW = 0x00010001  # large thumbnail (VGA)
MP_DISPARITY = 0x00020002  # stereo view
MP_UNDEFINED = 0x00000000  # what Ultra HDR writes for its gain map


def face_image(max_side: int = 720) -> Image.Image:
    with Image.open(io.BytesIO(face_photo(max_side))) as image:
        return image.convert("RGB")


def face_thumbnail(image: Image.Image, side: int = 160) -> bytes:
    small = image.copy()
    small.thumbnail((side, side))
    return jpeg_bytes(small, quality=80)


def _segments_end(jpeg: bytes) -> int:
    """Offset right after the leading APP0/APP1 segments."""
    pos = 2
    while jpeg[pos] == 0xFF and jpeg[pos + 1] in (0xE0, 0xE1):
        pos += 2 + struct.unpack(">H", jpeg[pos + 2 : pos + 4])[0]
    return pos


def with_mpf(primary: bytes, extras: Sequence[tuple[int, bytes]]) -> bytes:
    """`primary` + `extras` (MP attribute, JPEG) indexed by an APP2 MPF segment."""
    n = 1 + len(extras)
    at = _segments_end(primary)
    base = at + 8  # FF E2 LL LL "MPF\0" then the TIFF header
    entries_at = 8 + 2 + 3 * 12 + 4

    def mpf(offsets: Sequence[int], sizes: Sequence[int]) -> bytes:
        body = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 3)
        body += struct.pack("<HHI4s", 0xB000, 7, 4, b"0100")
        body += struct.pack("<HHII", 0xB001, 4, 1, n)
        body += struct.pack("<HHII", 0xB002, 7, 16 * n, entries_at) + b"\x00" * 4
        attributes = [MP_PRIMARY, *(a for a, _ in extras)]
        for attribute, size, offset in zip(attributes, sizes, offsets, strict=True):
            body += struct.pack("<IIIHH", attribute, size, offset, 0, 0)
        return segment(0xE2, b"MPF\x00" + body)

    size0 = len(primary) + len(mpf([0] * n, [0] * n))
    sizes = [size0, *(len(j) for _, j in extras)]
    offsets, position = [0], size0
    for _, image in extras:
        offsets.append(position - base)
        position += len(image)
    head = primary[:at] + mpf(offsets, sizes) + primary[at:]
    assert len(head) == size0
    return head + b"".join(j for _, j in extras)


def _xmp_segment(body: bytes) -> bytes:
    return segment(0xE1, XMP_HEADER + body)


def _insert_after_exif(jpeg: bytes, segments: Sequence[bytes]) -> bytes:
    at = _segments_end(jpeg)
    return jpeg[:at] + b"".join(segments) + jpeg[at:]


def _without_xmp(jpeg: bytes) -> bytes:
    """full_jpeg's XMP packet out (the variants below carry their own)."""
    start = jpeg.find(b"\xff\xe1", 2)
    while start != -1:
        length = struct.unpack(">H", jpeg[start + 2 : start + 4])[0]
        if jpeg[start + 4 : start + 4 + len(XMP_HEADER)] == XMP_HEADER:
            return jpeg[:start] + jpeg[start + 2 + length :]
        start = jpeg.find(b"\xff\xe1", start + 2 + length)
    return jpeg


def _rdf(attributes: str, body: str = "") -> bytes:
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" '
        'xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/" '
        'xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
        'xmlns:Container="http://ns.google.com/photos/1.0/container/" '
        'xmlns:Item="http://ns.google.com/photos/1.0/container/item/" '
        'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        f"{attributes}>{body}</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()


def _directory(items: Sequence[tuple[str, str, int]]) -> str:
    lis = "".join(
        f'<rdf:li rdf:parseType="Resource"><Container:Item Item:Semantic="{s}" '
        f'Item:Mime="{m}"' + (f' Item:Length="{n}"' if n else "") + "/></rdf:li>"
        for s, m, n in items
    )
    return f"<Container:Directory><rdf:Seq>{lis}</rdf:Seq></Container:Directory>"


def gain_map_jpeg(image: Image.Image) -> bytes:
    """A quarter-size grey gain map that boosts highlights, as phones derive it (so it holds
    the face's structure), with its hdrgm parameters."""
    small = image.resize((image.width // 4, image.height // 4), Image.Resampling.BILINEAR)
    lum = np.asarray(small.convert("L"), np.float32) / 255.0
    gain = np.clip((lum - 0.3) / 0.7, 0, 1) ** 0.8
    grey = Image.fromarray(np.rint(gain * 255).astype(np.uint8), "L")
    xmp = _rdf(
        'hdrgm:Version="1.0" hdrgm:GainMapMin="0" hdrgm:GainMapMax="2" hdrgm:Gamma="1" '
        'hdrgm:OffsetSDR="0.015625" hdrgm:OffsetHDR="0.015625" hdrgm:HDRCapacityMin="0" '
        'hdrgm:HDRCapacityMax="2" hdrgm:BaseRenditionIsHDR="False"'
    )
    return _insert_after_exif(jpeg_bytes(grey, quality=85), [_xmp_segment(xmp)])


def ultra_hdr(image: Image.Image | None = None) -> bytes:
    image = image or face_image()
    gain = gain_map_jpeg(image)
    xmp = _rdf(
        'hdrgm:Version="1.0" photoshop:City="Paris"',
        _directory([("Primary", "image/jpeg", 0), ("GainMap", "image/jpeg", len(gain))]),
    )
    base = _without_xmp(full_jpeg(image, quality=92, thumbnail=face_thumbnail(image)))
    primary = _insert_after_exif(base, [_xmp_segment(xmp)])
    return with_mpf(primary, [(MP_UNDEFINED, gain)])


def mpo_stereo(image: Image.Image | None = None) -> bytes:
    image = image or face_image()
    right = Image.fromarray(np.roll(np.asarray(image), 12, axis=1))  # the other eye's view
    preview = image.copy()
    preview.thumbnail((320, 320))
    primary = full_jpeg(image, quality=92, thumbnail=face_thumbnail(image))
    return with_mpf(
        primary,
        [(MP_DISPARITY, jpeg_bytes(right, quality=90)), (MP_PREVIEW, jpeg_bytes(preview))],
    )


def fake_mp4(frame: Image.Image) -> bytes:
    """An MP4-shaped trailer (ftyp + mdat) whose media data is a JPEG frame of the face."""
    ftyp = b"ftypisom\x00\x00\x02\x00isomiso2mp41"
    ftyp = struct.pack(">I", len(ftyp) + 4) + ftyp
    payload = jpeg_bytes(frame, quality=85)
    mdat = struct.pack(">I", len(payload) + 8) + b"mdat" + payload
    return ftyp + mdat


def motion_photo(image: Image.Image | None = None) -> bytes:
    image = image or face_image()
    video = fake_mp4(image)
    xmp = _rdf(
        'GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1" '
        'GCamera:MotionPhotoPresentationTimestampUs="233000" '
        f'GCamera:MicroVideo="1" GCamera:MicroVideoOffset="{len(video)}"',
        _directory([("Primary", "image/jpeg", 0), ("MotionPhoto", "video/mp4", len(video))]),
    )
    base = _without_xmp(full_jpeg(image, quality=92, thumbnail=face_thumbnail(image)))
    return _insert_after_exif(base, [_xmp_segment(xmp)]) + video


def heic_iphone(image: Image.Image | None = None) -> bytes:
    """10-bit, 256-px grid tiles, a thumbnail, EXIF and XMP (pillow-heif cannot write depth
    or auxiliary images; those paths are covered by the rule, not by a sample)."""
    import pillow_heif

    image = image or face_image()
    pixels = np.asarray(image).astype(np.uint16) * 257
    heif = pillow_heif.from_bytes(mode="RGB;16", size=image.size, data=pixels.tobytes())
    buffer = io.BytesIO()
    heif.save(
        buffer,
        quality=85,
        tile_size=256,
        thumbnails=[160],
        exif=full_exif().tobytes(),
        xmp=FULL_XMP,
    )
    return buffer.getvalue()


def avif(image: Image.Image | None = None) -> bytes:
    return full_heif(image or face_image(), fmt="AVIF")


def png(image: Image.Image | None = None) -> bytes:
    return full_png(image or face_image())


def webp(image: Image.Image | None = None) -> bytes:
    return full_webp(image or face_image(), lossless=False)


def extended_xmp(image: Image.Image) -> tuple[bytes, list[bytes]]:
    """A main XMP packet pointing at extended XMP that holds the original photo as
    GImage:Data (base64), as Google's depth / portrait JPEGs do, split into APP1 segments."""
    import base64
    import hashlib

    small = image.copy()
    small.thumbnail((240, 240))
    data = base64.b64encode(jpeg_bytes(small, quality=85)).decode()
    packet = _rdf('xmlns:GImage="http://ns.google.com/photos/1.0/image/" '
                  f'GImage:Mime="image/jpeg" GImage:Data="{data}"')  # fmt: skip
    guid = hashlib.md5(packet).hexdigest().upper().encode()
    header = b"http://ns.adobe.com/xmp/extension/\x00"
    chunk = 65000
    parts = [
        segment(0xE1, header + guid + struct.pack(">II", len(packet), at) + packet[at : at + chunk])
        for at in range(0, len(packet), chunk)
    ]
    main = _rdf(
        f'xmlns:xmpNote="http://ns.adobe.com/xmp/note/" xmpNote:HasExtendedXMP="{guid.decode()}"'
    )
    return main, parts


def plain_jpeg(image: Image.Image | None = None) -> bytes:
    """EXIF thumbnail of the face, and extended XMP holding a copy of the original photo."""
    image = image or face_image()
    main, parts = extended_xmp(image)
    base = _without_xmp(full_jpeg(image, quality=92, thumbnail=face_thumbnail(image)))
    return _insert_after_exif(base, [_xmp_segment(main), *parts])


# name -> (builder taking an optional face image, media type)
CORPUS: dict[str, tuple[Callable[..., bytes], str]] = {
    "plain.jpg": (plain_jpeg, "image/jpeg"),
    "ultrahdr.jpg": (ultra_hdr, "image/jpeg"),
    "stereo.mpo.jpg": (mpo_stereo, "image/jpeg"),
    "motion.jpg": (motion_photo, "image/jpeg"),
    "iphone.heic": (heic_iphone, "image/heic"),
    "photo.avif": (avif, "image/avif"),
    "photo.png": (png, "image/png"),
    "photo.webp": (webp, "image/webp"),
}
