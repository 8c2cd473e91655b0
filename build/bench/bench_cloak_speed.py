"""Seconds per face of the optimiser alone, per mode, on aligned crops (prints figures).

Wall time depends on what else the machine runs, so this also prints the process CPU
seconds per face and the load average before and after: on a shared machine, CPU seconds
divided by the cores ONNX Runtime uses is the better estimate of the idle-machine figure.

    .venv/bin/python build/bench/bench_cloak_speed.py [--faces DIR] [--crops 4] \
        [--modes low mid high]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from veil import optimizer
from veil.recognizers import load_recognizers
from veil.results import Mode
from veil_research import evaluate as ev


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", type=Path, default=None)
    parser.add_argument("--crops", type=int, default=4, help="faces cloaked in one batch")
    parser.add_argument("--modes", nargs="+", default=[m.value for m in Mode])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    faces = ev.load_face_set(args.faces or ev.default_faces_dir(), limit_identities=args.crops)
    crops = ev.to_float(
        np.concatenate([faces.uploads[i][:1] for i in faces.identities])[: args.crops]
    )
    surrogates = load_recognizers()  # the engine's default surrogates
    optimizer.cloak_crops(crops[:1], Mode.LOW, surrogates, seed=0)  # warm the sessions
    print(f"surrogates: {', '.join(s.name for s in surrogates)}; {len(crops)} crops per batch")
    print(f"load average before: {os.getloadavg()}")
    for mode in args.modes:
        walls, cpus = [], []
        for repeat in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            optimizer.cloak_crops(crops, Mode(mode), surrogates, seed=repeat)
            walls.append((time.perf_counter() - wall) / len(crops))
            cpus.append((time.process_time() - cpu) / len(crops))
        print(
            f"{mode:5s} wall {min(walls):.2f} s/face (best of {args.repeats}), "
            f"CPU {min(cpus):.2f} s/face"
        )
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
