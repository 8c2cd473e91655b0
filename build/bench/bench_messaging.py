"""Why photo bytes do not travel over extension messaging in Chromium.

Loads the unpacked extension in Chromium, adds an echo Port listener to its
service worker, and from an extension page measures base64 encode/decode and
a 25 MB round trip of base64 chunks over a runtime Port (the fallback
transport in src/content/transport.js). Prints the figures.

    .venv/bin/python build/bench/bench_messaging.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "browser"))
sys.path.insert(0, str(ROOT / "tests"))  # corpus.py, which harness imports

from harness import CHROMIUM, EXTENSION_DIR, chromium_args  # noqa: E402

MEASURE = """async () => {
  const out = {};
  for (const mb of [1, 4]) {
    const bytes = new Uint8Array(mb << 20);
    crypto.getRandomValues(bytes.subarray(0, 65536));
    const chunks = Math.ceil(25 / mb);
    let start = performance.now();
    let text = '';
    for (let i = 0; i < 25; i++) text = bytes.toBase64();
    out['Uint8Array.toBase64, ms per MB'] = (performance.now() - start) / 25 / mb;
    start = performance.now();
    for (let i = 0; i < 25; i++) Uint8Array.fromBase64(text);
    out['Uint8Array.fromBase64, ms per MB'] = (performance.now() - start) / 25 / mb;
    const port = chrome.runtime.connect({ name: 'bench-echo' });
    start = performance.now();
    await new Promise((resolve) => {
      let got = 0;
      port.onMessage.addListener(() => { if (++got === chunks) resolve(); });
      for (let i = 0; i < chunks; i++) port.postMessage({ kind: 'chunk', data: text });
    });
    out[`25 MB there and back in ${mb} MB base64 chunks, ms`] = performance.now() - start;
    port.disconnect();
  }
  return out;
}"""


def main() -> int:
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    context = playwright.chromium.launch_persistent_context(
        tempfile.mkdtemp(prefix="veil-bench-msg-"),
        executable_path=CHROMIUM,
        headless=True,
        args=chromium_args(EXTENSION_DIR),
    )
    try:
        time.sleep(1)
        worker = context.service_workers[0]
        worker.evaluate(
            """() => chrome.runtime.onConnect.addListener((port) => {
                if (port.name !== 'bench-echo') return;
                port.onMessage.addListener((m) => port.postMessage(m));
            })"""
        )
        page = context.new_page()
        page.goto(f"chrome-extension://{worker.url.split('/')[2]}/src/options/options.html")
        print(json.dumps(page.evaluate(MEASURE), indent=2))
    finally:
        context.close()
        playwright.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
