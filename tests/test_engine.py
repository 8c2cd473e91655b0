"""The engine end to end, in process, with the real models and a real photo."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engine_support import face_photo, identifying_exif, jpeg_bytes, textured
from veil.engine import Engine, seed_for
from veil.imaging import jpeg
from veil.results import Mode


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


@pytest.fixture(scope="module")
def photo() -> bytes:
    return face_photo(1200)


@pytest.fixture(scope="module")
def cloaked(engine: Engine, photo: bytes) -> bytes:
    result = engine.cloak_bytes(photo, mode=Mode.LOW)
    assert result.face_count == 1
    assert result.media_type == "image/jpeg"
    assert result.ssim is not None and 0.98 <= result.ssim < 1.0
    return result.data


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def test_face_changes_and_far_background_does_not(
    engine: Engine, photo: bytes, cloaked: bytes
) -> None:
    before, after = pixels(photo), pixels(cloaked)
    assert before.shape == after.shape
    faces = engine.detect_faces(before.astype(np.uint8), (1.0, 1.0))
    box = faces[0].box
    diff = np.abs(after - before).mean(axis=2)
    face_change = diff[box.y0 : box.y1, box.x0 : box.x1].mean()
    far = np.ones(diff.shape, bool)
    pad = max(box.width, box.height) // 2
    far[max(0, box.y0 - pad) : box.y1 + pad, max(0, box.x0 - pad) : box.x1 + pad] = False
    assert far.mean() > 0.2
    background_change = diff[far].mean()
    assert face_change > 0.5  # a real cloak (v5 LOW: 0.75 /255 mean), not JPEG noise
    assert background_change < 0.6  # re-encode only, at quality >= 92
    assert face_change > 3 * background_change


def test_cloak_moves_the_surrogate_embedding(engine: Engine, photo: bytes, cloaked: bytes) -> None:
    from veil.align import alignment_matrix, warp_crop

    # As a tracker sees it: the face found and aligned again in the cloaked photo itself.
    before = pixels(photo).astype(np.uint8)
    after = pixels(cloaked).astype(np.uint8)
    face = engine.detect_faces(before, (1.0, 1.0))[0]
    found_again = engine.detect_faces(after, (1.0, 1.0))[0]
    crops = np.stack(
        [
            warp_crop(before, alignment_matrix(face.landmarks, 112), 112),
            warp_crop(after, alignment_matrix(found_again.landmarks, 112), 112),
        ]
    )
    # The same photo only re-encoded (what the cloak's own output encode does anyway).
    with Image.open(io.BytesIO(photo)) as im:
        reencoded = pixels(jpeg_bytes(im, quality=92)).astype(np.uint8)
    again = engine.detect_faces(reencoded, (1.0, 1.0))[0]
    plain = warp_crop(reencoded, alignment_matrix(again.landmarks, 112), 112)
    for model in engine.surrogates:
        emb = model.embed(np.concatenate([crops, plain[None]]))
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        moved, moved_by_jpeg = 1.0 - float(emb[0] @ emb[1]), 1.0 - float(emb[0] @ emb[2])
        # Measured at v5 LOW: cosine 0.94-0.95 (v4 LOW: 0.46-0.59; v5 trades strength for
        # invisibility, see docs/visibility.md), a re-encode alone 0.99+.
        assert moved > 0.03 and moved > 3 * moved_by_jpeg, (model.name, moved, moved_by_jpeg)


def test_cloak_reports_each_face_ssimulacra2(engine: Engine, photo: bytes) -> None:
    from veil.ssimulacra2 import face_ssimulacra2

    result = engine.cloak_bytes(photo, mode=Mode.MID)
    face = result.faces[0]
    assert face.ssimulacra2 is not None and result.face_ssimulacra2 == face.ssimulacra2
    assert 0.0 < face.ssimulacra2 < 100.0
    x, y, w, h = face.box
    region = (slice(y, y + h), slice(x, x + w))
    before = pixels(photo)[region].astype(np.uint8)
    after = pixels(result.data)[region].astype(np.uint8)
    in_file = face_ssimulacra2(before, after)
    # The report judges the cloak before the output's JPEG encode, which can only add loss.
    assert in_file is not None and face.ssimulacra2 - 15 < in_file < face.ssimulacra2 + 1


def test_same_photo_and_mode_give_identical_bytes(
    engine: Engine, photo: bytes, cloaked: bytes
) -> None:
    assert seed_for(photo, Mode.LOW) == seed_for(photo, Mode.LOW) != seed_for(photo, Mode.MID)
    assert engine.cloak_bytes(photo, mode=Mode.LOW).data == cloaked


def test_photo_without_faces_keeps_its_pixels_and_loses_gps(engine: Engine) -> None:
    data = jpeg_bytes(textured(1600, 1200), quality=90, exif=identifying_exif())
    result = engine.cloak_bytes(data)
    assert result.face_count == 0 and result.ssim is None
    assert jpeg.split(result.data).structure == jpeg.split(data).structure  # lossless
    assert "GPS" in result.metadata_removed and "BodySerialNumber" in result.metadata_removed
    with Image.open(io.BytesIO(result.data)) as im:
        assert 0x8825 not in im.getexif() and im.getexif().get(0x010F) == "VeilCam"
    kept = engine.cloak_bytes(data, keep_metadata=True)
    assert kept.data == data


def test_progressive_jpeg_is_cloaked_and_a_faceless_one_stays_lossless(
    engine: Engine, photo: bytes
) -> None:
    # Progressive JPEGs take the decode-once path (no reduced-size preview decode).
    with Image.open(io.BytesIO(photo)) as im:
        progressive = jpeg_bytes(im, quality=92, progressive=True)
    result = engine.cloak_bytes(progressive, mode=Mode.LOW)
    assert result.face_count == 1 and result.ssim is not None and result.ssim < 1.0
    assert np.abs(pixels(result.data) - pixels(progressive)).max() > 0
    faceless = jpeg_bytes(textured(1600, 1200), quality=90, progressive=True)
    result = engine.cloak_bytes(faceless)
    assert result.face_count == 0
    assert jpeg.split(result.data).structure == jpeg.split(faceless).structure


def test_rotated_photo_is_cloaked_upright(engine: Engine, photo: bytes) -> None:
    with Image.open(io.BytesIO(photo)) as im:
        sideways = im.transpose(Image.Transpose.ROTATE_90)  # EXIF 6 turns it back upright
        data = jpeg_bytes(sideways, quality=92, exif=identifying_exif(orientation=6))
        upright_size = im.size
    result = engine.cloak_bytes(data, mode=Mode.LOW)
    assert result.face_count == 1
    with Image.open(io.BytesIO(result.data)) as out:
        assert out.size == upright_size
        assert out.getexif().get(0x0112, 1) == 1
        assert 0x8825 not in out.getexif()


def test_aligned_crop_mode(engine: Engine) -> None:
    from engine_support import faces_dir

    crop_path = sorted((faces_dir() / "aligned").glob("*/*.png"))[0]
    data = crop_path.read_bytes()
    result = engine.cloak_aligned_bytes(data, mode=Mode.LOW)
    assert (result.width, result.height, result.media_type) == (112, 112, "image/png")
    before, after = pixels(data), pixels(result.data)
    assert np.abs(after - before).max() > 0
    assert result.ssim is not None and result.ssim > 0.8


def test_close_up_keeps_the_whole_image_floor(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A face filling most of a small photo: the engine scales the cloak down until the
    whole photo meets the mode's SSIM floor. The v5 cloak is faint (whole-image SSIM 0.9989
    here at the default mode, over its 0.98 floor), so the test raises the floor to 0.9995
    to make it bind, as the v4 cloak's 0.969 once did at 0.98."""
    from engine_support import faces_dir
    from veil import optimizer

    tight = optimizer.with_overrides(optimizer.mode_budget(Mode.MID), min_image_ssim=0.9995)
    monkeypatch.setitem(optimizer._BUDGETS, Mode.MID, tight)
    src = faces_dir() / "photos" / "Scarlett_Johansson" / "img51.jpg"
    result = engine.cloak_bytes(src.read_bytes())
    assert result.face_count == 1
    assert result.ssim is not None
    assert 0.9995 <= result.ssim < 1.0
