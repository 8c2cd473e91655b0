"""The same unpacked extension in Firefox ESR (WebDriver BiDi): pairing through
its own pages, then a photo picked in a file input reaches the site cloaked
(through the transfer frame), and its preview is stored for the popup."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from firefox_bidi import Firefox, submit_pairing_code
from harness import EXTENSION_DIR, Companion, assert_cloaked
from upload_site import UploadSite

pytestmark = [pytest.mark.browser, pytest.mark.faces]


async def test_firefox_file_input_gets_the_cloaked_photo(
    firefox_binary: str, tmp_path: Path, companion: Companion, site: UploadSite, photos: Path
) -> None:
    firefox = await Firefox(firefox_binary, tmp_path / "profile").start()
    try:
        installed = await firefox.send(
            "webExtension.install", {"extensionData": {"type": "path", "path": str(EXTENSION_DIR)}}
        )
        assert installed["extension"] == "veil@veil.invalid"
        # First run opens the pairing page; its origin is the extension's moz-extension:// base.
        pairing = await firefox.wait_for_context(
            r"^moz-extension://[^/]+/src/pairing/pairing\.html"
        )
        tab = pairing["context"]
        # BiDi may not navigate to extension pages; the page itself may.
        await firefox.wait_until(tab, "document.body.dataset.ready === 'true'")
        await firefox.value(tab, "location.assign('/src/options/options.html')")
        await firefox.wait_until(tab, "location.pathname.endsWith('options.html')")
        await firefox.wait_until(tab, "document.body.dataset.ready === 'true'")
        await firefox.value(
            tab,
            f"""document.getElementById('port').value = '{companion.port}';
                document.querySelector('#port-form button[type=submit]').click();""",
        )
        await firefox.wait_until(tab, "!document.getElementById('port-saved').hidden")
        await firefox.value(tab, "location.assign('/src/pairing/pairing.html')")
        await firefox.wait_until(tab, "location.pathname.endsWith('pairing.html')")
        await firefox.wait_until(tab, "document.body.dataset.ready === 'true'")
        code = await asyncio.to_thread(companion.pairing_code)
        result = await submit_pairing_code(firefox, tab, code)
        assert "Paired" in result, result

        # Debug timing marks on (content/timing.js): they tell which path the photo took.
        await firefox.value(tab, "chrome.storage.local.set({debug: {timings: true}}).then(() => 1)")
        form = await firefox.new_tab()
        await firefox.navigate(form, f"{site.url}/form")
        original = photos / "photos" / "Angelina_Jolie" / "img6.jpg"
        await firefox.set_files(form, "document.getElementById('single')", [original])
        [received] = await asyncio.to_thread(site.wait_for, "single", 180)
        marks = json.loads(
            await firefox.value(
                form,
                "JSON.stringify(performance.getEntriesByType('mark').map((m) => m.name))",
            )
        )
        assert "veil:frame:received" in marks, f"the photo did not go through the frame: {marks}"
        assert not any("port-fallback" in mark for mark in marks), marks
        assert received.name == original.name
        assert received.type == "image/jpeg"
        assert_cloaked(original.read_bytes(), received.data)
        seen = await firefox.value(form, "JSON.stringify(window.seen)")
        assert len(json.loads(seen)) == 1, f"the page saw more than the cloak: {seen}"
        # The transfer frame has no storage.session in Firefox: the background stores its
        # preview for the popup (read here from the extension's own page).
        previews = await firefox.wait_until(
            tab,
            """chrome.storage.session.get(null).then((all) => JSON.stringify(
                Object.values(all).filter(Array.isArray).flat()))
              .then((text) => text === '[]' ? '' : text)""",
        )
        [preview] = json.loads(previews)
        assert preview["name"] == original.name and preview["faces"] >= 1
        assert preview["before"].startswith("data:image/png;base64,")
    finally:
        await firefox.stop()
