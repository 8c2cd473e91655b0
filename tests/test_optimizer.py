"""The optimiser moves real faces' SFace embeddings far, within its budget, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from veil import evaluate as ev
from veil import optimizer
from veil.errors import CloakFailedError
from veil.recognizers import Recognizer
from veil.results import Mode

IDENTITIES = ("Barack_Obama", "Tina_Fey")


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    """One aligned crop of each of two people, RGB float32 in [0, 1]."""
    faces = ev.default_faces_dir()
    if not (faces / "aligned").is_dir():
        pytest.skip(f"{faces}/aligned is absent (set VEIL_FACES_DIR to the shared faces folder)")
    sets = ev.load_face_set(faces, limit_identities=24, max_uploads=1)
    return ev.to_float(np.concatenate([sets.uploads[i] for i in IDENTITIES]))


@pytest.fixture(scope="module")
def sface() -> Recognizer:
    return Recognizer("sface")


@pytest.fixture(scope="module")
def cloaked(crops: np.ndarray, sface: Recognizer) -> np.ndarray:
    return optimizer.cloak_crops(crops, Mode.LOW, [sface], seed=7)


def test_cloak_moves_the_embedding_away(
    crops: np.ndarray, cloaked: np.ndarray, sface: Recognizer
) -> None:
    before, after = sface.embed(crops), sface.embed(cloaked)
    cosine = np.sum(before * after, axis=1)
    # Clean crops of one person sit around 0.5-0.8 from each other on SFace; even the
    # weakest mode must push the cloaked crop further from the original than that.
    assert np.all(cosine < 0.5), cosine


def test_cloak_respects_the_budget(crops: np.ndarray, cloaked: np.ndarray) -> None:
    budget = optimizer.mode_budget(Mode.LOW)
    assert cloaked.shape == crops.shape and cloaked.dtype == np.float32
    assert cloaked.min() >= 0.0 and cloaked.max() <= 1.0
    # The texture mask scales the L-inf cap by at most 1.5.
    assert np.max(np.abs(cloaked - crops)) <= 1.5 * budget.linf + 1e-6
    assert np.all(optimizer.crop_ssim(crops, cloaked) >= budget.min_crop_ssim - 1e-6)
    assert np.mean(np.abs(cloaked - crops)) > budget.linf / 10  # it did change the crops


def test_same_seed_same_cloak(crops: np.ndarray, sface: Recognizer) -> None:
    quick = optimizer.with_overrides(optimizer.mode_budget(Mode.MID), steps=2, copies=2)
    first = optimizer.cloak_crops(crops[:1], Mode.MID, [sface], seed=3, budget=quick)
    again = optimizer.cloak_crops(crops[:1], Mode.MID, [sface], seed=3, budget=quick)
    other = optimizer.cloak_crops(crops[:1], Mode.MID, [sface], seed=4, budget=quick)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_bad_crops_raise_a_typed_error(sface: Recognizer) -> None:
    with pytest.raises(CloakFailedError):
        optimizer.cloak_crops(np.zeros((1, 112, 112)), Mode.MID, [sface], seed=0)
    with pytest.raises(CloakFailedError):
        optimizer.cloak_crops(np.full((1, 112, 112, 3), 2.0), Mode.MID, [sface], seed=0)
    with pytest.raises(CloakFailedError):
        optimizer.cloak_crops(np.zeros((1, 112, 112, 3)), Mode.MID, [], seed=0)


def test_budgets_grow_with_the_mode() -> None:
    low, mid, high = (optimizer.mode_budget(m) for m in (Mode.LOW, Mode.MID, Mode.HIGH))
    assert low.linf < mid.linf < high.linf
    assert low.min_face_ssim >= mid.min_face_ssim >= high.min_face_ssim
