"""Every way a page can be handed a picked file, in real Chromium with the extension, a real
companion and a real upload site: the site receives the cloak, and the page's own code never
sees the original. Also the transfer fallbacks, the prompt that the page cannot hide or click
for the person, and what content scripts (so a compromised page) cannot ask of the background."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium_driver import (
    ExtensionBrowser,
    all_text,
    answer_prompt,
    prompt_is_open,
    read_cancelled_while_companion_down,
    trusted_drop,
)
from harness import (
    Companion,
    StallingCompanion,
    assert_cloaked,
    free_port,
    png_copy,
    record_pick_to_upload,
)
from PIL import Image
from playwright.sync_api import Page
from upload_site import Received, UploadSite

pytestmark = [pytest.mark.browser, pytest.mark.faces]

UPLOAD_TIMEOUT = float(os.environ.get("VEIL_TEST_UPLOAD_TIMEOUT", "120"))


@pytest.fixture
def paths(browser: ExtensionBrowser, site: UploadSite) -> Iterator[Page]:
    site.clear()
    page = browser.context.new_page()
    page.goto(f"{site.url}/paths")
    yield page
    page.close()


def photo(photos: Path, identity: str, name: str) -> Path:
    return photos / "photos" / identity / name


def seen(page: Page, slot: str) -> list[dict[str, Any]]:
    return [entry for entry in page.evaluate("window.seen") if entry["slot"] == slot]


def received_cloak(
    site: UploadSite, slot: str, original: Path, path: str, started: float
) -> Received:
    [received] = site.wait_for(slot, UPLOAD_TIMEOUT)
    record_pick_to_upload("chromium", path, time.monotonic() - started)
    assert received.name == original.name
    assert_cloaked(original.read_bytes(), received.data)
    return received


def never_saw_the_original(page: Page, slot: str, original: Path) -> None:
    size = original.stat().st_size
    for entry in seen(page, slot):
        assert all(item["size"] != size for item in entry["files"]), (
            f"the page saw the original: {entry}"
        )


def test_input_never_in_the_document(paths: Page, site: UploadSite, photos: Path) -> None:
    original = photo(photos, "Angelina_Jolie", "img5.jpg")
    with paths.expect_file_chooser() as chooser:
        paths.click("#detached")
    started = time.monotonic()
    chooser.value.set_files(str(original))
    received_cloak(site, "detached", original, "detached input", started)
    never_saw_the_original(paths, "detached", original)


def test_detached_form_read_with_formdata_by_an_earlier_listener(
    paths: Page, site: UploadSite, photos: Path
) -> None:
    original = photo(photos, "George_Clooney", "img38.jpg")
    with paths.expect_file_chooser() as chooser:
        paths.click("#detached-form")
    started = time.monotonic()
    chooser.value.set_files(str(original))
    received_cloak(site, "detached-form", original, "detached form + FormData", started)
    never_saw_the_original(paths, "detached-form", original)


def test_input_in_a_closed_shadow_root_clicked_by_the_person(
    paths: Page, site: UploadSite, photos: Path
) -> None:
    # Playwright turns on file-chooser interception when the first listener is added, in a
    # message of its own; a mouse click sent at once can beat it (then the headless browser
    # cancels its own dialog). So listen first, and let one round trip pass.
    paths.on("filechooser", lambda _chooser: None)
    paths.evaluate("1")
    original = photo(photos, "Angelina_Jolie", "img6.jpg")
    box = paths.locator("#closedhost").bounding_box()
    assert box is not None
    with paths.expect_file_chooser() as chooser:
        paths.mouse.click(box["x"] + 40, box["y"] + box["height"] / 2)
    started = time.monotonic()
    chooser.value.set_files(str(original))
    received_cloak(site, "closed", original, "closed shadow root input", started)
    never_saw_the_original(paths, "closed", original)


def test_drop_read_through_entries(paths: Page, site: UploadSite, photos: Path) -> None:
    original = photo(photos, "George_Clooney", "img38.jpg")
    started = time.monotonic()
    trusted_drop(paths, "#entries", [original])
    received_cloak(site, "entries", original, "drop, webkitGetAsEntry", started)


def test_drop_of_a_folder_read_through_entries(
    paths: Page, site: UploadSite, photos: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "holiday"
    folder.mkdir()
    original = photo(photos, "Angelina_Jolie", "img5.jpg")
    (folder / original.name).write_bytes(original.read_bytes())
    (folder / "notes.txt").write_bytes(b"not a photo\n")
    started = time.monotonic()
    trusted_drop(paths, "#entries", [folder])
    received = site.wait_for("entries", UPLOAD_TIMEOUT)
    record_pick_to_upload("chromium", "drop of a folder, entries", time.monotonic() - started)
    by_name = {item.name: item for item in received}
    assert set(by_name) == {original.name, "notes.txt"}
    assert by_name["notes.txt"].data == b"not a photo\n"
    assert_cloaked(original.read_bytes(), by_name[original.name].data)


def test_drop_read_through_file_system_handles(paths: Page, site: UploadSite, photos: Path) -> None:
    original = photo(photos, "Angelina_Jolie", "img6.jpg")
    started = time.monotonic()
    trusted_drop(paths, "#handles", [original])
    received_cloak(site, "handles", original, "drop, getAsFileSystemHandle", started)


def test_drop_onto_a_file_input_never_reaches_page_listeners_as_the_original(
    form: Page, site: UploadSite, photos: Path
) -> None:
    original = photo(photos, "George_Clooney", "img38.jpg")
    started = time.monotonic()
    trusted_drop(form, "#single", [original])
    received = received_cloak(site, "single", original, "drop onto a file input", started)
    # The page's own capture-phase drop listener on window saw the cloak only.
    assert form.evaluate("window.dropped") == [[len(received.data)]]


def test_a_later_pick_wins(form: Page, site: UploadSite, photos: Path) -> None:
    first = photo(photos, "Angelina_Jolie", "img5.jpg")
    second = photo(photos, "George_Clooney", "img38.jpg")
    form.set_input_files("#single", str(first))
    form.set_input_files("#single", str(second))
    # Photos are cloaked one after the other: when the second arrives, the first is done.
    [received] = site.wait_for("single", UPLOAD_TIMEOUT)
    assert received.name == second.name
    assert_cloaked(second.read_bytes(), received.data)
    assert len(site.batches("single")) == 1, "the earlier pick reached the page too"
    assert form.evaluate("document.getElementById('single').files[0].name") == second.name


def test_body_replaced_then_upload_completes(form: Page, site: UploadSite, photos: Path) -> None:
    first = photo(photos, "Angelina_Jolie", "img6.jpg")
    form.set_input_files("#single", str(first))
    site.wait_for("single", UPLOAD_TIMEOUT)  # the transfer frame now exists
    site.clear()
    # Turbo/Hotwire-style navigation: a new body, with a new input and listener.
    form.evaluate(
        """() => {
            const body = document.createElement('body');
            body.innerHTML = '<input type="file" id="single">';
            document.documentElement.replaceChild(body, document.body);
            document.getElementById('single').addEventListener(
                'change', (e) => veilUpload('single', e.target.files));
            document.documentElement.replaceChildren(document.head, body);
        }"""
    )
    original = photo(photos, "George_Clooney", "img38.jpg")
    started = time.monotonic()
    form.set_input_files("#single", str(original))
    # Well within a minute (before: 3.5 minutes, then a false "companion did not answer").
    [received] = site.wait_for("single", 30)
    record_pick_to_upload("chromium", "file input after body replaced", time.monotonic() - started)
    assert_cloaked(original.read_bytes(), received.data)


def test_port_fallback_delivers_the_cloak(
    form: Page, browser: ExtensionBrowser, site: UploadSite, photos: Path
) -> None:
    set_debug = "async (debug) => chrome.storage.local.set({debug})"
    browser.worker().evaluate(set_debug, {"transport": "port", "timings": True})
    try:
        form.wait_for_function(
            "performance.getEntriesByType('mark').length >= 0"
        )  # the page is live; the switch reaches its content script through storage.onChanged
        original = photo(photos, "Angelina_Jolie", "img5.jpg")
        started = time.monotonic()
        form.set_input_files("#single", str(original))
        received_cloak(site, "single", original, "file input, Port fallback", started)
    finally:
        browser.worker().evaluate(set_debug, {})
    marks = form.evaluate("performance.getEntriesByType('mark').map((m) => m.name)")
    assert any("port-fallback" in mark for mark in marks), marks
    assert "veil:frame:received" not in marks


def test_hidden_prompt_cannot_release_the_original(
    form: Page, browser: ExtensionBrowser, site: UploadSite, companion: Companion, photos: Path
) -> None:
    # A page that hides anything added to the document and clicks everything it can.
    form.evaluate(
        """() => {
            const hide = (node) =>
                node.nodeType === 1 && node.style.setProperty('opacity', '0', 'important');
            new MutationObserver((records) => records.forEach((r) => r.addedNodes.forEach(hide)))
                .observe(document.documentElement, { childList: true, subtree: true });
            window.clickEverything = () => {
                for (const el of document.querySelectorAll('*')) {
                    el.click?.();
                    el.dispatchEvent(new MouseEvent('click', { bubbles: true, composed: true }));
                    const enter = { key: 'Enter', bubbles: true, composed: true };
                    el.dispatchEvent(new KeyboardEvent('keydown', enter));
                }
                const at = document.elementFromPoint(innerWidth / 2, innerHeight / 2);
                at?.click();
            };
        }"""
    )
    original = photo(photos, "Angelina_Jolie", "img6.jpg")
    browser.store_port(free_port())
    try:
        form.set_input_files("#single", str(original))
        deadline = time.monotonic() + 30
        while not prompt_is_open(form):
            assert time.monotonic() < deadline, "no prompt"
            time.sleep(0.1)
        pages_before = len(browser.context.pages)
        form.evaluate("window.clickEverything()")
        assert prompt_is_open(form)
        assert len(browser.context.pages) == pages_before, "a synthetic click opened something"
        # The person clicks "Upload original…" on the (invisible) prompt: only Veil's own
        # window can release the photo, and it says what would happen.
        with browser.context.expect_page() as opened:
            answer_prompt(form, "original")
        window = opened.value
        window.wait_for_selector("body[data-ready=true]")
        assert "127.0.0.1" in window.inner_text("#site")
        assert original.name in window.inner_text("#names")
        assert site.batches("single") == [], "released before the person confirmed"
        with window.expect_event("close"):
            window.click("#keep")
        answer_prompt(form, "cancel")
        assert form.evaluate("document.getElementById('single').files.length") == 0
        assert site.batches("single") == []
        assert seen(form, "single") == []
    finally:
        browser.store_port(companion.port)


def test_a_page_that_keeps_asking_is_answered_no(
    browser: ExtensionBrowser, site: UploadSite, companion: Companion, photos: Path
) -> None:
    from test_chromium_extension import STAND_IN_PICKER, WRITE_TO_OPFS

    assert site.photos_dir is not None
    source = photo(photos, "George_Clooney", "img38.jpg")
    (site.photos_dir / source.name).write_bytes(source.read_bytes())
    site.clear()
    page = browser.context.new_page()
    page.add_init_script(STAND_IN_PICKER)
    page.goto(f"{site.url}/picker")
    browser.store_port(free_port())
    try:
        page.evaluate(WRITE_TO_OPFS, [source.name])
        # Not awaited: the first read waits for the person's answer.
        page.evaluate(
            """() => { window.loop = (async () => {
                const [handle] = await window.showOpenFilePicker();
                window.loopErrors = [];
                for (let i = 0; i < 5; i += 1) {
                    try { await handle.getFile(); } catch (e) { window.loopErrors.push(e.name); }
                }
            })(); }"""
        )
        answer_prompt(page, "cancel")
        page.wait_for_function(
            "window.loopErrors && window.loopErrors.length === 5", timeout=30_000
        )
        assert page.evaluate("window.loopErrors") == ["NotAllowedError"] * 5
        assert not prompt_is_open(page), "the page raised another prompt"
        assert site.batches("picker") == []
    finally:
        browser.store_port(companion.port)
        page.close()


# As for showOpenFilePicker (test_chromium_extension.py), the folder dialog cannot be
# answered headless: the stand-in returns a folder of the page's origin-private file system,
# written before the test. Veil's wrappers (the picker, the folder's iterators and
# getFileHandle, getFile) are the real ones.
STAND_IN_FOLDER_PICKER = """
window.showDirectoryPicker = async () =>
    (await navigator.storage.getDirectory()).getDirectoryHandle('picked');
