"""The protection protocol's attacker is sound: clean uploads identify the probes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from veil.recognizers import Recognizer
from veil_research import evaluate as ev

IDENTITIES = 5  # the attacker's classes
OUTSIDERS = 2  # people outside the classes, for the positive control


@pytest.fixture(scope="module")
def faces(faces_dir: Path) -> ev.FaceSet:
    return ev.load_face_set(faces_dir, limit_identities=IDENTITIES + OUTSIDERS, max_probes=6)


@pytest.fixture(scope="module")
def embeddings(faces: ev.FaceSet) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    sface = Recognizer("sface")
    uploads = {i: ev.embed_all(sface, faces.uploads[i]) for i in faces.identities}
    probes = {i: ev.embed_all(sface, faces.probes[i]) for i in faces.identities[:IDENTITIES]}
    return uploads, probes


def test_split_is_first_half_uploads_second_half_probes(faces: ev.FaceSet) -> None:
    assert faces.identities == tuple(sorted(faces.identities))
    first = faces.identities[0]
    assert faces.upload_names[first][0] == "000.png"
    assert faces.uploads[first].shape == (25, 112, 112, 3)
    assert faces.uploads[first].dtype == np.uint8


def test_clean_baseline_identifies_everyone(
    embeddings: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
) -> None:
    uploads, probes = embeddings
    result = ev.protection({i: uploads[i] for i in probes}, probes, None)
    assert set(result.by_classifier) == {"centroid", "logreg"}
    for score in result.by_classifier.values():
        assert score <= 0.1, result.per_identity


def test_uploads_of_someone_else_count_as_protected(
    embeddings: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
) -> None:
    # Positive control: when the "cloaked" uploads are the photos of someone outside the
    # classes, the attacker must fail on the protected person's probes.
    uploads, probes = embeddings
    names = list(uploads)
    outsiders = names[IDENTITIES:]
    classes = {i: uploads[i] for i in probes}
    swapped = {names[0]: uploads[outsiders[0]], names[2]: uploads[outsiders[1]]}
    result = ev.protection(classes, probes, swapped)
    assert set(result.per_identity["centroid"]) == {names[0], names[2]}
    assert result.by_classifier["centroid"] >= 0.8
    assert result.by_classifier["logreg"] >= 0.5


def test_reencodes_keep_shape_and_change_pixels(faces: ev.FaceSet) -> None:
    crops = faces.uploads[faces.identities[0]]
    for name, transform in ev.REENCODES.items():
        out = transform(crops)
        assert out.shape == crops.shape and out.dtype == np.uint8
        if name != "none":
            assert not np.array_equal(out, crops)


def test_logistic_regression_separates_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(8, dtype=np.float32)[:3] * 3
    x = np.concatenate([c + rng.normal(0, 0.3, (20, 8)) for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(3), 20).astype(np.int64)
    predict = ev.logistic_regression(x, y, 3)
    assert np.mean(predict(x) == y) > 0.95
