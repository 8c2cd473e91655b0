"""Video cloaking speed and visibility: prints figures, asserts nothing.

For a 1080p30 and a 4K30 clip made from the face corpus (pan and zoom over a one-face
press photo, H.264 + AAC like a phone's): the seconds of each stage (probe, decode over
both passes, detect, track, optimise, paste, encode, mux), the real-time factor (seconds
of work per second of video), peak RSS of the process that cloaks, the share of the clip's
face-frames a track covered (against the clip's own ground truth), and per-frame
SSIMULACRA2 against the original of the cloaked output and of a plain re-encode at the same
settings (the yardstick), whole frame and face box.

    .venv/bin/python build/bench/bench_video.py [--seconds 10] [--faces-dir DIR] [--only 1080p]
        [--clips DIR] [--baseline-code DIR] [--profile DIR] [--codec h264|hevc|hevc10]

The machine is shared: each run prints the load average beside its figures, and the CPU
seconds (user + system, all threads) of the process that cloaks, which the load changes
far less than the wall-clock time. `--baseline-code DIR` cloaks the same clip, back to
back, with an older copy of the `veil` package (DIR holds `veil/`, e.g. a copy of
`companion/veil` taken before a change): old and new timed under the same load.
`--clips DIR` keeps the generated clips there and reuses them (making a 4K clip takes
minutes). `--profile DIR` writes cProfile statistics of each cloak there. `--codec hevc`
(8-bit) or `hevc10` (10-bit, as iPhones record) makes HEVC clips instead of H.264 ones, so
the cloak re-encodes with libx265.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pickle
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

SIZES = {"1080p": (1920, 1080), "4k": (3840, 2160)}
# Source clip encoders: high quality, like a phone's own (high-bitrate) file.
SOURCES: dict[str, dict[str, Any]] = {
    "h264": {"codec": "libx264", "options": {"preset": "veryfast", "crf": "16"}},
    "hevc": {
        "codec": "libx265",
        "options": {"preset": "superfast", "crf": "12", "x265-params": "log-level=error"},
    },
    "hevc10": {
        "codec": "libx265",
        "pix_fmt": "yuv420p10le",
        "options": {"preset": "superfast", "crf": "12", "x265-params": "log-level=error"},
    },
}
PHOTO = "photos/Scarlett_Johansson/img49.jpg"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cloak(src: str, dst: str, cloak: bool, profile: str) -> dict[str, Any]:
    """In a fresh process: load the models, cloak, report stages and peak RSS."""
    from bench_speed import peak_rss_mb  # this folder: run as a script
    from veil.engine import Engine, StageTimer
    from veil.video.pipeline import cloak_video_file

    engine = Engine.load()
    timer = StageTimer()
    profiler = cProfile.Profile() if profile else None
    cpu = _cpu_seconds()
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = cloak_video_file(engine, Path(src), Path(dst), timer=timer, cloak=cloak)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu
    paths = [
        (p.track_id, p.frames.tolist(), p.times.tolist(), p.landmarks.tolist(), p.pad)
        for p in result.paths
    ]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "stages": timer.seconds,
        "frames": result.frames,
        "duration": result.duration,
        "tracks": len(result.tracks),
        "face_frames": result.face_frames,
        # VmHWM, not ru_maxrss: the latter keeps the parent's peak from before the exec
        # (here the parent may have just encoded the 4K source clip: 2.3 GB "peaks").
        "rss_mb": peak_rss_mb(),
        "paths": paths,
    }


def _in_child(
    src: Path, dst: Path, cloak: bool, code: Path | None = None, profile: Path | None = None
) -> dict[str, Any]:
    """`_cloak` in a fresh interpreter (its peak RSS is the video's plus the models'), with
    the `veil` package found in `code` when given (an older copy, for a before/after)."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), env.get("PYTHONPATH", "")])
        env.setdefault("VEIL_MODELS_DIR", str(REPO / "models"))
    load = os.getloadavg()[0]
    run = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            str(src),
            str(dst),
            "1" if cloak else "0",
            str(profile or ""),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    result: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    result["load_before"] = load
    result["load_after"] = os.getloadavg()[0]
    return result


