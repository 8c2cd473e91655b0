"""`veil-research match`: how well an enrolled face is recognised, and how often a stranger
is taken for them (the threshold `veil.profiles.MATCH_THRESHOLD`).

Aligned crops: each identity enrols with its enrolment split (`personal_eval.load_split`);
every other crop of that identity must match (own-face rate), no crop of another identity
may (false matches), each at the shipped threshold and over a sweep.
Full photos (`--photos`): each person of `photos/` enrols with their first 3 photos through
the engine's own detector and aligner; their other photos must match; every face of every
other person's photos and of `scenes/` must not.
Video tracks (`--tracks`): each aligned identity enrols as above; each of its uploads
(`--track-uploads` a person, the split's uploads) becomes a photo and a 1280x720 pan-and-zoom
clip (`veil_research.video_eval`), pass 1 of the product finds and tracks the face
(`veil.video.scan`), and every track is scored against every enrolled person: the shipped
rule (`veil.video.cloaks`: most keyframes match at `MATCH_THRESHOLD`), and the track's
template (`track_template`: the mean of its kept crops' embeddings) at a sweep
of thresholds, overall and by the number of crops the track kept.
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


def track_template(embeddings: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A track's crops (model -> [N,D] unit embeddings) as one [1,D] embedding per model:
    their mean direction (the template of video face recognition)."""
    out = {}
    for model, rows in embeddings.items():
        mean = np.asarray(rows, np.float32).mean(axis=0)
        out[model] = (mean / max(float(np.linalg.norm(mean)), 1e-12))[None]
    return out


def track_rates(
    faces_dir: Path, cache: ev.EmbeddingCache, uploads: int, people: int | None = None
) -> dict[str, float]:
    """The figures above for the first `people` identities' clips (all by default; every
    identity is enrolled either way); also printed."""
    import tempfile

    from veil.engine import Engine, StageTimer
    from veil.video.cloaks import KEYFRAMES, majority_person, pick_keyframes
    from veil.video.limits import VideoLimits
    from veil.video.probe import probe
    from veil.video.scan import scan
    from veil_research import video_eval as ve

    engine = Engine.load()
    models = {s.name: s for s in engine.surrogates if s.name in profiles.MATCH_MODELS}
    split = load_split(faces_dir)
    enrolled: dict[str, dict[str, np.ndarray]] = {}
    for ident in split.identities:
        mirrored = np.ascontiguousarray(split.enrol[ident][:, :, ::-1])
        enrolled[ident] = {
            m: np.concatenate([cache.embed(r, split.enrol[ident]), cache.embed(r, mirrored)])
            for m, r in models.items()
        }
    settings = ve.ClipSettings((1280, 720), 30, 30, ve.CLIP_CRF)
    limits = VideoLimits()
    # Per track: (identity, kept crops, shipped rule's person or None, template scores).
    rows: list[tuple[str, int, str | None, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="veil-match-tracks-") as tmp:
        clip = Path(tmp) / "clip.mp4"
        for ident in split.identities[:people]:
            for crop in split.uploads[ident][:uploads]:
                rgb = ve.decode_rgb(ve.aligned_photo(crop, ve.CANVAS, ve.UPSCALE))
                face = ve.prominent_face(engine, rgb)
                if face is None:
                    continue
                ve.make_clip(clip, rgb, face[1], settings)
                found = scan(
                    engine, clip, probe(clip, limits), limits, every=5, max_missed=2,
                    timer=StageTimer(),
                )  # fmt: skip
                for track in found.tracks:
                    if not track.candidates:
                        continue
                    crops = np.stack([c.crop.astype(np.float32) for c in track.candidates])
                    emb = {m: r.embed(crops) for m, r in models.items()}
                    keys = [
                        track.candidates.index(c)
                        for c in pick_keyframes(track.candidates, KEYFRAMES)
                    ]
                    # Each keyframe goes to its closest enrolled person at or above the
                    # threshold (`ProfileBook.match`), then the product's vote decides.
                    names = list(enrolled)
                    key_emb = {m: e[keys] for m, e in emb.items()}
                    key_scores = np.stack([_scores(enrolled[p], key_emb) for p in names], 1)
                    best = np.argmax(key_scores, axis=1)
                    shipped = majority_person([
                        names[j] if key_scores[i, j] >= profiles.MATCH_THRESHOLD else None
                        for i, j in enumerate(best)
                    ])  # fmt: skip
                    template = track_template(emb)
                    scores = {p: float(_scores(g, template)[0]) for p, g in enrolled.items()}
                    rows.append((ident, len(crops), shipped, scores))
    print(f"video tracks: {len(rows)} tracks of {len(split.identities)} people's clips")
    shipped_own = np.mean([r[2] == r[0] for r in rows])
    shipped_false = sum(r[2] is not None and r[2] != r[0] for r in rows)
    print(f"  shipped rule (keyframe majority at {profiles.MATCH_THRESHOLD}): own tracks "
          f"matched {shipped_own:.3f}, false matches {shipped_false}")  # fmt: skip
    own_scores = np.array([r[3][r[0]] for r in rows])
    stranger = np.array([v for r in rows for p, v in r[3].items() if p != r[0]])
    kept = np.array([r[1] for r in rows])
    print(
        f"  template: own lowest {own_scores.min():.3f}; strangers highest {stranger.max():.3f} "
        f"({len(stranger)} pairs), 99.9th pct {np.percentile(stranger, 99.9):.3f}"
    )
    for least in (1, 3, 4, 6):
        sel = kept >= least
        strangers_here = np.array(
            [v for r in rows if r[1] >= least for p, v in r[3].items() if p != r[0]]
        )
        top = f"{strangers_here.max():.3f}" if len(strangers_here) else "-"
        print(f"    tracks with >= {least} crops: {int(sel.sum())}, strangers highest {top}")
    for t in (0.44, 0.45, 0.46, 0.47, 0.48, 0.50, profiles.MATCH_THRESHOLD):
        matched = np.mean(own_scores >= t)
        false = int(np.sum(stranger >= t))
        print(f"  template at {t:.2f}: own tracks matched {matched:.3f}, false matches {false}")
    return {
        "tracks": len(rows),
        "shipped_own": float(shipped_own),
        "shipped_false": shipped_false,
        "template_own_lowest": float(own_scores.min()),
        "template_stranger_highest": float(stranger.max()),
    }


def main(argv: Sequence[str]) -> int:
    from veil.modelstore import get_store
    from veil.recognizers import load_recognizers

    parser = argparse.ArgumentParser(prog="veil-research match", description=__doc__)
    parser.add_argument("--faces", type=Path, default=None)
    parser.add_argument("--photos", action="store_true", help="also full photos via the engine")
    parser.add_argument("--tracks", action="store_true", help="also video tracks (see above)")
    parser.add_argument("--track-uploads", type=int, default=100, metavar="N")
    parser.add_argument("--track-people", type=int, default=None, metavar="N")
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
    if args.tracks:
        track_rates(faces_dir, cache, args.track_uploads, args.track_people)
    return 0
