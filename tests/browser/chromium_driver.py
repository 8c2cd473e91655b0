"""Driving Chromium with the unpacked extension through Playwright (sync API),
including what Playwright cannot do by itself: trusted drops (CDP
Input.dispatchDragEvent), clicks inside Veil's closed shadow roots (CDP
DOM.getDocument with pierce, then a real mouse click at the button), and files on
the clipboard for a trusted paste (a headed Chromium on an Xvfb display, the files
offered as text/uri-list by xclip, as a file manager's Copy does)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import ARTIFACTS, EXTENSION_DIR, Companion, chromium_args
from playwright.sync_api import BrowserContext, Page, Playwright, Worker


def launch_with_extension(
    playwright: Playwright,
    profile: Path,
    binary: str,
    *,
    headless: bool = True,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> ExtensionBrowser:
    """Chromium with Veil loaded in the persistent profile `profile`, once the extension's
    service worker runs. The caller closes `.context`."""
    options: dict[str, Any] = {"env": env} if env is not None else {}
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=binary,
        headless=headless,
        args=[*chromium_args(EXTENSION_DIR), *extra_args],
        viewport={"width": 900, "height": 800},
        **options,
    )
    try:
        worker = (
            context.service_workers[0]
            if context.service_workers
            else context.wait_for_event("serviceworker", timeout=30_000)
        )
    except BaseException:
        context.close()
        raise
    return ExtensionBrowser(context, worker.url.split("/")[2])


@dataclass
class ExtensionBrowser:
    context: BrowserContext
    extension_id: str

    def page_url(self, path: str) -> str:
        return f"chrome-extension://{self.extension_id}/{path}"

    def worker(self) -> Worker:
        """The extension's service worker, started again if the browser stopped it."""
        for worker in self.context.service_workers:
            if self.extension_id in worker.url:
                return worker
        return self.context.wait_for_event("serviceworker", timeout=20_000)

    def tab_count(self, url: str) -> int:
        return int(
            self.worker().evaluate("async (url) => (await chrome.tabs.query({url})).length", url)
        )

    def tab_id(self, url: str) -> int:
        tabs = self.worker().evaluate(
            "async (url) => (await chrome.tabs.query({url}))[0]?.id ?? -1", url
        )
        assert isinstance(tabs, int) and tabs > 0, f"no tab for {url}"
        return tabs

    def store_port(self, port: int) -> None:
        """Points Veil at `port` straight in storage (a dead port: the companion is down)."""
        self.worker().evaluate(
            """async (port) => {
                const {settings} = await chrome.storage.local.get('settings');
                await chrome.storage.local.set({settings: {...settings, port}});
            }""",
            port,
        )

    def set_port(self, port: int) -> None:
        """Sets the companion port through the options page, as a person would."""
        page = self.context.new_page()
        page.goto(self.page_url("src/options/options.html"))
        page.wait_for_selector("body[data-ready=true]")
        page.fill("#port", str(port))
        page.click("#port-form button[type=submit]")
        page.wait_for_selector("#port-saved:not([hidden])")
        page.wait_for_selector("#status[data-state]")
        screenshot(page, "options.png")
        stored = self.worker().evaluate(
            "async () => (await chrome.storage.local.get('settings')).settings"
        )
        assert stored["port"] == port
        page.close()

    def pair(self, companion: Companion, page: Page | None = None) -> Page:
        """Pairs through the pairing page with a code from `veil pair`."""
        page = page or self.context.new_page()
        if "pairing.html" not in page.url:
            page.goto(self.page_url("src/pairing/pairing.html"))
        page.wait_for_selector("body[data-ready=true]")
        page.fill("#code", companion.pairing_code())
        page.click("#pair-form button[type=submit]")
        page.wait_for_selector("#pair-result.ok, #pair-result.bad", timeout=15_000)
        result = page.inner_text("#pair-result")
        assert "Paired" in result, f"pairing failed: {result}"
        return page


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _find_choice(node: dict[str, Any], choice: str) -> int | None:
    attributes = node.get("attributes") or []
    pairs = dict(zip(attributes[::2], attributes[1::2], strict=False))
    if pairs.get("data-veil-choice") == choice:
        return int(node["backendNodeId"])
    for key in ("children", "shadowRoots"):
        for child in node.get(key) or []:
            found = _find_choice(child, choice)
            if found is not None:
                return found
    if node.get("contentDocument"):
        return _find_choice(node["contentDocument"], choice)
    return None


def _texts(node: dict[str, Any]) -> list[str]:
    found = [str(node["nodeValue"])] if node.get("nodeType") == 3 else []
    for key in ("children", "shadowRoots"):
        for child in node.get(key) or []:
            found.extend(_texts(child))
    return found


