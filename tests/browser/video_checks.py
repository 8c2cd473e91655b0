"""Tiny real clips with a face for the browser tests (built with tests/video_samples.py from
the face corpus, phone-style metadata written by exiftool), and the checks on what a site
received: a cloak of the clip, not the original, in the same container, with no location.
Also the pieces of the 1 GB transport test that Chromium and Firefox share: a stand-in
companion that echoes the body's size (EchoCompanion) and the browser's resident memory
read from /proc (RssWatch)."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt
from harness import ROOT
from PIL import Image

from metadata_samples import EXIFTOOL, exiftool_tags
from video_samples import SERIAL, load_rgb, make_clip

YUNET = ROOT / "models" / "face_detection_yunet_2023mar.onnx"
# Location, serial and owner tags as exiftool names them (-G1: "Group:Tag"); make and model
# follow the photo policy (docs/metadata.md) and are not checked here.
LEAKY_TAG = ("gps", "location", "serial", "xyz", "author", "artist", "owner")


def _detect(rgb: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float32]]:
    """YuNet rows (box, 5 landmarks, score) on an RGB image, independently of the companion."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    height, width = bgr.shape[:2]
    detector = cv2.FaceDetectorYN.create(str(YUNET), "", (width, height), 0.7)
    _, found = detector.detect(bgr)
    return [] if found is None else list(found)


def landmarks(rgb: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float64]]:
    """Each face's 5 landmarks [5, 2] (eyes, nose, mouth corners) as make_clip wants them."""
    return [row[4:14].reshape(5, 2).astype(np.float64) for row in _detect(rgb)]


@dataclass(frozen=True)
class FaceClip:
    path: Path
    frames: int


def face_clip(
    photo: Path,
    dest: Path,
    *,
    seconds: float = 1.0,
    size: tuple[int, int] = (320, 240),
    fps: int = 15,
    codec: str = "libx264",
) -> FaceClip:
    """A short pan-and-zoom clip over `photo` (one face), with audio and, for MP4/MOV, phone
    metadata (GPS, make, serial, owner) written by exiftool."""
    rgb = load_rgb(photo, 1200)
    faces = landmarks(rgb)
    assert len(faces) == 1, f"{photo} should show one face, found {len(faces)}"
    tags = {"title": "holiday", "location": "+48.8577+002.2950/", "comment": SERIAL}
    clip = make_clip(dest, rgb, faces, codec=codec, size=size, seconds=seconds, fps=fps, tags=tags)
    return FaceClip(clip.path, clip.frames)


def frames_of(path: Path) -> list[npt.NDArray[np.uint8]]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def container_of(path: Path) -> tuple[str, str, int, int]:
    with av.open(str(path)) as container:
        video = container.streams.video[0].codec_context
        return container.format.name, video.codec.canonical_name, video.width, video.height


def leaky_tags(path: Path) -> dict[str, Any]:
    """The location, device, serial and owner tags exiftool still finds in the file."""
    tags = exiftool_tags([path])[path.name]
    return {
        key: value
        for key, value in tags.items()
        if not key.startswith(("System:", "File:", "ExifTool:"))
        and (any(word in key.lower() for word in LEAKY_TAG) or SERIAL in str(value))
    }


def assert_cloaked_video(original: Path, received: bytes, scratch: Path) -> dict[str, float]:
    """`received` is a cloak of the clip at `original`: other bytes, a valid video of the same
    container, codec, size and frame count, no location, serial or owner left (exiftool), and
    changed in the face far more than elsewhere (so neither the original nor a plain
    re-encode). Returns the measured change, inside and outside the face."""
    assert received != original.read_bytes(), "the site received the ORIGINAL video"
    out = scratch / f"received-{original.name}"
    out.write_bytes(received)
    assert container_of(out) == container_of(original), "not the same kind of video"
    before, after = frames_of(original), frames_of(out)
    assert len(after) == len(before), f"{len(after)} frames arrived, the clip has {len(before)}"
    if EXIFTOOL:
        assert original.suffix.lower() not in {".mp4", ".mov"} or leaky_tags(original), (
            "the test clip carries no phone metadata to remove"
        )
        left = leaky_tags(out)
        assert not left, f"location, device or owner data reached the site: {left}"
    middle = len(before) // 2
    rows = _detect(before[middle])
    assert rows, "the clip's middle frame shows no face the detector finds"
    diff = np.abs(after[middle].astype(np.float32) - before[middle].astype(np.float32)).mean(axis=2)
    mask = np.zeros(diff.shape, dtype=bool)
    for row in rows:
        x, y, w, h = (int(v) for v in row[:4])
        mask[max(0, y) : y + h, max(0, x) : x + w] = True
    inside = float(diff[mask].mean())
    outside = float(diff[~mask].mean())
    assert inside > 0.5, f"the face is unchanged (mean |diff| {inside:.3f})"
    assert inside > 1.5 * outside, (
        f"change not concentrated on the face: {inside:.3f} vs {outside:.3f}"
    )
    return {"inside": inside, "outside": outside}


def fake_video(dest: Path, megabytes: int) -> Path:
    """A file named and typed as a video but far larger than the Port path takes (its bytes
    never reach the companion in the test that uses it)."""
    with dest.open("wb") as out:
        out.truncate(megabytes * 1024 * 1024)
    return dest


def unsupported_codec_clip(photo: Path, dest: Path) -> Path:
    """Half a second of MJPEG in a MOV, as old cameras write: the companion has no encoder for
    it and refuses it (unsupported_codec)."""
    rgb = load_rgb(photo, 1200)
    make_clip(dest, rgb, landmarks(rgb), codec="mjpeg", pix_fmt="yuvj420p", seconds=0.5, audio=None)
    return dest


