"""Fixtures for the browser tests: one real companion and one upload site for the
whole run, one browser per test module (starting them is the slow part)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import VEIL, Companion
from upload_site import UploadSite


@pytest.fixture(scope="module")
def photos(faces_dir: Path) -> Path:
    return faces_dir


@pytest.fixture(scope="session")
def companion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Companion]:
    # Started once; test_companion_down stops it and starts it again on the same port.
    if not VEIL.exists():
        pytest.skip(f"{VEIL} missing: run scripts/install")
    running = Companion(tmp_path_factory.mktemp("veil-config")).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UploadSite]:
    running = UploadSite(tmp_path_factory.mktemp("site-photos")).start()
    try:
        yield running
    finally:
        running.stop()


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed (scripts/test installs it)")
    return path


@pytest.fixture(scope="module")
def chromium_binary() -> str:
    return need("chromium")


@pytest.fixture(scope="module")
def firefox_binary() -> str:
    return need("firefox-esr")
