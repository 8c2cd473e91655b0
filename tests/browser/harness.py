"""Shared pieces of the browser tests: a real `veil serve` on a free loopback
port, Chromium with the unpacked extension loaded, pairing through the
extension's own pages, and the checks on what a site received."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from corpus import faces_root

ROOT = Path(__file__).resolve().parents[2]
# VEIL_EXTENSION_DIR: run the browser tests against another build (e.g. an older commit's).
EXTENSION_DIR = Path(os.environ.get("VEIL_EXTENSION_DIR", ROOT / "extension"))
ARTIFACTS = ROOT / "tests" / "artifacts"
VEIL = ROOT / ".venv" / "bin" / "veil"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def faces_dir() -> Path:
    """The face corpus (tests/corpus.py: VEIL_FACES_DIR, default ../shared/faces)."""
    return faces_root()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_listening(port: int) -> bool:
    """Whether something (a person's own `veil serve`, say) already listens on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Companion:
    """A real `veil serve` subprocess with its own config directory and file token store."""

    def __init__(self, config_dir: Path, port: int | None = None, *args: str) -> None:
        self.config_dir = config_dir
        self.port = port or free_port()
        self.args = args  # more `veil serve` options (e.g. --enrol-steps 2)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = config_dir / "serve.log"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "VEIL_CONFIG_DIR": str(self.config_dir),
            "VEIL_TOKEN_STORE": "file",
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> Companion:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(VEIL), "serve", "--port", str(self.port), *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"veil serve exited: {self.log_path.read_text()[-2000:]}")
            try:
                self.health()
                return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"veil serve did not answer within {timeout:.0f} s")

    def job(self, bearer: str, job: str) -> dict[str, Any]:
        """GET /v1/jobs/{id} with a token (a job answers only the token that sent it, so
        pass the extension's); an HTTP error comes back as {"http": code, "body": text}."""
        request = urllib.request.Request(
            f"{self.url}/v1/jobs/{job}", headers={"Authorization": f"Bearer {bearer}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return dict(json.load(response))
        except urllib.error.HTTPError as exc:
            return {"http": exc.code, "body": exc.read().decode(errors="replace")}

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/v1/health", timeout=2) as response:
            return dict(json.load(response))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def pairing_code(self) -> str:
        """Runs `veil pair` and returns the 6 digits it prints."""
        output = subprocess.run(
            [str(VEIL), "pair", "--port", str(self.port)],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        match = re.search(r"Pairing code: (\d{3}) ?(\d{3})", output)
        assert match, f"veil pair printed no code: {output!r}"
        return match.group(1) + match.group(2)

    def cloak_directly(
        self, data: bytes, content_type: str, token: str
    ) -> tuple[bytes, dict[str, str]]:
        """POST /v1/cloak without the extension, as `curl` would (no Origin header)."""
        request = urllib.request.Request(
            f"{self.url}/v1/cloak?mode=mid",
            data=data,
            method="POST",
            headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"companion refused: {exc.read()!r}") from exc


class StallingCompanion:
    """Stands in for a companion that takes the photo and never answers: it accepts each
    connection, reads the request and keeps the socket open until stopped."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        self.arrived = threading.Event()
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(connection)
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                head += chunk
        except OSError:
            return
        self.requests.append(head.split(b"\r\n", 1)[0])
        self.arrived.set()
        try:  # drain the body; never answer
            while connection.recv(65536):
                pass
        except OSError:
            return

    def stop(self) -> None:
        self.listener.close()
        for connection in self.held:
            connection.close()


def chromium_args(extension_dir: Path) -> list[str]:
    return [
        f"--disable-extensions-except={extension_dir}",
        f"--load-extension={extension_dir}",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
    ]


@dataclass(frozen=True)
class Pixels:
    width: int
    height: int
    gray: np.ndarray[Any, np.dtype[np.float32]]


def decode(data: bytes) -> Pixels:
    with Image.open(io.BytesIO(data)) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    return Pixels(rgb.shape[1], rgb.shape[0], rgb.mean(axis=2))


def face_boxes(data: bytes) -> list[tuple[int, int, int, int]]:
    """Faces found by the project's YuNet model (models/), independently of the companion."""
    import cv2

    model = ROOT / "models" / "face_detection_yunet_2023mar.onnx"
    with Image.open(io.BytesIO(data)) as image:
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
    height, width = bgr.shape[:2]
    scale = min(1.0, 960 / max(width, height))
    small = cv2.resize(bgr, (round(width * scale), round(height * scale)))
    detector = cv2.FaceDetectorYN.create(str(model), "", (small.shape[1], small.shape[0]), 0.7)
    _, found = detector.detect(small)
    if found is None:
        return []
    return [tuple(int(v / scale) for v in row[:4]) for row in found]  # type: ignore[misc]


def png_copy(source: Path, dest: Path) -> Path:
    """`source` re-saved as a PNG at `dest` (what a clipboard holds after an image is copied)."""
    with Image.open(source) as image:
        image.convert("RGB").save(dest, "PNG")
    return dest


def assert_cloaked(original: bytes, received: bytes) -> None:
    """`received` is a cloak of `original`: not the same file, same size, and changed in the faces
    far more than elsewhere (so it is neither the original nor a mere re-encode)."""
    assert received != original, "the site received the ORIGINAL photo"
    before, after = decode(original), decode(received)
    assert (after.width, after.height) == (before.width, before.height)
    boxes = face_boxes(original)
    assert boxes, "test photo has no face the detector finds"
    diff = np.abs(after.gray - before.gray)
    mask = np.zeros(diff.shape, dtype=bool)
    for x, y, w, h in boxes:
        mask[max(0, y) : y + h, max(0, x) : x + w] = True
    inside = float(diff[mask].mean())
    outside = float(diff[~mask].mean()) if (~mask).any() else 0.0
    assert inside > 0.5, f"the face region is unchanged (mean |diff| {inside:.3f})"
    assert inside > 2 * outside, f"change not concentrated on faces: {inside:.3f} vs {outside:.3f}"


def record_pick_to_upload(browser: str, path: str, seconds: float) -> None:
    """Appends one measured time from the pick to the site receiving the upload
    (tests/artifacts/pick-to-upload.jsonl; the report's table of paths x browsers)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"browser": browser, "path": path, "seconds": round(seconds, 2)})
    with (ARTIFACTS / "pick-to-upload.jsonl").open("a", encoding="utf-8") as log:
        log.write(line + "\n")