"""

WRITE_FOLDER_TO_OPFS = """async (layout) => {
    const root = await navigator.storage.getDirectory();
    for (const [path, name] of layout) {
        const parts = ['picked', ...path.split('/')];
        let folder = root;
        for (const part of parts.slice(0, -1)) {
            folder = await folder.getDirectoryHandle(part, { create: true });
        }
        const blob = await (await fetch('/photo/' + name)).blob();
        const file = await folder.getFileHandle(parts.at(-1), { create: true });
        const writable = await file.createWritable();
        await writable.write(blob);
        await writable.close();
    }
}"""


def test_folder_picker_hands_out_cloaks_however_the_page_walks_the_folder(
    browser: ExtensionBrowser, site: UploadSite, companion: Companion, photos: Path
) -> None:
    """showDirectoryPicker(): photos read through values(), for await (entries) and
    getFileHandle(), in the folder and a subfolder, reach the page cloaked; other files as
    they are; with the companion down the page gets nothing until the person answers."""
    assert site.photos_dir is not None
    sources = {
        "a.jpg": photo(photos, "George_Clooney", "img38.jpg"),
        "sub/b.jpg": photo(photos, "Angelina_Jolie", "img5.jpg"),
        "sub/by-name.jpg": photo(photos, "Jennifer_Aniston", "img12.jpg"),
    }
    for source in sources.values():
        (site.photos_dir / source.name).write_bytes(source.read_bytes())
    notes = site.photos_dir / "notes.txt"
    notes.write_bytes(b"not a photo\n" * 100)
    layout = [[path, source.name] for path, source in sources.items()]
    layout.append(["notes.txt", notes.name])
    site.clear()
    page = browser.context.new_page()
    page.add_init_script(STAND_IN_FOLDER_PICKER)
    page.goto(f"{site.url}/picker")
    try:
        page.evaluate(WRITE_FOLDER_TO_OPFS, layout)
        read_cancelled_while_companion_down(browser, page, companion.port, free_port(), "#folder")
        assert site.batches("folder") == []

        started = time.monotonic()
        page.click("#folder")
        received = site.wait_for("folder", UPLOAD_TIMEOUT)
        path = "showDirectoryPicker (3 photos + 1 text)"
        record_pick_to_upload("chromium", path, time.monotonic() - started)
        names = ["a.jpg", "notes.txt", "sub/b.jpg", "sub/by-name.jpg"]
        assert [item.name for item in received] == names
        assert received[1].data == notes.read_bytes()
        for item in received:
            if item.name in sources:
                assert_cloaked(sources[item.name].read_bytes(), item.data)
        # The page's own use of its origin-private files is left alone: the same file, reached
        # from navigator.storage (not from the folder the person picked), is the original.
        own = page.evaluate(
            """async () => {
                const root = await navigator.storage.getDirectory();
                const folder = await root.getDirectoryHandle('picked');
                return (await (await folder.getFileHandle('a.jpg')).getFile()).size;
            }"""
        )
        assert own == sources["a.jpg"].stat().st_size
    finally:
        page.close()


def test_clipboard_read_hands_out_the_cloak(
    browser: ExtensionBrowser, site: UploadSite, companion: Companion, photos: Path
) -> None:
    """navigator.clipboard.read() from a "Paste image" button: the image reaches the page
    cloaked and the text beside it unchanged; with the companion down, read() rejects after
    the person's answer and nothing is uploaded."""
    assert site.photos_dir is not None
    png = png_copy(photo(photos, "Angelina_Jolie", "img6.jpg"), site.photos_dir / "clip.png")
    site.clear()
    browser.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    page = browser.context.new_page()
    page.goto(f"{site.url}/picker")
    try:
        page.click("h1")  # focus and activation for write()
        page.evaluate(
            """async () => {
                const blob = await (await fetch('/photo/clip.png')).blob();
                const text = new Blob(['caption beside the photo'], { type: 'text/plain' });
                const item = new ClipboardItem({ 'image/png': blob, 'text/plain': text });
                await navigator.clipboard.write([item]);
            }"""
        )
        button = "#read-clipboard"
        read_cancelled_while_companion_down(browser, page, companion.port, free_port(), button)
        assert site.batches("clipboard") == []

        started = time.monotonic()
        page.click("#read-clipboard")
        [received] = site.wait_for("clipboard", UPLOAD_TIMEOUT)
        record_pick_to_upload("chromium", "navigator.clipboard.read()", time.monotonic() - started)
        assert received.type == "image/png"
        assert_cloaked(png.read_bytes(), received.data)
        assert page.evaluate("window.clipText") == [["text/plain", "caption beside the photo"]]
    finally:
        page.close()


