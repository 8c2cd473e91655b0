"""The extension in real Chromium, with a real companion and real photos: what
an ordinary upload page's own script receives and uploads is the cloaked file."""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chromium_driver import (
    ExtensionBrowser,
    all_text,
    answer_prompt,
    prompt_is_open,
    read_cancelled_while_companion_down,
    screenshot,
    trusted_drop,
)
from harness import (
    Companion,
    assert_cloaked,
    free_port,
    png_copy,
    record_pick_to_upload,
)
from PIL import Image
from playwright.sync_api import Page
from upload_site import UploadSite

pytestmark = [pytest.mark.browser, pytest.mark.faces]

UPLOAD_TIMEOUT = 120.0


def photo(photos: Path, identity: str, name: str) -> Path:
    return photos / "photos" / identity / name


def seen_by_page(page: Page, slot: str) -> list[dict[str, Any]]:
    return [entry for entry in page.evaluate("window.seen") if entry["slot"] == slot]


def test_file_input_gets_the_cloaked_photo_and_the_popup_shows_it(
    form: Page, browser: ExtensionBrowser, site: UploadSite, photos: Path
) -> None:
    original = photo(photos, "Angelina_Jolie", "img6.jpg")
    # Debug timing marks on (content/timing.js): they tell which path the photo took.
    set_debug = "async (on) => chrome.storage.local.set({debug: {timings: on}})"
    browser.worker().evaluate(set_debug, True)
    try:
        form.wait_for_timeout(200)  # the content script hears of the change
        started = time.monotonic()
        form.set_input_files("#single", str(original))
        [received] = site.wait_for("single", UPLOAD_TIMEOUT)
        record_pick_to_upload("chromium", "file input in the document", time.monotonic() - started)
    finally:
        browser.worker().evaluate(set_debug, False)
    marks = form.evaluate("performance.getEntriesByType('mark').map((m) => m.name)")
    assert "veil:frame:received" in marks, f"the photo did not go through the frame: {marks}"
    assert not any("port-fallback" in mark for mark in marks), marks
    assert received.name == original.name
    assert received.type == "image/jpeg"
    assert abs(received.last_modified - original.stat().st_mtime * 1000) < 1000
    assert_cloaked(original.read_bytes(), received.data)
    # The page's own listeners fired once, for the cloaked file only.
    [seen] = seen_by_page(form, "single")
    assert seen["files"] == [
        {"name": original.name, "size": len(received.data), "type": "image/jpeg"}
    ]
    check_popup_preview(browser, site)


def test_multiple_keeps_order_and_passes_other_files_untouched(
    form: Page, site: UploadSite, photos: Path, tmp_path: Path
) -> None:
    first = photo(photos, "George_Clooney", "img38.jpg")
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"not a photo\n" * 100)
    second = photo(photos, "Angelina_Jolie", "img5.jpg")
    form.set_input_files("#multi", [str(first), str(notes), str(second)])
    # The in-page indicator while the photos are being cloaked (closed shadow root).
    time.sleep(0.5)
    screenshot(form, "indicator.png")
    received = site.wait_for("multi", UPLOAD_TIMEOUT)
    assert [item.name for item in received] == [first.name, notes.name, second.name]
    assert received[1].data == notes.read_bytes()
    assert_cloaked(first.read_bytes(), received[0].data)
    assert_cloaked(second.read_bytes(), received[2].data)


def test_trusted_drop_delivers_cloaked_files(form: Page, site: UploadSite, photos: Path) -> None:
    original = photo(photos, "George_Clooney", "img38.jpg")
    started = time.monotonic()
    trusted_drop(form, "#dropzone", [original])
    [received] = site.wait_for("drop", UPLOAD_TIMEOUT)
    record_pick_to_upload("chromium", "drop (files)", time.monotonic() - started)
    assert received.name == original.name
    assert_cloaked(original.read_bytes(), received.data)


def test_drop_onto_a_file_input_fills_it_with_the_cloak(
    form: Page, site: UploadSite, photos: Path
) -> None:
    original = photo(photos, "Angelina_Jolie", "img5.jpg")
    trusted_drop(form, "#single", [original])
    [received] = site.wait_for("single", UPLOAD_TIMEOUT)
    assert received.name == original.name
    assert_cloaked(original.read_bytes(), received.data)
    assert len(seen_by_page(form, "single")) == 1


