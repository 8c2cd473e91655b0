"""Videos in Firefox ESR (WebDriver BiDi) with the extension, a real companion and a real
upload site: a tiny real clip with a face picked in a file input, dropped, and pasted as a
file reaches the site cloaked (other bytes, same container, no location), with the
companion's percentage on the toolbar badge meanwhile and a frame of it in the tab's
previews; Cancel on the in-page indicator stops the companion's job (its files deleted) and
gives the page nothing; with the companion down Veil asks and the page gets nothing; a 1 GiB
video goes there and back through the transfer frame without Firefox's memory growing by
anything like its size (a stand-in companion, video_checks.EchoCompanion). The
Firefox fixtures (Veil installed and paired) are those of test_firefox_extension.py."""

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
    READ_TOKEN,
    cancel_prompt,
    companion_on_port,
    firefox,
    form_tab,
    page_got_nothing,
    prompt_while_nothing_uploaded,
    seen,
    set_debug,
    still_paired_after,
)
from upload_site import Received, UploadSite
from video_checks import (
    EchoCompanion,
    FaceClip,
    RssWatch,
    assert_cloaked_video,
    face_clip,
    fake_video,
    pid_tree_rss_mb,
    wait_for_pid_tree_to_settle,
)

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


@pytest.fixture(scope="module")
def long_clip(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> FaceClip:
    """Long enough (6 s, 480x360) for a cancel to land while the companion works on it."""
    folder = tmp_path_factory.mktemp("firefox-long-clips")
    portrait = photos / "photos" / "Scarlett_Johansson" / "img49.jpg"
    return face_clip(portrait, folder / "long-take.mp4", seconds=6.0, size=(480, 360))


def spooled_jobs(companion: Companion) -> list[Path]:
    """The companion's video job folders (`<config dir>/video-spool/proc-*/job-*`): a video's
    body and its cloak live there while it is received and cloaked."""
    return sorted((companion.config_dir / "video-spool").glob("proc-*/job-*"))


async def test_firefox_cancel_on_the_indicator_stops_the_companion_job(
    firefox: tuple[Firefox, str], site: UploadSite, companion: Companion, long_clip: FaceClip
) -> None:
    """The person presses Cancel on Veil's indicator while the companion cloaks a video: the
    companion's job is cancelled and its files deleted, and the page gets nothing (no file,
    no prompt: Cancel is the person's choice, not a failure), as in Chromium."""
    browser, ext = firefox
    url = f"{site.url}/form"
    # Debug timing marks on (content/timing.js): each upload's job id is marked veil:job:<id>.
    await set_debug(browser, ext, {"timings": True})
    try:
        tab = await form_tab(browser, site)
        await browser.set_files(tab, "document.getElementById('single')", [long_clip.path])
        # The companion's percentage on the toolbar badge: its job is under way.
        deadline = time.monotonic() + 60
        while not (await badge_of(browser, ext, url)).endswith("%"):
            assert site.batches("single") == [], "uploaded before the cancel"
            assert time.monotonic() < deadline, "the badge never showed the video's progress"
            await asyncio.sleep(0.1)
        marks = json.loads(
            await browser.value(
                tab, "JSON.stringify(performance.getEntriesByType('mark').map((m) => m.name))"
            )
        )
        [job] = [mark.split(":", 2)[2] for mark in marks if mark.startswith("veil:job:")]
        bearer = str(await browser.value(ext, READ_TOKEN))
        before = await asyncio.to_thread(companion.job, bearer, job)
        assert before.get("state") in {"receiving", "queued", "working"}, before
        assert spooled_jobs(companion), "the video is not in the companion's spool"
        assert "%" in (await browser.veil_indicator_text(tab) or ""), "no percentage shown"

        clicked = time.monotonic()
        await browser.cancel_veil_indicator(tab)
        while (found := await asyncio.to_thread(companion.job, bearer, job)).get(
            "state"
        ) != "cancelled":
            assert time.monotonic() - clicked < 10, f"the job was not cancelled: {found}"
            await asyncio.sleep(0.1)
        cancelled_s = time.monotonic() - clicked
        while spooled_jobs(companion):
            assert time.monotonic() - clicked < 10, "the video's files stayed in the spool"
            await asyncio.sleep(0.1)
        print(f"job cancelled {cancelled_s:.2f} s after the click; spool empty")

        await asyncio.sleep(2)  # anything the page would get after Cancel has come by now
        await page_got_nothing(browser, tab, site, "single", "after Cancel")
        assert await browser.veil_prompt_text(tab) is None, "Cancel must not raise the prompt"
        assert await browser.veil_indicator_text(tab) is None, "the indicator stayed"
        assert await badge_of(browser, ext, url) == "", "the badge still shows progress"
        final = await asyncio.to_thread(companion.job, bearer, job)
        assert final.get("state") == "cancelled", final
        await browser.send("browsingContext.close", {"context": tab})
    finally:
        await set_debug(browser, ext, {})


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


async def test_firefox_a_1_gb_video_streams_through_without_filling_memory(
    firefox: tuple[Firefox, str], site: UploadSite, companion: Companion, tmp_path: Path
) -> None:
    """As in Chromium: the page's File goes to the transfer frame by reference, fetch streams
    it, and the answer comes back as a Blob Firefox keeps in a temporary file; Firefox's
    memory (the firefox-esr process this module started and every process below it: content,
    extension, fork server) must not grow by anything like the file's size."""
    browser, ext = firefox
    assert browser.process is not None
    firefox_pid = browser.process.pid
    size = 1024 * 1024 * 1024
    big = fake_video(tmp_path / "wedding.mp4", size // (1024 * 1024))
    echo = EchoCompanion()
    url = f"{site.url}/form"
    tab = await form_tab(browser, site)
    # The new tab took Firefox's spare content process; the baseline comes after its new spare.
    await asyncio.to_thread(wait_for_pid_tree_to_settle, firefox_pid)
    memory = await asyncio.to_thread(RssWatch, lambda: pid_tree_rss_mb(firefox_pid))
    badges: list[str] = []
    indicator: list[str] = []
    try:
        async with companion_on_port(browser, ext, echo.port, back=companion.port):
            started = time.monotonic()
            await browser.set_files(tab, "document.getElementById('single')", [big])
            deadline = time.monotonic() + 480
            while not await seen(browser, tab, "single"):
                assert time.monotonic() < deadline, (
                    f"the page got nothing ({echo.received} bytes sent)"
                )
                await asyncio.to_thread(memory.update)
                shown = await badge_of(browser, ext, url)
                if shown and (not badges or badges[-1] != shown):
                    badges.append(shown)
                text = await browser.veil_indicator_text(tab)
                if text and "%" in text:
                    indicator.append(text)
                await asyncio.sleep(0.25)
            took = time.monotonic() - started
            await asyncio.to_thread(memory.update)
        [entry] = await seen(browser, tab, "single")
    finally:
        echo.stop()
        # Also ends the page's own upload of the 1 GiB file to the site.
        await browser.send("browsingContext.close", {"context": tab})
    assert [item["size"] for item in entry["files"]] == [size], entry
    assert echo.received == size
    print(f"badge: {badges[:3]}...{badges[-2:]}; indicator: {indicator[-1:]}")
    memory.check("Firefox", took)
    assert badges and all(text.endswith("%") for text in badges), badges
    assert indicator, "no percentage on the indicator while the 1 GB upload was received"