def test_content_scripts_cannot_reach_secrets_or_settings(
    form: Page, browser: ExtensionBrowser
) -> None:
    """What Veil's content script can do is what a page that compromised its renderer can do."""
    cdp = browser.context.new_cdp_session(form)
    contexts: list[dict[str, Any]] = []
    cdp.on("Runtime.executionContextCreated", lambda event: contexts.append(event["context"]))
    cdp.send("Runtime.enable")
    try:
        deadline = time.monotonic() + 10
        while not any(c.get("name") == "Veil" for c in contexts):
            assert time.monotonic() < deadline, f"no Veil content script context: {contexts}"
            time.sleep(0.1)
        veil = next(c for c in contexts if c.get("name") == "Veil")
        probe = """(async () => {
            const ask = (type, payload) => chrome.runtime.sendMessage({type, payload});
            const tabs = await ask('popupState', {tabId: 1}).catch((e) => String(e));
            return JSON.stringify({
                local: await chrome.storage.local.get(null),
                session: chrome.storage.session
                    ? await chrome.storage.session.get(null).then(() => 'readable', String)
                    : 'absent',
                setSettings: await ask('setSettings', {patch: {port: 1}}),
                unpair: await ask('unpair', {}),
                popupState: tabs,
                ticket: typeof (await ask('transferTicket', {})).ticket,
            });
        })()"""
        result = cdp.send(
            "Runtime.evaluate",
            {"expression": probe, "contextId": veil["id"], "awaitPromise": True},
        )
    finally:
        cdp.detach()
    answer = json.loads(result["result"]["value"])
    assert "token" not in answer["local"], "the bearer token is readable by content scripts"
    assert answer["session"] != "readable"
    for refused in ("setSettings", "unpair", "popupState"):
        assert answer[refused]["error"]["code"] == "forbidden_sender", answer
    assert answer["ticket"] == "string"  # what content scripts need still works
    settings = browser.worker().evaluate(
        "async () => (await chrome.storage.local.get('settings')).settings"
    )
    assert settings["port"] != 1


