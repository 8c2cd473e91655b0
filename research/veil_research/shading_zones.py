"""Research (issue 19): other zone sets for the personal cloak than the product's
(`veil.shading_zones.PERSONAL_ZONES`, which was "v1" here), and a switch for runs
(`veil-research personal --zones`, `personal_variants.py ... sh=`,
`look_personal.py --zones`); measured in docs/personal-cloak.md ("Zones").
"""

from __future__ import annotations

from dataclasses import replace

from veil import personal
from veil.shading_zones import PERSONAL_ZONES, Zone, Zones

# v2, after looking at v1 on Katy_Perry/img26 and Jennifer_Aniston/img12: the frown between
# the brows was still there (a wider zone, almost no darkening), a grey band ran down the
# nose bridge, and dark lines along the nasolabial folds made a face look thinner. Measured
# worse (last-8 leave-one-out at strong 0.64 / 0.57 against v1's 0.70 / 0.63).
ZONES_V2: Zones = (
    *(z for z in PERSONAL_ZONES if z.centre != (56.0, 43.0)),
    Zone((56.0, 44.0), (8.0, 9.0), dark=0.1, light=1.0),  # between the brows
    Zone((56.0, 58.0), (5.0, 9.0), dark=0.3, light=1.0),  # the nose bridge
    Zone((42.0, 82.0), (6.0, 10.0), dark=0.4, light=1.0),  # the left nasolabial fold
    Zone((70.0, 82.0), (6.0, 10.0), dark=0.4, light=1.0),  # the right nasolabial fold
)
# v3 (session 15), after looking at shipped strong (v1) on Jennifer_Aniston/img12 and
# Matt_Damon/img33 in template space: the worried look comes from darkening along the top of
# the inner brows and in the strip just above them (y 30-38 of the template, below v1's
# forehead zone and beside its narrow zone between the brows), which raises the inner brow
# heads and draws vertical creases. v1 plus a band over the inner brows and a wider zone
# between them, both with little darkening.
ZONES_V3: Zones = (
    *(z for z in PERSONAL_ZONES if z.centre != (56.0, 43.0)),
    Zone((56.0, 42.0), (9.0, 9.0), dark=0.25, light=1.0),  # between the brows, wider
    Zone((56.0, 33.0), (22.0, 5.0), dark=0.2, light=0.6),  # above the inner brows
)
ZONE_SETS: dict[str, Zones] = {"none": (), "v1": PERSONAL_ZONES, "v2": ZONES_V2, "v3": ZONES_V3}


def use(name: str) -> None:
    """Every strength and the enrolment use zone set `name`, for this process only
    ("none": the zoneless look of algorithm v2)."""
    if name not in ZONE_SETS:
        raise ValueError(f"no zone set {name!r}: {sorted(ZONE_SETS)}")
    zones = ZONE_SETS[name]
    personal.ENROL_BUDGET = replace(personal.ENROL_BUDGET, zones=zones)  # research only
    for level, look in list(personal.STRENGTHS.items()):
        personal.STRENGTHS[level] = replace(look, zones=zones)
