"""`veil-research personal`: protection of an enrolled person's personal cloak (issue 19).

Split per identity of `<faces>/aligned`, files sorted by name: the first fifth (at least 3)
are the enrolment photos, the rest is halved into uploads and clean probes; enrolment
photos never appear among uploads or probes. The person's cloak is computed from the
enrolment crops alone (`veil.personal.compute_personal_cloak`), then added to each upload
on its own (no batch knowledge), exactly as the engine adds it to a matched face. The
tracker trains on those uploads plus everyone else's clean uploads (nearest centroid and
logistic regression, `veil_research.evaluate`) and is scored on the person's clean probes.

Leave one out: for each attacker A, the cloak is computed with every shipped recogniser
but A. `--white-box`: the cloak computed with all of them, as the product does, attacked by
each (rows marked `white_box`). `--adaptive K`: a tracker that knows Veil holds K clean
photos of the person (here: the first K enrolment crops), estimates the cloak as the mean
difference between the cloaked uploads and those photos, subtracts it from the uploads
before training.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from veil import personal
from veil.engine import Engine
from veil.enrolment import FoundFace, build_profile
from veil.optimizer import ModeBudget, Surrogate
from veil.profiles import Profile, ProfileBook, load_profile, save_profile
from veil_research import evaluate as ev
from veil_research import shading_zones
from veil_research.personal_report import personal_algorithm


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


SHIPPED_REFINE_BUDGET = personal.refine_budget


def patch_refine_budget(**knobs: float) -> None:
    """Research only: the upload's refining steps (`veil.personal.refine_budget`) with some
    optimiser fields changed, for this process; no knobs: the product's again."""

    def patched(*args: Any, **kwargs: Any) -> ModeBudget:
        return replace(SHIPPED_REFINE_BUDGET(*args, **kwargs), **knobs)  # type: ignore[arg-type]

    personal.refine_budget = patched if knobs else SHIPPED_REFINE_BUDGET


def strength_caps(
    strengths: Sequence[str], linf: Sequence[float]
) -> dict[personal.Strength, float]:
    """`--linf`: every strength at one cap (/255), or one cap per strength of the run (in
    the order of `strengths`; the strengths the run leaves out keep the first)."""
    if len(linf) == 1:
        return {level: linf[0] for level in personal.Strength}
    if len(linf) != len(strengths):
        raise ValueError("--linf takes one value, or one per strength of --strengths")
    given = {personal.Strength(name): cap for name, cap in zip(strengths, linf, strict=True)}
    return {level: given.get(level, linf[0]) for level in personal.Strength}


def profile_cache_tag(
    engine: Engine, surrogates: Sequence[Surrogate], plan: personal.EnrolPlan
) -> str:
    """Everything an enrolled profile depends on, hashed (the profile cache's folder)."""
    key = json.dumps(
        [
            repr(personal.ENROL_BUDGET),
            asdict(plan),
            [f"{s.name}@{getattr(s, 'fingerprint', '')}" for s in surrogates],
            [s.name for s in engine.surrogates],
            personal.PERSONAL_ALGORITHM_VERSION,
        ]
    )
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def enrolled_profiles(
    split: PersonalSplit,
    engine: Engine,
    surrogates: Sequence[Surrogate],
    plan: personal.EnrolPlan,
    cache_dir: Path,
    protected: Sequence[str] | None = None,
) -> dict[str, Profile]:
    """Each identity enrolled from its enrolment crops (`veil.enrolment.build_profile`, the
    product's code), cached by plan, strengths, surrogates and crops."""
    tag = profile_cache_tag(engine, surrogates, plan)
    out = {}
    for ident in protected or split.identities:
        crops = split.enrol[ident]
        folder = cache_dir / tag / f"{ident}-{hashlib.sha256(crops.tobytes()).hexdigest()[:12]}"
        stored = sorted((folder / "profiles").glob("*.npz")) if folder.exists() else []
        if stored:
            # The cache keys on what the universal cloak depends on; the directions of
            # refiners added since are the crops' centroids, as `build_profile` computes them.
            cached = load_profile(stored[0])
            missing = [r for r in engine.refiners if r.name not in cached.targets]
            found = personal.centroids(ev.to_float(crops), missing) if missing else []
            extra = {r.name: c for r, c in zip(missing, found, strict=True)}
            out[ident] = replace(cached, targets={**cached.targets, **extra})
            continue
        started = time.perf_counter()
        faces = [FoundFace(i, c, (0, 0, 112, 112)) for i, c in enumerate(ev.to_float(crops))]
        profile = build_profile(
            engine,
            faces,
            ident,
            strength=personal.Strength.MEDIUM,
            surrogates=surrogates,
            plan=plan,
        )
        save_profile(folder, profile)
        out[ident] = profile
        print(
            f"  enrolled {ident}: {len(crops)} crops, {time.perf_counter() - started:.1f} s",
            flush=True,
        )
    return out