def test_what_a_page_can_see_of_veil(form: Page) -> None:
    """Veil's wrappers print as the browser's own functions and its shared namespace is gone.
    What a page can still detect is listed in docs/threat-model.md."""
    printed = form.evaluate(
        """() => [
            HTMLElement.prototype.click,
            Element.prototype.attachShadow,
            HTMLInputElement.prototype.showPicker,
            Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'files').get,
            Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'files').set,
            window.FormData,
            window.showOpenFilePicker,
            window.showDirectoryPicker,
            FileSystemFileHandle.prototype.getFile,
            FileSystemDirectoryHandle.prototype.getFileHandle,
            FileSystemDirectoryHandle.prototype.getDirectoryHandle,
            FileSystemDirectoryHandle.prototype.values,
            FileSystemDirectoryHandle.prototype.entries,
            FileSystemDirectoryHandle.prototype[Symbol.asyncIterator],
            Clipboard.prototype.read,
            DataTransferItem.prototype.webkitGetAsEntry,
            DataTransferItem.prototype.getAsFileSystemHandle,
            Function.prototype.toString,
        ].map((f) => Function.prototype.toString.call(f))"""
    )
    for text in printed:
        assert text.endswith("{ [native code] }"), text
    assert form.evaluate("typeof veilPage") == "undefined"


