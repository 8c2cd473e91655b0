"""'Protect my face' in Firefox ESR (WebDriver BiDi) with the extension and a real companion
(2 optimiser steps, so that an enrolment takes seconds, and its own config folder): the
options page enrols from real photos picked in its own file input (two of one person, a
large one stored on its side with EXIF orientation, which Firefox shrinks on an
OffscreenCanvas before sending, and one of a couple, where Veil asks which face is theirs);
it shows the progress, and a reloaded page follows the same job; then each strength's
previews (decoded images) and measured figures, the recommended strength preselected. Save
writes one 0600 profile and the list shows the person; an upload of them gets the personal
cloak and the popup says so; the strength can be changed; Forget (confirmed in the page's
dialog) deletes the file. And only the options page may ask the background about enrolment
in Firefox too, where senders differ (moz-extension URLs, frame ids, content-script
sandboxes): not Veil's content script (so not a page that compromised its renderer), not
the popup, not a web page. The Firefox fixtures (Veil installed and paired, here with this
module's companion) are those of test_firefox_extension.py."""

from __future__ import annotations

import asyncio
import io
import json
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from firefox_bidi import Firefox
from harness import VEIL, Companion, assert_cloaked, face_boxes
from PIL import Image, ImageOps
from test_chromium_enrolment import ASK_ALL, ENROL_PHOTOS, MESSAGES, PERSON
from test_firefox_extension import PAGE_READY, firefox, form_tab, still_paired_after
from upload_site import UploadSite

from veil.profiles import load_profile

pytestmark = [pytest.mark.browser, pytest.mark.faces, pytest.mark.asyncio(loop_scope="module")]

# Fixtures of test_firefox_extension.py, used here by name.
__all__ = ["firefox", "still_paired_after"]

EXTENSION_ID = "veil@veil.invalid"
ENROL_TIMEOUT = 180.0
ORIENTATION = 0x0112  # the EXIF tag
STATE = "document.getElementById('protect').dataset.state"


@pytest.fixture(scope="module")
def companion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Companion]:
    """This module's own companion (the firefox fixture pairs with it): enrolment in 2 steps,
    and its own config folder, so no other test ever sees the profile made here."""
    if not VEIL.exists():
        pytest.skip(f"{VEIL} missing: run scripts/install")
    running = Companion(tmp_path_factory.mktemp("veil-enrol-ff"), None, "--enrol-steps", "2")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def profile_files(companion: Companion) -> list[Path]:
    return sorted((companion.config_dir / "profiles").glob("*.npz"))


async def open_veil_page(browser: Firefox, ext: str, path: str) -> str:
    """One of Veil's pages (`path` from the extension's root) in a new tab, as the person opens
    it (BiDi may not navigate to extension pages; Veil's own page opens the tab), once set up."""
    before = {context["context"] for context in await browser.contexts()}
    await browser.value(
        ext, f"chrome.tabs.create({{url: chrome.runtime.getURL({json.dumps(path)})}}).then(() => 1)"
    )
    url = re.compile(r"^moz-extension://[^/]+/" + re.escape(path) + "$")
    deadline = time.monotonic() + 20
    while True:
        opened = [
            c["context"]
            for c in await browser.contexts()
            if c["context"] not in before and url.search(c["url"])
        ]
        if opened:
            break
        assert time.monotonic() < deadline, f"{path} did not open"
        await asyncio.sleep(0.2)
    tab = str(opened[0])
    await browser.wait_until(tab, "document.body?.dataset.ready !== undefined")
    return tab


async def open_options(browser: Firefox, ext: str) -> str:
    """The options page at "Protect my face", once it has listed who is enrolled."""
    tab = await open_veil_page(browser, ext, "src/options/options.html#protect")
    await browser.wait_until(tab, PAGE_READY)
    await browser.wait_until(tab, "document.getElementById('protect').dataset.profilesReady")
    return tab


async def text_of(browser: Firefox, tab: str, element_id: str) -> str:
    return str(await browser.value(tab, f"document.getElementById('{element_id}').innerText"))


async def is_shown(browser: Firefox, tab: str, selector: str) -> bool:
    """Rendered (not hidden, itself or by an ancestor)."""
    return bool(
        await browser.value(
            tab, f"document.querySelector({json.dumps(selector)})?.checkVisibility() === true"
        )
    )


async def click(browser: Firefox, tab: str, element_id: str) -> None:
    """A trusted click on an element, scrolled into view first as the person would."""
    element = f"document.getElementById('{element_id}')"
    await browser.value(tab, f"{element}.scrollIntoView({{block: 'center'}}), 1")
    await browser.click(tab, element)


