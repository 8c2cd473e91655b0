"""`veil-research match --tracks` on a tiny subset: two people's first upload each made a
clip, tracked by the product's pass 1, scored against all 24 enrolled people (real clips,
the real engine and recognisers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from veil.profiles import MATCH_THRESHOLD
from veil_research import evaluate as ev
from veil_research import match_eval


def test_track_template_is_the_mean_direction() -> None:
    rows = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    template = match_eval.track_template({"m": rows})["m"]
    assert template.shape == (1, 2)
    assert template[0] == pytest.approx([2**-0.5, 2**-0.5])


def test_tracks_of_two_people(faces_dir: Path, tmp_path: Path) -> None:
    cache = ev.EmbeddingCache(tmp_path / "embeddings")
    got = match_eval.track_rates(faces_dir, cache, uploads=1, people=2)
    assert got["tracks"] >= 2  # one clip a person, at least one track each
    # Their own tracks are recognised under the shipped rule, and no stranger is taken
    # for anyone: the threshold sits above every stranger's score.
    assert got["shipped_own"] >= 0.5
    assert got["shipped_false"] == 0
    # The tracks' templates: clearly their own person's (0.80 here), no one else's (0.42).
    assert got["template_own_lowest"] > MATCH_THRESHOLD > got["template_stranger_highest"]
