"""The personal cloak's published figures are what the committed runs say.

The README's strengths table and `companion/veil/data/personal-strengths.json` (what
`veil enrol` and the options page show a person choosing a strength) are rendered by
`veil-research personal-report` from docs/data/personal/*.json and
docs/visibility-data/vis-personal-*.json; this renders them again and compares.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from veil import strengths
from veil.personal import PERSONAL_ALGORITHM_VERSION, Strength
from veil_research import personal_report

REPO = Path(__file__).resolve().parents[2]
MADE = {"personal_algorithm": PERSONAL_ALGORITHM_VERSION}


def test_readme_strengths_table_is_rendered_from_the_committed_runs() -> None:
    readme = (REPO / "README.md").read_text()
    table = personal_report.strengths_table()
    assert personal_report.replace_table(readme, table) == readme, (
        "README's strengths table differs from docs/data: run veil-research personal-report"
    )
    # Exactly one row is marked: the recommended strength, or the preselected strongest.
    assert table.count("(recommended)") + table.count("(preselected; below the target)") == 1


def test_product_figures_are_rendered_from_the_committed_runs() -> None:
    shipped = personal_report.FIGURES.read_text()
    assert shipped == personal_report.render_figures_json(), (
        "companion/veil/data/personal-strengths.json differs: run veil-research personal-report"
    )
    rows = json.loads(shipped)["strengths"]
    assert set(rows) == {s.value for s in Strength}


def test_the_product_recommends_the_least_visible_strength_that_reaches_the_target() -> None:
    strengths.strength_figures.cache_clear()
    rows = strengths.strength_figures()["strengths"]
    chosen = strengths.recommended_strength()
    reaching = [s for s in Strength if rows[s.value]["protection_worst"] >= 0.60]
    assert chosen == (reaching[0] if reaching else Strength.STRONG)
    for strength in Strength:  # every line a person reads carries the measured figures
        line = strengths.describe(strength)
        assert f"{rows[strength.value]['protection_centroid']:.0%}" in line
        assert strengths.reaches_target(strength) == (
            rows[strength.value]["protection_worst"] >= strengths.TARGET_PROTECTION
        )
    table = strengths.strength_table()  # what `veil enrol` prints before it asks
    if not strengths.reaches_target(chosen):
        assert "no strength reaches the target" in table
    else:
        assert "no strength reaches the target" not in table


def _run(path: Path, attacker: str, rows: list[tuple[str, str, float]], people: int = 24) -> Path:
    results = [
        {"strength": s, "attacker": attacker, "reencode": r, "scores": {"centroid": v, "logreg": v}}
        for s, r, v in rows
    ]
    path.write_text(json.dumps({**MADE, "identities": 24, "protected": people, "results": results}))
    return path


def test_a_later_run_adds_a_condition_without_replacing_the_others(tmp_path: Path) -> None:
    """A run with only the 0.75 downscale completes the runs before it: its rows fill that
    condition, the others keep theirs; the condition is shown only once every attacker of
    the strength has it (a mean over fewer recognisers would read as the same figure)."""
    runs = [
        _run(tmp_path / "a-24.json", "a", [("strong", "none", 0.8), ("strong", "jpeg75", 0.7)]),
        _run(tmp_path / "b-24.json", "b", [("strong", "none", 0.6), ("strong", "jpeg75", 0.5)]),
        _run(tmp_path / "a-24.down.json", "a", [("strong", "down0.75", 0.4)]),
    ]
    strong = personal_report.protection_rows(runs)["strong"]
    assert strong["none"]["centroid"] == 0.7 and strong["jpeg75"]["centroid"] == 0.6
    assert strong["down0.75_attackers"] == ["a"] and strong["attackers"] == ["a", "b"]
    assert personal_report._complete(strong, "down0.75") is None  # b was never downscaled
    runs.append(_run(tmp_path / "b-24.down.json", "b", [("strong", "down0.75", 0.2)]))
    strong = personal_report.protection_rows(runs)["strong"]
    both = personal_report._complete(strong, "down0.75")
    assert both is not None and abs(both["centroid"] - 0.3) < 1e-9
    # A smaller run (8 people) never replaces the 24-people figure of the same condition.
    runs.append(_run(tmp_path / "a-8.json", "a", [("strong", "none", 0.1)], people=8))
    assert personal_report.protection_rows(runs)["strong"]["none"]["centroid"] == 0.7


def test_visibility_rows_report_flip_mean_and_worst(tmp_path: Path) -> None:
    def row(flip_display: float, flip_face: float) -> dict[str, object]:
        return {
            "personal-strong": {
                "display": {"ssimulacra2": 60.0, "flip": flip_display},
                "face": {"ssimulacra2": 40.0, "flip": flip_face},
            }
        }

    path = tmp_path / "vis-personal-test.json"
    path.write_text(json.dumps({**MADE, "rows": [row(0.02, 0.05), row(0.04, 0.07)]}))
    seen = personal_report.visibility_rows([path])["personal-strong"]
    # FLIP is an error: the worst photo is the largest one.
    assert seen["flip_display"] == pytest.approx((0.03, 0.04))
    assert seen["flip_face"] == pytest.approx((0.06, 0.07))
    assert seen["display"] == (60.0, 60.0)


def test_white_box_rows_average_the_attackers_of_the_largest_run(tmp_path: Path) -> None:
    def run(name: str, protected: int, scores: list[float]) -> Path:
        rows = [
            {"strength": "strong", "attacker": f"m{k}", "reencode": "none", "white_box": True,
             "scores": {"centroid": v, "logreg": v / 2}}
            for k, v in enumerate(scores)
        ]  # fmt: skip
        rows.append(  # a leave-one-out row in the same file is not white-box
            {
                "strength": "strong",
                "attacker": "x",
                "reencode": "none",
                "scores": {"centroid": 0.0, "logreg": 0.0},
            }
        )
        path = tmp_path / name
        payload = {**MADE, "identities": 24, "protected": protected, "results": rows}
        path.write_text(json.dumps(payload))
        return path

    runs = [run("a.json", 8, [0.1, 0.1]), run("b.json", 24, [0.8, 0.6])]
    got = personal_report.white_box_rows(runs)
    assert got["strong"] == pytest.approx({"centroid": 0.7, "logreg": 0.35})
    assert "medium" not in got
    # And the leave-one-out figures never take a white-box row.
    loo = personal_report.protection_rows(runs)
    assert loo["strong"]["none"] == pytest.approx({"centroid": 0.0, "logreg": 0.0})
    assert loo["strong"]["attackers"] == ["x"]


@pytest.mark.parametrize(
    "made",
    [None, PERSONAL_ALGORITHM_VERSION - 1, f"v{PERSONAL_ALGORITHM_VERSION} with --zones v1"],
    ids=["unrecorded", "older-version", "research-override"],
)
def test_figures_of_another_algorithm_are_refused(tmp_path: Path, made: object) -> None:
    """A change to the personal cloak (a new PERSONAL_ALGORITHM_VERSION) cannot ship with
    the old algorithm's figures, nor with a research run's: every input says what made it."""
    good = _run(tmp_path / "a-24.json", "a", [("strong", "none", 0.8)])
    stale = tmp_path / "b-24.json"
    payload = json.loads(good.read_text())
    if made is None:
        del payload["personal_algorithm"]
    else:
        payload["personal_algorithm"] = made
    stale.write_text(json.dumps(payload))
    assert personal_report.protection_rows([good])["strong"]["none"]["centroid"] == 0.8
    with pytest.raises(personal_report.StaleFigures, match=r"personal_figures\.sh"):
        personal_report.protection_rows([good, stale])
    vis = tmp_path / "vis-personal-old.json"
    vis.write_text(json.dumps({"personal_algorithm": made, "rows": []}))
    with pytest.raises(personal_report.StaleFigures):
        personal_report.visibility_rows([vis])


def test_the_committed_figures_and_the_look_are_of_the_shipped_algorithm() -> None:
    for path in [
        *personal_report.eval_inputs(),
        *personal_report.visibility_inputs(),
        *sorted(personal_report.WHITE_BOX.glob("*.json")),
        personal_report.LOOKS,
    ]:
        personal_report.read_input(path)  # raises StaleFigures naming the file
