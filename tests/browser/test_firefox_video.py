"""Videos in Firefox ESR (WebDriver BiDi) with the extension, a real companion and a real
upload site: a tiny real clip with a face picked in a file input, dropped, and pasted as a
file reaches the site cloaked (other bytes, same container, no location), with the
companion's percentage on the toolbar badge meanwhile and a frame of it in the tab's
previews; with the companion down Veil asks and the page gets nothing. The Firefox fixtures
(Veil installed and paired) are those of test_firefox_extension.py."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from firefox_bidi import Firefox
from harness import Companion, free_port, record_pick_to_upload
from test_firefox_extension import (
    CONTROL,
    cancel_prompt,
    companion_on_port,
    firefox,
    form_tab,
    page_got_nothing,
    prompt_while_nothing_uploaded,
    seen,
    still_paired_after,
)
from upload_site import Received, UploadSite
from video_checks import FaceClip, assert_cloaked_video, face_clip

pytestmark = [pytest.mark.browser, pytest.mark.faces, pytest.mark.asyncio(loop_scope="module")]

# Fixtures of test_firefox_extension.py, used here by name.
__all__ = ["firefox", "still_paired_after"]

UPLOAD_TIMEOUT = float(os.environ.get("VEIL_TEST_UPLOAD_TIMEOUT", "180"))


@pytest.fixture(scope="module")
def clip(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> FaceClip:
    folder = tmp_path_factory.mktemp("firefox-clips")
    portrait = photos / "photos" / "Scarlett_Johansson" / "img49.jpg"
    return face_clip(portrait, folder / "holiday.mp4", seconds=2.0)


async def badge_of(browser: Firefox, ext: str, url: str) -> str:
    """The toolbar badge text of the tab showing `url`, read from Veil's own page."""
    return str(
        await browser.value(
            ext,
            # Firefox's match patterns take no port: find the tab by its URL instead.
            f"""chrome.tabs.query({{}})
                .then((tabs) => tabs.find((t) => t.url === {json.dumps(url)}))
                .then((tab) => tab ? chrome.action.getBadgeText({{tabId: tab.id}}) : '')""",
        )
    )


async def watch_upload(
    browser: Firefox, ext: str, site: UploadSite, slot: str, url: str
) -> tuple[Received, list[str]]:
    """Waits for the site to receive `slot`, recording the badges shown meanwhile."""
    badges: list[str] = []
    deadline = time.monotonic() + UPLOAD_TIMEOUT
    while not site.batches(slot):
        assert time.monotonic() < deadline, f"nothing was uploaded to {slot!r}"
        shown = await badge_of(browser, ext, url)
        if shown and (not badges or badges[-1] != shown):
            badges.append(shown)
        await asyncio.sleep(0.15)
    [received] = site.batches(slot)[0]
    return received, badges


async def test_firefox_video_in_a_file_input_is_cloaked_with_progress(
    firefox: tuple[Firefox, str], site: UploadSite, clip: FaceClip, tmp_path: Path
) -> None:
    browser, ext = firefox
    tab = await form_tab(browser, site)
    url = f"{site.url}/form"
    started = time.monotonic()
    await browser.set_files(tab, "document.getElementById('single')", [clip.path])
    received, badges = await watch_upload(browser, ext, site, "single", url)
    record_pick_to_upload("firefox", "video, file input", time.monotonic() - started)
    assert received.name == clip.path.name and received.type == "video/mp4"
    change = await asyncio.to_thread(assert_cloaked_video, clip.path, received.data, tmp_path)
    print(f"badge: {badges}; change: {change}")
    assert badges and all(text.endswith("%") for text in badges), badges
    [entry] = await seen(browser, tab, "single")
    assert [item["size"] for item in entry["files"]] == [len(received.data)]
    # The frame's preview (a frame of the video, before and after) reaches the background.
    previews = await browser.wait_until(
        ext,
        """chrome.storage.session.get(null).then((all) => JSON.stringify(
            Object.values(all).filter(Array.isArray).flat().filter((p) => p.video)))
          .then((text) => text === '[]' ? '' : text)""",
    )
    [preview] = json.loads(previews)
    assert preview["name"] == clip.path.name and preview["faceFrames"]
    assert preview["before"].startswith("data:image/png;base64,")
    assert preview["before"] != preview["after"]
    await browser.send("browsingContext.close", {"context": tab})