def test_paste_of_an_image_delivers_the_cloak(
    form: Page, browser: ExtensionBrowser, site: UploadSite, photos: Path
) -> None:
    # The clipboard holds PNG images: put a real photo there as PNG, then press Ctrl+V.
    assert site.photos_dir is not None
    png = png_copy(photo(photos, "Angelina_Jolie", "img6.jpg"), site.photos_dir / "paste.png")
    browser.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    form.click("#pastezone")
    form.evaluate(
        """async () => {
            const blob = await (await fetch('/photo/paste.png')).blob();
            await navigator.clipboard.write([new ClipboardItem({ 'image/png': blob })]);
        }"""
    )
    started = time.monotonic()
    form.keyboard.press("Control+V")
    [received] = site.wait_for("paste", UPLOAD_TIMEOUT)
    record_pick_to_upload("chromium", "paste", time.monotonic() - started)
    assert received.type == "image/png"
    assert_cloaked(png.read_bytes(), received.data)


def test_input_in_a_srcdoc_iframe(form: Page, site: UploadSite, photos: Path) -> None:
    original = photo(photos, "Angelina_Jolie", "img5.jpg")
    started = time.monotonic()
    form.frame_locator("#frame").locator("#inner").set_input_files(str(original))
    [received] = site.wait_for("iframe", UPLOAD_TIMEOUT)
    record_pick_to_upload("chromium", "srcdoc iframe input", time.monotonic() - started)
    assert received.name == original.name
    assert_cloaked(original.read_bytes(), received.data)


def test_input_in_an_open_shadow_root(form: Page, site: UploadSite, photos: Path) -> None:
    original = photo(photos, "George_Clooney", "img38.jpg")
    started = time.monotonic()
    form.locator("#shadowhost #shadowed").set_input_files(str(original))
    [received] = site.wait_for("shadow", UPLOAD_TIMEOUT)
    record_pick_to_upload("chromium", "open shadow root input", time.monotonic() - started)
    assert received.name == original.name
    assert_cloaked(original.read_bytes(), received.data)
    assert len(seen_by_page(form, "shadow")) == 1, "the page saw the original's change event"


def test_photo_without_a_face_passes_with_its_metadata_removed(
    form: Page, site: UploadSite, tmp_path: Path
) -> None:
    landscape = tmp_path / "no-face.jpg"
    y, x = np.mgrid[0:480, 0:640]
    pixels = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 0.0)})
    Image.fromarray(pixels).save(landscape, format="JPEG", exif=exif, quality=90)
    form.set_input_files("#single", str(landscape))
    [received] = site.wait_for("single", UPLOAD_TIMEOUT)
    assert received.name == landscape.name
    with Image.open(io.BytesIO(received.data)) as image:
        assert image.size == (640, 480)
        assert not image.getexif().get_ifd(0x8825), "location data reached the site"
    # The person is told nothing was cloaked, rather than shown a false "protected".
    deadline = time.monotonic() + 5
    while "found no face" not in all_text(form):
        assert time.monotonic() < deadline, "no notice that the photo had no face"
        time.sleep(0.2)


def test_site_switched_off_gets_the_original(
    form: Page, browser: ExtensionBrowser, site: UploadSite, photos: Path
) -> None:
    tab = browser.tab_id(f"{site.url}/form")
    popup = browser.context.new_page()
    popup.goto(browser.page_url(f"src/popup/popup.html?tab={tab}"))
    popup.wait_for_selector("body[data-ready=true]")
    assert popup.is_checked("#site-enabled")
    popup.uncheck("#site-enabled")
    try:
        assert sites_setting(browser) == {"127.0.0.1": False}
        original = photo(photos, "Angelina_Jolie", "img5.jpg")
        form.set_input_files("#single", str(original))
        [received] = site.wait_for("single", 30)
        assert received.data == original.read_bytes()
    finally:
        popup.check("#site-enabled")
        # The next tests need the site on again: wait until the background stored it.
        assert sites_setting(browser, {"127.0.0.1": True}) == {"127.0.0.1": True}
        popup.close()


def sites_setting(
    browser: ExtensionBrowser, expected: dict[str, bool] | None = None
) -> dict[str, bool]:
    """The stored per-site switches once they changed from {} (or equal `expected`): the popup
    saves through a message to the background, which may take a moment on a loaded machine."""
    read = "async () => (await chrome.storage.local.get('settings')).settings?.sites ?? {}"
    deadline = time.monotonic() + 15
    while True:
        sites: dict[str, bool] = browser.worker().evaluate(read)
        done = sites == expected if expected is not None else sites != {}
        if done or time.monotonic() > deadline:
            return sites
        time.sleep(0.1)


