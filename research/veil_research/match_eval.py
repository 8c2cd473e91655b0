"""`veil-research match`: how well an enrolled face is recognised, and how often a stranger
is taken for them (the threshold `veil.profiles.MATCH_THRESHOLD`).

Aligned crops: each identity enrols with its enrolment split (`personal_eval.load_split`);
every other crop of that identity must match (own-face rate), no crop of another identity
may (false matches), each at the shipped threshold and over a sweep.
Full photos (`--photos`): each person of `photos/` enrols with their first 3 photos through
the engine's own detector and aligner; their other photos must match; every face of every
other person's photos and of `scenes/` must not.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from veil import profiles
from veil_research import evaluate as ev
from veil_research.personal_eval import load_split


def _one(enrolled: dict[str, np.ndarray], face: dict[str, np.ndarray]) -> float:
    return float(_scores(enrolled, {m: face[m][None] for m in profiles.MATCH_MODELS})[0])


SCENE_PEOPLE = {
    "couple.jpg": ("Angelina_Jolie",),
    "selfie-many-people.jpg": ("Angelina_Jolie",),
}
"""People of `photos/` who also appear in `scenes/` (looked at: Angelina Jolie is in both
scenes, beside Brad Pitt), so that their face there counts as their own, not a stranger."""


def _scores(enrolled: dict[str, np.ndarray], emb: dict[str, np.ndarray]) -> np.ndarray:
    """The engine's own rule (`veil.profiles.match_scores`)."""
    return np.asarray(profiles.match_scores(emb, enrolled))


def aligned_rates(faces_dir: Path, cache: ev.EmbeddingCache, models: dict[str, object]) -> None:
    split = load_split(faces_dir)
    cents: dict[str, dict[str, np.ndarray]] = {}
    others: dict[str, dict[str, np.ndarray]] = {}
    for ident in split.identities:
        cents[ident] = {}
        others[ident] = {}
        for m in profiles.MATCH_MODELS:
            mirrored = np.ascontiguousarray(split.enrol[ident][:, :, ::-1])
            cents[ident][m] = np.concatenate(  # as `veil.enrolment.gallery_embeddings`
                [
                    cache.embed(models[m], split.enrol[ident]),  # type: ignore[arg-type]
                    cache.embed(models[m], mirrored),  # type: ignore[arg-type]
                ]
            )
            rest = np.concatenate([split.uploads[ident], split.probes[ident]])
            others[ident][m] = cache.embed(models[m], rest)  # type: ignore[arg-type]
    own: list[np.ndarray] = []
    stranger: list[np.ndarray] = []
    for a in split.identities:
        for b in split.identities:
            s = _scores(cents[a], others[b])
            (own if a == b else stranger).append(s)
    own_all, str_all = np.concatenate(own), np.concatenate(stranger)
    print(f"aligned crops: {len(own_all)} own-face comparisons, {len(str_all)} stranger ones")
    print(f"  own face: min {own_all.min():.3f}, 1st pct {np.percentile(own_all, 1):.3f}")
    print(f"  strangers: max {str_all.max():.3f}, 99.9th pct {np.percentile(str_all, 99.9):.3f}")
    for t in sorted({0.40, 0.45, 0.48, 0.50, profiles.MATCH_THRESHOLD, 0.55}):
        mark = "  <- shipped" if t == profiles.MATCH_THRESHOLD else ""
        print(
            f"  threshold {t:.2f}: own faces matched {np.mean(own_all >= t):.4f}, "
            f"false matches {int(np.sum(str_all >= t))} of {len(str_all)}{mark}"
        )


