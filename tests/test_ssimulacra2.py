"""veil.ssimulacra2 against the reference PyPI `ssimulacra2` package, on real photos."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import ssimulacra2 as reference
from PIL import Image, ImageFilter

from engine_support import faces_dir
from veil.ssimulacra2 import face_ssimulacra2, ssimulacra2


def reference_score(a: np.ndarray, b: np.ndarray, tmp_path: Path) -> float:
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    return float(reference.compute_ssimulacra2(str(tmp_path / "a.png"), str(tmp_path / "b.png")))


def jpeg(a: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def photo_region(name: str, rows: int, cols: int) -> np.ndarray:
    image = Image.open(faces_dir() / "photos" / name).convert("RGB")
    a = np.asarray(image)
    return np.ascontiguousarray(a[:rows, :cols])


@pytest.mark.faces
@pytest.mark.parametrize(
    ("name", "rows", "cols"),
    # Odd sizes: the halving at every scale must treat the partial last block as the package.
    [("Jennifer_Aniston/img12.jpg", 301, 277), ("Matt_Damon/img33.jpg", 256, 320)],
)
def test_matches_the_reference_package(name: str, rows: int, cols: int, tmp_path: Path) -> None:
    original = photo_region(name, rows, cols)
    blurred = np.asarray(Image.fromarray(original).filter(ImageFilter.GaussianBlur(1.2)))
    tint = np.array([6, -4, 2], np.int16)
    shifted = np.clip(original.astype(np.int16) + tint, 0, 255).astype(np.uint8)
    for distorted in (jpeg(original, 90), jpeg(original, 30), blurred, shifted):
        ours = ssimulacra2(original, distorted)
        assert ours == pytest.approx(reference_score(original, distorted, tmp_path), abs=0.05)


def test_identical_images_score_100_and_worse_images_score_lower() -> None:
    rng = np.random.default_rng(3)
    a = np.asarray(
        Image.fromarray(rng.integers(0, 256, (96, 80, 3), dtype=np.uint8)).filter(
            ImageFilter.GaussianBlur(2)
        )
    )
    assert ssimulacra2(a, a) == pytest.approx(100.0)
    scores = [ssimulacra2(a, jpeg(a, q)) for q in (95, 60, 20)]
    assert scores[0] > scores[1] > scores[2]


def test_refuses_mismatched_or_tiny_images() -> None:
    a = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError):
        ssimulacra2(a, a[:16])
    with pytest.raises(ValueError):
        ssimulacra2(a[:7], a[:7])
    assert face_ssimulacra2(a[:7], a[:7]) is None


def test_large_faces_are_judged_shrunk_alike() -> None:
    rng = np.random.default_rng(4)
    big = np.asarray(
        Image.fromarray(rng.integers(0, 256, (1500, 1200, 3), dtype=np.uint8)).filter(
            ImageFilter.GaussianBlur(3)
        )
    )
    noisy = np.clip(big.astype(np.int16) + rng.integers(-3, 4, big.shape), 0, 255).astype(np.uint8)
    score = face_ssimulacra2(big, noisy)
    assert score is not None and 0 < score < 100
    assert face_ssimulacra2(big, big) == pytest.approx(100.0)
