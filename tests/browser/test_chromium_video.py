"""Videos through every upload path of the extension in real Chromium, with a real companion
and a real upload site: a tiny real clip with a face (tests/video_samples.py) picked in a
file input, dropped, pasted, read through showOpenFilePicker(), and from a picked folder,
reaches the site cloaked (other bytes, same container, no location), with the companion's
percentage on the toolbar badge and the in-page indicator meanwhile (an animated GIF's too),
and a frame of it before and after in the popup. Cancel (the indicator's button, or a later
pick in the same input) stops the job on the companion and gives the page nothing; a
companion that is down or refuses the video, and a video too large for the Port fallback,
end in Veil's prompt, never in the original.

A trusted paste of a file cannot be produced in headless Chromium (its clipboard takes only
text, HTML and PNG from pages, and no DevTools command puts files on it): the paste test runs
a second, headed Chromium with the extension on an Xvfb display, with the file on the X
clipboard as a file manager's Copy puts it (chromium_driver.files_on_x_clipboard)."""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from chromium_driver import (
    ExtensionBrowser,
    all_text,
    answer_prompt,
    files_on_x_clipboard,
    launch_with_extension,
    prompt_is_open,
    trusted_drop,
    x_display,
)
from harness import (
    Companion,
    assert_cloaked,
    free_port,
    record_pick_to_upload,
)
from PIL import Image
from playwright.sync_api import Page, Playwright
from upload_site import Received, UploadSite
from video_checks import (
    EchoCompanion,
    FaceClip,
    RssWatch,
    animated_gif,
    assert_cloaked_video,
    chromium_rss_mb,
    face_clip,
    fake_video,
    first_frame_png,
    unsupported_codec_clip,
)

from corpus import in_ci

pytestmark = [pytest.mark.browser, pytest.mark.faces]

UPLOAD_TIMEOUT = float(os.environ.get("VEIL_TEST_UPLOAD_TIMEOUT", "120"))
SET_DEBUG = "async (debug) => chrome.storage.local.set({debug})"