def split(stages: dict[str, float]) -> dict[str, float]:
    """The stages in four: decode (both passes), detect (and track), cloak (optimise and
    paste), encode (and mux)."""
    groups = {
        "decode": ("probe", "decode"),
        "detect": ("detect", "track"),
        "cloak": ("optimize", "paste"),
        "encode": ("encode", "mux"),
    }
    return {k: round(sum(stages.get(s, 0.0) for s in v), 1) for k, v in groups.items()}


def summary(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "seconds": round(run["seconds"], 1),
        "real_time_factor": round(run["seconds"] / run["duration"], 2),
        "cpu_seconds": round(run["cpu_seconds"], 1),
        "load_average": f"{run['load_before']:.1f} -> {run['load_after']:.1f}",
        "split": split(run["stages"]),
        "stages": {k: round(v, 2) for k, v in run["stages"].items()},
        "peak_rss_mb": round(run["rss_mb"]),
    }


def _clip(
    cache: Path | None,
    tmp: Path,
    name: str,
    size: tuple[int, int],
    seconds: float,
    photo: Any,
    faces: Any,
    codec: str = "h264",
    grain: int = 0,
) -> Any:
    """The benchmark clip, from `cache` when it holds one of this size, length, codec and
    grain."""
    from video_samples import make_clip

    folder = cache or tmp
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / (
        f"{name}-{seconds:g}s"
        + ("" if codec == "h264" else f"-{codec}")
        + (f"-grain{grain}" if grain else "")
    )
    saved = stem.with_suffix(".pickle")
    if cache is not None and saved.exists() and stem.with_suffix(".mp4").exists():
        return pickle.loads(saved.read_bytes())
    clip = make_clip(
        stem.with_suffix(".mp4"),
        photo,
        faces,
        size=size,
        seconds=seconds,
        grain=grain,
        **SOURCES[codec],
    )
    saved.write_bytes(pickle.dumps(clip))
    return clip


def coverage(clip: Any, paths: list[Any]) -> tuple[int, int]:
    from veil.video.tracking import TrackPath

    tracks = [TrackPath(i, np.array(f), np.array(t), np.array(m), pad) for i, f, t, m, pad in paths]
    covered = total = 0
    for index, faces in enumerate(clip.truth):
        for truth in faces:
            total += 1
            iod = float(np.linalg.norm(truth[1] - truth[0]))
            hits = (p.at(index, clip.times[index]) for p in tracks)
            covered += any(h is not None and np.abs(h - truth).mean() < 0.25 * iod for h in hits)
    return covered, total


