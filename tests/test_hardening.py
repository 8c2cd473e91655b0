"""Hostile photos against the real engine: bombs are refused with typed errors, parsing has
work bounds, and the inputs that used to raise internal errors are handled (issue 13)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import hostile_inputs as hostile
from veil.engine import Engine
from veil.errors import ErrorCode, VeilError
from veil.imaging import bounds, jpeg, png

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


def _code(engine: Engine, data: bytes) -> ErrorCode:
    with pytest.raises(VeilError) as caught:
        engine.cloak_bytes(data)
    assert caught.value.message
    return caught.value.code


# Sizes just past each limit (the benchmark uses the full-size bombs); each of these was
# accepted (200) by the old code, the zTXt one after inflating 64 MB.
SMALL_BOMBS = {
    "png-ztxt-after-idat": lambda: hostile.png_ztxt_bomb(64 * hostile.MiB),
    "png-itxt-xmp": lambda: hostile.png_itxt_bomb(2 * hostile.MiB),
    "png-iccp": lambda: hostile.png_iccp_bomb(2 * hostile.MiB),
    "png-exif-profile": lambda: hostile.png_exif_profile_bomb(2 * hostile.MiB),
    "png-many-chunks": lambda: hostile.png_many_chunks(bounds.MAX_PNG_ANCILLARY_CHUNKS + 1),
    "jpeg-many-comments": lambda: hostile.jpeg_many_comments(bounds.MAX_JPEG_METADATA_SEGMENTS + 1),
    "jpeg-many-exif": lambda: hostile.jpeg_many_exif(bounds.MAX_JPEG_METADATA_SEGMENTS + 1),
}


@pytest.mark.parametrize("name", list(SMALL_BOMBS))
def test_bombs_are_refused_as_too_large(engine: Engine, name: str) -> None:
    assert _code(engine, SMALL_BOMBS[name]()) == ErrorCode.IMAGE_TOO_LARGE


def test_fill_byte_run_is_refused_without_parsing_byte_by_byte(engine: Engine) -> None:
    assert _code(engine, hostile.jpeg_ff_run(4 * hostile.MiB)) == ErrorCode.CORRUPT_IMAGE


def test_too_many_scans_is_refused() -> None:
    data = hostile.small_jpeg(progressive=True)
    sos = data.index(b"\xff\xda")
    end = data.rindex(b"\xff\xd9")
    scans = data[sos:end]
    bomb = data[:sos] + scans * (bounds.MAX_JPEG_SCANS // scans.count(b"\xff\xda") + 1) + data[end:]
    with pytest.raises(bounds.ImageTooComplexError):
        jpeg.split(bomb)


def test_inflate_refuses_past_the_cap_and_keeps_what_fits() -> None:
    import zlib

    fits = zlib.compress(b"a" * bounds.MAX_INFLATED_BYTES)
    assert len(bounds.inflate(fits, "test")) == bounds.MAX_INFLATED_BYTES
    with pytest.raises(bounds.ImageTooComplexError):
        bounds.inflate(zlib.compress(b"a" * (bounds.MAX_INFLATED_BYTES + 1)), "test")


def test_ordinary_text_chunks_still_pass(engine: Engine) -> None:
    """A compressed 200 KB comment is metadata, not a bomb: the photo is cloaked as before."""
    import zlib

    text = png.chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"note " * 40_000))
    data = hostile._insert_png_chunks(hostile.small_png(), text, after_idat=True)
    result = engine.cloak_bytes(data)
    assert result.media_type == "image/png"


def test_bomb_peak_memory_stays_small(tmp_path: Path) -> None:
    """A 1 MB zTXt bomb (1 GiB inflated) in a fresh process: the old code peaked at +2 GB."""
    code = (
        f"import resource, sys; sys.path.insert(0, {str(TESTS)!r})\n"
        "import hostile_inputs as h\n"
        "from veil import imageio\n"
        "from veil.errors import VeilError\n"
        "data = h.png_ztxt_bomb()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    imageio.decode(data)\n"
        "    imageio.rewrite_metadata(data, 'PNG', keep_metadata=False,"
        " report=imageio.MetadataReport())\n"
        "    print('accepted')\n"
        "except VeilError as exc:\n"
        "    print(exc.code)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    outcome, growth_mib = done.stdout.split()
    assert outcome == "image_too_large"
    assert int(growth_mib) < 64, f"peak grew {growth_mib} MiB"


# -- inputs that used to end in 500 internal_error -------------------------------------


def test_quant_tables_numbered_1_and_2_are_cloaked(engine: Engine) -> None:
    data = hostile.jpeg_quant_tables_1_and_2()
    with Image.open(io.BytesIO(data)) as image:
        assert sorted(image.quantization) == [1, 2]
        assert jpeg.estimate_quality(image) is not None
    result = engine.cloak_bytes(data)
    assert result.media_type == "image/jpeg"


def test_wrong_type_exif_with_a_tag_to_strip_is_dropped_not_crashed(engine: Engine) -> None:
    result = engine.cloak_bytes(hostile.jpeg_wrong_type_exif())
    # The allow-list (imaging.metadata) rebuilds EXIF tag by tag: the wrong-type tag and the
    # identifying one go, the rest of the block may stay.
    assert "Artist" in result.metadata_removed
    assert b"Jan\x00" not in result.data and b"abc\x00" not in result.data


def test_corrupt_png_pixel_data_is_refused(engine: Engine) -> None:
    assert _code(engine, hostile.png_corrupt_pixels()) == ErrorCode.CORRUPT_IMAGE


def test_pillow_warnings_are_not_repeated_per_call(tmp_path: Path) -> None:
    """Process-wide filters: a JPEG with a broken EXIF block printed Pillow's warnings on
    every call (the per-call catch_warnings reset "print once"); now it prints none."""
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
        "import hostile_inputs as h\n"
        "from veil import imageio\n"
        "data = h.jpeg_broken_exif()\n"
        "for _ in range(5):\n"
        "    imageio.decode(data)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert len(done.stderr) < 200, done.stderr[:500]