def test_unpaired_asks_and_uploads_nothing(
    form: Page, browser: ExtensionBrowser, site: UploadSite, companion: Companion, photos: Path
) -> None:
    options = browser.context.new_page()
    options.goto(browser.page_url("src/options/options.html"))
    options.wait_for_selector("body[data-ready=true]")
    options.click("#unpair")
    options.wait_for_selector("#status[data-state=not_paired]")
    try:
        original = photo(photos, "George_Clooney", "img38.jpg")
        form.set_input_files("#single", str(original))
        deadline = time.monotonic() + 30
        while not prompt_is_open(form):
            assert time.monotonic() < deadline, "no prompt"
            time.sleep(0.1)
        assert site.batches("single") == [], "uploaded while unpaired"
        assert form.evaluate("document.getElementById('single').files.length") == 0
        answer_prompt(form, "cancel")
        assert site.batches("single") == []
        assert seen(form, "single") == []
    finally:
        browser.pair(companion).close()
        options.close()


def test_time_out_asks_and_uploads_nothing(
    form: Page, browser: ExtensionBrowser, site: UploadSite, companion: Companion, photos: Path
) -> None:
    """The companion takes the photo and does not answer in time: the page gets nothing,
    Veil asks, and after Cancel nothing was ever uploaded. The debug switch
    {debug: {cloakTimeoutMs}} shortens the 200 s time-out to 3 s."""
    set_debug = "async (debug) => chrome.storage.local.set({debug})"
    stalling = StallingCompanion()
    browser.worker().evaluate(set_debug, {"cloakTimeoutMs": 3000})
    browser.store_port(stalling.port)
    try:
        original = photo(photos, "George_Clooney", "img38.jpg")
        started = time.monotonic()
        form.set_input_files("#single", str(original))
        assert stalling.arrived.wait(15), "the photo never reached the (stalling) companion"
        assert stalling.requests[0].startswith(b"POST /v1/cloak"), stalling.requests
        deadline = time.monotonic() + 25
        while not prompt_is_open(form):
            assert time.monotonic() < deadline, "no prompt after the time-out"
            assert site.batches("single") == [], "uploaded while the companion had not answered"
            time.sleep(0.1)
        waited = time.monotonic() - started
        assert waited >= 3, f"prompt after {waited:.1f} s, before the 3 s time-out"
        assert "did not answer" in all_text(form)
        assert site.batches("single") == [], "uploaded before the person answered"
        assert form.evaluate("document.getElementById('single').files.length") == 0
        assert seen(form, "single") == []
        answer_prompt(form, "cancel")
        form.wait_for_function("1")  # one round trip after the click
        assert not prompt_is_open(form)
        assert form.evaluate("document.getElementById('single').files.length") == 0
        assert site.batches("single") == []
        assert seen(form, "single") == []
    finally:
        browser.worker().evaluate(set_debug, {})
        browser.store_port(companion.port)
        stalling.stop()