async def test_firefox_video_dropped(
    firefox: tuple[Firefox, str], site: UploadSite, clip: FaceClip, tmp_path: Path
) -> None:
    browser, ext = firefox
    tab = await form_tab(browser, site)
    started = time.monotonic()
    dropped = await browser.trusted_drop(tab, "document.getElementById('dropzone')", [clip.path])
    assert dropped["target"] == "div#dropzone", dropped
    received, _ = await watch_upload(browser, ext, site, "drop", f"{site.url}/form")
    record_pick_to_upload("firefox", "video, drop", time.monotonic() - started)
    assert received.name == clip.path.name
    await asyncio.to_thread(assert_cloaked_video, clip.path, received.data, tmp_path)
    sizes = json.loads(await browser.value(tab, "JSON.stringify(window.dropped)"))
    assert sizes == [[len(received.data)]], "the page's drop listener saw the original"
    await browser.send("browsingContext.close", {"context": tab})


async def put_file_on_clipboard(browser: Firefox, path: Path) -> None:
    """A file on the clipboard, as a file manager's Copy puts it (application/x-moz-file);
    headless Firefox answers from its cache of it (see Firefox.put_image_on_clipboard)."""
    await browser.chrome_value(
        f"""(() => {{
            Services.prefs.setBoolPref('widget.clipboard.use-cached-data.enabled', true);
            const file = Cc['@mozilla.org/file/local;1'].createInstance(Ci.nsIFile);
            file.initWithPath({json.dumps(str(path))});
            const transferable = Cc['@mozilla.org/widget/transferable;1']
                .createInstance(Ci.nsITransferable);
            transferable.init(null);
            transferable.addDataFlavor('application/x-moz-file');
            transferable.setTransferData('application/x-moz-file', file);
            Services.clipboard.setData(transferable, null, Ci.nsIClipboard.kGlobalClipboard);
            return 1;
        }})()"""
    )


async def test_firefox_video_pasted_as_a_file(
    firefox: tuple[Firefox, str], site: UploadSite, clip: FaceClip, tmp_path: Path
) -> None:
    browser, ext = firefox
    tab = await form_tab(browser, site)
    await put_file_on_clipboard(browser, clip.path)
    await browser.click(tab, "document.getElementById('pastezone')")
    started = time.monotonic()
    await browser.key(tab, "v", CONTROL)
    received, _ = await watch_upload(browser, ext, site, "paste", f"{site.url}/form")
    record_pick_to_upload("firefox", "video, paste", time.monotonic() - started)
    assert received.name == clip.path.name
    await asyncio.to_thread(assert_cloaked_video, clip.path, received.data, tmp_path)
    [entry] = await seen(browser, tab, "paste")
    assert [item["size"] for item in entry["files"]] == [len(received.data)]
    await browser.send("browsingContext.close", {"context": tab})


async def test_firefox_companion_down_a_video_gets_the_prompt(
    firefox: tuple[Firefox, str], site: UploadSite, companion: Companion, clip: FaceClip
) -> None:
    browser, ext = firefox
    async with companion_on_port(browser, ext, free_port(), back=companion.port):
        tab = await form_tab(browser, site)
        await browser.set_files(tab, "document.getElementById('single')", [clip.path])
        text = await prompt_while_nothing_uploaded(browser, tab, site, "single")
        assert "could not protect this video" in text and "not running" in text, text
        await page_got_nothing(browser, tab, site, "single")
        await cancel_prompt(browser, tab)
        await page_got_nothing(browser, tab, site, "single", "after Cancel")
        await browser.send("browsingContext.close", {"context": tab})
