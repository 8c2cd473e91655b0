"""Faces seen large in a feed get less budget; ordinary faces keep all of it."""

from __future__ import annotations

import pytest

from veil.align import Box
from veil.prominence import FLOOR, face_strengths


def test_an_ordinary_face_keeps_its_full_budget() -> None:
    # A 12 MP photo with a 1000-px face: 250 px in a 1080-px feed, 8% of the frame.
    assert face_strengths([Box(1500, 800, 2500, 1800)], 4000, 3000) == [1.0]


def test_a_face_filling_a_close_up_gets_less() -> None:
    # 1000x1500 portrait, face 660 px wide: 475 px in the feed, 29% of the frame.
    (strength,) = face_strengths([Box(170, 300, 830, 960)], 1000, 1500)
    assert FLOOR < strength < 0.8


def test_strength_falls_as_the_face_grows() -> None:
    sizes = [300, 500, 700, 900]
    strengths = [face_strengths([Box(0, 0, s, s)], 1000, 1000)[0] for s in sizes]
    assert strengths == sorted(strengths, reverse=True)
    assert strengths[-1] >= FLOOR


def test_every_face_of_a_crowded_close_up_is_judged_by_the_frame_it_shares() -> None:
    # Two faces that together fill most of the frame: both get less than alone.
    alone = face_strengths([Box(0, 0, 450, 450)], 1000, 1000)[0]
    both = face_strengths([Box(0, 0, 450, 450), Box(500, 500, 950, 950)], 1000, 1000)
    assert all(s < alone for s in both)


@pytest.mark.parametrize("box", [Box(-50, -50, 10, 10), Box(990, 990, 1200, 1200)])
def test_boxes_partly_outside_the_photo_are_clipped(box: Box) -> None:
    (strength,) = face_strengths([box], 1000, 1000)
    assert FLOOR <= strength <= 1.0
