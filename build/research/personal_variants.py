"""Research (issue 19): the variants behind the personal cloak's design, on the last N
people of `aligned/` (the personal split: first fifth enrols, half the rest are uploads,
10 of them cloaked, the other half clean probes), one held-out attacker.

direction: the per-photo optimiser (12 steps, every recogniser but the attacker, the
  perceptual caps of the default modes at linf L/255, no SSIM floor), lowering the cosine
  to (a) each upload's own embedding (today's per-photo cloak), (b) the person's centroid
  (one fixed direction per person), (c) unit(centroid - decoy centroid), the decoy being
  the least similar other person of the corpus (the external pilot's rule; research only,
  Veil ships no decoy faces); (d) `toward`: only pulled toward that decoy.
stranger: the default cloak of each mode for a face nobody enrolled, with and without a
  decoy chosen from the photo's own embedding (`stranger facenet low mid high [outside]`).
universal: the product's two parts separately and together, at linf L/255: `uni:L:K` =
  the enrolment's universal cloak then K refining steps at upload; `zero:L:K` = K steps
  from nothing (both through `veil.personal`). A fourth field sets the refining steps'
  look: `sharp` (the default modes' caps: luminance adaptation, texture 0.2-2.5, blur 0.5;
  the first design) or key=value pairs over the shipped look (`lum=0,tl=0.2,th=2.5,blur=1`;
  `cp=4,ti=3`: the refining optimiser's copies per step and gradient smoothing;
  `sh=none|v1|v2`: the zone set at enrolment and in the refining steps,
  `veil_research.shading_zones.ZONE_SETS`; the shipped look has v1).

    .venv/bin/python build/research/personal_variants.py direction facenet 7 own centroid decoy
    .venv/bin/python build/research/personal_variants.py universal facenet \
        uni:9:0 uni:9:6 zero:9:6
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

import numpy as np

from veil import optimizer, personal
from veil.modelstore import get_store
from veil.paste import face_mask
from veil.recognizers import load_recognizers
from veil.results import Mode
from veil_research import evaluate as ev
from veil_research import shading_zones
from veil_research.personal_eval import load_split, patch_refine_budget

PEOPLE = 8
UPLOADS = 10


def unit(v: np.ndarray) -> np.ndarray:
    return np.asarray(v / np.linalg.norm(v, axis=-1, keepdims=True))


def main(argv: list[str]) -> int:
    kind, held, *rest = argv
    store = get_store()
    models = {r.name: r for r in load_recognizers(store.names(role="recogniser"), store)}
    split = load_split(ev.default_faces_dir())
    people, everyone = split.identities[-PEOPLE:], split.identities
    cache = ev.EmbeddingCache(ev.REPO / "bench-out" / "embeddings")
    clean = {i: cache.embed(models[held], split.uploads[i]) for i in everyone}
    probes = {i: cache.embed(models[held], split.probes[i]) for i in everyone}
    enrol_models = [models[n] for n in models if n != held]
    upload_models = [models[n] for n in ("mobilefacenet", "sface") if n != held]
    cent = {
        i: {m.name: unit(cache.embed(m, split.enrol[i]).mean(0)) for m in enrol_models}
        for i in everyone
    }

    def decoy_of(u: str) -> str:
        sims = {d: np.mean([cent[u][m] @ cent[d][m] for m in cent[u]]) for d in everyone if d != u}
        return min(sims, key=lambda d: sims[d])

    def report(label: str, out: dict[str, np.ndarray], started: float) -> None:
        ssim = np.mean(
            [
                optimizer.crop_ssim(
                    ev.to_float(split.uploads[u][:UPLOADS]), ev.to_float(out[u])
                ).mean()
                for u in people
            ]
        )
        parts = []
        for reencode in ("none", "jpeg75", "down0.75"):
            att = {i: cache.embed(models[held], ev.REENCODES[reencode](out[i])) for i in people}
            p = ev.protection(clean, probes, att).by_classifier
            parts.append(f"{reencode} {p['centroid']:.2f}/{p['logreg']:.2f}")
        # The tracker that knows Veil (veil_research.personal_eval.adaptive_strip): 3 clean
        # photos of the person, the mean difference subtracted from the uploads.
        stripped = {}
        for u in people:
            estimate = ev.to_float(out[u]).mean(0) - ev.to_float(split.enrol[u][:3]).mean(0)
            stripped[u] = ev.to_uint8(np.clip(ev.to_float(out[u]) - estimate[None], 0, 1))
        att = {i: cache.embed(models[held], stripped[i]) for i in people}
        p = ev.protection(clean, probes, att).by_classifier
        parts.append(f"adaptive {p['centroid']:.2f}/{p['logreg']:.2f}")
        print(
            f"{label:18s} held {held:14s} crop SSIM {ssim:.3f}  {'  '.join(parts)}  "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )

    if kind == "direction":
        linf, variants = float(rest[0]), rest[1:]
        budget = replace(optimizer.mode_budget(Mode.HIGH), linf=linf / 255, min_crop_ssim=0.0)
        for variant in variants:
            started, out = time.perf_counter(), {}
            for n, u in enumerate(people):
                x = ev.to_float(split.uploads[u][:UPLOADS])
                targets = None
                if variant == "centroid":
                    targets = [cent[u][m.name] for m in enrol_models]
                elif variant == "decoy":
                    d = decoy_of(u)
                    targets = [unit(cent[u][m.name] - cent[d][m.name]) for m in enrol_models]
                elif variant == "toward":  # only pulled toward the decoy (raise its cosine)
                    d = decoy_of(u)
                    targets = [-cent[d][m.name] for m in enrol_models]
                out[u] = ev.to_uint8(
                    optimizer.cloak_crops(
                        x,
                        Mode.HIGH,
                        enrol_models,
                        seed=n,
                        budget=budget,
                        region=face_mask(112),
                        targets=targets,
                    )
                )
            report(f"{variant} linf {linf:g}", out, started)
    elif kind == "stranger":
        # The default cloak of each mode (the product's surrogates without the attacker),
        # once as shipped (each photo pushed from its own embedding) and once with a decoy
        # chosen from the photo alone: the pool identity least similar to that photo's
        # face (embedding of the first surrogate), pushed along unit(own - decoy). The
        # same stranger gets the same decoy in every photo only as far as that choice
        # is stable; printed as "same decoy". Pool: every other identity of the split
        # (inside the tracker's gallery) or, with `outside`, only the 8 identities before
        # the protected ones, whose uploads are then left out of the tracker's gallery.
        modes, outside = [Mode(m) for m in rest if m != "outside"], "outside" in rest
        shipped = [models[n] for n in ("mobilefacenet", "sface") if n != held]
        pool = [i for i in everyone if i not in people]
        if outside:
            pool = pool[-PEOPLE:]
            for i in pool:
                clean.pop(i, None)
                probes.pop(i, None)
        for mode in modes:
            for rule in ("own", "decoy"):
                started, out, same = time.perf_counter(), {}, []
                for n, u in enumerate(people):
                    x = ev.to_float(split.uploads[u][:UPLOADS])
                    targets = None
                    if rule == "decoy":
                        first = unit(shipped[0].embed(x))
                        sims = np.stack([first @ cent[d][shipped[0].name] for d in pool], 1)
                        chosen = [pool[k] for k in np.argmin(sims, axis=1)]
                        same.append(max(chosen.count(d) for d in chosen) / len(chosen))
                        targets = [
                            unit(unit(m.embed(x)) - np.stack([cent[d][m.name] for d in chosen]))
                            for m in shipped
                        ]
                    out[u] = ev.to_uint8(
                        optimizer.cloak_crops(
                            x, mode, shipped, seed=n, region=face_mask(112), targets=targets
                        )
                    )
                label = f"{mode.value} {rule}" + (" outside" if outside else "")
                if same:
                    label += f" same decoy {np.mean(same):.2f}"
                report(label, out, started)
    else:
        for variant in rest:
            patch_refine_budget()  # the product's, before this variant's knobs
            what, cap, steps, *style = variant.split(":")
            linf = float(cap) / 255
            level = personal.Strength.MEDIUM  # the name only; linf and look set the budget
            look = personal.StrengthBudget(linf=linf, smooth=1.0)  # the shipped look
            if style == ["sharp"]:  # the default modes' look: the first design
                look = personal.StrengthBudget(
                    linf=linf,
                    smooth=1.0,
                    blur=0.5,
                    texture_low=0.2,
                    texture_high=2.5,
                    luminance=True,
                    texture_reference=0.0,
                    zones=(),
                )
            elif style:  # key=value over the shipped look, e.g. "lum=0,tl=0.2,th=2.5,blur=1"
                fields = dict(item.split("=") for item in style[0].split(","))
                # Refining optimiser knobs (research): cp = transformed copies per step
                # (input diversity), ti = Gaussian smoothing of the gradient in crop px
                # (translation invariance), mom = momentum.
                knobs = {
                    name: cast(fields.pop(key))
                    for key, name, cast in (
                        ("cp", "copies", int),
                        ("ti", "smooth_sigma", float),
                        ("mom", "momentum", float),
                    )
                    if key in fields
                }
                patch_refine_budget(**knobs)
                look = replace(
                    look,
                    blur=float(fields.get("blur", look.blur)),
                    texture_low=float(fields.get("tl", look.texture_low)),
                    texture_high=float(fields.get("th", look.texture_high)),
                    luminance=fields.get("lum", "1" if look.luminance else "0") == "1",
                    texture_reference=float(fields.get("ref", look.texture_reference)),
                )
                if "sh" in fields:
                    look = replace(look, zones=shading_zones.ZONE_SETS[fields["sh"]])
            started, out = time.perf_counter(), {}
            for n, u in enumerate(people):
                x = ev.to_float(split.uploads[u][:UPLOADS])
                targets = {
                    m.name: unit(cache.embed(m, split.enrol[u]).mean(0)) for m in upload_models
                }
                cloak = np.zeros((112, 112), np.float32)
                if what == "uni":
                    cloak = personal.compute_personal_cloak(
                        ev.to_float(split.enrol[u]),
                        enrol_models,
                        level,
                        seed=n,
                        budget=look,
                    )
                deltas = [
                    personal.personal_delta(
                        c,
                        cloak,
                        level,
                        upload_models,
                        targets,
                        seed=n * 100 + k,
                        steps=int(steps),
                        linf=linf,
                        look=look,
                    )
                    for k, c in enumerate(x)
                ]
                out[u] = ev.to_uint8(x + np.stack(deltas))
            report(variant, out, started)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
