"""Measure what the extension adds on top of the companion's own cloaking time.

For each photo size, with the real companion (`veil serve`) and a browser with
the unpacked extension, it gives a real upload page a photo and times from the
pick to the moment the page's own `change` listener receives the cloaked file;
then it subtracts the companion's `X-Veil-Seconds`. As a baseline it also POSTs
the same photo straight to the companion (no browser): what remains after that
is the extension's own cost (getting the photo to the companion and the cloak
back, File rebuild, events).

- Chromium (Playwright): clicks the file input and picks the photo in the file
  chooser a second later, as a person does (the click warms the transfer path).
- Firefox ESR (WebDriver BiDi, the tests' driver): a trusted click on the input
  (the session ignores file pickers), then `input.setFiles` a second later
  (trusted input/change events).

    .venv/bin/python build/bench/bench_extension.py [--browser chromium|firefox|both] [--runs 2]
        [--marks] [--extension DIR] [--faces DIR]

`--marks` switches on the extension's debug timing marks (chrome.storage.local
`debug.timings`, see extension/src/content/timing.js) and prints, per stage of
the photo's trip, the median time since the pick.

Test photos are made from a real photo in the shared faces folder, upscaled and
re-encoded to about 5 MB and 25 MB JPEG in a temporary folder (never the repo).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "browser"))
sys.path.insert(0, str(ROOT / "tests"))  # corpus.py, which harness imports

from chromium_driver import ExtensionBrowser  # noqa: E402
from harness import CHROMIUM, EXTENSION_DIR, Companion, chromium_args, faces_dir  # noqa: E402
from upload_site import UploadSite  # noqa: E402

# Every veil:* mark on the page's timeline, as [name, epoch ms].
READ_MARKS = """() => performance.getEntriesByType('mark')
    .filter((m) => m.name.startsWith('veil:'))
    .map((m) => [m.name.slice(5), performance.timeOrigin + m.startTime])"""


@dataclass
class Run:
    label: str
    size: int
    elapsed: float  # pick -> the page's change listener, seconds
    engine: float  # X-Veil-Seconds of the extension's request
    direct_wall: float  # the same photo POSTed straight to the companion
    direct_engine: float
    marks: dict[str, float] = field(default_factory=dict)  # stage -> ms since the pick

    @property
    def added(self) -> float:
        return self.elapsed - self.engine

    @property
    def overhead(self) -> float:
        return self.direct_wall - self.direct_engine

    @property
    def own(self) -> float:
        """The extension's own added latency: added minus the plain HTTP overhead."""
        return self.added - self.overhead


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


def relative_marks(marks: list[list[Any]], start_ms: float, got_ms: float) -> dict[str, float]:
    out = {str(name): float(epoch) - start_ms for name, epoch in marks}
    out["page-change-listener"] = got_ms - start_ms
    return out


def engine_seconds(previews: list[dict[str, Any]], name: str, start_ms: float) -> float | None:
    for preview in previews:
        if preview.get("name") == name and preview.get("at", 0) >= start_ms:
            return float(preview["seconds"])
    return None


def print_row(browser: str, run: int, item: Run) -> None:
    print(
        f"{browser:>8} {item.label:>6} {item.size:>10} {run:>3} {item.elapsed:>13.3f} "
        f"{item.engine:>14.3f} {item.added:>8.3f} | {item.direct_wall:>13.3f} "
        f"{item.direct_engine:>14.3f} {item.overhead:>15.3f}",
        flush=True,
    )


