"""Where the tests find the face corpus: the one lookup every test and helper uses.

`VEIL_FACES_DIR`, else `../shared/faces` next to the repository root. The corpus holds real
face photos (`aligned/`, `photos/`, `scenes/`) and never enters the repository. Without it,
tests that need faces skip locally; under `CI=true` they fail instead (and the whole run
fails at start, see conftest.py), so a CI run without the corpus cannot pass quietly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FACES_ENV = "VEIL_FACES_DIR"
PARTS = ("aligned", "photos", "scenes")


def faces_root() -> Path:
    override = os.environ.get(FACES_ENV)
    return Path(override) if override else REPO.parent / "shared" / "faces"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_parts(path: Path) -> list[str]:
    return [part for part in PARTS if not (path / part).is_dir()]


def require_faces() -> Path:
    """The corpus folder; skips the calling test when it is absent (fails it under CI)."""
    path = faces_root()
    missing = missing_parts(path)
    if missing:
        message = f"face corpus incomplete at {path}: no {', '.join(missing)} (set {FACES_ENV})"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path
