"""`veil-research video` end to end on a tiny subset: two people, one upload each, a short
320x240 clip, two frames taken from it (real clips, the real engine and recognisers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from veil_research import video_eval

FRAMES = 2
ATTACKERS = ("facenet", "mobilefacenet")  # held out, and one the cloak is computed with


def run_eval(args: list[str], out: Path) -> dict[str, Any]:
    """`veil-research video ARGS` writing into `out`; its JSON, with `_out` for the crops."""
    assert video_eval.main([*args, "--out", str(out), "--json", str(out / "run.json")]) == 0
    data: dict[str, Any] = json.loads((out / "run.json").read_text())
    data["_out"] = str(out)
    return data


@pytest.fixture(scope="module")
def payload(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("video-eval")
    args = [
        "--faces", str(faces_dir),
        "--people", "2",
        "--uploads", "1",
        "--frames", str(FRAMES),
        "--size", "320x240",
        "--clip-frames", "12",
        "--distractors", "3",
        "--gallery", "3",
        "--attackers", *ATTACKERS,
    ]  # fmt: skip
    return run_eval(args, out)


def test_every_upload_went_through_every_condition(payload: dict[str, Any]) -> None:
    assert payload["mode"] == "mid"
    assert payload["clip"]["size"] == [320, 240]
    assert len(payload["people"]) == 2
    assert payload["gallery"] == {"people": 2 + 3, "distractors": 3, "crops_per_distractor": 3}
    assert len(payload["uploads"]) == 2
    for upload in payload["uploads"]:
        conditions = upload["conditions"]
        assert conditions["photo"]["faces"] >= 1
        plain, cloaked = conditions["plain-frames"], conditions["frames"]
        assert plain["tracks"] == 0  # the yardstick pastes nothing
        assert cloaked["tracks"] == 1  # one face, one track
        # Every frame of the clip shows the face: every frame got the track's cloak.
        assert cloaked["face_frames"] == cloaked["frames"] == 12
        assert cloaked["frames_with_face"] == plain["frames_with_face"] == FRAMES


def test_rows_have_the_expected_shape_and_ranges(payload: dict[str, Any]) -> None:
    rows = {(r["attacker"], r["condition"]): r for r in payload["results"]}
    assert set(rows) == {(a, c) for a in ATTACKERS for c in video_eval.CONDITIONS}
    for (_, condition), row in rows.items():
        assert set(row["scores"]) == {"centroid", "logreg"}
        assert all(0.0 <= v <= 1.0 for v in row["scores"].values())
        assert row["people"] == 2
        per_clip = FRAMES if condition.endswith("frames") else 1
        assert row["uploads"] == 2 * per_clip
        assert -1.0 <= row["cosine_to_clean"] <= 1.0 + 1e-5
    for attacker in ATTACKERS:
        # The tracker is sound: the clean photos identify both people.
        assert max(rows[attacker, "none"]["scores"].values()) <= 0.5
        assert rows[attacker, "none"]["cosine_to_uncloaked"] == pytest.approx(1.0, abs=1e-4)
        assert rows[attacker, "plain-frames"]["cosine_to_uncloaked"] == pytest.approx(1.0, abs=1e-4)


def test_the_cloak_reaches_the_frames(payload: dict[str, Any]) -> None:
    # Against a recogniser it was computed with, the cloak must move every frame's face
    # (a plain re-encode of the same clip stays at 1.0 by construction; faces of 60-100 px
    # in these 320x240 clips move less than in the benchmark's 720p ones).
    rows = {(r["attacker"], r["condition"]): r for r in payload["results"]}
    assert rows["mobilefacenet", "frames"]["cosine_to_uncloaked"] < 0.99
    assert rows["mobilefacenet", "photo"]["cosine_to_uncloaked"] < 0.97


def test_rescore_with_one_frame_a_clip(payload: dict[str, Any]) -> None:
    # The saved crops score again without cloaking; one frame a clip gives the tracker as
    # many uploads of the person as the photo conditions.
    out = Path(payload["_out"])
    args = ["--rescore", str(out / "video" / "crops-mid.npz"), "--score-frames", "1",
            "--distractors", "3", "--gallery", "3", "--attackers", "mobilefacenet",
            "--out", str(out), "--json", str(out / "one.json")]  # fmt: skip
    assert video_eval.main(args) == 0
    again = json.loads((out / "one.json").read_text())
    assert again["command"] == payload["command"]  # the run that made the crops
    assert again["frames_scored"] == 1
    rows = {r["condition"]: r for r in again["results"]}
    assert {c: r["uploads"] for c, r in rows.items()} == {c: 2 for c in video_eval.CONDITIONS}
    assert rows["frames"]["cosine_to_uncloaked"] < 0.99


# `--aligned --personal medium`: the people of aligned/ with `veil-research personal`'s split,
# each upload crop made a photo (2x on a 480x360 canvas here), enrolled from scratch in a
# temporary cache with a 2-step plan (the real run shares the benchmark's profiles).
ALIGNED_ROWS = ("none", "plain-frames", "personal-photo", "personal-frames")


@pytest.fixture(scope="module")
def aligned(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("video-eval-aligned")
    args = [
        "--aligned", "--personal", "medium",
        "--faces", str(faces_dir),
        "--people", "2",
        "--uploads", "1",
        "--frames", str(FRAMES),
        "--size", "320x240",
        "--clip-frames", "12",
        "--canvas", "480x360",
        "--upscale", "2",
        "--enrol-steps", "2",
        "--attackers", "facenet",
    ]  # fmt: skip
    return run_eval(args, out)


def test_aligned_uploads_got_their_profile(aligned: dict[str, Any], faces_dir: Path) -> None:
    everyone = sorted(p.name for p in (faces_dir / "aligned").iterdir() if p.is_dir())
    assert aligned["protocol"] == "aligned"
    assert aligned["people"] == everyone[:2]
    assert aligned["enrolled"] == {name: name for name in everyone[:2]}
    assert aligned["enrol_plan"]["steps"] == 2
    # The tracker knows everyone of aligned/; the others by their first clean upload.
    assert aligned["gallery"] == {
        "people": len(everyone),
        "distractors": len(everyone) - 2,
        "crops_per_distractor": 1,
    }
    assert all(n >= 5 for n in aligned["probes"].values())  # the split's clean probes
    assert aligned["matched"] == {"personal-photo": 1.0, "personal-frames": 1.0}
    # One track a clip, its prominence factor recorded (the product's, not overridden).
    strengths = aligned["track_strengths"]
    assert strengths["tracks"] == 2 and strengths["overridden_to_whole"] is False
    assert 0.5 <= strengths["min"] <= strengths["mean"] <= 1.0
    assert len(aligned["uploads"]) == 2
    for upload in aligned["uploads"]:
        assert upload["photo_size"] == [480, 360]
        conditions = upload["conditions"]
        assert set(conditions) == set(video_eval.ALIGNED_CONDITIONS)
        assert conditions["personal-photo"]["profiles"] == [upload["identity"]]
        cloaked = conditions["personal-frames"]
        assert cloaked["profiles"] == [upload["identity"]]  # one track, the person's
        assert cloaked["face_frames"] == cloaked["frames"] == 12
        assert cloaked["frames_with_face"] == conditions["plain-frames"]["frames_with_face"] == 2


def test_aligned_personal_rows(aligned: dict[str, Any]) -> None:
    rows = {r["condition"]: r for r in aligned["results"]}
    assert set(rows) == set(ALIGNED_ROWS)
    for condition, row in rows.items():
        assert row["attacker"] == "facenet"
        assert all(0.0 <= v <= 1.0 for v in row["scores"].values())
        assert row["people"] == 2
        assert row["uploads"] == 2 * (FRAMES if condition.endswith("frames") else 1)
    assert max(rows["none"]["scores"].values()) <= 0.5  # the clean crops identify them
    assert rows["none"]["cosine_to_uncloaked"] == pytest.approx(1.0, abs=1e-4)
    # The personal cloak moves the held-out recogniser's embedding, on photos and frames.
    assert rows["personal-photo"]["cosine_to_uncloaked"] < 0.95
    assert rows["personal-frames"]["cosine_to_uncloaked"] < 0.98


def test_aligned_rescore(aligned: dict[str, Any], faces_dir: Path) -> None:
    # Scored again from the saved crops: the gallery is rebuilt from the split.
    out = Path(aligned["_out"])
    args = ["--rescore", str(out / "video" / "crops-aligned-medium.npz"),
            "--faces", str(faces_dir), "--attackers", "facenet",
            "--out", str(out), "--json", str(out / "again.json")]  # fmt: skip
    assert video_eval.main(args) == 0
    again = json.loads((out / "again.json").read_text())
    assert again["gallery"] == aligned["gallery"]
    assert {r["condition"]: r["scores"] for r in again["results"]} == {
        r["condition"]: r["scores"] for r in aligned["results"]
    }


def test_whole_track_strength_overrides_only_the_budget() -> None:
    # A face filling a 1280x720 frame: the prominence rule gives its track less budget.
    from veil.align import Box
    from veil.video import cloaks

    close_up = [Box(340, 40, 940, 700)]
    try:
        video_eval.watch_track_strengths(whole=True)
        assert cloaks._strength(close_up, 1280, 720) == 1.0
        video_eval.watch_track_strengths(whole=False)
        shrunk = cloaks._strength(close_up, 1280, 720)
        assert 0.5 <= shrunk < 1.0
        assert [shrunk] == video_eval.TRACK_STRENGTHS  # emptied by each call, then recorded
    finally:
        video_eval.watch_track_strengths(whole=False)