async def watch_enrolment(
    browser: Firefox, tab: str, until: tuple[str, ...] = ("done",)
) -> list[tuple[str, float, bool]]:
    """Waits until the enrolment section is in one of the states `until`, recording (state,
    progress, progress bar shown) as they change; a failure on the way ends the wait with the
    page's message."""
    seen: list[tuple[str, float, bool]] = []
    deadline = time.monotonic() + ENROL_TIMEOUT
    while True:
        now = json.loads(
            await browser.value(
                tab,
                f"""JSON.stringify([{STATE},
                    Number(document.getElementById('enrol-progress').value),
                    document.getElementById('enrol-progress').checkVisibility()])""",
            )
        )
        if not seen or tuple(now) != seen[-1]:
            seen.append((str(now[0]), float(now[1]), bool(now[2])))
        if now[0] in until:
            return seen
        message = await text_of(browser, tab, "enrol-message")
        assert now[0] != "failed", f"enrolment failed: {message}; seen {seen}"
        assert time.monotonic() < deadline, f"still {now[0]!r} ({message!r}); seen {seen}"
        await asyncio.sleep(0.1)


async def wait_state(browser: Firefox, tab: str, state: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (now := await browser.value(tab, STATE)) != state:
        message = await text_of(browser, tab, "enrol-message")
        assert now != "failed", f"failed: {message}"
        assert time.monotonic() < deadline, f"still {now!r} ({message!r}), waiting for {state!r}"
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def sideways_large_photo(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A photo of the person as a phone writes it: 2600 px long (over the options page's
    2048, so Firefox shrinks it on an OffscreenCanvas before sending), its pixels stored on
    their side with EXIF Orientation 6. Shrunk without applying the orientation, its face is
    on its side and the companion finds none (checked here with the project's detector)."""
    with Image.open(photos / "photos" / PERSON / "img61.jpg") as source:
        upright = source.convert("RGB")
    scale = 2600 / max(upright.size)
    size = (round(upright.width * scale), round(upright.height * scale))
    stored = upright.resize(size, Image.Resampling.LANCZOS).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # rotate 90 degrees clockwise to show
    path = tmp_path_factory.mktemp("sideways") / "sideways.jpg"
    stored.save(path, "JPEG", quality=90, exif=exif.tobytes())
    assert face_boxes(path.read_bytes()) == [], "the stored pixels must not show an upright face"
    with Image.open(path) as written:
        shown = io.BytesIO()
        ImageOps.exif_transpose(written).save(shown, "JPEG")
    assert face_boxes(shown.getvalue()), "shown upright, the face must be found"
    return path


async def popup_text(browser: Firefox, ext: str, url: str) -> str:
    """The popup (in Veil's own tab) for the tab showing `url`, once it lists a recognition."""
    tab_id = await browser.value(
        ext,
        f"chrome.tabs.query({{}})"
        f".then((tabs) => tabs.find((t) => t.url === {json.dumps(url)})?.id)",
    )
    assert isinstance(tab_id, int), f"no tab for {url}"
    deadline = time.monotonic() + 30
    while True:
        popup = await open_veil_page(browser, ext, f"src/popup/popup.html?tab={tab_id}")
        text = str(await browser.value(popup, "document.body.innerText"))
        found = await browser.value(
            popup, "document.querySelectorAll('.preview .recognition').length"
        )
        await browser.send("browsingContext.close", {"context": popup})
        if found:
            return text
        assert time.monotonic() < deadline, text
        await asyncio.sleep(0.5)


async def test_firefox_options_page_enrols_saves_and_forgets(
    firefox: tuple[Firefox, str],
    companion: Companion,
    photos: Path,
    sideways_large_photo: Path,
    site: UploadSite,
) -> None:
    browser, ext = firefox
    tab = await open_options(browser, ext)
    assert await is_shown(browser, tab, "#no-profiles")
    assert "protects little" in await text_of(browser, tab, "default-cloak-notice")

    # Photos of one person, a large one on its side (EXIF), and one of a couple, through the
    # page's own file input (BiDi input.setFiles: trusted input and change events).
    folder = photos / "photos" / PERSON
    picked = [folder / name for name in ENROL_PHOTOS[:2]]
    picked += [sideways_large_photo, photos / "scenes" / "couple.jpg"]
    await browser.value(tab, "document.getElementById('enrol-name').value = 'me'")
    await browser.set_files(tab, "document.getElementById('enrol-photos')", picked)
    names = await browser.value(
        tab, "JSON.stringify([...document.getElementById('enrol-photos').files].map(f => f.name))"
    )
    assert json.loads(names) == [path.name for path in picked]
    started = time.monotonic()
    await click(browser, tab, "enrol-start")

    # Veil asks which face in the couple's photo is the person, with a thumbnail of each.
    await wait_state(browser, tab, "choose", ENROL_TIMEOUT)
    assert "couple.jpg" in await text_of(browser, tab, "enrol-choose-text")
    assert await browser.value(tab, "document.querySelectorAll('#enrol-faces button').length") == 2
    thumbnails = "[...document.querySelectorAll('#enrol-faces img')]"
    thumbnails += ".filter((i) => i.complete && i.naturalWidth > 0).length === 2"
    await browser.wait_until(tab, thumbnails, timeout=10)
    assert not await is_shown(browser, tab, "#enrol-progress")
    assert profile_files(companion) == [], "nothing is written before Save"
    await browser.value(tab, "document.querySelector('#enrol-faces button').scrollIntoView(), 1")
    await browser.click(tab, "document.querySelector(\"#enrol-faces button[data-face='0']\")")

    # Progress while the companion computes. The person may leave the page meanwhile: on
    # coming back (here a reload) it follows the same job (kept in storage.session) again,
    # also when the job finished meanwhile.
    before = await watch_enrolment(browser, tab, until=("running", "done"))
    assert before[-1][0] == "done" or before[-1][2], f"no progress bar while running: {before}"
    await browser.value(tab, "window.beforeReload = true; location.reload(), 1")
    await browser.wait_until(tab, f"!window.beforeReload && {PAGE_READY}")
    seen = await watch_enrolment(browser, tab)
    print(f"enrolment: {time.monotonic() - started:.1f} s; seen {before}, then after reload {seen}")
    running = [entry for entry in before + seen if entry[0] == "running"]
    assert running and all(shown for _, _, shown in running), (before, seen)
    shares = [share for state, share, _ in seen if state in ("running", "done")]
    assert shares == sorted(shares) and shares[-1] == 1.0, seen
    assert not await is_shown(browser, tab, "#enrol-progress")
    assert profile_files(companion) == [], "nothing is written before Save"

    # Each strength: its previews (feed size and face at 100%, without and with, all decoded)
    # and its measured figures; the recommended one is preselected.
    strengths = await browser.value(
        tab,
        """JSON.stringify([...document.querySelectorAll('#strength-picker .strength')]
            .map((card) => card.dataset.strength))""",
    )
    assert json.loads(strengths) == ["light", "medium", "strong"]
    loaded = "[...document.querySelectorAll('#strength-picker img')]"
    loaded += ".filter((i) => i.complete && i.naturalWidth > 0).length === 12"
    await browser.wait_until(tab, loaded, timeout=20)  # 3 x (feed, face) x (without, with)
    for strength in ("light", "medium", "strong"):
        card = f"#strength-picker .strength[data-strength={strength}]"
        description = str(
            await browser.value(tab, f"document.querySelector('{card} .description').innerText")
        )
        assert "%" in description and "SSIMULACRA2" in description, description
        sources = json.loads(
            await browser.value(
                tab, f"JSON.stringify([...document.querySelectorAll('{card} img')].map(i => i.src))"
            )
        )
        assert len(sources) == 4 and len(set(sources)) == 4, sources
    checked = await browser.value(
        tab,
        "JSON.stringify([...document.querySelectorAll('input[name=strength]:checked')]"
        ".map((radio) => radio.value))",
    )
    recommended = await browser.value(
        tab, "document.querySelector('#strength-picker .strength.recommended')?.dataset.strength"
    )
    assert recommended in ("light", "medium", "strong")
    assert json.loads(checked) == [recommended]
    assert await is_shown(browser, tab, "#enrol-save")

    # Save, with the preselected strength.
    await click(browser, tab, "enrol-save")
    await wait_state(browser, tab, "saved")
    await browser.wait_until(tab, "document.querySelectorAll('#profiles tbody tr').length === 1")
    row = await browser.value(
        tab,
        """(() => {
            const row = document.querySelector('#profiles tbody tr');
            return JSON.stringify({id: row.dataset.profileId,
                name: row.querySelector('.name').innerText,
                strength: row.querySelector('select.strength').value});
        })()""",
    )
    [path] = profile_files(companion)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(row) == {"id": path.stem, "name": "me", "strength": recommended}
    assert await is_shown(browser, tab, "#profiles")
    assert not await is_shown(browser, tab, "#no-profiles")

    # An upload of the person: the popup says their face got the personal cloak.
    form = await form_tab(browser, site)
    original = folder / "img59.jpg"
    await browser.set_files(form, "document.getElementById('single')", [original])
    [received] = await asyncio.to_thread(site.wait_for, "single", 120)
    assert_cloaked(original.read_bytes(), received.data)
    text = await popup_text(browser, ext, f"{site.url}/form")
    assert f"Recognised as me: personal cloak, {recommended}" in text, text
    assert "protects little" in text
    await browser.send("browsingContext.close", {"context": form})

    # Another strength, chosen in the list.
    other = "strong" if recommended != "strong" else "light"
    await browser.value(
        tab,
        f"""(() => {{
            const select = document.querySelector('#profiles select.strength');
            select.value = '{other}';
            select.dispatchEvent(new Event('change'));
            return 1;
        }})()""",
    )
    await browser.wait_until(
        tab, f"document.getElementById('enrol-message').innerText.includes('strength {other}')"
    )
    assert load_profile(path).strength.value == other

    # Forget, confirmed in the page's own dialog: the file is gone and so is the row.
    await browser.subscribe("browsingContext.userPromptOpened")
    browser.events.clear()
    # Clicked from a timer: confirm() blocks the page's script until the dialog is answered.
    await browser.value(
        tab, "setTimeout(() => document.querySelector('#profiles button.forget').click()), 1"
    )
    prompt = await browser.wait_for_event("browsingContext.userPromptOpened")
    assert prompt["type"] == "confirm" and "Forget me?" in prompt["message"], prompt
    await browser.send("browsingContext.handleUserPrompt", {"context": tab, "accept": True})
    await browser.wait_until(tab, "!document.getElementById('no-profiles').hidden")
    assert profile_files(companion) == [], "Forget deletes the file"
    assert not path.exists()
    assert "Forgot me" in await text_of(browser, tab, "enrol-message")
    await browser.send("browsingContext.close", {"context": tab})


def refused_everything(asker: str, answers: dict[str, Any]) -> None:
    assert set(answers) == set(MESSAGES)
    for message, answer in answers.items():
        error = answer.get("error") if isinstance(answer, dict) else None
        assert isinstance(error, dict), f"{asker} was answered {message}: {answer}"
        assert error["code"] == "forbidden_sender", (asker, message, answer)


async def test_firefox_only_the_options_page_may_ask_about_enrolment(
    firefox: tuple[Firefox, str], companion: Companion, site: UploadSite
) -> None:
    browser, ext = firefox
    form = await form_tab(browser, site)
    call = f"({ASK_ALL})({json.dumps(MESSAGES)})"

    # Veil's content script in a web page, as a page that compromised its renderer would use it.
    await browser.wait_until(form, "document.readyState === 'complete'")
    from_content_script = await browser.content_script_value(form, EXTENSION_ID, call)
    refused_everything("the content script", json.loads(from_content_script))

    # Another of Veil's own pages (the popup, in a tab) is refused too.
    popup = await open_veil_page(browser, ext, "src/popup/popup.html")
    refused_everything("the popup", json.loads(await browser.value(popup, call)))
    await browser.send("browsingContext.close", {"context": popup})

    # The web page itself: no extension messaging, no options page, no companion.
    options_url = await browser.value(ext, "chrome.runtime.getURL('src/options/options.html')")
    seen = json.loads(
        await browser.value(
            form,
            f"""(async ([options, companion]) => {{
                const tryFetch = (url, init) =>
                    fetch(url, init).then((r) => r.status, (e) => e.name);
                const body = new FormData();
                for (let i = 0; i < 3; i += 1) body.append('photo', new Blob(['x']), `p${{i}}.jpg`);
                return JSON.stringify({{
                    chrome: typeof globalThis.chrome?.runtime?.sendMessage,
                    browser: typeof globalThis.browser?.runtime?.sendMessage,
                    options: await tryFetch(options),
                    profiles: await tryFetch(`${{companion}}/v1/profiles`),
                    enrol: await tryFetch(`${{companion}}/v1/enrol?name=me`,
                        {{method: 'POST', body}}),
                }});
            }})({json.dumps([options_url, companion.url])})""",
        )
    )
    assert seen["chrome"] == "undefined" and seen["browser"] == "undefined", seen
    assert seen["options"] == "TypeError", seen  # not web-accessible
    assert seen["profiles"] == "TypeError" and seen["enrol"] == "TypeError", seen  # 403, no CORS
    await browser.send("browsingContext.close", {"context": form})

    # The options page itself is answered (the control for the refusals above).
    tab = await open_options(browser, ext)
    answer = json.loads(await browser.value(tab, f"({ASK_ALL})({{listProfiles: {{}}}})"))
    assert answer["listProfiles"].get("profiles") == [], answer
    await browser.send("browsingContext.close", {"context": tab})
    assert profile_files(companion) == []
