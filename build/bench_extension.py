"""Measure what the extension adds on top of the companion's own cloaking time.

For each photo size, with the real companion (`veil serve`) and Chromium with
the unpacked extension, it clicks the file input of a real upload page, picks
the photo in the file chooser after a second, and times from the pick to the
moment the page's own `change` listener receives the cloaked file; then it
subtracts the companion's `X-Veil-Seconds`. As a baseline it also POSTs the same photo
straight to the companion (no browser): what remains after that is the
extension's own cost (port transfer in base64 chunks, worker fetch, File
rebuild, events).

    .venv/bin/python build/bench_extension.py [--faces DIR] [--runs 2]

Test photos are made from a real photo in the shared faces folder, upscaled and
re-encoded to about 5 MB and 25 MB JPEG in a temporary folder (never the repo).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from chromium_driver import ExtensionBrowser  # noqa: E402
from harness import CHROMIUM, EXTENSION_DIR, Companion, chromium_args, faces_dir  # noqa: E402
from upload_site import UploadSite  # noqa: E402


def make_photo(source: Path, target: Path, scale: float, grain: int) -> Path:
    """A JPEG of about the wanted size from a real photo: upscaled, fine grain, q=98 4:4:4."""
    with Image.open(source) as image:
        rgb = image.convert("RGB")
        size = (round(rgb.width * scale), round(rgb.height * scale))
        pixels = np.asarray(rgb.resize(size, Image.Resampling.BICUBIC)).astype(np.int16)
    noise = np.random.default_rng(7).integers(-grain, grain + 1, pixels.shape, dtype=np.int16)
    Image.fromarray((pixels + noise).clip(0, 255).astype(np.uint8)).save(
        target, format="JPEG", quality=98, subsampling=0
    )
    return target


def direct(companion: Companion, token: str, photo: Path) -> tuple[float, float]:
    """Wall seconds and X-Veil-Seconds of a POST straight to the companion."""
    data = photo.read_bytes()
    request = urllib.request.Request(
        f"{companion.url}/v1/cloak?mode=mid",
        data=data,
        method="POST",
        headers={"Content-Type": "image/jpeg", "Authorization": f"Bearer {token}"},
    )
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        response.read()
        seconds = float(response.headers["X-Veil-Seconds"])
    return time.perf_counter() - start, seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--faces", type=Path, default=faces_dir())
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    source = args.faces / "photos" / "Scarlett_Johansson" / "img49.jpg"
    if not source.is_file():
        print(f"face photos not found at {args.faces}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="veil-bench-ext-"))
    photos = {
        "5 MB": make_photo(source, work / "photo-5mb.jpg", 0.75, 3),
        "25 MB": make_photo(source, work / "photo-25mb.jpg", 1.5, 6),
    }
    companion = Companion(work / "config").start()
    site = UploadSite(work).start()
    playwright = sync_playwright().start()
    context = playwright.chromium.launch_persistent_context(
        str(work / "profile"),
        executable_path=CHROMIUM,
        headless=True,
        args=chromium_args(EXTENSION_DIR),
    )
    try:
        worker = (
            context.service_workers[0]
            if context.service_workers
            else context.wait_for_event("serviceworker")
        )
        browser = ExtensionBrowser(context, worker.url.split("/")[2])
        browser.set_port(companion.port)
        browser.pair(companion).close()
        token = browser.worker().evaluate(
            "async () => (await chrome.storage.local.get('token')).token"
        )
        page = context.new_page()
        print(
            f"{'photo':>6} {'bytes':>10} {'run':>3} {'page got it s':>13} {'X-Veil-Seconds':>14} "
            f"{'added s':>8} | {'direct HTTP s':>13} {'X-Veil-Seconds':>14} {'HTTP overhead s':>15}"
        )
        summary: dict[str, list[float]] = {}
        for label, photo in photos.items():
            for run in range(1, args.runs + 1):
                site.clear()
                page.goto(f"{site.url}/form")
                # As a person does it: click the input, pick the file in the chooser.
                with page.expect_file_chooser() as chooser:
                    page.click("#single")
                time.sleep(1.0)  # the time a person takes to pick a file
                start_ms = time.time() * 1000
                chooser.value.set_files(str(photo))
                page.wait_for_function(
                    "window.seen.some((s) => s.slot === 'single')", timeout=600_000
                )
                got_ms = page.evaluate("window.seenAt")
                elapsed = (got_ms - start_ms) / 1000
                previews = browser.worker().evaluate(
                    "async () => Object.values(await chrome.storage.session.get(null)).flat()"
                )
                # The newest preview is this photo's; wait briefly for it to be stored.
                deadline = time.monotonic() + 60
                while not any(p["name"] == photo.name and p["at"] >= start_ms for p in previews):
                    assert time.monotonic() < deadline, "no preview stored"
                    time.sleep(0.3)
                    previews = browser.worker().evaluate(
                        "async () => Object.values(await chrome.storage.session.get(null)).flat()"
                    )
                engine = next(
                    p for p in previews if p["name"] == photo.name and p["at"] >= start_ms
                )["seconds"]
                wall, engine_direct = direct(companion, token, photo)
                added = elapsed - engine
                summary.setdefault(label, []).append(added - (wall - engine_direct))
                size = photo.stat().st_size
                overhead = wall - engine_direct
                print(
                    f"{label:>6} {size:>10} {run:>3} {elapsed:>13.3f} {engine:>14.3f} {added:>8.3f}"
                    f" | {wall:>13.3f} {engine_direct:>14.3f} {overhead:>15.3f}"
                )
        print()
        for label, values in summary.items():
            print(
                f"{label}: extension's own added latency (added - direct HTTP overhead), median of "
                f"{len(values)}: {statistics.median(values) * 1000:.0f} ms"
            )
        print(json.dumps({k: [round(v, 4) for v in vs] for k, vs in summary.items()}))
    finally:
        context.close()
        playwright.stop()
        site.stop()
        companion.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
