"""The zone sets of the personal cloak (research) and `veil-research personal --linf`."""

from __future__ import annotations

import pytest

from veil import personal
from veil_research import shading_zones
from veil_research.personal_eval import strength_caps


def test_v3_is_v1_with_a_wider_zone_between_the_brows_and_one_above_them() -> None:
    v1, v3 = (set(shading_zones.ZONE_SETS[name]) for name in ("v1", "v3"))
    assert len(v1 - v3) == 1 and next(iter(v1 - v3)).centre == (56.0, 43.0)
    added = sorted(z.centre for z in v3 - v1)
    assert added == [(56.0, 33.0), (56.0, 42.0)]
    assert all(z.dark <= 0.25 for z in v3 - v1)


def test_linf_takes_one_cap_or_one_per_strength() -> None:
    light, medium, strong = personal.Strength
    assert strength_caps(["strong"], [14.0]) == {light: 14.0, medium: 14.0, strong: 14.0}
    caps = strength_caps(["light", "medium", "strong"], [8.2, 10.5, 14.0])
    assert caps == {light: 8.2, medium: 10.5, strong: 14.0}
    assert strength_caps(["medium", "strong"], [10.5, 14.0])[light] == 10.5
    with pytest.raises(ValueError):
        strength_caps(["light", "medium", "strong"], [8.2, 10.5])
