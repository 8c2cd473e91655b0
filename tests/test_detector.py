"""YuNet on ONNX Runtime finds real faces with sane landmarks, and nothing in noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from veil.detector import FaceDetector


def load_rgb(path: Path, long_side: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        scale = long_side / max(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
        return np.asarray(im)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector.load()


@pytest.fixture(scope="module")
def photo(faces_dir: Path) -> Path:
    return faces_dir / "photos" / "Scarlett_Johansson" / "img49.jpg"


def assert_sane_face(face, width: int, height: int) -> None:
    x, y, w, h = face.box
    assert face.score >= 0.6
    assert x >= -0.02 * width and y >= -0.02 * height
    assert x + w <= width * 1.02 and y + h <= height * 1.02
    lm = face.landmarks
    assert lm.shape == (5, 2) and lm.dtype == np.float32
    assert np.all((lm[:, 0] >= x) & (lm[:, 0] <= x + w) & (lm[:, 1] >= y) & (lm[:, 1] <= y + h))
    left_eye, right_eye, nose, left_mouth, right_mouth = lm
    # ArcFace order: index 0 is the eye on the image's left.
    assert left_eye[0] < nose[0] < right_eye[0]
    assert left_mouth[0] < right_mouth[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])
    eye_distance = float(np.linalg.norm(right_eye - left_eye))
    assert 0.2 * w < eye_distance < 0.8 * w


def test_one_face_with_sane_landmarks_on_a_real_photo(detector: FaceDetector, photo: Path) -> None:
    rgb = load_rgb(photo, 1024)
    faces = detector.detect(rgb)
    assert len(faces) == 1
    assert_sane_face(faces[0], rgb.shape[1], rgb.shape[0])


def test_coordinates_follow_the_image_size(detector: FaceDetector, photo: Path) -> None:
    # 1024 and an odd size that is not a multiple of 32: same face, scaled landmarks.
    big, small = load_rgb(photo, 1024), load_rgb(photo, 517)
    (face_big,) = detector.detect(big)
    (face_small,) = detector.detect(small)
    ratio = big.shape[1] / small.shape[1]
    eye_distance = np.linalg.norm(face_big.landmarks[1] - face_big.landmarks[0])
    error = np.abs(face_small.scaled(ratio).landmarks - face_big.landmarks).max()
    assert error < 0.15 * eye_distance


def test_two_faces_in_the_couple_scene(detector: FaceDetector, faces_dir: Path) -> None:
    path = faces_dir / "scenes" / "couple.jpg"
    rgb = load_rgb(path, 1024)
    faces = detector.detect(rgb)
    assert len(faces) == 2
    for face in faces:
        assert_sane_face(face, rgb.shape[1], rgb.shape[0])


def test_no_face_in_synthetic_images(detector: FaceDetector) -> None:
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:600, 0:900]
    gradient = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=2).astype(np.uint8)
    flat = np.full((300, 200, 3), 128, dtype=np.uint8)
    for image in (noise, gradient, flat):
        assert detector.detect(image) == []


def test_odd_inputs_do_not_crash(detector: FaceDetector) -> None:
    assert detector.detect(np.zeros((5, 7, 3), dtype=np.uint8)) == []
    assert detector.detect(np.zeros((0, 0, 3), dtype=np.uint8)) == []
    assert detector.detect(np.full((64, 64), 200, dtype=np.uint8)) == []
    with pytest.raises(ValueError):
        detector.detect(np.zeros((64, 64, 3), dtype=np.float32))