def visibility(clip: Any, outputs: dict[str, Path], every: int) -> dict[str, Any]:
    """Mean (min) SSIMULACRA2 of each output against the original frame, whole frame and
    face box."""
    from veil.ssimulacra2 import face_ssimulacra2, ssimulacra2

    scores: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(av.open(str(clip.path)))
        opened = [stack.enter_context(av.open(str(p))) for p in outputs.values()]
        decoders = [c.decode(video=0) for c in (source, *opened)]
        for index, frames in enumerate(zip(*decoders, strict=True)):
            if index % every or not clip.truth[index]:
                continue
            original, *others = (f.to_ndarray(format="rgb24") for f in frames)
            truth = clip.truth[index][0]
            iod = float(np.linalg.norm(truth[1] - truth[0]))
            x0, y0 = np.maximum((truth.mean(axis=0) - 1.6 * iod).astype(int), 0)
            x1, y1 = (truth.mean(axis=0) + 1.6 * iod).astype(int)
            box = (slice(y0, y1), slice(x0, x1))
            for name, other in zip(outputs, others, strict=True):
                # 1080p / 4K judged at half size
                whole = ssimulacra2(original[::2, ::2], other[::2, ::2])
                scores.setdefault(name, []).append(whole)
                face = face_ssimulacra2(original[box], other[box])
                if face is not None:
                    scores.setdefault(f"{name}_face", []).append(face)
    return {k: [round(float(np.mean(v)), 1), round(float(np.min(v)), 1)] for k, v in scores.items()}


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        src, dst, flag, profile = sys.argv[2:6]
        print(json.dumps(_cloak(src, dst, flag == "1", profile)))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--faces-dir", type=Path, default=REPO.parent / "shared" / "faces")
    parser.add_argument("--only", choices=list(SIZES))
    parser.add_argument("--judge-every", type=int, default=30, help="frames between judged ones")
    parser.add_argument("--clips", type=Path, help="keep and reuse the clips in this folder")
    parser.add_argument(
        "--baseline-code", type=Path, help="folder with an older veil/ to time back to back"
    )
    parser.add_argument("--profile", type=Path, help="folder for cProfile statistics")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain re-encode")
    parser.add_argument("--codec", choices=list(SOURCES), default="h264", help="the clips' codec")
    parser.add_argument(
        "--grain",
        type=int,
        default=0,
        help="sensor-like noise, +-levels a pixel, fresh every frame (4: like a phone's clip)",
    )
    args = parser.parse_args()
    from veil.engine import Engine
    from video_samples import load_rgb

    engine = Engine.load()
    photo = load_rgb(args.faces_dir / PHOTO, 4352)
    faces = [f.landmarks for f in engine.find_faces(photo)]
    with tempfile.TemporaryDirectory() as tmp:
        for name, size in SIZES.items():
            if args.only and name != args.only:
                continue
            started = time.perf_counter()
            clip = _clip(
                args.clips, Path(tmp), name, size, args.seconds, photo, faces, args.codec,
                args.grain,
            )  # fmt: skip
            made = time.perf_counter() - started
            cloaked, plain = Path(tmp) / f"{name}.cloaked.mp4", Path(tmp) / f"{name}.plain.mp4"
            mb = 1024 * 1024
            report: dict[str, Any] = {
                "clip": f"{name} {args.codec} {size[0]}x{size[1]} {clip.frames} frames, "
                + (f"grain {args.grain}, " if args.grain else "")
                + f"{args.seconds:.0f} s "
                f"(made in {made:.0f} s, {clip.path.stat().st_size / mb:.1f} MB)",
            }
            if args.baseline_code is not None:
                old = Path(tmp) / f"{name}.baseline.mp4"
                before = _in_child(clip.path, old, True, args.baseline_code)
                report["baseline_code"] = summary(before)
                report["baseline_output_mb"] = round(old.stat().st_size / mb, 1)
            stats_file = args.profile / f"{name}.prof" if args.profile else None
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
            cloak = _in_child(clip.path, cloaked, True, profile=stats_file)
            report["cloak"] = summary(cloak)
            covered, total = coverage(clip, cloak["paths"])
            report["tracks"] = cloak["tracks"]
            report["face_frames_covered"] = f"{covered}/{total}"
            report["output_mb"] = round(cloaked.stat().st_size / mb, 1)
            if not args.no_plain:
                base = _in_child(clip.path, plain, False)
                report["plain_reencode"] = summary(base)
                report["plain_output_mb"] = round(plain.stat().st_size / mb, 1)
                outputs = {"cloak": cloaked, "plain": plain}
                if args.baseline_code is not None:
                    outputs["baseline_code"] = Path(tmp) / f"{name}.baseline.mp4"
                report["ssimulacra2_mean_min"] = visibility(clip, outputs, args.judge_every)
            print(json.dumps(report, indent=1), flush=True)
            if stats_file is not None:
                pstats.Stats(str(stats_file)).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