def bench_chromium(
    args: argparse.Namespace,
    photos: dict[str, Path],
    companion: Companion,
    site: UploadSite,
    baseline: dict[str, list[float]],
) -> list[Run]:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="veil-bench-chromium-"))
    playwright = sync_playwright().start()
    context = playwright.chromium.launch_persistent_context(
        str(work / "profile"),
        executable_path=CHROMIUM,
        headless=True,
        args=chromium_args(args.extension.resolve()),
    )
    runs: list[Run] = []
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
        if args.marks:
            browser.worker().evaluate(
                "async () => chrome.storage.local.set({debug: {timings: true}})"
            )
        page = context.new_page()

        def pick(photo: Path) -> tuple[float, float]:
            """Epoch ms of the pick and of the page's change listener."""
            site.clear()
            page.goto(f"{site.url}/form")
            # As a person does it: click the input, pick the file in the chooser.
            with page.expect_file_chooser() as chooser:
                page.click("#single")
            time.sleep(1.0)  # the time a person takes to pick a file
            start_ms = time.time() * 1000
            chooser.value.set_files(str(photo))
            page.wait_for_function("window.seen.some((s) => s.slot === 'single')", timeout=600_000)
            got_ms = float(page.evaluate("window.seenAt"))
            site.wait_for("single", 120)  # the page's own upload, before the next page load
            return start_ms, got_ms

        for label, photo in photos.items():
            for run in range(1, args.runs + 1):
                start_ms, got_ms = pick(photo)
                marks = page.evaluate(READ_MARKS) if args.marks else []
                # The newest preview is this photo's (built after the page got its file).
                deadline = time.monotonic() + 60
                while True:
                    previews = browser.worker().evaluate(
                        "async () => Object.values(await chrome.storage.session.get(null))"
                        ".filter(Array.isArray).flat()"
                    )
                    engine = engine_seconds(previews, photo.name, start_ms)
                    if engine is not None:
                        break
                    assert time.monotonic() < deadline, "no preview stored"
                    time.sleep(0.3)
                wall, engine_direct = direct(companion, token, photo)
                item = Run(
                    label,
                    photo.stat().st_size,
                    (got_ms - start_ms) / 1000,
                    engine,
                    wall,
                    engine_direct,
                    relative_marks(marks, start_ms, got_ms),
                )
                runs.append(item)
                print_row("chromium", run, item)
        # The same picks with Veil off for the site: the browser's and the driver's own latency.
        set_site = """async (on) => {
            const {settings} = await chrome.storage.local.get('settings');
            await chrome.storage.local.set({settings: {...settings, sites: {'127.0.0.1': on}}});
        }"""
        browser.worker().evaluate(set_site, False)
        for label, photo in photos.items():
            for _ in range(args.runs):
                start_ms, got_ms = pick(photo)
                baseline.setdefault(label, []).append((got_ms - start_ms) / 1000)
        browser.worker().evaluate(set_site, True)
    finally:
        context.close()
        playwright.stop()
        shutil.rmtree(work, ignore_errors=True)
    return runs


async def bench_firefox(
    args: argparse.Namespace,
    photos: dict[str, Path],
    companion: Companion,
    site: UploadSite,
    baseline: dict[str, list[float]],
) -> list[Run]:
    from firefox_bidi import Firefox, submit_pairing_code

    binary = shutil.which("firefox-esr")
    if binary is None:
        print("firefox-esr is not installed: skipping Firefox", file=sys.stderr)
        return []
    work = Path(tempfile.mkdtemp(prefix="veil-bench-firefox-"))
    firefox = await Firefox(binary, work / "profile").start()
    runs: list[Run] = []
    try:
        await firefox.send(
            "webExtension.install",
            {"extensionData": {"type": "path", "path": str(args.extension.resolve())}},
        )
        # The first-run pairing page is an extension page: settings, pairing and (later) the
        # preview storage are reached from it, as in tests/browser/test_firefox_extension.py.
        pairing = await firefox.wait_for_context(
            r"^moz-extension://[^/]+/src/pairing/pairing\.html"
        )
        tab = pairing["context"]
        await firefox.wait_until(tab, "document.body.dataset.ready === 'true'")
        debug = "{timings: true}" if args.marks else "{}"
        await firefox.value(
            tab,
            f"""(async () => {{
                const stored = (await chrome.storage.local.get('settings')).settings ?? {{}};
                await chrome.storage.local.set({{
                  settings: {{...stored, port: {companion.port}}}, debug: {debug} }});
                return true;
            }})()""",
        )
        await firefox.value(tab, "location.reload()")
        await firefox.wait_until(tab, "document.body.dataset.ready === 'true'")
        code = await asyncio.to_thread(companion.pairing_code)
        result = await submit_pairing_code(firefox, tab, code)
        assert "Paired" in result, result
        token = await firefox.value(tab, "chrome.storage.local.get('token').then((s) => s.token)")
        form = await firefox.new_tab()

        async def pick(photo: Path) -> tuple[float, float]:
            """Epoch ms of the pick and of the page's change listener."""
            site.clear()
            await firefox.navigate(form, f"{site.url}/form")
            # As a person does it: click the input (BiDi opens no picker), pick a second later.
            await firefox.click(form, "document.getElementById('single')")
            await asyncio.sleep(1.0)
            start_ms = time.time() * 1000
            await firefox.set_files(form, "document.getElementById('single')", [photo])
            await firefox.wait_until(
                form, "window.seen.some((s) => s.slot === 'single')", timeout=600
            )
            got_ms = float(await firefox.value(form, "window.seenAt"))
            await asyncio.to_thread(site.wait_for, "single", 120)
            return start_ms, got_ms

        for label, photo in photos.items():
            for run in range(1, args.runs + 1):
                start_ms, got_ms = await pick(photo)
                marks: list[list[Any]] = []
                if args.marks:
                    marks = json.loads(
                        await firefox.value(form, f"JSON.stringify(({READ_MARKS})())")
                    )
                deadline = time.monotonic() + 60
                while True:
                    previews = json.loads(
                        await firefox.value(
                            tab,
                            "chrome.storage.session.get(null).then((all) => JSON.stringify("
                            "Object.values(all).filter(Array.isArray).flat()))",
                        )
                    )
                    engine = engine_seconds(previews, photo.name, start_ms)
                    if engine is not None:
                        break
                    assert time.monotonic() < deadline, "no preview stored"
                    await asyncio.sleep(0.3)
                wall, engine_direct = await asyncio.to_thread(direct, companion, token, photo)
                item = Run(
                    label,
                    photo.stat().st_size,
                    (got_ms - start_ms) / 1000,
                    engine,
                    wall,
                    engine_direct,
                    relative_marks(marks, start_ms, got_ms),
                )
                runs.append(item)
                print_row("firefox", run, item)
        set_site = """(async () => {
            const {settings} = await chrome.storage.local.get('settings');
            await chrome.storage.local.set({settings: {...settings, sites: {'127.0.0.1': %s}}});
            return true;
        })()"""
        await firefox.value(tab, set_site % "false")
        for label, photo in photos.items():
            for _ in range(args.runs):
                start_ms, got_ms = await pick(photo)
                baseline.setdefault(label, []).append((got_ms - start_ms) / 1000)
        await firefox.value(tab, set_site % "true")
    finally:
        await firefox.stop()
        shutil.rmtree(work, ignore_errors=True)
    return runs


