"""Every recogniser graph separates identities and its gradient is the true gradient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from veil.modelstore import get_store
from veil.recognizers import Recognizer, load_recognizers

RECOGNISERS = get_store().names(role="recogniser")
IDENTITIES = ("Barack_Obama", "Halle_Berry", "Keanu_Reeves", "Tina_Fey")
PER_IDENTITY = 3


@pytest.fixture(scope="module")
def crops(faces_dir: Path) -> np.ndarray:
    """[identities * PER_IDENTITY, 112, 112, 3] aligned crops, RGB in [0, 1]."""
    aligned = faces_dir / "aligned"
    images = []
    for identity in IDENTITIES:
        files = sorted((aligned / identity).glob("*.png"))[:PER_IDENTITY]
        assert len(files) == PER_IDENTITY, identity
        for f in files:
            with Image.open(f) as im:
                images.append(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0)
    return np.stack(images)


@pytest.fixture(scope="module", params=RECOGNISERS)
def recognizer(request: pytest.FixtureRequest) -> Recognizer:
    return Recognizer(request.param)


def test_default_surrogates_are_a_subset_of_the_recognisers() -> None:
    default = [r.name for r in load_recognizers()]
    assert "sface" in default and set(default) <= set(RECOGNISERS)
    assert [r.name for r in load_recognizers(["sface"])] == ["sface"]


def test_same_identity_is_closer_than_different_identities(
    recognizer: Recognizer, crops: np.ndarray
) -> None:
    emb = recognizer.embed(crops)
    assert emb.shape == (len(crops), recognizer.dim)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    labels = np.repeat(np.arange(len(IDENTITIES)), PER_IDENTITY)
    cos = emb @ emb.T
    same = (labels[:, None] == labels[None, :]) & ~np.eye(len(labels), dtype=bool)
    different = labels[:, None] != labels[None, :]
    # Scale-free separation: the share of (same pair, different pair) couples ranked
    # the right way (ROC AUC). Cosine ranges differ a lot between models (dlib's
    # descriptors sit in a narrow cone), so no fixed cosine gap is asked for.
    auc = float(np.mean(cos[same][:, None] > cos[different][None, :]))
    assert auc >= 0.9, auc
    # Rank-1: every crop's nearest other crop is of the same person.
    np.fill_diagonal(cos, -2.0)
    assert np.mean(labels[cos.argmax(axis=1)] == labels) >= 0.9


def test_gradient_graph_agrees_with_embed_graph_and_batching(
    recognizer: Recognizer, crops: np.ndarray
) -> None:
    x = crops[:4]
    emb = recognizer.embed(x)
    targets = np.roll(emb, 1, axis=0)
    emb_g, loss, grad = recognizer.loss_and_grad(x, targets)
    assert grad.shape == x.shape and loss.shape == (4,)
    np.testing.assert_allclose(emb_g, emb, atol=1e-4)
    np.testing.assert_allclose(loss, (emb * targets).sum(axis=1), atol=1e-4)
    # Each row's gradient is its own: the same crop alone gives the same gradient.
    _, _, grad_one = recognizer.loss_and_grad(x[2:3], targets[2:3])
    np.testing.assert_allclose(grad_one[0], grad[2], atol=1e-4 * np.abs(grad[2]).max() + 1e-7)


def test_gradient_agrees_with_finite_differences(recognizer: Recognizer, crops: np.ndarray) -> None:
    x = crops[:1]
    target = recognizer.embed(crops[PER_IDENTITY : PER_IDENTITY + 1])
    _, _, grad = recognizer.loss_and_grad(x, target)
    rng = np.random.default_rng(3)
    h = 2e-3
    directions = [grad / np.linalg.norm(grad)]
    # Random smooth directions: low-frequency patterns cross few ReLU kinks, so the
    # float32 finite difference stays accurate at this step size.
    for _ in range(2):
        coarse = rng.standard_normal((1, 14, 14, 3)).astype(np.float32)
        smooth = np.kron(coarse, np.ones((1, 8, 8, 1), dtype=np.float32))
        directions.append(smooth / np.linalg.norm(smooth))
    for d in directions:
        _, plus, _ = recognizer.loss_and_grad(x + h * d, target)
        _, minus, _ = recognizer.loss_and_grad(x - h * d, target)
        numeric = float(plus[0] - minus[0]) / (2 * h)
        analytic = float((grad * d).sum())
        assert abs(numeric - analytic) <= 0.05 * np.linalg.norm(grad) + 1e-4, (numeric, analytic)


def test_bad_shapes_are_rejected(recognizer: Recognizer) -> None:
    with pytest.raises(ValueError):
        recognizer.embed(np.zeros((1, 3, 112, 112), dtype=np.float32))
    with pytest.raises(ValueError):
        recognizer.loss_and_grad(
            np.zeros((2, 112, 112, 3), dtype=np.float32), np.zeros((3, recognizer.dim))
        )
    assert recognizer.embed(np.zeros((0, 112, 112, 3), dtype=np.float32)).shape == (
        0,
        recognizer.dim,
    )
