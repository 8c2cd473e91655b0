"""Benchmark: a large video body streams through `veil serve` without the server's memory
growing by its size.

Starts a real `veil serve` (real models; the test suite's harness, tests/server/companion.py),
pairs with it, and sends:

1. a short real clip made from the face corpus (480x360, one face, `tests/video_samples.py`);
2. the same clip padded to `--mb` megabytes with a top-level MP4 `free` box after its
   `moov` and `mdat` (a valid file every demuxer skips to the end of), so that the body is
   large while the work is the same.

3. a faceless clip of noise of about `--noise-mb` megabytes (lossless H.264, so that it
   is large): no face, so the companion copies its packets and the answer is as large as
   the body (the response side streams too).

For each it prints the upload-and-cloak wall time, the answer, the server's RSS sampled
every 50 ms while the request ran (its maximum) and its peak RSS (VmHWM) after it. If the
body were held in memory, the padded run's RSS would grow by about its size.

Usage:  nice -n 10 .venv/bin/python build/bench/bench_video_upload.py [--mb 1024]
"""

from __future__ import annotations

import argparse
import http.client
import os
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from server.companion import Companion, start_companion, stop_companion  # noqa: E402

PHOTO = ("Scarlett_Johansson", "img49.jpg")
BLOCK = 1024 * 1024


def make_clip(path: Path, faces_dir: Path) -> None:
    from veil.engine import Engine
    from video_samples import load_rgb
    from video_samples import make_clip as render

    engine = Engine.load()
    photo = load_rgb(faces_dir / "photos" / PHOTO[0] / PHOTO[1], 1600)
    faces = [f.landmarks for f in engine.find_faces(photo)]
    render(path, photo, faces, size=(480, 360), seconds=2.0)


def noise_clip(path: Path, megabytes: int) -> None:
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    frame_bytes = 640 * 480 * 1.6  # lossless H.264 of uniform noise: about its raw size
    frames = max(24, round(megabytes * 1e6 / frame_bytes))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"qp": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for _ in range(frames):
            pixels = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode(None))


def pad(src: Path, dst: Path, total: int) -> None:
    """`src` followed by one `free` box filling the file up to `total` bytes (sparse)."""
    data = src.read_bytes()
    size = total - len(data)
    if not 8 < size < 2**32:
        raise SystemExit("the padding must be between 8 bytes and 4 GiB")
    with open(dst, "wb") as out:
        out.write(data)
        out.write(struct.pack(">I4s", size, b"free"))
        out.truncate(total)


class RssSampler:
    def __init__(self, companion: Companion) -> None:
        self.companion = companion
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_kib = max(self.peak_kib, self.companion.rss_kib())


def send(companion: Companion, token: str, path: Path) -> None:
    size = path.stat().st_size
    before = companion.rss_kib()
    conn = http.client.HTTPConnection("127.0.0.1", companion.port, timeout=1800, blocksize=BLOCK)
    started = time.perf_counter()
    with RssSampler(companion) as sampler, open(path, "rb") as body:
        conn.request(
            "POST",
            "/v1/cloak?mode=mid",
            body=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "video/mp4",
                "Content-Length": str(size),
            },
        )
        response = conn.getresponse()
        answer = response.read()
    wall = time.perf_counter() - started
    conn.close()
    headers = {k: v for k, v in response.getheaders() if k.startswith("X-Veil")}
    print(
        f"{path.name}: {size / 1e6:,.1f} MB sent, answer {response.status} "
        f"({len(answer) / 1e6:.2f} MB back) in {wall:.1f} s "
        f"({size / 1e6 / wall:,.0f} MB/s end to end)"
    )
    print(f"  headers: {headers}" if response.status == 200 else f"  body: {answer[:300]!r}")
    print(
        f"  server RSS: {before / 1024:,.0f} MB before, {sampler.peak_kib / 1024:,.0f} MB max "
        f"while it ran (+{(sampler.peak_kib - before) / 1024:,.0f} MB), "
        f"VmHWM {companion.rss_kib('VmHWM') / 1024:,.0f} MB"
    )
    spool = companion.config_dir / "video-spool"
    left = [p for p in spool.rglob("*") if p.is_file() and p.name != ".lock"]
    print(f"  spool after: {len(left)} file(s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024, help="padded body size (MB, 1e6)")
    parser.add_argument("--noise-mb", type=int, default=200, help="faceless clip size (MB)")
    parser.add_argument("--faces-dir", type=Path, default=REPO_ROOT.parent / "shared" / "faces")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="veil-bench-upload-") as tmp:
        work = Path(tmp)
        clip, padded = work / "clip.mp4", work / "padded.mp4"
        make_clip(clip, args.faces_dir)
        pad(clip, padded, args.mb * 1_000_000)
        noise = work / "noise.mp4"
        noise_clip(noise, args.noise_mb)
        (work / "server").mkdir()
        companion = start_companion(work / "server")
        try:
            token = companion.pair()
            print(f"server pid {companion.process.pid}, {os.cpu_count()} cores")
            send(companion, token, clip)
            send(companion, token, padded)
            send(companion, token, noise)
        finally:
            stop_companion(companion)


if __name__ == "__main__":
    main()
