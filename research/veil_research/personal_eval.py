"""`veil-research personal`: protection of an enrolled person's personal cloak (issue 19).

Split per identity of `<faces>/aligned`, files sorted by name: the first fifth (at least 3)
are the enrolment photos, the rest is halved into uploads and clean probes; enrolment
photos never appear among uploads or probes. The person's cloak is computed from the
enrolment crops alone (`veil.personal.compute_personal_cloak`), then added to each upload
on its own (no batch knowledge), exactly as the engine adds it to a matched face. The
tracker trains on those uploads plus everyone else's clean uploads (nearest centroid and
logistic regression, `veil_research.evaluate`) and is scored on the person's clean probes.

Leave one out: for each attacker A, the cloak is computed with every shipped recogniser
but A. `--adaptive K`: a tracker that knows Veil holds K clean photos of the person (here:
the first K enrolment crops), estimates the cloak as the mean difference between the
cloaked uploads and those photos, subtracts it from the uploads before training.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from veil import personal
from veil.optimizer import Surrogate
from veil_research import evaluate as ev


@dataclass(frozen=True)
class PersonalSplit:
    identities: tuple[str, ...]
    enrol: dict[str, ev.U8]
    uploads: dict[str, ev.U8]
    probes: dict[str, ev.U8]


def load_split(faces_dir: Path, *, limit: int | None = None, skip: int = 0) -> PersonalSplit:
    aligned = faces_dir / "aligned"
    if not aligned.is_dir():
        raise FileNotFoundError(f"no aligned face crops at {aligned}")
    identities = sorted(p.name for p in aligned.iterdir() if p.is_dir())[skip:]
    if limit is not None:
        identities = identities[:limit]
    enrol, uploads, probes = {}, {}, {}
    for ident in identities:
        files = sorted(p for p in (aligned / ident).iterdir() if p.suffix.lower() == ".png")
        n_enrol = max(3, round(len(files) / 5))
        rest = files[n_enrol:]
        half = len(rest) // 2
        enrol[ident] = ev._read_crops(files[:n_enrol])
        uploads[ident] = ev._read_crops(rest[:half])
        probes[ident] = ev._read_crops(rest[half:])
    return PersonalSplit(tuple(identities), enrol, uploads, probes)


def _face_set(split: PersonalSplit) -> ev.FaceSet:
    names = {i: tuple(str(k) for k in range(len(split.uploads[i]))) for i in split.identities}
    return ev.FaceSet(split.identities, split.uploads, split.probes, names)


def personal_cloaks(
    split: PersonalSplit,
    surrogates: Sequence[Surrogate],
    strength: personal.Strength,
    plan: personal.EnrolPlan,
    cache_dir: Path,
) -> dict[str, np.ndarray]:
    """Each identity's cloak [112,112], cached by strength, plan, surrogates and crops."""
    key = json.dumps(
        [
            strength.value,
            asdict(personal.STRENGTHS[strength]),
            asdict(plan),
            [f"{s.name}@{getattr(s, 'fingerprint', '')}" for s in surrogates],
            personal.PERSONAL_ALGORITHM_VERSION,
        ]
    )
    tag = hashlib.sha256(key.encode()).hexdigest()[:12]
    folder = cache_dir / f"personal-{strength.value}-{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for n, ident in enumerate(split.identities):
        crops = split.enrol[ident]
        path = folder / f"{ident}-{hashlib.sha256(crops.tobytes()).hexdigest()[:12]}.npy"
        if path.exists():
            out[ident] = np.load(path)
            continue
        started = time.perf_counter()
        cloak = personal.compute_personal_cloak(
            ev.to_float(crops), surrogates, strength, seed=1000 + n, plan=plan
        )
        np.save(path, cloak)
        out[ident] = cloak
        print(
            f"  enrolled {ident}: {len(crops)} crops, {time.perf_counter() - started:.1f} s",
            flush=True,
        )
    return out


def cloak_split(split: PersonalSplit, cloaks: dict[str, np.ndarray]) -> dict[str, ev.U8]:
    return {
        i: ev.to_uint8(
            np.stack(
                [personal.apply_personal_cloak(c, cloaks[i]) for c in ev.to_float(split.uploads[i])]
            )
        )
        for i in split.identities
    }


def adaptive_strip(split: PersonalSplit, cloaked: dict[str, ev.U8], known: int) -> dict[str, ev.U8]:
    """The tracker's estimate of each person's cloak, subtracted from their uploads."""
    out = {}
    for ident, up in cloaked.items():
        clean = ev.to_float(split.enrol[ident][:known]).mean(axis=0)
        estimate = ev.to_float(up).mean(axis=0) - clean
        out[ident] = ev.to_uint8(np.clip(ev.to_float(up) - estimate[None], 0, 1))
    return out