def summarise(
    browser: str, runs: list[Run], baseline: dict[str, list[float]], marks: bool
) -> dict[str, list[float]]:
    by_label: dict[str, list[Run]] = {}
    for item in runs:
        by_label.setdefault(item.label, []).append(item)
    summary: dict[str, list[float]] = {}
    for label, items in by_label.items():
        own = [item.own for item in items]
        summary[label] = [round(v, 4) for v in own]
        print(
            f"{browser} {label}: extension's own added latency (added - direct HTTP overhead), "
            f"median of {len(own)}: {statistics.median(own) * 1000:.0f} ms "
            f"(min {min(own) * 1000:.0f}, max {max(own) * 1000:.0f})"
        )
        if baseline.get(label):
            plain = statistics.median(baseline[label]) * 1000
            print(
                f"  the same pick with Veil off for the site reaches the page in {plain:.0f} ms "
                f"(median of {len(baseline[label])}; the driver's and browser's own latency, "
                f"included above): without it, {statistics.median(own) * 1000 - plain:.0f} ms"
            )
        if not marks:
            continue
        stages: dict[str, list[float]] = {}
        for item in items:
            for name, ms in item.marks.items():
                stages.setdefault(name, []).append(ms)
        ordered = sorted(stages.items(), key=lambda pair: statistics.median(pair[1]))
        previous = 0.0
        print(f"  {'stage':<24} {'ms since pick':>13} {'step ms':>8}  (medians, {len(items)} runs)")
        for name, values in ordered:
            at = statistics.median(values)
            print(f"  {name:<24} {at:>13.1f} {at - previous:>8.1f}")
            previous = at
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--faces", type=Path, default=faces_dir())
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--browser", choices=["chromium", "firefox", "both"], default="chromium")
    parser.add_argument("--marks", action="store_true", help="print the debug timing marks")
    parser.add_argument(
        "--extension",
        type=Path,
        default=EXTENSION_DIR,
        help="the unpacked extension to load (e.g. an older checkout, to compare)",
    )
    args = parser.parse_args()
    source = args.faces / "photos" / "Scarlett_Johansson" / "img49.jpg"
    if not source.is_file():
        print(f"face photos not found at {args.faces}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="veil-bench-ext-"))
    photos = {
        "5 MB": make_photo(source, work / "photo-5mb.jpg", 0.75, 3),
        "25 MB": make_photo(source, work / "photo-25mb.jpg", 1.5, 6),
    }
    companion = Companion(work / "config").start()
    site = UploadSite(work).start()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(
        f"{'browser':>8} {'photo':>6} {'bytes':>10} {'run':>3} {'page got it s':>13} "
        f"{'X-Veil-Seconds':>14} {'added s':>8} | {'direct HTTP s':>13} {'X-Veil-Seconds':>14} "
        f"{'HTTP overhead s':>15}"
    )
    results: dict[str, dict[str, list[float]]] = {}
    try:
        chosen = ["chromium", "firefox"] if args.browser == "both" else [args.browser]
        baselines: dict[str, dict[str, list[float]]] = {name: {} for name in chosen}
        runs = {
            name: (
                bench_chromium(args, photos, companion, site, baselines[name])
                if name == "chromium"
                else asyncio.run(bench_firefox(args, photos, companion, site, baselines[name]))
            )
            for name in chosen
        }
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        print()
        for name, items in runs.items():
            if items:
                results[name] = summarise(name, items, baselines[name], args.marks)
        print(json.dumps(results))
    finally:
        site.stop()
        companion.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
