"""'Protect my face' in real Chromium with the extension and a real companion (2 optimiser
steps, so that an enrolment takes seconds): the options page enrols from real
photos (asking which face in a photo of two people), shows each strength's previews and
figures, saves a 0600 profile; the popup then says which face was recognised and which
cloak it got; the strength can be changed and Forget deletes the file. And nobody but the
options page can ask the background about enrolment: not a content script (so not a page
that compromised its renderer), not another Veil page, not a web page."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium_driver import ExtensionBrowser, screenshot
from harness import VEIL, Companion, assert_cloaked
from playwright.sync_api import Page
from upload_site import UploadSite

from veil.profiles import load_profile

pytestmark = [pytest.mark.browser, pytest.mark.faces]

ENROL_TIMEOUT_MS = 180_000
PERSON = "Jack_Dorsey"
ENROL_PHOTOS = ("img16.jpg", "img17.jpg", "img61.jpg")
MESSAGES: dict[str, dict[str, Any]] = {
    "listProfiles": {},
    "startEnrolment": {"name": "me", "photos": []},
    "enrolmentStatus": {"job": "x"},
    "saveEnrolment": {"job": "x", "strength": "light"},
    "cancelEnrolment": {"job": "x"},
    "setProfileStrength": {"id": "0123456789abcdef", "strength": "light"},
    "forgetProfile": {"id": "0123456789abcdef"},
}
ASK_ALL = """async (messages) => {
    const out = {};
    for (const [type, payload] of Object.entries(messages)) {
        out[type] = await chrome.runtime.sendMessage({type, payload}).catch((e) => String(e));
    }
    return JSON.stringify(out);
}"""


@pytest.fixture(scope="module")
def companion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Companion]:
    """This module's own companion (the browser fixture pairs with it): enrolment in 2 steps,
    and its own config folder, so no other test ever sees the profile made here."""
    if not VEIL.exists():
        pytest.skip(f"{VEIL} missing: run scripts/install")
    running = Companion(tmp_path_factory.mktemp("veil-enrol"), None, "--enrol-steps", "2").start()
    try:
        yield running
    finally:
        running.stop()


def profile_files(companion: Companion) -> list[Path]:
    return sorted((companion.config_dir / "profiles").glob("*.npz"))


def open_options(browser: ExtensionBrowser) -> Page:
    page = browser.context.new_page()
    page.goto(browser.page_url("src/options/options.html#protect"))
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#protect[data-profiles-ready=true]")
    return page


def wait_state(page: Page, state: str, timeout_ms: float = ENROL_TIMEOUT_MS) -> None:
    """Waits for the section's state; a failure on the way ends the wait with its message."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        now = page.get_attribute("#protect", "data-state")
        if now == state:
            return
        message = page.inner_text("#enrol-message")
        assert now != "failed", f"enrolment failed: {message}"
        assert time.monotonic() < deadline, f"still {now!r} ({message!r}), waiting for {state!r}"
        time.sleep(0.2)


def images_loaded(page: Page, selector: str) -> int:
    return int(
        page.evaluate(
            "(s) => [...document.querySelectorAll(s)]"
            ".filter((i) => i.complete && i.naturalWidth > 0).length",
            selector,
        )
    )


def popup_text(browser: ExtensionBrowser, tab: int) -> str:
    popup = browser.context.new_page()
    try:
        deadline = time.monotonic() + 30
        while True:
            popup.goto(browser.page_url(f"src/popup/popup.html?tab={tab}"))
            popup.wait_for_selector("body[data-ready=true]")
            if popup.locator(".preview .recognition").count() or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        screenshot(popup, "popup-recognised.png")
        return popup.inner_text("body")
    finally:
        popup.close()