def test_service_worker_killed_then_next_upload_works(
    form: Page, browser: ExtensionBrowser, site: UploadSite, photos: Path
) -> None:
    worker = browser.worker()
    worker.evaluate("() => { globalThis.veilTestMarker = 'before-stop'; }")
    cdp = browser.context.new_cdp_session(form)
    try:
        cdp.send("ServiceWorker.enable")
        cdp.send("ServiceWorker.stopAllWorkers")
    finally:
        cdp.detach()
    original = photo(photos, "George_Clooney", "img38.jpg")
    form.set_input_files("#single", str(original))
    [received] = site.wait_for("single", UPLOAD_TIMEOUT)
    assert_cloaked(original.read_bytes(), received.data)
    marker = browser.worker().evaluate("() => globalThis.veilTestMarker ?? 'fresh worker'")
    assert marker == "fresh worker", "the service worker was not actually stopped"


def test_large_photo_of_25_mb(form: Page, site: UploadSite, photos: Path, tmp_path: Path) -> None:
    big = tmp_path / "big-photo.jpg"
    with Image.open(photo(photos, "Scarlett_Johansson", "img49.jpg")) as image:
        rgb = image.convert("RGB")
        size = (rgb.width * 3 // 2, rgb.height * 3 // 2)
        upscaled = np.asarray(rgb.resize(size, Image.Resampling.BICUBIC)).astype(np.int16)
    # Fine sensor-like grain and q=98 4:4:4 make it as heavy as a real high-resolution camera JPEG.
    grain = np.random.default_rng(4).integers(-6, 7, upscaled.shape, dtype=np.int16)
    noisy = Image.fromarray((upscaled + grain).clip(0, 255).astype(np.uint8))
    noisy.save(big, format="JPEG", quality=98, subsampling=0)
    assert big.stat().st_size > 24 * 1024 * 1024, big.stat().st_size
    form.set_input_files("#single", str(big))
    [received] = site.wait_for("single", 300)
    assert received.name == big.name
    assert_cloaked(big.read_bytes(), received.data)


def test_companion_down_asks_and_never_uploads_silently(
    form: Page, browser: ExtensionBrowser, site: UploadSite, companion: Companion, photos: Path
) -> None:
    original = photo(photos, "Angelina_Jolie", "img5.jpg")
    companion.stop()
    try:
        # Cancel: the page gets nothing.
        form.set_input_files("#single", str(original))
        answer_prompt(form, "cancel")
        time.sleep(1.5)
        assert site.batches("single") == []
        assert seen_by_page(form, "single") == []
        assert form.evaluate("document.getElementById('single').files.length") == 0
        # Upload original this once: the original, unchanged.
        form.set_input_files("#single", str(original))
        time.sleep(2)
        assert site.batches("single") == [], "something was uploaded before the person answered"
        assert prompt_is_open(form)
        # "Upload original…" only opens Veil's own window: the choice is made there.
        with browser.context.expect_page() as opened:
            answer_prompt(form, "original")
        window = opened.value
        window.wait_for_selector("body[data-ready=true]")
        assert site.batches("single") == [], "released before the person confirmed"
        window.click("#send")
        [received] = site.wait_for("single", 30)
        assert received.data == original.read_bytes()
        site.clear()
        # Retry while still down asks again; retry after the companion is back delivers the cloak.
        original = photo(photos, "George_Clooney", "img38.jpg")
        form.set_input_files("#single", str(original))
        answer_prompt(form, "retry")
        time.sleep(1)
        assert prompt_is_open(form)
        assert site.batches("single") == []
    finally:
        companion.start()
    answer_prompt(form, "retry")
    [received] = site.wait_for("single", UPLOAD_TIMEOUT)
    assert_cloaked(original.read_bytes(), received.data)


def check_popup_preview(browser: ExtensionBrowser, site: UploadSite) -> None:
    """The popup of the form's tab shows the photo just cloaked, before/after, zoom, amplified."""
    tab = browser.tab_id(f"{site.url}/form")
    popup = browser.context.new_page()
    popup.set_viewport_size({"width": 460, "height": 900})
    # The preview is built right after the page got its file; give it a moment to be stored.
    deadline = time.monotonic() + 30
    while True:
        popup.goto(browser.page_url(f"src/popup/popup.html?tab={tab}"))
        popup.wait_for_selector("body[data-ready=true]")
        if popup.locator(".preview").count() > 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert popup.locator(".preview").count() >= 1
    assert popup.locator("#status[data-state=ready]").count() == 1
    stats = popup.inner_text(".preview .stats")
    assert "face" in stats and "SSIM" in stats and "s in the companion" in stats
    assert popup.inner_text("#site-name") == "127.0.0.1"
    screenshot(popup, "popup-preview.png")
    popup.check("#amplify")
    popup.wait_for_function("document.querySelector('.preview figcaption:nth-of-type(1)') !== null")
    popup.wait_for_selector("text=|after − before| × 15")
    screenshot(popup, "popup-amplified.png")
    # The amplified zoom is not black: the cloak changed the face.
    canvas = popup.locator(".preview .zoom figure:nth-child(2) canvas")
    png = canvas.screenshot()
    with Image.open(io.BytesIO(png)) as shot:
        assert np.asarray(shot.convert("L")).mean() > 5
    popup.close()


def test_page_cannot_use_the_transfer_frame_without_a_ticket(
    form: Page, browser: ExtensionBrowser
) -> None:
    # The transfer frame is web-accessible, so a page can embed it and post to it. Without a
    # ticket from the background (which only content scripts can ask for) it must refuse.
    answer = form.evaluate(
        (Path(__file__).parent / "pages" / "forge-transfer.js").read_text(encoding="utf-8"),
        browser.page_url("src/transfer/transfer.html"),
    )
    assert isinstance(answer, dict), answer
    assert answer["kind"] == "error" and answer["code"] == "forbidden_origin", answer


# showOpenFilePicker()'s own dialog cannot be answered headless: CDP reports it as
# Page.fileChooserOpened without an input node, and no command can give it files (Playwright's
# file chooser only fills <input type=file>). So the test stands in for the browser's dialog:
# an init script, which runs before Veil's page-world script wraps the picker, makes
# showOpenFilePicker() resolve to FileSystemFileHandles of test photos written to the page's
# origin-private file system. Veil's wrapper, its channel to the content script, the cloaking
# path, the prompt and getFile() on the handles are all the real ones.
STAND_IN_PICKER = """
window.showOpenFilePicker = async () => {
    const root = await navigator.storage.getDirectory();
    return Promise.all(window.pickerNames.map((name) => root.getFileHandle(name)));
};
"""

WRITE_TO_OPFS = """async (names) => {
    const root = await navigator.storage.getDirectory();
    for (const name of names) {
        const blob = await (await fetch('/photo/' + name)).blob();
        const writable = await (await root.getFileHandle(name, { create: true })).createWritable();
        await writable.write(blob);
        await writable.close();
    }
    window.pickerNames = names;
}"""

READ_OWN_OPFS_FILE = """async (name) => {
    const root = await navigator.storage.getDirectory();
    const file = await (await root.getFileHandle(name)).getFile();
    const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}"""


def test_show_open_file_picker_hands_out_the_cloak(
    browser: ExtensionBrowser, site: UploadSite, companion: Companion, photos: Path
) -> None:
    assert site.photos_dir is not None
    first = photo(photos, "George_Clooney", "img38.jpg")
    second = photo(photos, "Angelina_Jolie", "img5.jpg")
    notes = site.photos_dir / "notes.txt"
    notes.write_bytes(b"not a photo\n" * 100)
    for source in (first, second):
        (site.photos_dir / source.name).write_bytes(source.read_bytes())
    names = [first.name, notes.name, second.name]
    site.clear()
    page = browser.context.new_page()
    page.add_init_script(STAND_IN_PICKER)
    page.goto(f"{site.url}/picker")
    try:
        page.evaluate(WRITE_TO_OPFS, names)
        # The page's own use of the origin-private file system is left alone.
        own = page.evaluate(READ_OWN_OPFS_FILE, first.name)
        assert own == hashlib.sha256(first.read_bytes()).hexdigest()

        # Companion unreachable: the person is asked; Cancel gives the page nothing.
        read_cancelled_while_companion_down(browser, page, companion.port, free_port(), "#open")
        assert site.batches("picker") == []

        started = time.monotonic()
        page.click("#open")
        received = site.wait_for("picker", UPLOAD_TIMEOUT)
        path = "showOpenFilePicker (2 photos + 1 text)"
        record_pick_to_upload("chromium", path, time.monotonic() - started)
        assert [item.name for item in received] == names
        assert received[1].data == notes.read_bytes()
        assert_cloaked(first.read_bytes(), received[0].data)
        assert_cloaked(second.read_bytes(), received[2].data)
        assert received[0].type == "image/jpeg"
        [seen] = page.evaluate("window.seen")
        assert [entry["size"] for entry in seen] == [len(item.data) for item in received]
    finally:
        page.close()