@pytest.fixture(scope="module")
def clip(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> FaceClip:
    """2 s, 320x240, 15 fps, H.264 + AAC in MP4, with phone metadata: about 4 s of work for
    the companion here, long enough to see its progress."""
    folder = tmp_path_factory.mktemp("clips")
    portrait = photos / "photos" / "Scarlett_Johansson" / "img49.jpg"
    return face_clip(portrait, folder / "holiday.mp4", seconds=2.0)


@pytest.fixture(scope="module")
def long_clip(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> FaceClip:
    """Long enough (6 s, 480x360) for a cancel to land while the companion works on it."""
    folder = tmp_path_factory.mktemp("long-clips")
    portrait = photos / "photos" / "Scarlett_Johansson" / "img49.jpg"
    return face_clip(portrait, folder / "long-take.mp4", seconds=6.0, size=(480, 360))


@pytest.fixture
def debug_marks(browser: ExtensionBrowser) -> Iterator[None]:
    """Debug timing marks on (content/timing.js): each upload's job id is marked `veil:job:<id>`."""
    browser.worker().evaluate(SET_DEBUG, {"timings": True})
    time.sleep(0.2)  # the content scripts hear of it through storage.onChanged
    try:
        yield
    finally:
        browser.worker().evaluate(SET_DEBUG, {})


def token(browser: ExtensionBrowser) -> str:
    value = browser.worker().evaluate(
        "async () => (await chrome.storage.session.get('token')).token || ''"
    )
    assert isinstance(value, str) and value
    return value


def job_ids(page: Page) -> list[str]:
    marks = page.evaluate("performance.getEntriesByType('mark').map((m) => m.name)")
    return [mark.split(":", 2)[2] for mark in marks if mark.startswith("veil:job:")]


def badge(browser: ExtensionBrowser, tab: int) -> str:
    return str(browser.worker().evaluate("(tabId) => chrome.action.getBadgeText({tabId})", tab))


def watch_upload(
    browser: ExtensionBrowser, page: Page, site: UploadSite, slot: str, timeout: float
) -> tuple[list[Received], list[str], list[str]]:
    """Waits for the site to receive `slot`, recording meanwhile what the toolbar badge and the
    in-page indicator showed (the percentages)."""
    tab = browser.tab_id(page.url)
    badges: list[str] = []
    indicator: list[str] = []
    deadline = time.monotonic() + timeout
    while not site.batches(slot):
        assert time.monotonic() < deadline, f"nothing was uploaded to {slot!r} in {timeout:.0f} s"
        shown = badge(browser, tab)
        if shown and (not badges or badges[-1] != shown):
            badges.append(shown)
        text = all_text(page)
        if "protecting" in text:
            indicator.append(text[text.index("Veil is protecting") :][:60])
        time.sleep(0.15)
    # The badge is cleared once the video is done.
    deadline = time.monotonic() + 5
    while badge(browser, tab):
        assert time.monotonic() < deadline, "the badge still shows progress after the upload"
        time.sleep(0.1)
    return site.batches(slot)[0], badges, indicator


def assert_progress_seen(badges: list[str], indicator: list[str]) -> None:
    assert badges, "the toolbar badge never showed the video's progress"
    assert all(text.endswith("%") and 0 <= int(text[:-1]) <= 100 for text in badges), badges
    assert any("%" in text for text in indicator), (
        f"the indicator showed no percentage: {indicator}"
    )


def assert_page_got_the_cloak(
    page: Page,
    slot: str,
    clip: FaceClip,
    received: Received,
    badges: list[str],
    indicator: list[str],
    tmp_path: Path,
) -> dict[str, float]:
    """The site received the cloaked video (same name and type, faces changed, no location),
    with progress shown on the way, and the page's own listener in `slot` saw that same
    file, not the original. Returns the change's summary."""
    assert received.name == clip.path.name and received.type == "video/mp4"
    change = assert_cloaked_video(clip.path, received.data, tmp_path)
    assert_progress_seen(badges, indicator)
    [seen] = [entry for entry in page.evaluate("window.seen") if entry["slot"] == slot]
    assert seen["files"] == [
        {"name": clip.path.name, "size": len(received.data), "type": "video/mp4"}
    ], f"the page's {slot} listener saw something else than the cloak"
    return change


def test_video_in_a_file_input_is_cloaked_with_progress_and_previewed(
    form: Page,
    browser: ExtensionBrowser,
    site: UploadSite,
    clip: FaceClip,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    form.set_input_files("#single", str(clip.path))
    [received], badges, indicator = watch_upload(browser, form, site, "single", UPLOAD_TIMEOUT)
    record_pick_to_upload("chromium", "video, file input", time.monotonic() - started)
    change = assert_page_got_the_cloak(form, "single", clip, received, badges, indicator, tmp_path)
    print(f"badge: {badges}; indicator: {indicator[-1:]}; change: {change}")
    check_video_preview(browser, site)


def check_video_preview(
    browser: ExtensionBrowser,
    site: UploadSite,
    kind: str = "video",
    says: str = "video, frame at",
) -> None:
    """The popup shows a frame of the video (or the animated image), before and after, and
    the face-frames cloaked."""
    tab = browser.tab_id(f"{site.url}/form")
    popup = browser.context.new_page()
    popup.set_viewport_size({"width": 460, "height": 900})
    try:
        deadline = time.monotonic() + 30
        while True:
            popup.goto(browser.page_url(f"src/popup/popup.html?tab={tab}"))
            popup.wait_for_selector("body[data-ready=true]")
            if popup.locator(f".preview[data-kind={kind}]").count() > 0:
                break
            assert time.monotonic() < deadline, f"the popup shows no preview of the {kind}"
            time.sleep(0.5)
        card = popup.locator(f".preview[data-kind={kind}]").first
        stats = card.locator(".stats").inner_text()
        assert says in stats and "face-frames cloaked" in stats, stats
        assert card.locator("figcaption", has_text="frame before").count() == 1
        from chromium_driver import screenshot

        screenshot(popup, f"popup-{kind}-preview.png")
        # The frame is a real picture, and after differs from before (amplified difference).
        popup.check("#amplify")
        popup.wait_for_selector("text=|after − before| × 15")
        lit = popup.evaluate(
            """(kind) => {
                const canvas = document.querySelector(
                    `.preview[data-kind=${kind}] .zoom figure:nth-child(2) canvas`);
                const { width, height } = canvas;
                const data = canvas.getContext('2d').getImageData(0, 0, width, height).data;
                let sum = 0;
                for (let i = 0; i < data.length; i += 4) sum += data[i] + data[i + 1] + data[i + 2];
                return sum / (data.length / 4) / 3;
            }""",
            kind,
        )
        assert lit > 2, f"the amplified difference of the frame is black ({lit:.2f})"
    finally:
        popup.close()


def test_video_dropped_onto_a_drop_zone(
    form: Page, browser: ExtensionBrowser, site: UploadSite, clip: FaceClip, tmp_path: Path
) -> None:
    started = time.monotonic()
    trusted_drop(form, "#dropzone", [clip.path])
    [received], badges, indicator = watch_upload(browser, form, site, "drop", UPLOAD_TIMEOUT)
    record_pick_to_upload("chromium", "video, drop", time.monotonic() - started)
    assert received.name == clip.path.name
    assert_cloaked_video(clip.path, received.data, tmp_path)
    assert_progress_seen(badges, indicator)
    assert form.evaluate("window.dropped") == [[len(received.data)]]


def test_animated_gif_in_a_file_input_is_cloaked(
    form: Page, browser: ExtensionBrowser, site: UploadSite, clip: FaceClip, tmp_path: Path
) -> None:
    # GIFs passed through untouched before: now every frame is cloaked, the format kept.
    gif = animated_gif(clip.path, tmp_path / "reaction.gif", frames=6)
    started = time.monotonic()
    form.set_input_files("#single", str(gif))
    [received], badges, indicator = watch_upload(browser, form, site, "single", UPLOAD_TIMEOUT)
    record_pick_to_upload("chromium", "animated GIF, file input", time.monotonic() - started)
    print(f"GIF badge: {badges}; indicator: {indicator[-1:]}")
    # The companion's percentage for an animated image too (its job's measured figure).
    assert_progress_seen(badges, indicator)
    # Called what it is: not "your photo", not "your video".
    assert any(text.startswith("Veil is protecting your animated image") for text in indicator), (
        indicator
    )
    assert received.name == gif.name and received.type == "image/gif"
    assert received.data != gif.read_bytes(), "the site received the ORIGINAL GIF"
    with Image.open(io.BytesIO(received.data)) as cloaked, Image.open(gif) as original:
        assert cloaked.format == "GIF" and cloaked.n_frames == original.n_frames
        assert cloaked.size == original.size
    # Its first frame is a cloak of the original's (faces changed far more than the rest).
    assert_cloaked(first_frame_png(gif.read_bytes()), first_frame_png(received.data))
    check_video_preview(browser, site, "animation", "animated image, first frame")


@dataclass(frozen=True)
class HeadedBrowser:
    browser: ExtensionBrowser
    display: str  # its X display, ":N"
    xclip: str


@pytest.fixture
def headed_browser(
    playwright: Playwright,
    chromium_binary: str,
    companion: Companion,
    tmp_path: Path,
) -> Iterator[HeadedBrowser]:
    """A headed Chromium with the extension, paired, on its own Xvfb display."""
    xvfb, xclip = shutil.which("Xvfb"), shutil.which("xclip")
    if xvfb is None or xclip is None:
        message = "Xvfb and xclip are not installed (scripts/test installs them)"
        if in_ci():  # as a missing corpus: CI must not pass without this path tested
            pytest.fail(message)
        pytest.skip(message)
    with x_display(xvfb) as display:
        extension = launch_with_extension(
            playwright,
            tmp_path / "headed-profile",
            chromium_binary,
            headless=False,
            extra_args=("--ozone-platform=x11",),
            env={**os.environ, "DISPLAY": display},
        )
        try:
            extension.set_port(companion.port)
            extension.pair(companion).close()
            yield HeadedBrowser(extension, display, xclip)
        finally:
            extension.context.close()


def test_video_pasted_as_a_file_is_cloaked(
    headed_browser: HeadedBrowser,
    site: UploadSite,
    clip: FaceClip,
    tmp_path: Path,
) -> None:
    """Ctrl+V of a video file copied in a file manager: the page's paste listener gets the
    cloak, never the original."""
    browser = headed_browser.browser
    site.clear()
    page = browser.context.new_page()
    page.goto(f"{site.url}/form")
    try:
        with files_on_x_clipboard(headed_browser.xclip, headed_browser.display, [clip.path]):
            page.click("#pastezone")
            started = time.monotonic()
            page.keyboard.press("Control+V")
            [received], badges, indicator = watch_upload(
                browser, page, site, "paste", UPLOAD_TIMEOUT
            )
        record_pick_to_upload("chromium", "video, paste", time.monotonic() - started)
        change = assert_page_got_the_cloak(
            page, "paste", clip, received, badges, indicator, tmp_path
        )
        print(f"paste: badge {badges}; change {change}")
    finally:
        page.close()


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


def test_video_read_through_show_open_file_picker(
    browser: ExtensionBrowser, site: UploadSite, clip: FaceClip, tmp_path: Path
) -> None:
    # The picker dialog cannot be answered headless: a stand-in returns handles of the page's
    # origin-private file system (as test_chromium_extension.py does for photos); Veil's
    # wrapper of getFile() on them is the real one.
    assert site.photos_dir is not None
    (site.photos_dir / clip.path.name).write_bytes(clip.path.read_bytes())
    site.clear()
    page = browser.context.new_page()
    page.add_init_script(STAND_IN_PICKER)
    page.goto(f"{site.url}/picker")
    try:
        page.evaluate(WRITE_TO_OPFS, [clip.path.name])
        started = time.monotonic()
        page.click("#open")
        [received] = site.wait_for("picker", UPLOAD_TIMEOUT)
        record_pick_to_upload("chromium", "video, showOpenFilePicker", time.monotonic() - started)
        assert received.name == clip.path.name and received.type == "video/mp4"
        assert_cloaked_video(clip.path, received.data, tmp_path)
        [seen] = page.evaluate("window.seen")
        assert [entry["size"] for entry in seen] == [len(received.data)]
    finally:
        page.close()


def test_video_in_a_dropped_folder(
    browser: ExtensionBrowser, site: UploadSite, clip: FaceClip, tmp_path: Path
) -> None:
    site.clear()
    page = browser.context.new_page()
    page.goto(f"{site.url}/paths")
    try:
        folder = tmp_path / "trip"
        folder.mkdir()
        (folder / clip.path.name).write_bytes(clip.path.read_bytes())
        (folder / "notes.txt").write_bytes(b"not a video\n")
        trusted_drop(page, "#entries", [folder])
        received = site.wait_for("entries", UPLOAD_TIMEOUT)
        by_name = {item.name: item for item in received}
        assert set(by_name) == {clip.path.name, "notes.txt"}
        assert by_name["notes.txt"].data == b"not a video\n"
        assert_cloaked_video(clip.path, by_name[clip.path.name].data, tmp_path)
    finally:
        page.close()


def wait_for_percentage(page: Page, timeout: float = 60) -> None:
    """Until the in-page indicator shows the companion's percentage (the job is running)."""
    deadline = time.monotonic() + timeout
    while "%" not in all_text(page).split("Veil is protecting", 1)[-1][:60]:
        assert time.monotonic() < deadline, "the indicator never showed a percentage"
        time.sleep(0.1)


def wait_for_job_state(
    companion: Companion, bearer: str, job: str, state: str, timeout: float = 10
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = companion.job(bearer, job)
        if found.get("state") == state or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_cancel_on_the_indicator_stops_the_companion_job(
    form: Page,
    browser: ExtensionBrowser,
    site: UploadSite,
    companion: Companion,
    long_clip: FaceClip,
    debug_marks: None,
) -> None:
    form.set_input_files("#single", str(long_clip.path))
    wait_for_percentage(form)
    [job] = job_ids(form)
    bearer = token(browser)
    assert companion.job(bearer, job).get("state") in {"receiving", "queued", "working"}
    clicked = time.monotonic()
    answer_prompt(form, "stop")  # the indicator's Cancel, a real click
    found = wait_for_job_state(companion, bearer, job, "cancelled")
    assert found.get("state") == "cancelled", found
    print(f"job cancelled {time.monotonic() - clicked:.2f} s after the click")
    time.sleep(2)
    assert site.batches("single") == [], "the page got something after Cancel"
    assert [entry for entry in form.evaluate("window.seen") if entry["slot"] == "single"] == []
    assert form.evaluate("document.getElementById('single').files.length") == 0
    assert not prompt_is_open(form), "Cancel must not raise the failure prompt"
    assert badge(browser, browser.tab_id(form.url)) == "", "the badge still shows progress"


def test_a_later_pick_cancels_the_video_still_being_cloaked(
    form: Page,
    browser: ExtensionBrowser,
    site: UploadSite,
    companion: Companion,
    long_clip: FaceClip,
    photos: Path,
    debug_marks: None,
) -> None:
    form.set_input_files("#single", str(long_clip.path))
    wait_for_percentage(form)
    [first_job] = job_ids(form)
    bearer = token(browser)
    replacement = photos / "photos" / "George_Clooney" / "img38.jpg"
    started = time.monotonic()
    form.set_input_files("#single", str(replacement))
    [received] = site.wait_for("single", UPLOAD_TIMEOUT)
    took = time.monotonic() - started
    record_pick_to_upload("chromium", "photo re-picked over a video being cloaked", took)
    print(f"re-picked photo reached the site {took:.2f} s after the pick")
    assert received.name == replacement.name
    assert_cloaked(replacement.read_bytes(), received.data)
    assert companion.job(bearer, first_job).get("state") == "cancelled"
    time.sleep(1)
    assert len(site.batches("single")) == 1, "the superseded video reached the page too"


def test_companion_down_a_video_gets_the_prompt_and_nothing_is_uploaded(
    form: Page, browser: ExtensionBrowser, site: UploadSite, companion: Companion, clip: FaceClip
) -> None:
    browser.store_port(free_port())
    try:
        form.set_input_files("#single", str(clip.path))
        deadline = time.monotonic() + 30
        while not prompt_is_open(form):
            assert time.monotonic() < deadline, "no prompt"
            time.sleep(0.1)
        text = all_text(form)
        assert "could not protect this video" in text, text
        assert "veil serve" in text
        answer_prompt(form, "cancel")
        time.sleep(1)
        assert site.batches("single") == []
        assert form.evaluate("document.getElementById('single').files.length") == 0
    finally:
        browser.store_port(companion.port)


def test_a_video_the_companion_cannot_reencode_gets_the_prompt(
    form: Page, site: UploadSite, photos: Path, tmp_path: Path
) -> None:
    # MJPEG in a MOV (old cameras): no encoder for it in the companion, 415 unsupported_codec.
    portrait = photos / "photos" / "Scarlett_Johansson" / "img49.jpg"
    old_camera = unsupported_codec_clip(portrait, tmp_path / "camera.mov")
    form.set_input_files("#single", str(old_camera))
    deadline = time.monotonic() + 60
    while not prompt_is_open(form):
        assert time.monotonic() < deadline, "no prompt"
        time.sleep(0.1)
    text = all_text(form)
    assert "could not protect this video" in text and "mjpeg" in text, text
    answer_prompt(form, "cancel")
    time.sleep(1)
    assert site.batches("single") == []
    assert form.evaluate("document.getElementById('single').files.length") == 0


def test_a_large_video_never_takes_the_port_fallback(
    form: Page, browser: ExtensionBrowser, site: UploadSite, tmp_path: Path
) -> None:
    # With the transfer frame unusable (forced here), a video too large to copy through runtime
    # messages fails closed with a clear message instead of filling the background's memory.
    big = fake_video(tmp_path / "long-recording.mp4", 80)
    browser.worker().evaluate(SET_DEBUG, {"transport": "port"})
    try:
        time.sleep(0.2)
        form.set_input_files("#single", str(big))
        deadline = time.monotonic() + 30
        while not prompt_is_open(form):
            assert time.monotonic() < deadline, "no prompt"
            time.sleep(0.1)
        text = all_text(form)
        assert "could not protect this video" in text and "transfer frame" in text, text
        answer_prompt(form, "cancel")
        time.sleep(0.5)
        assert site.batches("single") == []
    finally:
        browser.worker().evaluate(SET_DEBUG, {})


def test_a_1_gb_video_streams_through_without_filling_memory(
    form: Page,
    browser: ExtensionBrowser,
    site: UploadSite,
    companion: Companion,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The transport for a 1 GB video: the page's File goes to the transfer frame by
    reference, fetch streams it, and the answer comes back as a Blob the browser keeps on
    disk; the browser's memory must not grow by anything like the file's size."""
    size = 1024 * 1024 * 1024
    big = fake_video(tmp_path / "wedding.mp4", size // (1024 * 1024))
    echo = EchoCompanion()
    # The browser fixture's profile is under this run's own temporary folder (conftest.py).
    marker = f"{tmp_path_factory.getbasetemp()}/chromium-profile"
    memory = RssWatch(lambda: chromium_rss_mb(marker))
    browser.store_port(echo.port)
    try:
        started = time.monotonic()
        form.set_input_files("#single", str(big))
        deadline = time.monotonic() + 300
        seen_progress = False
        while not [e for e in form.evaluate("window.seen") if e["slot"] == "single"]:
            assert time.monotonic() < deadline, f"the page got nothing ({echo.received} bytes sent)"
            memory.update()
            seen_progress = seen_progress or "%" in all_text(form).split("protecting", 1)[-1][:40]
            time.sleep(0.25)
        took = time.monotonic() - started
    finally:
        browser.store_port(companion.port)
        echo.stop()
    [entry] = [e for e in form.evaluate("window.seen") if e["slot"] == "single"]
    assert entry["files"][0]["size"] == size, entry
    assert echo.received == size
    memory.check("Chromium", took)
    assert seen_progress, "no percentage while the 1 GB upload was received"