def test_options_page_enrols_saves_and_forgets(
    browser: ExtensionBrowser, companion: Companion, photos: Path, form: Page, site: UploadSite
) -> None:
    page = open_options(browser)
    try:
        # Honest words before anything: what the default does not do, what is kept, where.
        assert page.locator("#no-profiles").is_visible()
        words = page.text_content("#protect") or ""
        for needed in ("default cloak", "biometric", "0600", "Forget", "cannot"):
            assert needed in words, needed
        notice = page.inner_text("#default-cloak-notice")
        assert "protects little" in notice

        # Three photos of one person and one of a couple: Veil asks which face is them.
        folder = photos / "photos" / PERSON
        picked = [str(folder / name) for name in ENROL_PHOTOS]
        picked.append(str(photos / "scenes" / "couple.jpg"))
        page.fill("#enrol-name", "me")
        page.set_input_files("#enrol-photos", picked)
        page.click("#enrol-start")
        wait_state(page, "choose")
        assert "couple.jpg" in page.inner_text("#enrol-choose-text")
        assert page.locator("#enrol-faces button").count() == 2
        assert images_loaded(page, "#enrol-faces img") == 2
        assert not page.locator("#enrol-progress").is_visible()
        screenshot(page, "options-enrol-which-face.png")
        assert profile_files(companion) == [], "nothing is written before Save"

        # The person picks a face; the companion computes, with progress, then the previews.
        page.click("#enrol-faces button[data-face='0']")
        wait_state(page, "running", 60_000)
        assert page.locator("#enrol-progress").is_visible()
        wait_state(page, "done")
        cards = page.locator("#strength-picker .strength")
        assert cards.count() == 3
        assert images_loaded(page, "#strength-picker img") == 12  # 3 x (feed, face) x 2
        for strength in ("light", "medium", "strong"):
            card = page.locator(f"#strength-picker .strength[data-strength={strength}]")
            assert card.locator(".description").inner_text().strip()
        checked = page.locator("input[name=strength]:checked")
        assert checked.count() == 1
        recommended = page.locator("#strength-picker .strength.recommended")
        assert recommended.get_attribute("data-strength") == checked.get_attribute("value")
        screenshot(page, "options-enrol-strengths.png")
        assert profile_files(companion) == []

        page.check("input[name=strength][value=medium]")
        page.click("#enrol-save")
        wait_state(page, "saved", 30_000)
        row = page.locator("#profiles tbody tr")
        row.first.wait_for()
        assert row.count() == 1 and row.locator(".name").inner_text() == "me"
        assert row.locator("select.strength").input_value() == "medium"
        [path] = profile_files(companion)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert row.get_attribute("data-profile-id") == path.stem
        screenshot(page, "options-enrolled.png")

        # An upload of the person: the popup says their face got the personal cloak.
        original = folder / "img59.jpg"
        form.set_input_files("#single", str(original))
        [received] = site.wait_for("single", 120)
        assert_cloaked(original.read_bytes(), received.data)
        text = popup_text(browser, browser.tab_id(f"{site.url}/form"))
        assert "Recognised as me: personal cloak, medium" in text, text
        assert "protects little" in text

        # Strength change, then Forget.
        row.locator("select.strength").select_option("strong")
        deadline = time.monotonic() + 30
        while "strength strong" not in page.inner_text("#enrol-message"):
            assert time.monotonic() < deadline, page.inner_text("#enrol-message")
            time.sleep(0.2)
        assert load_profile(path).strength.value == "strong"
        page.once("dialog", lambda dialog: dialog.accept())
        row.locator("button.forget").click()
        page.wait_for_selector("#no-profiles:not([hidden])", timeout=30_000)
        assert profile_files(companion) == [], "Forget deletes the file"
        assert not path.exists()
    finally:
        page.close()


def test_only_the_options_page_may_ask_about_enrolment(
    browser: ExtensionBrowser, companion: Companion, form: Page
) -> None:
    # A content script, as a page that compromised its renderer would use it.
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
        result = cdp.send(
            "Runtime.evaluate",
            {
                "expression": f"({ASK_ALL})({json.dumps(MESSAGES)})",
                "contextId": veil["id"],
                "awaitPromise": True,
            },
        )
    finally:
        cdp.detach()
    from_content_script = json.loads(result["result"]["value"])
    for message, answer in from_content_script.items():
        assert answer["error"]["code"] == "forbidden_sender", (message, answer)

    # Another of Veil's own pages (the popup) is refused too: enrolment is the options page's.
    popup = browser.context.new_page()
    try:
        popup.goto(browser.page_url("src/popup/popup.html"))
        popup.wait_for_selector("body[data-ready]")
        from_popup = json.loads(popup.evaluate(ASK_ALL, MESSAGES))
    finally:
        popup.close()
    for message, answer in from_popup.items():
        assert answer["error"]["code"] == "forbidden_sender", (message, answer)

    # The web page itself: no extension messaging, no options page, no companion.
    seen = form.evaluate(
        """async ([options, companion]) => {
            const tryFetch = (url, init) => fetch(url, init).then((r) => r.status, (e) => e.name);
            const body = new FormData();
            for (let i = 0; i < 3; i += 1) body.append('photo', new Blob(['x']), `p${i}.jpg`);
            return {
                messaging: typeof globalThis.chrome?.runtime?.sendMessage,
                options: await tryFetch(options),
                profiles: await tryFetch(`${companion}/v1/profiles`),
                enrol: await tryFetch(`${companion}/v1/enrol?name=me`, {method: 'POST', body}),
            };
        }""",
        [browser.page_url("src/options/options.html"), companion.url],
    )
    assert seen["messaging"] == "undefined", seen
    assert seen["options"] == "TypeError", seen  # not web-accessible
    assert seen["profiles"] == "TypeError" and seen["enrol"] == "TypeError", seen  # 403, no CORS

    # The options page itself is answered (the control for the refusals above).
    page = open_options(browser)
    try:
        answer = json.loads(page.evaluate(ASK_ALL, {"listProfiles": {}}))["listProfiles"]
        assert answer.get("profiles") == [], answer
    finally:
        page.close()
    assert profile_files(companion) == []
