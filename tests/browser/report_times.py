"""Prints the table of upload paths x browsers with the time from the pick to the upload
server receiving the file, from tests/artifacts/pick-to-upload.jsonl (written by the browser
tests; delete it before a run to get that run's figures only).

    .venv/bin/python tests/browser/report_times.py
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # as in harness.py


def main() -> None:
    times: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for line in (ARTIFACTS / "pick-to-upload.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        times[record["path"]][record["browser"]].append(float(record["seconds"]))
    browsers = ["chromium", "firefox"]
    print("| path | " + " | ".join(browsers) + " |")
    print("|---|" + "---|" * len(browsers))
    for path, by_browser in times.items():
        cells = [
            ", ".join(f"{s:.1f} s" for s in by_browser[b]) if by_browser.get(b) else "—"
            for b in browsers
        ]
        print(f"| {path} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