def cloak_uploads(
    split: PersonalSplit, engine: Engine, profiles: dict[str, Profile], strength: personal.Strength
) -> tuple[dict[str, ev.U8], float]:
    """Every identity's uploads, each cloaked on its own by the engine (`cloak_aligned_bytes`,
    what `veil cloak --aligned` runs) with only that identity enrolled: matched crops get the
    personal cloak, unmatched ones the default. Returns the uploads and the match rate. (Only
    the identities in `profiles` take their turn as the protected person.)"""
    out: dict[str, ev.U8] = {}
    matched = total = 0
    for ident in profiles:
        engine.profiles = ProfileBook.fixed([replace(profiles[ident], strength=strength)])
        crops: list[ev.U8] = []
        for crop in split.uploads[ident]:
            ok, png = cv2.imencode(".png", crop[:, :, ::-1])
            if not ok:
                raise RuntimeError("PNG encode failed")
            result = engine.cloak_aligned_bytes(png.tobytes())
            matched += result.faces[0].profile is not None
            total += 1
            pixels = np.asarray(cv2.imdecode(np.frombuffer(result.data, np.uint8), 1))
            crops.append(pixels[:, :, ::-1])
        out[ident] = np.stack(crops).astype(np.uint8)
    engine.profiles = None
    return out, matched / max(total, 1)


