"""Root fixtures: the face corpus (one lookup for every test, in corpus.py).

Under `CI=true` a missing corpus ends the run at once with a failure: tests that need faces
would otherwise skip, and a CI run without them would pass with most of the engine untested.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus import FACES_ENV, faces_root, in_ci, missing_parts, require_faces


def pytest_sessionstart(session: pytest.Session) -> None:
    path = faces_root()
    missing = missing_parts(path)
    if in_ci() and missing:
        pytest.exit(
            f"CI=true but the face corpus is incomplete at {path} (no {', '.join(missing)}); "
            f"put it at ../shared/faces or set {FACES_ENV}",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The face corpus folder (`aligned/`, `photos/`, `scenes/`); skips when absent."""
    return require_faces()
