"""`veil enrol PHOTO... [--name NAME] [--strength S]`: "this is me".

Veil learns your face from 3-20 photos of you and computes your personal cloak once (a few
minutes, with a progress bar); from then on `veil cloak` and `veil serve` give every photo
in which they recognise you that cloak, at the strength you chose, and everyone else the
default cloak. `PHOTO#N` picks the N-th face from the left in a photo with several people.

  veil enrol me1.jpg me2.jpg me3.jpg --name me     # asks for the strength on a terminal
  veil enrol --aligned crops/*.png --name me       # 112-px ArcFace crops (as cloak --aligned)
  veil enrol --list                                # who is enrolled, at which strength
  veil enrol --name me --set-strength strong       # change strength (no recompute)
  veil enrol --forget me | --forget-all            # delete the profile(s)

The profile (your face's embeddings and your cloak) is biometric data: it stays in Veil's
config folder, mode 0600, and is never sent anywhere. `--preview DIR` writes your first
photo cloaked at every strength so that you can look before you choose.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from veil.config import config_dir
from veil.errors import EnrolFaceAmbiguousError, VeilError
from veil.personal import EnrolPlan, Strength
from veil.profiles import forget_all, forget_profile, list_profiles, set_strength


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "enrol",
        help="protect your own face: learn it from 3-20 photos and compute your cloak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("photos", nargs="*", metavar="PHOTO", help="photos of you (PHOTO#N)")
    parser.add_argument("--name", default="me", help="a label for this person (default: me)")
    parser.add_argument(
        "--strength",
        choices=[s.value for s in Strength],
        default=None,
        help="how visible your cloak may be; asked on a terminal, else the recommended one",
    )
    parser.add_argument("--aligned", action="store_true", help="photos are 112-px ArcFace crops")
    parser.add_argument("--preview", type=Path, metavar="DIR", help="write previews here")
    parser.add_argument("--list", action="store_true", help="list enrolled people")
    parser.add_argument("--forget", metavar="NAME", help="delete this person's profile")
    parser.add_argument("--forget-all", action="store_true", help="delete every profile")
    parser.add_argument(
        "--set-strength", choices=[s.value for s in Strength], help="change --name's strength"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"optimiser steps per strength (default {EnrolPlan.steps}; fewer is faster and "
        "protects less)",
    )
    parser.add_argument("--models", type=Path, metavar="DIR", help="models folder")


def _print_list() -> int:
    people = list_profiles(config_dir())
    if not people:
        print("Nobody is enrolled. `veil enrol PHOTO...` protects your face.")
        return 0
    for p in people:
        print(f"{p.name}  strength={p.strength.value}  photos={p.photos}  id={p.profile_id}")
    return 0


def _split_photo(arg: str) -> tuple[Path, int | None]:
    path, sep, index = arg.rpartition("#")
    if sep and index.isdigit() and int(index) >= 1:
        return Path(path), int(index) - 1
    return Path(arg), None


class _Bar:
    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.last = -1

    def __call__(self, share: float) -> None:
        percent = int(100 * share)
        if percent == self.last:
            return
        self.last = percent
        if self.enabled:
            bar = "#" * (percent * 30 // 100)
            sys.stderr.write(f"\rcomputing your cloak [{bar:<30}] {percent:3d}%")
            sys.stderr.flush()
        elif percent % 10 == 0:
            print(f"computing your cloak: {percent}%", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _choose_strength(args: argparse.Namespace) -> Strength:
    from veil.strengths import recommended_strength, strength_table

    if args.strength:
        return Strength(args.strength)
    recommended = recommended_strength()
    print(strength_table())
    if not sys.stdin.isatty():
        print(f"strength: {recommended.value} (recommended; --strength to choose)")
        return recommended
    while True:
        answer = input(f"Strength [{recommended.value}]: ").strip().lower() or recommended.value
        if answer in {s.value for s in Strength}:
            return Strength(answer)
        print(f"one of: {', '.join(s.value for s in Strength)}")


def run(args: argparse.Namespace) -> int:
    directory = config_dir()
    try:
        if args.list:
            return _print_list()
        if args.forget_all:
            print(f"Forgot {forget_all(directory)} profile(s).")
            return 0
        if args.forget:
            gone = forget_profile(directory, args.forget)
            print(f"Forgot {gone.name!r}: profile deleted.")
            return 0
        if args.set_strength:
            changed = set_strength(directory, args.name, Strength(args.set_strength))
            print(f"{changed.name}: strength {changed.strength.value}")
            return 0
        if not args.photos:
            print("veil enrol: give 3-20 photos of you (see --help)", file=sys.stderr)
            return 2
        return _enrol(args, directory)
    except EnrolFaceAmbiguousError as exc:
        print(f"veil enrol: {exc.code}: {exc.message}", file=sys.stderr)
        for n, (x, y, w, h) in enumerate(exc.boxes, 1):
            print(f"  face {n}: {w}x{h} at ({x}, {y}); use PHOTO#{n}", file=sys.stderr)
        return 1
    except VeilError as exc:
        print(f"veil enrol: {exc.code}: {exc.message}", file=sys.stderr)
        return 1


def _enrol(args: argparse.Namespace, directory: Path) -> int:
    from veil.engine import Engine
    from veil.enrolment import EnrolPhoto, build_profile, enrolment_faces
    from veil.modelstore import get_store
    from veil.profiles import save_profile
    from veil.recognizers import load_recognizers

    photos = []
    for arg in args.photos:
        path, face = _split_photo(arg)
        try:
            data = path.read_bytes()
        except OSError as exc:
            print(f"veil enrol: cannot read {path}: {exc.strerror}", file=sys.stderr)
            return 1
        photos.append(EnrolPhoto(path.name, data, face, aligned=args.aligned))
    engine = Engine.load(args.models)
    faces = enrolment_faces(engine, photos)
    print(f"found your face in {len(faces)} photo(s)", file=sys.stderr)
    store = get_store(args.models)
    everyone = load_recognizers(store.names(role="recogniser"), store)
    bar = _Bar()
    profile = build_profile(
        engine,
        faces,
        args.name,
        strength=Strength.MEDIUM,
        surrogates=everyone,
        plan=EnrolPlan(steps=args.steps) if args.steps else None,
        progress=bar,
    )
    bar.done()
    if args.preview:
        from veil.strengths import write_previews

        for path in write_previews(engine, profile, photos[faces[0].photo], args.preview):
            print(f"preview: {path}")
    chosen = _choose_strength(args)
    from dataclasses import replace

    profile = replace(profile, strength=chosen)
    replaced = [p for p in list_profiles(directory) if p.name.lower() == profile.name.lower()]
    save_profile(directory, profile)
    for old in replaced:
        forget_profile(directory, old.profile_id)
    print(
        f"Enrolled {profile.name!r} from {profile.photos} photos at strength "
        f"{profile.strength.value}. `veil cloak` and `veil serve` now give your face your "
        "personal cloak; `veil enrol --forget` deletes it."
    )
    return 0
