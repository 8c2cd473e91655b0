"""`veil-research eval`: the protection benchmark (Fawkes protocol, leave-one-out, re-encodes).

Prints, per mode: crop quality (SSIM, DSSIM) and seconds per face; protection of the full
ensemble against every attacker; with `--loo`, the honest transfer figure (cloak with every
surrogate but M, attack with M); each after the re-encodes. Cloaked crops and embeddings
are cached under `--out` (default `bench-out/`), so re-runs only compute what changed.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from veil import optimizer
from veil.paste import face_mask
from veil.results import Mode
from veil_research import evaluate as ev
from veil_research.eval_report import (
    Figures,
    LooRow,
    ModeRow,
    PhotoRow,
    ProtectionRow,
    render_markdown,
    write_plot,
)

if TYPE_CHECKING:
    from veil.recognizers import Recognizer


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "eval", help="measure protection (Fawkes protocol) against local recognisers"
    )
    parser.add_argument("--faces", type=Path, default=None, help="faces folder (has aligned/)")
    parser.add_argument("--modes", nargs="+", choices=[m.value for m in Mode], default=None)
    parser.add_argument("--attackers", nargs="+", default=None, help="recogniser names")
    parser.add_argument(
        "--surrogates",
        nargs="+",
        default=None,
        help="recognisers to cloak with (default: the manifest's default surrogates)",
    )
    parser.add_argument("--loo", action="store_true", help="also leave-one-out per attacker")
    parser.add_argument(
        "--reencodes", nargs="+", choices=list(ev.REENCODES), default=list(ev.REENCODES)
    )
    parser.add_argument("--limit-identities", type=int, default=None)
    parser.add_argument("--max-uploads", type=int, default=None, help="cloaked crops per person")
    parser.add_argument(
        "--quick", action="store_true", help="6 identities, 6 uploads, default mode only"
    )
    parser.add_argument(
        "--photos",
        type=int,
        default=0,
        metavar="N",
        help="also cloak N full-resolution photos per mode with the engine (whole-image SSIM)",
    )
    parser.add_argument("--out", type=Path, default=None, help="cache folder (bench-out/)")
    parser.add_argument(
        "--json", type=Path, default=None, help="results file (default: <out>/eval-results.json)"
    )
    parser.add_argument("--report", type=Path, default=None, help="write a markdown report")
    parser.add_argument("--plot", type=Path, default=None, help="write protection-vs-quality PNG")


def run(args: argparse.Namespace) -> int:
    from veil.modelstore import get_store
    from veil.recognizers import load_recognizers

    faces_dir: Path = args.faces or ev.default_faces_dir()
    modes = [Mode(m) for m in (args.modes or [m.value for m in Mode])]
    limit, max_uploads = args.limit_identities, args.max_uploads
    if args.quick:
        modes = modes if args.modes else [Mode.MID]
        limit, max_uploads = limit or 6, max_uploads or 6
    try:
        faces = ev.load_face_set(faces_dir, limit_identities=limit, max_uploads=max_uploads)
    except FileNotFoundError as exc:
        print(f"veil-research eval: {exc} (set --faces or VEIL_FACES_DIR)", file=sys.stderr)
        return 2
    store = get_store()
    recognisers = {r.name: r for r in load_recognizers(store.names(role="recogniser"), store)}
    attackers = args.attackers or list(recognisers)
    # The engine's own surrogates (the manifest's default_surrogate flags) unless told otherwise,
    # so that what is measured is what users get.
    surrogate_names = args.surrogates or [r.name for r in load_recognizers(None, store)]
    unknown = sorted(set(attackers + surrogate_names) - set(recognisers))
    if unknown:
        print(f"veil-research eval: unknown recogniser(s) {unknown}; have {sorted(recognisers)}")
        return 2
    out: Path = args.out or ev.REPO / "bench-out"
    cache = ev.EmbeddingCache(out / "embeddings")
    print(
        f"faces: {faces_dir} ({len(faces.identities)} identities, "
        f"{faces.upload_count} uploads cloaked per configuration)"
    )
    print(f"surrogates: {', '.join(surrogate_names)}; attackers: {', '.join(attackers)}")

    figures = Figures(
        identities=len(faces.identities),
        uploads=faces.upload_count,
        command=" ".join(["veil-research", "eval", *sys.argv[2:]]),
    )
    print("\nuncloaked baseline (must be near 0):")
    for name in attackers:
        base = ev.attack(recognisers[name], faces, None, "none", cache)
        figures.baseline[name] = base.by_classifier
        print(f"  {name:14s} " + _pair(base.by_classifier))

    for mode in modes:
        budget = optimizer.mode_budget(mode)
        sets: list[tuple[str, list[str]]] = [("ensemble", surrogate_names)]
        if args.loo:
            for held in attackers:
                rest = [n for n in surrogate_names if n != held]
                if rest and held in surrogate_names:
                    sets.append((f"without {held}", rest))
        mode_row: ModeRow | None = None
        for label, names in sets:
            models = [recognisers[n] for n in names]
            tag = _tag(mode, budget, models)
            print(f"\n[{mode.value}] cloaking with {'+'.join(names)} ({label}) ...", flush=True)
            started = time.perf_counter()
            run_ = ev.cloak_uploads(
                faces,
                tag,
                _cloaker(mode, models),
                out / "cloaked",
                log=lambda line: print(line, flush=True),
            )
            print(
                f"  crop SSIM {run_.crop_ssim:.4f}  DSSIM {run_.crop_dssim:.4f}  "
                f"{run_.seconds_per_face:.2f} s/face (cloaking)  "
                f"[{time.perf_counter() - started:.0f} s this run]"
            )
            targets = attackers if label == "ensemble" else [label.removeprefix("without ")]
            for name in targets:
                for reencode in args.reencodes:
                    result = ev.attack(recognisers[name], faces, run_.uploads, reencode, cache)
                    print(f"  vs {name:14s} {reencode:9s} " + _pair(result.by_classifier))
                    row = ProtectionRow(mode.value, name, reencode, result.by_classifier)
                    if label == "ensemble":
                        figures.ensemble.append(row)
                        if name not in names:
                            # Never a surrogate: the ensemble IS the ensemble without it.
                            figures.loo.append(LooRow(row, names))
                    else:
                        figures.loo.append(LooRow(row, names))
            if label == "ensemble":
                mode_row = ModeRow(
                    mode.value,
                    budget,
                    run_.crop_ssim,
                    run_.crop_dssim,
                    run_.seconds_per_face,
                    names,
                )
        if mode_row is not None:
            figures.modes.append(mode_row)

    if args.photos:
        _photos(faces_dir, modes, surrogate_names, args.photos, figures)
    _print_loo_means(figures)
    ev.save_json(args.json or out / "eval-results.json", figures.as_json())
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(render_markdown(figures))
        print(f"\nreport: {args.report}")
    if args.plot:
        message = write_plot(figures, args.plot)
        print(message)
    return 0


def _photos(
    faces_dir: Path, modes: list[Mode], surrogates: list[str], count: int, figures: Figures
) -> None:
    """Whole-image SSIM and face SSIM at full resolution, through the real engine."""
    from veil.engine import Engine

    folder = faces_dir / "photos"
    paths = sorted(folder.glob("*/*.jpg"))
    # Spread the sample over people: round-robin over identities, largest photos first.
    by_person: dict[str, list[Path]] = {}
    for path in sorted(paths, key=lambda p: -p.stat().st_size):
        by_person.setdefault(path.parent.name, []).append(path)
    chosen: list[Path] = []
    while len(chosen) < count and any(by_person.values()):
        for people in by_person.values():
            if people and len(chosen) < count:
                chosen.append(people.pop(0))
    if not chosen:
        print(f"\nno photos under {folder}: whole-image SSIM not measured")
        return
    engine = Engine.load(surrogates=surrogates)
    print(f"\nfull-resolution photos through the engine ({len(chosen)}):")
    for mode in modes:
        rows = []
        for path in chosen:
            result = engine.cloak_bytes(path.read_bytes(), mode=mode)
            if result.ssim is None:
                continue
            face = min(f.crop_ssim for f in result.faces)
            rows.append((path, result.ssim, face, result.seconds, result.face_count))
            print(
                f"  [{mode.value}] {path.parent.name}/{path.name}: "
                f"{result.width}x{result.height}, {result.face_count} face(s), "
                f"whole SSIM {result.ssim:.4f}, face SSIM {face:.4f}, {result.seconds:.2f} s"
            )
        if rows:
            whole = [r[1] for r in rows]
            face_ssims = [r[2] for r in rows]
            row = PhotoRow(
                mode.value,
                len(rows),
                sum(whole) / len(whole),
                min(whole),
                sum(face_ssims) / len(face_ssims),
                sum(r[3] for r in rows) / sum(r[4] for r in rows),
            )
            figures.photos.append(row)
            print(
                f"  [{mode.value}] whole-image SSIM mean {row.mean_ssim:.4f} min {row.min_ssim:.4f}"
                f"; face SSIM mean {row.mean_face_ssim:.4f}; {row.seconds_per_face:.2f} s/face"
            )


def _cloaker(
    mode: Mode, surrogates: Sequence[optimizer.Surrogate]
) -> Callable[[ev.F32, int], ev.F32]:
    def cloak(crops: ev.F32, seed: int) -> ev.F32:
        # The engine's face mask, so the crops carry what the engine pastes into photos.
        return optimizer.cloak_crops(
            crops, mode, surrogates, seed=seed, region=face_mask(optimizer.CROP_SIZE)
        )

    return cloak


def _pair(scores: dict[str, float]) -> str:
    return f"centroid {scores['centroid']:.2f} / logreg {scores['logreg']:.2f}"


def _tag(mode: Mode, budget: optimizer.ModeBudget, surrogates: list[Recognizer]) -> str:
    # Everything that changes the cloaked crops goes in the cache key, the surrogates'
    # model files included.
    names = [s.name for s in surrogates]
    models = ",".join(f"{s.name}@{s.fingerprint}" for s in surrogates)
    blob = f"{budget!r}|{models}|{optimizer.ALGORITHM_VERSION}"
    return f"{mode.value}-{'+'.join(names)}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def _print_loo_means(figures: Figures) -> None:
    if not figures.loo:
        return
    print("\nleave-one-out means (held-out attacker, cloak without it):")
    for mode, reencode, means, held in figures.loo_means():
        print(f"  [{mode}] {reencode:9s} " + _pair(means) + f"  over {', '.join(held)}")