def stored_preview_names(browser: ExtensionBrowser) -> list[str]:
    names: list[str] = browser.worker().evaluate(
        """async () => Object.entries(await chrome.storage.session.get(null))
            .filter(([key]) => key.startsWith('previews:'))
            .flatMap(([, list]) => list.map((preview) => preview.name))"""
    )
    return names


def test_heic_preview_is_skipped_quietly(
    form: Page, browser: ExtensionBrowser, site: UploadSite, photos: Path, tmp_path: Path
) -> None:
    """Chromium cannot decode HEIC: the photo is still cloaked and uploaded, its preview is
    skipped without a console error, and a JPEG picked after it still gets its preview."""
    pillow_heif = pytest.importorskip("pillow_heif")

    source = photo(photos, "Angelina_Jolie", "img5.jpg")
    heic = tmp_path / "face.heic"
    pillow_heif.from_pillow(Image.open(source).convert("RGB")).save(str(heic), quality=90)
    jpeg = photo(photos, "George_Clooney", "img38.jpg")
    console: list[str] = []
    form.on("console", lambda message: console.append(message.text))
    form.set_input_files("#single", str(heic))
    [received] = site.wait_for("single", UPLOAD_TIMEOUT)
    assert received.name == heic.name
    assert received.data != heic.read_bytes(), "the HEIC was uploaded uncloaked"
    assert pillow_heif.is_supported(received.data)
    site.clear()
    # The JPEG's preview is stored well after the HEIC's was tried (each waits its turn
    # behind its own upload), so once it is there the HEIC's attempt is over.
    form.set_input_files("#single", str(jpeg))
    site.wait_for("single", UPLOAD_TIMEOUT)
    deadline = time.monotonic() + 60
    while jpeg.name not in stored_preview_names(browser):
        assert time.monotonic() < deadline, "the JPEG's preview was never stored"
        time.sleep(0.2)
    assert heic.name not in stored_preview_names(browser)
    assert not [text for text in console if "could not build the preview" in text], console
