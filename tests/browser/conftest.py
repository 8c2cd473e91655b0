"""Fixtures for the browser tests: one real companion and one upload site for the
whole run, one browser per test module (starting them is the slow part)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium_driver import ExtensionBrowser, launch_with_extension, screenshot
from harness import (
    VEIL,
    Companion,
    port_is_listening,
)
from playwright.sync_api import Page, Playwright
from upload_site import UploadSite

from veil.server.settings import DEFAULT_PORT


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


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """One Playwright per module: its sync API cannot be started twice in a thread, and a test
    may want a second browser beside `browser` (test_chromium_video.py's headed one)."""
    from playwright.sync_api import sync_playwright

    running = sync_playwright().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser(
    playwright: Playwright,
    chromium_binary: str,
    tmp_path_factory: pytest.TempPathFactory,
    companion: Companion,
) -> Iterator[ExtensionBrowser]:
    extension = launch_with_extension(
        playwright, tmp_path_factory.mktemp("chromium-profile"), chromium_binary
    )
    context = extension.context
    try:
        # First run opens the pairing page by itself (a tab opened while the browser starts,
        # before Playwright attaches, so it is checked through chrome.tabs).
        pairing_url = extension.page_url("src/pairing/pairing.html")
        deadline = time.monotonic() + 15
        while extension.tab_count(pairing_url) == 0:
            assert time.monotonic() < deadline, "the pairing page did not open on install"
            time.sleep(0.2)
        first_run = context.new_page()
        first_run.goto(pairing_url)
        first_run.wait_for_selector("body[data-ready=true]")
        # The default port has no companion: the page must say so, with the command to run.
        # A companion the person runs themselves may hold the default port on a developer's
        # machine; the test companion has its own port, so only this check depends on it.
        if port_is_listening(DEFAULT_PORT):
            first_run.wait_for_selector("#status[data-state]")
        else:
            first_run.wait_for_selector("#status[data-state=not_running]")
            assert "veil serve" in first_run.inner_text("#status")
        screenshot(first_run, "pairing-first-run.png")
        extension.set_port(companion.port)
        first_run.click("#check")
        first_run.wait_for_selector("#status[data-state=not_paired]")
        assert "veil pair" in first_run.inner_text("#status")
        extension.pair(companion, first_run)
        first_run.wait_for_selector("#status[data-state=ready]")
        screenshot(first_run, "pairing-paired.png")
        first_run.close()
        yield extension
    finally:
        context.close()


@pytest.fixture
def form(browser: ExtensionBrowser, site: UploadSite) -> Iterator[Page]:
    site.clear()
    page = browser.context.new_page()
    page.goto(f"{site.url}/form")
    yield page
    page.close()