def attack(
    model: ev.Attacker,
    faces: ev.FaceSet,
    cloaked: dict[str, ev.U8],
    reencode: str,
    cache: ev.EmbeddingCache,
) -> ev.Protection:
    """Protection of the identities in `cloaked` (each in turn; everyone else clean)."""
    clean = {i: cache.embed(model, faces.uploads[i]) for i in faces.identities}
    probes = {i: cache.embed(model, faces.probes[i]) for i in faces.identities}
    transform = ev.REENCODES[reencode]
    attacked = {i: cache.embed(model, transform(up)) for i, up in cloaked.items()}
    return ev.protection(clean, probes, attacked)


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
    from veil.profiles import MATCH_MODELS
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
    parser.add_argument(
        "--protect-last",
        type=int,
        default=None,
        metavar="N",
        help="only the last N identities take their turn as the protected person "
        "(the tracker's gallery keeps everyone)",
    )
    parser.add_argument("--steps", type=int, default=personal.EnrolPlan.steps)
    parser.add_argument("--batch", type=int, default=personal.EnrolPlan.batch)
    parser.add_argument("--adaptive", type=int, default=3, metavar="K")
    parser.add_argument(
        "--refiners",
        nargs="+",
        default=None,
        help="recognisers of the upload's refining steps (the held-out one is always dropped); "
        "default: the product's (veil.personal.REFINE_MODELS); 'all': every recogniser",
    )
    parser.add_argument("--reencodes", nargs="+", default=["none", "jpeg75"])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--zones",
        default=None,
        choices=sorted(shading_zones.ZONE_SETS),
        help="research: another zone set than the product's (veil_research.shading_zones)",
    )
    parser.add_argument(
        "--linf",
        type=float,
        nargs="+",
        default=None,
        metavar="L",
        help="research: every strength of the run at linf L/255, or one L per strength "
        "(in the order of --strengths)",
    )
    parser.add_argument(
        "--refine-copies",
        type=int,
        default=None,
        metavar="N",
        help="research: transformed copies per refining step at upload (input diversity; "
        "the product's: veil.personal.REFINE_COPIES)",
    )
    parser.add_argument(
        "--white-box",
        action="store_true",
        help="the cloak computed with every recogniser, as the product computes it, and "
        "attacked by each of them (instead of leave one out)",
    )
    parser.add_argument(
        "--universal",
        type=float,
        default=None,
        metavar="F",
        help="research: the enrolment's universal cloak times F at upload (0: the refining "
        "steps start from nothing, so the uploads share no fixed change)",
    )
    args = parser.parse_args(list(argv))
    if args.refine_copies is not None:
        patch_refine_budget(copies=args.refine_copies)
    if args.zones:
        shading_zones.use(args.zones)
    if args.linf is not None:
        try:
            caps = strength_caps(args.strengths, args.linf)
        except ValueError as exc:
            parser.error(str(exc))
        for level, look in list(personal.STRENGTHS.items()):
            personal.STRENGTHS[level] = replace(look, linf=caps[level] / 255)  # research only

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
    strengths = [personal.Strength(n) for n in args.strengths]
    overrides = [
        flag
        for flag, value in (
            ("--zones", args.zones),
            ("--linf", args.linf),
            ("--refine-copies", args.refine_copies),
            ("--universal", args.universal),
            ("--refiners", args.refiners),
            ("--steps", None if args.steps == personal.EnrolPlan.steps else args.steps),
            ("--batch", None if args.batch == personal.EnrolPlan.batch else args.batch),
        )
        if value is not None
    ]
    algorithm = personal_algorithm(overrides)

    def save() -> None:  # after every strength too: a long run stopped early keeps its rows
        if args.json:
            ev.save_json(
                args.json,
                {
                    "command": " ".join(["veil-research", "personal", *argv]),
                    "personal_algorithm": algorithm,
                    "identities": len(split.identities),
                    "protected": args.protect_last or len(split.identities),
                    "results": results,
                },
            )

    # Leave one out: one pass per attacker, the cloak computed without it. White-box: one
    # pass, the cloak computed as the product computes it (every recogniser at enrolment,
    # the product's refiners), attacked by each recogniser it was computed with.
    passes: list[tuple[str | None, list[str]]] = (
        [(None, list(attackers))] if args.white_box else [(held, [held]) for held in attackers]
    )
    for held, targets in passes:
        label = "white-box" if held is None else f"without {held}"
        enrol_models = [recognisers[n] for n in recognisers if n != held]
        upload_models = [n for n in MATCH_MODELS if n != held]
        wanted = args.refiners or list(personal.REFINE_MODELS)
        if wanted == ["all"]:
            wanted = list(recognisers)
        engine = Engine.load(surrogates=upload_models, refiners=[n for n in wanted if n != held])
        print(f"[{label}] refining with {[s.name for s in engine.refiners]}", flush=True)
        started = time.perf_counter()
        protected = split.identities[-args.protect_last :] if args.protect_last else None
        profiles = enrolled_profiles(split, engine, enrol_models, plan, out / "personal", protected)
        print(f"[{label}] enrolled in {time.perf_counter() - started:.0f} s", flush=True)
        if args.universal is not None:
            factor = np.float32(args.universal)
            profiles = {k: replace(p, universal=p.universal * factor) for k, p in profiles.items()}
        for strength in strengths:
            started = time.perf_counter()
            cloaked, match_rate = cloak_uploads(split, engine, profiles, strength)
            ssims = [
                float(np.mean(crop_ssim(ev.to_float(split.uploads[i]), ev.to_float(cloaked[i]))))
                for i in cloaked
            ]
            print(
                f"[{strength.value}] {label}: crop SSIM {np.mean(ssims):.3f}, "
                f"matched {match_rate:.0%}, {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            conditions = [(r, cloaked) for r in args.reencodes]
            if args.adaptive:
                conditions.append(("adaptive", adaptive_strip(split, cloaked, args.adaptive)))
            for reencode, uploads in conditions:
                kind = "none" if reencode == "adaptive" else reencode
                for name in targets:
                    result = attack(recognisers[name], faces, uploads, kind, cache)
                    print(
                        f"  vs {name:14s} {reencode:9s} " + _pair(result.by_classifier),
                        flush=True,
                    )
                    results.append(
                        {
                            "strength": strength.value,
                            "attacker": name,
                            "reencode": reencode,
                            "scores": result.by_classifier,
                            "crop_ssim": float(np.mean(ssims)),
                            "matched": match_rate,
                            "white_box": held is None,
                        }
                    )
            save()
    _print_means(results)
    save()
    return 0


def _print_means(results: list[dict[str, object]]) -> None:
    white = any(row.get("white_box") for row in results)
    print(f"\n{'white-box' if white else 'leave-one-out'} means over attackers:")
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
