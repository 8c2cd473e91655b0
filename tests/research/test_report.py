"""The published protection figures are what the committed benchmark JSON says.

docs/protection.md and the README's modes table are rendered from docs/data/*.json by
`veil-research report`; this renders them again and compares, so a hand edit or a new run
without a new report fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

from veil_research import report

REPO = Path(__file__).resolve().parents[2]


def test_protection_doc_is_rendered_from_the_committed_json() -> None:
    sources = report.default_inputs()
    assert sources, "docs/data/ holds at least one eval run"
    expected = report.render_report(report.load_runs(sources), sources)
    assert (REPO / "docs" / "protection.md").read_text() == expected, (
        "docs/protection.md differs from docs/data: run .venv/bin/veil-research report"
    )


def test_readme_modes_table_is_rendered_from_the_committed_json() -> None:
    runs = report.load_runs(report.default_inputs())
    readme = (REPO / "README.md").read_text()
    assert report.replace_table(readme, report.modes_table(runs)) == readme, (
        "README's modes table differs from docs/data: run .venv/bin/veil-research report"
    )
    assert "| **mid** (default) |" in readme


def test_modes_table_reads_each_column_from_the_run() -> None:
    (run,) = report.load_runs(report.default_inputs()[:1])
    table = report.modes_table([run])
    mid = next(line for line in table.splitlines() if "**mid**" in line)
    mode_row = next(m for m in run.modes if m.mode == "mid")
    held_out = [r for r in run.ensemble if r.mode == "mid" and r.reencode == "none"]
    unseen = [r for r in held_out if r.attacker not in mode_row.surrogates]
    lowest = min(r.scores["centroid"] for r in unseen)
    assert f"| {lowest:.2f}" in mid


def test_modes_table_shows_each_modes_ssimulacra2_from_its_largest_run(tmp_path: Path) -> None:
    small = {"modes": ["mid"], "rows": [_row("a", mid=(70.0, 60.0))]}
    large = {
        "modes": ["mid", "high"],
        "rows": [
            _row("a", mid=(80.0, 70.0), high=(60, 50), jpeg85=(91.0, 89.0)),
            _row("b", mid=(90.0, 74.0), jpeg85=(93.0, 87.0)),
        ],
    }
    paths = []
    for name, payload in (("small", small), ("large", large)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(payload))
    seen = report.load_visibility(paths)
    assert seen["mid"] == report.Visibility(2, (85.0, 80.0), (72.0, 70.0))
    assert seen["high"].photos == 1
    (run,) = report.load_runs(report.default_inputs()[:1])
    mid = next(line for line in report.modes_table([run], seen).splitlines() if "**mid**" in line)
    assert "| 85.0 (80.0) | 72.0 (70.0) |" in mid and "; 2 photos |" in mid
    # The no-cloak row: the site's own JPEG beside what the attackers miss with no cloak.
    table = report.modes_table([run], seen)
    none = next(line for line in table.splitlines() if line.startswith("| no cloak"))
    assert "| 92.0 (91.0) | 88.0 (87.0) |" in none
    mean = sum(s["logreg"] for s in run.baseline.values()) / len(run.baseline)
    assert f"/ {mean:.2f} | – |" in none


def _row(photo: str, **modes: tuple[float, float]) -> dict[str, object]:
    row: dict[str, object] = {"photo": photo}
    for mode, (display, face) in modes.items():
        row[mode] = {"display": {"ssimulacra2": display}, "face": {"ssimulacra2": face}}
    return row
