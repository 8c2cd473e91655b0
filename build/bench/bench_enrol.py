"""Enrolment time: prints figures, asserts nothing.

Times `veil.enrolment` as `veil enrol` runs it (the product's plan, every shipped
recogniser as a surrogate): finding the face in each photo, then the personal cloak, with
the progress callback's timeline. Issue 19's target: 20 photos in at most 10 minutes on a
2-core machine.

    .venv/bin/python build/bench/bench_enrol.py                 # 20 aligned crops of one person
    .venv/bin/python build/bench/bench_enrol.py --photos Matt_Damon   # that person's full photos
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    from veil.engine import Engine
    from veil.enrolment import EnrolPhoto, build_profile, enrolment_faces
    from veil.modelstore import get_store
    from veil.personal import EnrolPlan, Strength
    from veil.recognizers import load_recognizers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_faces = os.environ.get("VEIL_FACES_DIR", str(REPO.parent / "shared" / "faces"))
    parser.add_argument("--faces-dir", type=Path, default=Path(default_faces))
    parser.add_argument("--person", default="Tom_Hanks", help="aligned/ identity (20 crops)")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--photos", metavar="PERSON", help="use photos/PERSON/*.jpg instead")
    args = parser.parse_args()
    if args.photos:
        paths = sorted((args.faces_dir / "photos" / args.photos).glob("*.jpg"))[: args.count]
        photos = [EnrolPhoto(p.name, p.read_bytes()) for p in paths]
    else:
        paths = sorted((args.faces_dir / "aligned" / args.person).glob("*.png"))[: args.count]
        photos = [EnrolPhoto(p.name, p.read_bytes(), aligned=True) for p in paths]
    if len(photos) < 3:
        print(f"not enough photos under {args.faces_dir}", file=sys.stderr)
        return 2
    print(f"{len(photos)} photos, plan {EnrolPlan()}, load {os.getloadavg()[0]:.1f}")
    started = time.perf_counter()
    engine = Engine.load()
    store = get_store()
    everyone = load_recognizers(store.names(role="recogniser"), store)
    for model in everyone:
        model.verify()
    loaded = time.perf_counter()
    faces = enrolment_faces(engine, photos)
    found = time.perf_counter()
    marks: list[tuple[float, float]] = []

    def progress(share: float) -> None:
        marks.append((share, time.perf_counter() - found))

    build_profile(
        engine, faces, "bench", strength=Strength.MEDIUM, surrogates=everyone, progress=progress
    )
    done = time.perf_counter()
    print(f"load models     {loaded - started:7.1f} s")
    print(f"find faces      {found - loaded:7.1f} s ({len(faces)} faces)")
    print(f"personal cloak  {done - found:7.1f} s")
    print(f"total           {done - started:7.1f} s")
    for share, seconds in marks[:: max(1, len(marks) // 5)]:
        print(f"  progress {share:4.0%} at {seconds:6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
