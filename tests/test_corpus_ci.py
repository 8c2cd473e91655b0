"""Under CI=true a missing face corpus fails the run; locally the tests that need it skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pytest_run(env_changes: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"} | env_changes
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ci_without_corpus_fails_the_run(tmp_path: Path) -> None:
    run = pytest_run({"CI": "true", "VEIL_FACES_DIR": str(tmp_path)}, "tests/test_layout.py")
    assert run.returncode != 0, run.stdout[-2000:]
    assert "face corpus is incomplete" in run.stdout + run.stderr


def test_local_run_without_corpus_skips_the_face_tests(tmp_path: Path) -> None:
    run = pytest_run(
        {"VEIL_FACES_DIR": str(tmp_path)},
        "-rs",
        "tests/test_detector.py::test_two_faces_in_the_couple_scene",
    )
    assert run.returncode == 0, run.stdout[-2000:]
    assert "1 skipped" in run.stdout and "set VEIL_FACES_DIR" in run.stdout
