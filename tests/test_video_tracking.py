"""The video tracker's rules on plain boxes (no model): one face seen twice in a round is one
track; two faces side by side are two."""

from __future__ import annotations

import numpy as np

from veil.align import Box
from veil.video.cloaks import majority_person
from veil.video.tracking import Sighting, Tracker


def sighting(frame: int, x: int, y: int, size: int) -> Sighting:
    marks = np.array([[x + size * 0.3, y + size * 0.4]] * 5, np.float64)
    return Sighting(frame, frame / 30, Box(x, y, x + size, y + size), marks, 0.9)


def test_a_face_detected_twice_in_one_round_starts_no_second_track() -> None:
    tracker = Tracker()
    tracker.update([sighting(0, 100, 100, 80)])
    # Round 2: the same face, plus a second, smaller box on it (the detector seeing it twice).
    linked = tracker.update([sighting(5, 104, 100, 80), sighting(5, 120, 115, 40)])
    assert len(tracker.tracks) == 1
    assert len(linked) == 1 and linked[0][0] is tracker.tracks[0]


def test_a_face_seen_twice_when_it_first_appears_is_one_track() -> None:
    tracker = Tracker()
    tracker.update([sighting(0, 100, 100, 80), sighting(0, 102, 98, 78)])
    assert len(tracker.tracks) == 1


def test_two_faces_side_by_side_are_two_tracks() -> None:
    tracker = Tracker()
    tracker.update([sighting(0, 100, 100, 80), sighting(0, 185, 100, 80)])
    tracker.update([sighting(5, 102, 100, 80), sighting(5, 187, 100, 80)])
    assert len(tracker.tracks) == 2
    assert all(len(t.sightings) == 2 for t in tracker.tracks)


def test_a_track_is_an_enrolled_persons_only_when_most_keyframes_say_so() -> None:
    assert majority_person(["ann", "ann", None]) == "ann"
    assert majority_person(["ann", "ann", "bob"]) == "ann"
    # One stray keyframe, or a tie, gives nobody's personal cloak.
    assert majority_person(["ann", None, None]) is None
    assert majority_person(["ann", "bob", None]) is None
    assert majority_person(["ann", "bob"]) is None
    assert majority_person([None, None, None]) is None
    assert majority_person([]) is None
