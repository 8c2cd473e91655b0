"""Protection against visibility for named cloak variants (research, not shipped).

For each variant: `veil-research tune` (leave-one-out protection on the tuning split, the
first 16 identities, 3 uploads each) and `build/bench/bench_visibility.py` (SSIMULACRA2 on
the quick photo set), both with the variant's budget overrides; one JSON line per variant is
appended to `--results` (read by build/research/plot_visibility.py and docs/visibility.md).

    .venv/bin/python build/research/sweep_visibility.py --variants pen2_l8 pen4_l8 \\
        --results bench-out/sweep.jsonl

Variants are defined in VARIANTS below; `--ids`/`--uploads` as in `veil-research tune`.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
QUICK_SET = [
    "George_Clooney/img40.jpg",
    "Jennifer_Aniston/img12.jpg",
    "Matt_Damon/img33.jpg",
    "Scarlett_Johansson/img49.jpg",
    "scenes/couple.jpg",
    "scenes/selfie-many-people.jpg",
]
# Luma only, fine grid, strong texture masking with luminance adaptation, long mask feather.
PERCEPTUAL = {
    "colour_scale": 0,
    "grid": 112,
    "texture_low": 0.2,
    "texture_high": 2.5,
    "luminance_adapt": True,
    "colour_low_share": 1.0,
    "delta_blur": 0.5,
    "feather": 0.5,
}
S3 = "sface+mobilefacenet+faceapi_resnet"  # all the cheap local recognisers as surrogates
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    # name: (mode whose budget is the base, overrides; linf in 1/255)
    # The shipped v5 modes, exactly as optimizer.py defines them.
    "ship_low": ("low", {}),
    "ship_mid": ("mid", {}),
    "ship_high": ("high", {}),
    # The v4 modes (run with the v4 code on PYTHONPATH, see docs/visibility.md).
    "v4_low": ("low", {}),
    "v4_mid": ("mid", {}),
    "v4_high": ("high", {}),
    "box_l4": ("mid", PERCEPTUAL | {"linf": 4}),
    "box_l2": ("mid", PERCEPTUAL | {"linf": 2}),
    "pen2_l8": ("mid", PERCEPTUAL | {"linf": 8, "penalty": 2, "steps": 12}),
    "pen4_l8": ("mid", PERCEPTUAL | {"linf": 8, "penalty": 4, "steps": 12}),
    "pen8_l8": ("mid", PERCEPTUAL | {"linf": 8, "penalty": 8, "steps": 12}),
    "pen2_l4": ("mid", PERCEPTUAL | {"linf": 4, "penalty": 2, "steps": 12}),
    "pen4_l4": ("mid", PERCEPTUAL | {"linf": 4, "penalty": 4, "steps": 12}),
    "pen2_l3": ("mid", PERCEPTUAL | {"linf": 3, "penalty": 2, "steps": 12}),
    "pen2_l8_nolum": (
        "mid",
        PERCEPTUAL | {"linf": 8, "penalty": 2, "steps": 12, "luminance_adapt": False},
    ),
    "pen2_l6_tex15": (
        "mid",
        PERCEPTUAL | {"linf": 6, "penalty": 2, "steps": 12, "texture_high": 1.5},
    ),
    "pen2_l8_feather25": (
        "mid",
        PERCEPTUAL | {"linf": 8, "penalty": 2, "steps": 12, "feather": 0.25},
    ),
    "pen2_l8_colour": (
        "mid",
        PERCEPTUAL | {"linf": 8, "penalty": 2, "steps": 12, "colour_scale": 1.0},
    ),
    "pen4_l5_edge": (
        "mid",
        PERCEPTUAL | {"linf": 5, "penalty": 4, "steps": 12, "edge_protect": 0.8},
    ),
    "pen4_l6_edge_nolum": (
        "mid",
        PERCEPTUAL
        | {"linf": 6, "penalty": 4, "steps": 12, "edge_protect": 0.8, "luminance_adapt": False},
    ),
    "pen4_l5_edge_s3": (
        "mid",
        PERCEPTUAL | {"linf": 5, "penalty": 4, "steps": 12, "edge_protect": 0.8, "surrogates": S3},
    ),
    "pen4_l5_edge_st20": (
        "mid",
        PERCEPTUAL | {"linf": 5, "penalty": 4, "steps": 20, "edge_protect": 0.8},
    ),
    "pen4_l2_edge": (
        "mid",
        PERCEPTUAL | {"linf": 2, "penalty": 4, "steps": 12, "edge_protect": 0.8},
    ),
    "pen2_l8_s3": ("mid", PERCEPTUAL | {"linf": 8, "penalty": 2, "steps": 12, "surrogates": S3}),
    "pen2_l8_grid56": ("mid", PERCEPTUAL | {"linf": 8, "penalty": 2, "steps": 12, "grid": 56}),
    # v6 research: a smooth brightness field (contour shading) on top of the fine cloak,
    # `mid_shade14_l6` in docs/visibility-data/sweep.jsonl, was measured at commit 6fda30e
    # (`shade_grid` 14, `shade_linf` 6) and dropped; its knob left the product with it.
    "high_l6": ("high", {"linf": 6}),
    "high_l5": ("high", {"linf": 5}),
    "high_l5_st20": ("high", {"linf": 5, "steps": 20}),
    "mid_st24": ("mid", {"steps": 24}),
    "mid_s4": ("mid", {"surrogates": "sface+mobilefacenet+facenet+faceapi_resnet"}),
}
TUNE_FLAGS = {
    "colour_scale": "--colour-scale",
    "grid": "--grid",
    "texture_low": "--texture-low",
    "texture_high": "--texture-high",
    "colour_low_share": "--colour-low-share",
    "delta_blur": "--delta-blur",
    "feather": "--feather",
    "linf": "--linf",
    "penalty": "--penalty",
    "edge_protect": "--edge-protect",
    "steps": "--steps",
}


def tune_args(settings: dict[str, object]) -> list[str]:
    out = []
    for key, value in settings.items():
        if key == "surrogates":
            out += ["--surrogates", *str(value).split("+")]
            continue
        if key == "luminance_adapt":
            if value:
                out.append("--luminance-adapt")
            continue
        out += [TUNE_FLAGS[key], str(value)]
    return out


def parse_tune(text: str) -> dict[str, object]:
    loo: dict[str, object] = {}
    for reencode in ("none", "jpeg75"):
        m = re.search(
            rf"^  {reencode}\s+mean ([0-9.]+) / ([0-9.]+)\s+min ([0-9.]+)\s+\((.*)\)$", text, re.M
        )
        if m:
            per = {
                name: [float(a), float(b)]
                for name, a, b in re.findall(r"(\w+) ([0-9.]+)/([0-9.]+)", m.group(4))
            }
            loo[reencode] = {
                "centroid": float(m.group(1)),
                "logreg": float(m.group(2)),
                "min": float(m.group(3)),
                "per_attacker": per,
            }
    speed = re.search(r"\[ensemble\].*?([0-9.]+) s/face", text)
    dssim = re.search(r"\[ensemble\].*?DSSIM ([0-9.]+)", text)
    rms = re.search(r"\[ensemble\].*?brightness ([0-9.]+), colour ([0-9.]+)", text)
    return {
        "loo": loo,
        "optimizer_s_per_face": float(speed.group(1)) if speed else None,
        "crop_dssim": float(dssim.group(1)) if dssim else None,
        "rms_brightness": float(rms.group(1)) if rms else None,
        "rms_colour": float(rms.group(2)) if rms else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", required=True, choices=sorted(VARIANTS))
    parser.add_argument("--results", type=Path, default=Path("bench-out/sweep.jsonl"))
    parser.add_argument("--ids", type=int, default=16)
    parser.add_argument("--uploads", type=int, default=3)
    parser.add_argument("--skip-visibility", action="store_true")
    args = parser.parse_args(argv)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    logs = args.results.parent / "sweep-logs"
    logs.mkdir(exist_ok=True)
    for name in args.variants:
        mode, settings = VARIANTS[name]
        tune = subprocess.run(
            [
                *(PY, "-m", "veil_research", "tune", "--mode", mode),
                *("--ids", str(args.ids), "--uploads", str(args.uploads)),
                *tune_args(settings),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        (logs / f"{name}.tune.log").write_text(tune.stdout + tune.stderr)
        row: dict[str, object] = {"variant": name, "mode": mode, "settings": settings}
        row |= parse_tune(tune.stdout)
        if not args.skip_visibility:
            vis_json = logs / f"{name}.vis.json"
            sets = [f"{k}={v}" for k, v in settings.items()]
            vis = subprocess.run(
                [PY, str(ROOT / "build/bench/bench_visibility.py"), "--modes", mode]
                + ["--judges", "ssimulacra2", "--json", str(vis_json), "--photos", *QUICK_SET]
                + (["--set", *sets] if sets else []),
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            (logs / f"{name}.vis.log").write_text(vis.stdout + vis.stderr)
            rows = json.loads(vis_json.read_text())["rows"]
            for scale in ("display", "face"):
                values = [r[mode][scale]["ssimulacra2"] for r in rows if mode in r]
                row[f"{scale}_mean"] = sum(values) / len(values)
                row[f"{scale}_min"] = min(values)
        with args.results.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