def photo_rates(faces_dir: Path, enrol_count: int = 3) -> None:
    from veil.engine import Engine
    from veil.enrolment import face_embeddings

    engine = Engine.load()
    people = sorted(p for p in (faces_dir / "photos").iterdir() if p.is_dir())
    faces: dict[str, list[tuple[str, dict[str, np.ndarray]]]] = {}
    for person in people:
        for path in sorted(person.glob("*.jpg")):
            for emb in face_embeddings(engine, path.read_bytes()):
                emb["label"] = f"{person.name}/{path.name}"  # type: ignore[assignment]
                faces.setdefault(person.name, []).append((path.name, emb))
    scene_faces = []
    for path in sorted((faces_dir / "scenes").glob("*.jpg")):
        for e in face_embeddings(engine, path.read_bytes()):
            e["label"] = f"scenes/{path.name}"  # type: ignore[assignment]
            scene_faces.append((path.name, e))
    own_hits = own_total = false = total = 0
    worst_own, worst_stranger = 1.0, -1.0
    for person in people:
        mine = faces.get(person.name, [])
        names = sorted({n for n, _ in mine})
        enrol_names = set(names[:enrol_count])
        enrol = [e for n, e in mine if n in enrol_names]
        for name in sorted(enrol_names):  # the profile keeps their mirror images too
            enrol += face_embeddings(engine, (person / name).read_bytes(), mirrored=True)
        centroid = {m: np.stack([e[m] for e in enrol]) for m in profiles.MATCH_MODELS}
        # Own photos: the best-matching face of each other photo (a photo may show others).
        for name in names[enrol_count:]:
            best = max(
                float(_scores(centroid, {m: e[m][None] for m in profiles.MATCH_MODELS})[0])
                for n, e in mine
                if n == name
            )
            own_total += 1
            own_hits += best >= profiles.MATCH_THRESHOLD
            worst_own = min(worst_own, best)
        strangers = [e for p, fl in faces.items() if p != person.name for _, e in fl]
        for scene in sorted({n for n, _ in scene_faces}):
            in_scene = [e for n, e in scene_faces if n == scene]
            if person.name in SCENE_PEOPLE.get(scene, ()):
                # The person is in this scene (checked by eye): their best face must match,
                # every other face is a stranger.
                scores = [
                    float(_scores(centroid, {m: e[m][None] for m in profiles.MATCH_MODELS})[0])
                    for e in in_scene
                ]
                best = int(np.argmax(scores))
                own_total += 1
                own_hits += scores[best] >= profiles.MATCH_THRESHOLD
                worst_own = min(worst_own, scores[best])
                in_scene = in_scene[:best] + in_scene[best + 1 :]
            strangers += in_scene
        for e in strangers:
            s = float(_scores(centroid, {m: e[m][None] for m in profiles.MATCH_MODELS})[0])
            total += 1
            false += s >= profiles.MATCH_THRESHOLD
            if s >= profiles.MATCH_THRESHOLD:
                print(f"  false match: {e.get('label', '?')} taken for {person.name} ({s:.3f})")
            worst_stranger = max(worst_stranger, s)
    print(f"full photos ({len(people)} people enrol with {enrol_count} photos each):")
    print(
        f"  own photos (and scenes they are in) matched {own_hits}/{own_total} "
        f"(lowest score {worst_own:.3f})"
    )
    print(f"  stranger faces matched {false}/{total} (highest score {worst_stranger:.3f})")


def main(argv: Sequence[str]) -> int:
    from veil.modelstore import get_store
    from veil.recognizers import load_recognizers

    parser = argparse.ArgumentParser(prog="veil-research match", description=__doc__)
    parser.add_argument("--faces", type=Path, default=None)
    parser.add_argument("--photos", action="store_true", help="also full photos via the engine")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(list(argv))
    faces_dir = args.faces or ev.default_faces_dir()
    if not (faces_dir / "aligned").is_dir():
        print(f"veil-research match: no corpus at {faces_dir}", file=sys.stderr)
        return 2
    store = get_store()
    models = {r.name: r for r in load_recognizers(list(profiles.MATCH_MODELS), store)}
    cache = ev.EmbeddingCache((args.out or ev.REPO / "bench-out") / "embeddings")
    print(
        f"threshold {profiles.MATCH_THRESHOLD} on the mean cosine of "
        f"{', '.join(profiles.MATCH_MODELS)} to the {profiles.MATCH_TOP} nearest enrolment "
        "faces (taken and mirrored)"
    )
    aligned_rates(faces_dir, cache, models)  # type: ignore[arg-type]
    if args.photos:
        photo_rates(faces_dir)
    return 0
