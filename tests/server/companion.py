"""A real `veil serve` on loopback (subprocess, real models) and a small raw HTTP client.

One server per test module (it loads the models once; fixtures in conftest.py). Each server
gets its own config dir, file token store and TMPDIR; its log goes to a file tests inspect.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
EXTENSION_ORIGIN = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"
START_TIMEOUT_S = 120
# What tells a server that keeps answering on a busy 2-core machine (tens of milliseconds,
# about a second at worst under load) from a stuck one: a frozen event loop (16-55 s per
# parser bomb before issue 13), descriptors run out (never). Not a latency target: those
# figures come from benchmarks (build/bench/fuzz_companion.py `health` and `idle`).
STUCK_S = 5.0


def small_jpeg(path: Path, long_side: int = 480, quality: int = 90) -> bytes:
    """A downscaled copy of a real photo, made in memory (keeps the tests fast)."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((long_side, long_side))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality)
    return out.getvalue()


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        try:
            return str(self.json()["error"]["code"])
        except (ValueError, KeyError, TypeError):
            return None


@dataclass
class Companion:
    port: int
    process: subprocess.Popen[bytes]
    config_dir: Path
    tmp_dir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    tmp_baseline: set[str] = field(default_factory=set)  # TMPDIR entries once listening

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            conn.close()

    def cloak(
        self, data: bytes, token: str, *, query: str = "mode=mid", content_type: str = "image/jpeg"
    ) -> Reply:
        return self.request(
            "POST",
            f"/v1/cloak?{query}",
            body=data,
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
        )

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "veil.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    def new_code(self) -> str:
        out = self.cli("pair", "--port", str(self.port))
        match = re.search(r"Pairing code: (\d{3}) (\d{3})", out)
        assert match, out
        return match.group(1) + match.group(2)

    def pair(self, *, origin: str | None = EXTENSION_ORIGIN) -> str:
        headers = {"Content-Type": "application/json"}
        if origin:
            headers["Origin"] = origin
        reply = self.request(
            "POST",
            "/v1/pair",
            body=json.dumps({"code": self.new_code(), "client": "pytest"}).encode(),
            headers=headers,
        )
        assert reply.status == 200, reply.body
        return str(reply.json()["token"])

    def rss_kib(self, field_name: str = "VmRSS") -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(rf"^{field_name}:\s+(\d+) kB", status, re.MULTILINE)
        assert match, status
        return int(match.group(1))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def companion_env(tmp: Path) -> dict[str, str]:
    """The environment of a test's own `veil` process: its own config folder (file token
    store) and its own TMPDIR under `tmp`, so tests can check what it writes there."""
    config_dir, tmp_dir = tmp / "config", tmp / "tmpdir"
    config_dir.mkdir(mode=0o700)
    tmp_dir.mkdir()
    return {
        **os.environ,
        "VEIL_CONFIG_DIR": str(config_dir),
        "VEIL_TOKEN_STORE": "file",
        "TMPDIR": str(tmp_dir),
        "PYTHONUNBUFFERED": "1",
    }


def start_companion(tmp: Path, *extra: str, nofile: int | None = None) -> Companion:
    """`veil serve --port 0 extra...`; `nofile` lowers its open-files limit (1024 is the
    default of many desktops, where the test machine allows far more)."""
    env = companion_env(tmp)
    config_dir, tmp_dir = Path(env["VEIL_CONFIG_DIR"]), Path(env["TMPDIR"])

    def limit_open_files() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    log_path = tmp / "server.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "veil.cli", "serve", "--port", "0", *extra],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        preexec_fn=limit_open_files,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log_path.read_text())
        if match:
            return Companion(
                int(match.group(1)),
                process,
                config_dir,
                tmp_dir,
                log_path,
                env,
                set(os.listdir(tmp_dir)),
            )
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    process.wait()
    raise RuntimeError(f"veil serve did not start:\n{log_path.read_text()}")


def stop_companion(companion: Companion) -> None:
    companion.process.terminate()
    try:
        companion.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        companion.process.kill()
        companion.process.wait()
