"""Image IO stages: probe, decode (every mode), encode round trips, metadata policy."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps, JpegImagePlugin

from engine_support import (
    SVG,
    gif_bomb,
    huge_png_header,
    identifying_exif,
    jpeg_bytes,
    textured,
    with_thumbnail,
)
from veil import imageio
from veil.errors import CorruptImageError, ImageTooLargeError, UnsupportedFormatError
from veil.imaging import jpeg, png
from veil.imaging.metadata import MetadataReport


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def roundtrip(data: bytes, keep_metadata: bool = False) -> tuple[bytes, MetadataReport]:
    """Decode and encode unchanged pixels, as the engine does after a cloak."""
    decoded = imageio.decode(data)
    report = MetadataReport()
    return imageio.encode(
        decoded, decoded.pixels, keep_metadata=keep_metadata, report=report
    ), report


# -- probe ------------------------------------------------------------------------------


def test_probe_reads_format_and_size_from_the_header() -> None:
    info = imageio.probe(jpeg_bytes(textured(64, 48)))
    assert (info.format, info.media_type, info.width, info.height) == ("JPEG", "image/jpeg", 64, 48)
    assert imageio.probe(encoded(textured(30, 20), "PNG")).media_type == "image/png"
    assert imageio.probe(encoded(textured(30, 20), "WEBP")).media_type == "image/webp"


def test_probe_tells_progressive_jpegs_apart() -> None:
    picture = textured(64, 48)
    assert imageio.probe(jpeg_bytes(picture, progressive=True)).progressive
    assert not imageio.probe(jpeg_bytes(picture)).progressive
    assert not imageio.probe(encoded(picture, "PNG")).progressive


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", CorruptImageError),
        (b"hello, I am a text file\n" * 10, UnsupportedFormatError),
        (SVG, UnsupportedFormatError),
        (gif_bomb(), ImageTooLargeError),  # a 65535x65535 canvas (GIFs are animations)
        (huge_png_header(), ImageTooLargeError),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 10, CorruptImageError),
    ],
    ids=["zero-byte", "text", "svg", "gif-bomb", "30000x30000-png", "broken-png-header"],
)
def test_probe_refuses_hostile_inputs_with_typed_errors(data: bytes, error: type) -> None:
    with pytest.raises(error):
        imageio.probe(data)


def test_max_pixels_is_a_parameter() -> None:
    data = jpeg_bytes(textured(100, 100))
    with pytest.raises(ImageTooLargeError):
        imageio.probe(data, max_pixels=9_999)
    assert imageio.probe(data, max_pixels=10_000).pixels == 10_000


def test_truncated_jpeg_is_corrupt_not_half_decoded() -> None:
    data = jpeg_bytes(textured(400, 300))
    imageio.probe(data[: len(data) // 2])  # the header is intact
    with pytest.raises(CorruptImageError):
        imageio.decode(data[: len(data) // 2])


# -- decode -----------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_decode_applies_exif_orientation_like_pillow(orientation: int) -> None:
    image = textured(60, 40, seed=orientation)
    data = jpeg_bytes(image, quality=95, exif=identifying_exif(orientation))
    decoded = imageio.decode(data)
    with Image.open(io.BytesIO(data)) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert decoded.orientation == orientation
    assert np.array_equal(decoded.pixels, expected)


def test_rotated_photo_is_re_encoded_upright_with_orientation_1() -> None:
    data = jpeg_bytes(textured(60, 40), quality=95, exif=identifying_exif(6))
    out, _ = roundtrip(data)
    with Image.open(io.BytesIO(out)) as im:
        assert im.size == (40, 60)
        assert im.getexif().get(0x0112, 1) == 1


def test_cmyk_jpeg_keeps_cmyk_and_its_black_plate() -> None:
    rng = np.random.default_rng(1)
    cmyk = rng.integers(0, 255, (32, 48, 4), dtype=np.uint8)
    data = encoded(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=95)
    decoded = imageio.decode(data)
    assert decoded.pixels.shape == (32, 48, 3) and decoded.cmyk is not None
    out, _ = roundtrip(data)
    with Image.open(io.BytesIO(out)) as im, Image.open(io.BytesIO(data)) as orig:
        assert im.mode == "CMYK"
        diff = np.abs(np.asarray(im).astype(int) - np.asarray(orig).astype(int))
        assert diff.mean() < 2.0


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16_bit_png_keeps_all_16_bits(channels: int) -> None:
    rng = np.random.default_rng(channels)
    shape = (24, 36) if channels == 1 else (24, 36, channels)
    pixels = rng.integers(0, 65535, shape, dtype=np.uint16)
    ok, buffer = cv2.imencode(".png", pixels)
    assert ok
    data = buffer.tobytes()
    decoded = imageio.decode(data)
    assert decoded.pixels.dtype == np.uint16
    assert (decoded.alpha is not None) == (channels == 4)
    out, _ = roundtrip(data)
    back = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == pixels.shape
    assert np.array_equal(back, pixels)


def test_palette_png_with_transparency_comes_back_rgba_with_same_alpha() -> None:
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[:, :15] = (255, 0, 0, 255)
    rgba[:, 15:] = (0, 0, 255, 0)
    palette = Image.fromarray(rgba, "RGBA").quantize(colors=4)
    palette.info["transparency"] = palette.getpixel((20, 5))
    data = encoded(palette, "PNG", transparency=palette.getpixel((20, 5)))
    decoded = imageio.decode(data)
    assert decoded.alpha is not None
    out, _ = roundtrip(data)
    with Image.open(io.BytesIO(out)) as im:
        assert im.mode == "RGBA" and im.size == (30, 20)
        back = np.asarray(im)
    assert np.array_equal(back[:, :, 3], decoded.alpha)
    assert np.array_equal(back[:, :15, :3], rgba[:, :15, :3])


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_png_modes_round_trip_exactly(mode: str) -> None:
    image = textured(40, 30).convert(mode)
    if "A" in mode:
        image.putalpha(Image.linear_gradient("L").resize((40, 30)))
    data = encoded(image, "PNG")
    out, _ = roundtrip(data)
    with Image.open(io.BytesIO(out)) as im:
        assert im.mode == mode and im.size == (40, 30)
        assert np.array_equal(np.asarray(im), np.asarray(image))


def test_webp_lossless_stays_lossless_and_lossy_stays_close() -> None:
    image = textured(64, 48)
    out, _ = roundtrip(encoded(image, "WEBP", lossless=True))
    with Image.open(io.BytesIO(out)) as im:
        assert im.format == "WEBP" and np.array_equal(
            np.asarray(im.convert("RGB")), np.asarray(image)
        )
    out, _ = roundtrip(encoded(image, "WEBP", quality=90))
    with Image.open(io.BytesIO(out)) as im:
        assert im.format == "WEBP" and im.size == (64, 48)


@pytest.mark.skipif(not imageio.HEIF_AVAILABLE, reason="pillow-heif is not installed")
def test_heic_round_trip() -> None:
    data = encoded(textured(64, 48), "HEIF", quality=90)
    assert imageio.probe(data).media_type == "image/heic"
    out, _ = roundtrip(data)
    with Image.open(io.BytesIO(out)) as im:
        assert im.format == "HEIF" and im.size == (64, 48)


# -- JPEG encode ------------------------------------------------------------------------


@pytest.mark.parametrize("quality", [60, 75, 85, 95])
def test_jpeg_quality_estimate_matches_the_encoder_setting(quality: int) -> None:
    with Image.open(io.BytesIO(jpeg_bytes(textured(64, 64), quality=quality))) as im:
        assert jpeg.estimate_quality(im) == quality


@pytest.mark.parametrize("subsampling", [0, 1, 2])
@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_encode_keeps_size_subsampling_icc_and_quality(
    subsampling: int, progressive: bool
) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = jpeg_bytes(
        textured(80, 56),
        quality=95,
        subsampling=subsampling,
        progressive=progressive,
        icc_profile=icc,
    )
    out, _ = roundtrip(data)
    with Image.open(io.BytesIO(out)) as im:
        assert im.size == (80, 56) and im.mode == "RGB"
        assert JpegImagePlugin.get_sampling(im) == subsampling
        # Baseline always; a progressive input's size is kept by optimised Huffman tables.
        assert not im.info.get("progressive") and not im.info.get("progression")
        assert im.info.get("icc_profile") == icc
        assert jpeg.estimate_quality(im) == 95


def test_progressive_jpeg_comes_back_baseline_at_its_own_size() -> None:
    # Optimised Huffman tables in place of progressive scans: without them the baseline
    # file is about 15% larger than the progressive input.
    data = jpeg_bytes(textured(640, 480), quality=92, subsampling=2, progressive=True)
    out, _ = roundtrip(data)
    plain = jpeg_bytes(Image.open(io.BytesIO(data)), quality=92, subsampling=2)
    with Image.open(io.BytesIO(out)) as im:
        assert not im.info.get("progressive") and jpeg.estimate_quality(im) == 92
    assert len(out) < 0.95 * len(plain)
    assert len(out) < 1.03 * len(data)


def test_low_quality_jpeg_is_re_encoded_at_least_at_90() -> None:
    out, _ = roundtrip(jpeg_bytes(textured(64, 64), quality=50))
    with Image.open(io.BytesIO(out)) as im:
        assert jpeg.estimate_quality(im) == 90


def test_grayscale_jpeg_stays_grayscale() -> None:
    out, _ = roundtrip(jpeg_bytes(textured(64, 64).convert("L"), quality=92))
    with Image.open(io.BytesIO(out)) as im:
        assert im.mode == "L"


# -- metadata policy --------------------------------------------------------------------


def identifying_jpeg() -> bytes:
    thumbnail = jpeg_bytes(textured(16, 12), quality=70)
    exif = with_thumbnail(identifying_exif().tobytes(), thumbnail)
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        b'xmlns:exif="http://ns.adobe.com/exif/1.0/" '
        b'exif:GPSLatitude="48,51.4N"/></rdf:RDF></x:xmpmeta>'
    )
    return jpeg_bytes(textured(120, 90), quality=93, exif=exif, xmp=xmp)


def test_jpeg_metadata_policy_without_touching_pixels() -> None:
    data = identifying_jpeg()
    report = MetadataReport()
    out = imageio.rewrite_metadata(data, "JPEG", keep_metadata=False, report=report)
    assert out is not None
    assert jpeg.split(out).structure == jpeg.split(data).structure  # pixels: byte-identical
    with Image.open(io.BytesIO(out)) as im:
        exif = im.getexif()
        assert exif.get(0x010F) == "VeilCam" and exif.get(0x0110) == "Model 7"
        assert 0x013B not in exif and 0x8825 not in exif
        sub = exif.get_ifd(0x8769)
        assert 0xA431 not in sub and 0xA435 not in sub and 0xA430 not in sub
        assert sub.get(0x829A) is not None  # exposure kept
        assert "xmp" not in im.info
    removed = ("GPS", "BodySerialNumber", "LensSerialNumber", "Artist", "thumbnail")
    for name in (*removed, "XMP exif:GPSLatitude"):
        assert name in report.removed


def test_thumbnail_is_detected_and_kept_only_with_keep_metadata() -> None:
    data = identifying_jpeg()
    assert b"\xff\xd8" in data[200:]  # the thumbnail JPEG is inside the EXIF block
    report = MetadataReport()
    kept = imageio.rewrite_metadata(data, "JPEG", keep_metadata=True, report=report)
    assert report.removed == []
    # EXIF (thumbnail included) byte-identical; XMP rebuilt from its (allowed) properties.
    exif_of = [s for s in jpeg.split(data).metadata if s[4:10] == b"Exif\x00\x00"]
    assert [s for s in jpeg.split(kept).metadata if s[4:10] == b"Exif\x00\x00"] == exif_of
    out, report = roundtrip(data, keep_metadata=True)  # re-encoded: thumbnail would leak
    assert "thumbnail" in report.removed
    with Image.open(io.BytesIO(out)) as im:
        assert im.getexif().get_ifd(0x8825)  # GPS kept on request


def test_re_encoded_jpeg_carries_policy_applied_metadata() -> None:
    out, report = roundtrip(identifying_jpeg())
    with Image.open(io.BytesIO(out)) as im:
        exif = im.getexif()
        assert exif.get(0x010F) == "VeilCam" and 0x8825 not in exif
        assert 0xA431 not in exif.get_ifd(0x8769)
    assert "GPS" in report.removed


def test_png_metadata_policy_without_touching_pixels() -> None:
    info = {"exif": identifying_exif().tobytes()}
    data = encoded(textured(50, 40), "PNG", **info)
    report = MetadataReport()
    out = png.rewrite_metadata(data, keep_metadata=False, report=report)
    idat = [p for k, p in png.chunks(data) if k == b"IDAT"]
    assert [p for k, p in png.chunks(out) if k == b"IDAT"] == idat
    with Image.open(io.BytesIO(out)) as im:
        exif = im.getexif()
        assert exif.get(0x010F) == "VeilCam" and 0x8825 not in exif
    assert "GPS" in report.removed


def test_jpeg_trailer_after_end_of_image_is_dropped_unless_kept() -> None:
    data = jpeg_bytes(textured(40, 30), quality=90) + b"MOTION-PHOTO-VIDEO" * 10
    report = MetadataReport()
    out = imageio.rewrite_metadata(data, "JPEG", keep_metadata=False, report=report)
    assert out is not None and out.endswith(b"\xff\xd9") and "trailing data" in report.removed
    assert (
        imageio.rewrite_metadata(data, "JPEG", keep_metadata=True, report=MetadataReport()) == data
    )


def test_webp_metadata_policy_without_touching_the_bitstream() -> None:
    from veil.imaging import webp

    data = encoded(textured(50, 40), "WEBP", lossless=True, exif=identifying_exif().tobytes())
    report = MetadataReport()
    out = imageio.rewrite_metadata(data, "WEBP", keep_metadata=False, report=report)
    assert out is not None
    bitstream = [p for k, p in webp.chunks(data) if k == b"VP8L"]
    assert [p for k, p in webp.chunks(out) if k == b"VP8L"] == bitstream
    with Image.open(io.BytesIO(out)) as im:
        exif = im.getexif()
        assert exif.get(0x010F) == "VeilCam" and 0x8825 not in exif
        assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(textured(50, 40)))
    assert "GPS" in report.removed


@pytest.mark.skipif(not imageio.HEIF_AVAILABLE, reason="pillow-heif is not installed")
def test_heic_without_identifying_metadata_is_returned_untouched() -> None:
    clean = encoded(textured(64, 48), "HEIF", quality=90)
    assert (
        imageio.rewrite_metadata(clean, "HEIF", keep_metadata=False, report=MetadataReport())
        == clean
    )
    tagged = encoded(textured(64, 48), "HEIF", quality=90, exif=identifying_exif().tobytes())
    assert (
        imageio.rewrite_metadata(tagged, "HEIF", keep_metadata=False, report=MetadataReport())
        is None
    )