def main(argv: Sequence[str]) -> int:
    from veil.modelstore import get_store
    from veil.optimizer import crop_ssim
    from veil.recognizers import load_recognizers

    parser = argparse.ArgumentParser(prog="veil-research personal", description=__doc__)
    parser.add_argument("--faces", type=Path, default=None)
    parser.add_argument(
        "--strengths",
        nargs="+",
        default=[s.value for s in personal.Strength],
        choices=[s.value for s in personal.Strength],
    )
    parser.add_argument("--attackers", nargs="+", default=None)
    parser.add_argument("--limit-identities", type=int, default=None)
    parser.add_argument("--skip-identities", type=int, default=0)
    parser.add_argument("--steps", type=int, default=personal.EnrolPlan.steps)
    parser.add_argument("--batch", type=int, default=personal.EnrolPlan.batch)
    parser.add_argument("--adaptive", type=int, default=3, metavar="K")
    parser.add_argument("--reencodes", nargs="+", default=["none", "jpeg75"])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(list(argv))

    faces_dir = args.faces or ev.default_faces_dir()
    try:
        split = load_split(faces_dir, limit=args.limit_identities, skip=args.skip_identities)
    except FileNotFoundError as exc:
        print(f"veil-research personal: {exc}", file=sys.stderr)
        return 2
    store = get_store()
    recognisers = {r.name: r for r in load_recognizers(store.names(role="recogniser"), store)}
    attackers = args.attackers or list(recognisers)
    out: Path = args.out or ev.REPO / "bench-out"
    cache = ev.EmbeddingCache(out / "embeddings")
    faces = _face_set(split)
    plan = personal.EnrolPlan(steps=args.steps, batch=args.batch)
    counts = [len(split.enrol[i]) for i in split.identities]
    print(
        f"{len(split.identities)} identities; enrolment {min(counts)}-{max(counts)} crops, "
        f"uploads {sum(len(v) for v in split.uploads.values())}, plan {plan}"
    )
    results: list[dict[str, object]] = []
    for name in attackers:
        base = ev.attack(recognisers[name], faces, None, "none", cache)
        print(f"no cloak vs {name:14s} " + _pair(base.by_classifier))
        results.append(
            {"strength": "none", "attacker": name, "reencode": "none", "scores": base.by_classifier}
        )
    for strength_name in args.strengths:
        strength = personal.Strength(strength_name)
        for held in attackers:
            models = [recognisers[n] for n in recognisers if n != held]
            started = time.perf_counter()
            cloaks = personal_cloaks(split, models, strength, plan, out / "personal")
            cloaked = cloak_split(split, cloaks)
            ssims = [
                float(np.mean(crop_ssim(ev.to_float(split.uploads[i]), ev.to_float(cloaked[i]))))
                for i in split.identities
            ]
            print(
                f"[{strength.value}] without {held}: crop SSIM {np.mean(ssims):.3f}, "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
            conditions = [(r, cloaked) for r in args.reencodes]
            if args.adaptive:
                conditions.append(("adaptive", adaptive_strip(split, cloaked, args.adaptive)))
            for reencode, uploads in conditions:
                kind = "none" if reencode == "adaptive" else reencode
                result = ev.attack(recognisers[held], faces, uploads, kind, cache)
                print(f"  vs {held:14s} {reencode:9s} " + _pair(result.by_classifier), flush=True)
                results.append(
                    {
                        "strength": strength.value,
                        "attacker": held,
                        "reencode": reencode,
                        "scores": result.by_classifier,
                        "crop_ssim": float(np.mean(ssims)),
                    }
                )
    _print_means(results)
    if args.json:
        ev.save_json(
            args.json,
            {
                "command": " ".join(["veil-research", "personal", *argv]),
                "identities": len(split.identities),
                "results": results,
            },
        )
    return 0


def _print_means(results: list[dict[str, object]]) -> None:
    print("\nleave-one-out means over attackers:")
    groups: dict[tuple[str, str], list[dict[str, float]]] = {}
    for row in results:
        key = (str(row["strength"]), str(row["reencode"]))
        scores = row["scores"]
        assert isinstance(scores, dict)
        groups.setdefault(key, []).append(scores)
    for (strength, reencode), rows in groups.items():
        means = {k: float(np.mean([r[k] for r in rows])) for k in ("centroid", "logreg")}
        print(f"  [{strength}] {reencode:9s} " + _pair(means))


def _pair(scores: dict[str, float]) -> str:
    return f"centroid {scores['centroid']:.2f} / logreg {scores['logreg']:.2f}"
