"""Benchmark `veil serve`: request overhead over the engine's own time, and throughput.

Starts real `veil serve` subprocesses on loopback (real models), pairs with them through
`veil pair` (the test suite's harness, tests/server/companion.py), and prints:

1. overhead: for a ~5 MB JPEG (a full-resolution press photo re-encoded at high quality),
   the client's wall time per request minus the engine time the server reports in
   X-Veil-Seconds (upload, body read, header probe, hand-off to the pool, response);
2. throughput: photos per minute for a batch of real photos at full resolution, with
   `--workers 2` (and `--workers 1` for comparison), the client keeping the queue full.

Usage:  nice -n 10 .venv/bin/python build/bench/bench_server.py [--faces-dir DIR] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from server.companion import start_companion, stop_companion  # noqa: E402

BIG_PHOTO = ("George_Clooney", "img40.jpg")  # 3061x4600, 14 MP
TARGET_BYTES = 5 * 1024 * 1024


class Server:
    """A paired `veil serve` subprocess, started by the test suite's harness."""

    def __init__(self, workdir: Path, *args: str) -> None:
        started = time.monotonic()
        self.companion = start_companion(workdir, *args)
        self.startup_s = time.monotonic() - started
        self.token = self.companion.pair()

    def cloak(self, data: bytes, mode: str) -> tuple[float, float]:
        """(client wall seconds, engine seconds reported by the server) for one photo."""
        started = time.perf_counter()
        reply = self.companion.cloak(data, self.token, query=f"mode={mode}")
        wall = time.perf_counter() - started
        if reply.status != 200:
            raise SystemExit(f"cloak failed: {reply.status} {reply.body[:300]!r}")
        return wall, float(reply.headers["X-Veil-Seconds"])

    def peak_rss_kib(self) -> int:
        return self.companion.rss_kib("VmHWM")

    def stop(self) -> None:
        stop_companion(self.companion)


def five_mb_jpeg(path: Path) -> bytes:
    """The photo re-encoded at the lowest JPEG quality that reaches 5 MB (press photos are
    smooth: a 14 MP one needs quality ~99 without chroma subsampling to weigh 5 MB)."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
    data = b""
    for quality in range(90, 101):
        out = io.BytesIO()
        rgb.save(out, "JPEG", quality=quality, subsampling=0)
        data = out.getvalue()
        if len(data) >= TARGET_BYTES:
            break
    return data


def measure_overhead(faces: Path, mode: str, repeats: int, workdir: Path) -> None:
    data = five_mb_jpeg(faces / "photos" / BIG_PHOTO[0] / BIG_PHOTO[1])
    server = Server(workdir, "--workers", "1")
    try:
        server.cloak(data, mode)  # warm-up: first-run allocations in ONNX Runtime
        rows = [server.cloak(data, mode) for _ in range(repeats)]
    finally:
        server.stop()
    overheads_ms = [(wall - engine) * 1000 for wall, engine in rows]
    print(f"\n== request overhead, {len(data) / 1e6:.2f} MB JPEG {BIG_PHOTO[1]}, mode={mode} ==")
    print(f"server start-up (models loaded, listening): {server.startup_s:.1f} s")
    for index, (wall, engine) in enumerate(rows, 1):
        print(
            f"  run {index}: wall {wall:.3f} s, engine {engine:.3f} s, "
            f"overhead {(wall - engine) * 1000:.1f} ms"
        )
    print(
        f"overhead median {statistics.median(overheads_ms):.1f} ms, "
        f"max {max(overheads_ms):.1f} ms (target <= 50 ms)"
    )


def measure_throughput(
    faces: Path, mode: str, workers: int, batch: list[bytes], workdir: Path
) -> float:
    server = Server(workdir, "--workers", str(workers), "--queue", str(len(batch)))
    try:
        server.cloak(batch[0], mode)  # warm-up
        started = time.perf_counter()
        with ThreadPoolExecutor(workers * 2) as pool:
            engine_s = [engine for _, engine in pool.map(lambda d: server.cloak(d, mode), batch)]
        wall = time.perf_counter() - started
        peak_mib = server.peak_rss_kib() / 1024
    finally:
        server.stop()
    per_min = len(batch) / wall * 60
    print(
        f"  --workers {workers}: {len(batch)} photos in {wall:.1f} s = {per_min:.1f} photos/min "
        f"(engine median {statistics.median(engine_s):.2f} s/photo, "
        f"server peak RSS {peak_mib:.0f} MiB)"
    )
    return per_min


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--faces-dir",
        type=Path,
        default=Path(os.environ.get("VEIL_FACES_DIR", REPO_ROOT.parent / "shared" / "faces")),
    )
    parser.add_argument("--mode", default="mid")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=12, help="photos in the throughput batch")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    if not (args.faces_dir / "photos").is_dir():
        print(f"face photos not found at {args.faces_dir}: nothing to measure")
        return 1
    print(f"cores: {os.cpu_count()}, faces: {args.faces_dir}")
    with tempfile.TemporaryDirectory(prefix="veil-bench-") as tmp:
        root = Path(tmp)
        if not args.skip_overhead:
            (root / "overhead").mkdir()
            measure_overhead(args.faces_dir, args.mode, args.repeats, root / "overhead")
        if not args.skip_throughput:
            people = sorted(p for p in (args.faces_dir / "photos").iterdir() if p.is_dir())
            # Round-robin over people, so the batch mixes sizes and faces.
            per_person = [sorted(person.glob("*.jpg")) for person in people]
            files = [
                photos[i] for i in range(args.batch) for photos in per_person if i < len(photos)
            ][: args.batch]
            batch = [path.read_bytes() for path in files]
            sizes = ", ".join(f"{len(b) / 1e6:.1f}" for b in batch)
            print(f"\n== throughput, {len(batch)} real photos (MB: {sizes}), mode={args.mode} ==")
            for workers in (2, 1):
                workdir = root / f"throughput{workers}"
                workdir.mkdir()
                measure_throughput(args.faces_dir, args.mode, workers, batch, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