def animated_gif(source: Path, dest: Path, frames: int) -> Path:
    """An animated GIF of `frames` frames spread over the clip at `source` (a reaction GIF)."""
    decoded = frames_of(source)
    step = max(1, len(decoded) // frames)
    images = [Image.fromarray(frame) for frame in decoded[::step][:frames]]
    images[0].save(dest, save_all=True, append_images=images[1:], duration=120, loop=0)
    return dest


def first_frame_png(gif: bytes) -> bytes:
    """The first frame of a GIF, as PNG bytes (what harness.assert_cloaked compares)."""
    out = io.BytesIO()
    with Image.open(io.BytesIO(gif)) as image:
        image.convert("RGB").save(out, "PNG")
    return out.getvalue()


# The 1 GB test's bound on the browser's growth: far below the file's size, far above the
# few MB that streaming costs (docs/video.md, "Size").
MAX_GROWTH_MB = 400


class EchoCompanion:
    """Stands in for the companion in the 1 GB test: reads the whole body (counting it),
    reports its progress on GET /v1/jobs/{id}, and answers with as many bytes again, streamed
    (the transport is under test, not the cloak: a real one would take many minutes here)."""

    def __init__(self) -> None:
        self.received = 0
        self.jobs: dict[str, float] = {}
        echo = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def cors(self) -> None:
                self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin", "*"))
                self.send_header("Access-Control-Allow-Headers", "*")
                self.send_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
                self.send_header("Access-Control-Expose-Headers", "*")

            def do_OPTIONS(self) -> None:
                self.send_response(204)
                self.cors()
                self.end_headers()

            def do_GET(self) -> None:
                job = self.path.rsplit("/", 1)[-1]
                body = json.dumps(
                    {
                        "job": job,
                        "state": "receiving",
                        "stage": "receiving",
                        "progress": echo.jobs.get(job, 0.0),
                    }
                ).encode()
                self.send_response(200 if job in echo.jobs else 404)
                self.cors()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                job = self.headers.get("X-Veil-Job", "")
                size = int(self.headers["Content-Length"])
                echo.jobs[job] = 0.0
                left = size
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        return
                    left -= len(chunk)
                    echo.received += len(chunk)
                    echo.jobs[job] = 1 - left / size
                self.send_response(200)
                self.cors()
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(size))
                self.send_header("X-Veil-Faces", "0")
                self.end_headers()
                zeros = bytes(1 << 20)
                left = size
                while left > 0:
                    self.wfile.write(zeros[: min(left, len(zeros))])
                    left -= min(left, len(zeros))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def process_tree_rss_kb(is_root: Callable[[int, bytes], bool]) -> dict[int, int]:
    """Resident memory, in kB by pid, of the processes `is_root(pid, cmdline)` picks and of
    every process below them (a browser's renderers, content processes, fork server)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    roots: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        rss[pid] = next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
        )
        if is_root(pid, cmdline):
            roots.append(pid)
    family = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in family and pid not in family:
                family.add(pid)
                grew = True
    return {pid: rss.get(pid, 0) for pid in family}


def process_tree_rss_mb(is_root: Callable[[int, bytes], bool]) -> float:
    """The total of process_tree_rss_kb, in MB."""
    return sum(process_tree_rss_kb(is_root).values()) / 1024


def chromium_rss_mb(profile_marker: str) -> float:
    """A Chromium's resident memory: its browser process (the one whose command line names its
    profile and no --type=) and every process below it, in MB."""
    marker = profile_marker.encode()
    return process_tree_rss_mb(lambda _pid, cmd: marker in cmd and b"--type=" not in cmd)


def pid_tree_rss_mb(root: int) -> float:
    """The resident memory of process `root` and every process below it, in MB (Firefox: the
    firefox-esr process the test started, its content and extension processes below it)."""
    return process_tree_rss_mb(lambda pid, _cmd: pid == root)


def wait_for_pid_tree_to_settle(root: int, quiet: float = 2.0, timeout: float = 20.0) -> None:
    """Waits until no process has come or gone below `root` for `quiet` seconds. Firefox
    starts a spare content process (about 75 MB) a moment after a new tab took the previous
    one: measured from before that, the spare counted as 150-180 MB of growth in the 1 GB
    test, though the file had nothing to do with it."""
    deadline = time.monotonic() + timeout
    pids = set(process_tree_rss_kb(lambda pid, _cmd: pid == root))
    since = time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"Firefox kept starting processes for {timeout:.0f} s"
        time.sleep(0.2)
        now = set(process_tree_rss_kb(lambda pid, _cmd: pid == root))
        if now != pids:
            pids, since = now, time.monotonic()


class RssWatch:
    """The baseline and the peak of a browser's resident memory while a test samples it."""

    def __init__(self, sample: Callable[[], float]) -> None:
        self.sample = sample
        self.baseline = sample()
        assert self.baseline > 0, "no process of the browser found in /proc"
        self.peak = self.baseline

    def update(self) -> None:
        self.peak = max(self.peak, self.sample())

    @property
    def grew(self) -> float:
        return self.peak - self.baseline

    def check(self, browser: str, took: float) -> None:
        """Prints the figures and fails when the browser grew by anything like the file."""
        print(
            f"{browser}: 1 GiB there and back in {took:.1f} s; browser RSS {self.baseline:.0f} MB,"
            f" peak +{self.grew:.0f} MB"
        )
        assert self.grew < MAX_GROWTH_MB, (
            f"{browser}'s memory grew by {self.grew:.0f} MB for a 1 GB video"
        )