def all_text(page: Page) -> str:
    """Every text node of the page, including inside closed shadow roots (Veil's UI)."""
    cdp = page.context.new_cdp_session(page)
    try:
        return " ".join(_texts(cdp.send("DOM.getDocument", {"depth": -1, "pierce": True})["root"]))
    finally:
        cdp.detach()


def prompt_is_open(page: Page) -> bool:
    cdp = page.context.new_cdp_session(page)
    try:
        root = cdp.send("DOM.getDocument", {"depth": -1, "pierce": True})["root"]
        return _find_choice(root, "cancel") is not None
    finally:
        cdp.detach()


def answer_prompt(page: Page, choice: str, timeout: float = 60.0) -> None:
    """Clicks a button of Veil's failure prompt (closed shadow root) with a real mouse click."""
    cdp = page.context.new_cdp_session(page)
    try:
        deadline = time.monotonic() + timeout
        node_id = None
        while node_id is None:
            root = cdp.send("DOM.getDocument", {"depth": -1, "pierce": True})["root"]
            node_id = _find_choice(root, choice)
            if node_id is None:
                assert time.monotonic() < deadline, "Veil's prompt never appeared"
                time.sleep(0.2)
        quad = cdp.send("DOM.getBoxModel", {"backendNodeId": node_id})["model"]["content"]
        x = sum(quad[0::2]) / 4
        y = sum(quad[1::2]) / 4
    finally:
        cdp.detach()
    page.mouse.click(x, y)


def trusted_drop(page: Page, selector: str, files: list[Path]) -> None:
    """A real (isTrusted) drag-and-drop of files onto an element, through CDP."""
    box = page.locator(selector).bounding_box()
    assert box is not None
    x = box["x"] + box["width"] / 2
    y = box["y"] + box["height"] / 2
    data = {"items": [], "files": [str(path) for path in files], "dragOperationsMask": 1}
    cdp = page.context.new_cdp_session(page)
    try:
        for kind in ("dragEnter", "dragOver", "drop"):
            cdp.send("Input.dispatchDragEvent", {"type": kind, "x": x, "y": y, "data": data})
    finally:
        cdp.detach()


def read_cancelled_while_companion_down(
    browser: ExtensionBrowser, page: Page, back_port: int, dead_port: int, button: str
) -> None:
    """With Veil pointed at a dead port, clicking `button` makes the page read photos (a
    picker, a folder, the clipboard): Veil asks, Cancel makes the read reject with
    NotAllowedError, and the page's script saw nothing. Veil is pointed back after."""
    browser.store_port(dead_port)
    try:
        page.click(button)
        answer_prompt(page, "cancel")
        page.wait_for_function("window.errors.length > 0", timeout=30_000)
        assert page.evaluate("window.errors")[0].startswith("NotAllowedError")
        assert page.evaluate("window.seen") == []
    finally:
        browser.store_port(back_port)


@contextlib.contextmanager
def x_display(xvfb: str) -> Iterator[str]:
    """A private Xvfb display (":N", the number Xvfb chose) for the block.

    Headless Chromium's clipboard holds only what pages write to it (text, HTML, PNG): no
    page and no DevTools command can put a file there, so a trusted paste of a file needs a
    real X clipboard, hence a headed Chromium on a display."""
    read, write = os.pipe()
    server = subprocess.Popen(
        [xvfb, "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    try:
        with os.fdopen(read) as announced:
            number = announced.readline().strip()
        assert number.isdigit(), f"Xvfb did not start (exit code {server.poll()})"
        yield f":{number}"
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


@contextlib.contextmanager
def files_on_x_clipboard(xclip: str, display: str, files: list[Path]) -> Iterator[None]:
    """`files` on the display's clipboard as text/uri-list, what a file manager's Copy offers
    and what Chromium's X11 clipboard reads as files, for as long as the block runs (xclip
    in the foreground serves the selection until it is stopped)."""
    uris = "".join(f"{path.resolve().as_uri()}\r\n" for path in files)
    owner = subprocess.Popen(
        [xclip, "-selection", "clipboard", "-t", "text/uri-list", "-quiet", "-i"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "DISPLAY": display},
    )
    assert owner.stdin is not None
    owner.stdin.write(uris.encode())
    owner.stdin.close()
    try:
        deadline = time.monotonic() + 10
        while _x_clipboard_targets(xclip, display) != "text/uri-list":
            assert owner.poll() is None, f"xclip exited ({owner.returncode})"
            assert time.monotonic() < deadline, "xclip never offered the files"
            time.sleep(0.1)
        yield
    finally:
        owner.terminate()
        owner.wait(10)


def _x_clipboard_targets(xclip: str, display: str) -> str:
    found = subprocess.run(
        [xclip, "-selection", "clipboard", "-t", "TARGETS", "-o"],
        capture_output=True,
        text=True,
        timeout=10,
        env={**os.environ, "DISPLAY": display},
        check=False,
    )
    targets = [line for line in found.stdout.split() if line != "TARGETS"]
    return " ".join(targets)
