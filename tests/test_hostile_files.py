"""Hostile and broken files: always a clear typed error, never a crash or a fake cloak."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engine_support import SVG, gif_bomb, huge_png_header, jpeg_bytes, textured
from veil.engine import Engine
from veil.errors import ErrorCode, VeilError


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


def animated_webp() -> bytes:
    frames = [textured(32, 32, seed=i) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def png_cut_mid_data() -> bytes:
    buffer = io.BytesIO()
    textured(300, 200).save(buffer, "PNG")
    data = buffer.getvalue()
    return data[: len(data) * 2 // 3]


HOSTILE = {
    "zero-byte": (b"", ErrorCode.CORRUPT_IMAGE),
    "not-an-image": (b"#!/bin/sh\necho not a photo\n" * 20, ErrorCode.UNSUPPORTED_FORMAT),
    "svg": (SVG, ErrorCode.UNSUPPORTED_FORMAT),
    "gif-bomb": (gif_bomb(), ErrorCode.IMAGE_TOO_LARGE),
    "30000x30000-png-header": (huge_png_header(), ErrorCode.IMAGE_TOO_LARGE),
    "truncated-jpeg": (jpeg_bytes(textured(640, 480))[:5000], ErrorCode.CORRUPT_IMAGE),
    "jpeg-magic-then-garbage": (b"\xff\xd8\xff\xe0" + b"\x00" * 64, ErrorCode.CORRUPT_IMAGE),
    "png-cut-mid-data": (png_cut_mid_data(), ErrorCode.CORRUPT_IMAGE),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_file_gives_a_typed_error(engine: Engine, name: str) -> None:
    data, code = HOSTILE[name]
    with pytest.raises(VeilError) as caught:
        engine.cloak_bytes(data)
    assert caught.value.code == code, caught.value.message
    assert caught.value.message


def test_animated_webp_is_cloaked_frame_by_frame(engine: Engine) -> None:
    """Refused once; now every frame goes through `veil.animated` (faces: test_animated)."""
    result = engine.cloak_bytes(animated_webp())
    assert result.media_type == "image/webp" and result.frames == 3


def test_corrupted_jpegs_never_crash(engine: Engine) -> None:
    """Random byte damage: either a valid cloak result or a VeilError, nothing else."""
    original = jpeg_bytes(textured(320, 240), quality=90)
    rng = np.random.default_rng(7)
    outcomes = set()
    for _ in range(12):
        damaged = bytearray(original)
        for pos in rng.integers(2, len(damaged), 6):
            damaged[pos] = int(rng.integers(0, 256))
        try:
            result = engine.cloak_bytes(bytes(damaged))
            assert result.data and result.media_type == "image/jpeg"
            outcomes.add("ok")
        except VeilError as exc:
            outcomes.add(exc.code)
    assert outcomes  # each input ended one of the two allowed ways


def test_huge_image_is_refused_before_decoding(engine: Engine) -> None:
    small_limit = Engine(engine.detector, engine.surrogates, max_pixels=1000)
    with pytest.raises(VeilError) as caught:
        small_limit.cloak_bytes(jpeg_bytes(Image.new("RGB", (40, 30))))
    assert caught.value.code == ErrorCode.IMAGE_TOO_LARGE
