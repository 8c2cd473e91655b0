"""No byte leaves the machine: `veil serve` (paired, cloaking a real photo) and `veil cloak`
run under strace, which records every connect/sendto/sendmsg of every thread.

Asserted: no socket is connected or sent to anything but loopback (no DNS lookup, no
telemetry upload) and nothing is written to TMPDIR (ONNX Runtime's telemetry session id
`.ses`). Without `ORT_DISABLE_TELEMETRY` (set by `veil/__init__.py`) the server resolved
mobile.events.data.microsoft.com about 10 s after start and every few seconds after that,
so the server is watched for `WATCH_S` seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine_support import face_photo
from server.companion import companion_env

WATCH_S = 16.0
START_TIMEOUT_S = 120.0
STRACE = shutil.which("strace")
# An address in a connect/sendto/sendmsg line: IPv4 or IPv6 socket address.
_INET = re.compile(r'sin_addr=inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')
_CALL = re.compile(r"\b(connect|sendto|sendmsg|sendmmsg)\(")


def _require_strace() -> str:
    if STRACE is None:
        if os.environ.get("CI") == "true":
            pytest.fail("strace is required under CI (apt-get install strace)")
        pytest.skip("strace is not installed")
    probe = subprocess.run([STRACE, "-f", "-o", os.devnull, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.decode(errors='replace')[:200]}")
    return STRACE


def _strace_command(trace: Path, *args: str) -> list[str]:
    return [
        _require_strace(),
        "-f",
        "-qq",
        "-e",
        "trace=connect,sendto,sendmsg,sendmmsg",
        "-o",
        str(trace),
        sys.executable,
        "-m",
        "veil.cli",
        *args,
    ]


def outside_traffic(trace_text: str) -> list[str]:
    """Lines that send to, or connect to, anything but a loopback address (or a local
    socket), and any line that mentions port 53 (DNS) at all."""
    bad = []
    for line in trace_text.splitlines():
        if not _CALL.search(line):
            continue
        if "htons(53)" in line:
            bad.append(line)
            continue
        for v4, v6 in _INET.findall(line):
            address = v4 or v6
            if not (address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1")):
                bad.append(line)
    return bad


def test_outside_traffic_detects_a_dns_lookup() -> None:
    """The checker itself: a line recorded from the old server (telemetry DNS) is caught."""
    line = (
        '10445 connect(13, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.53")'
        "}, 16) = 0"
    )
    loopback = (
        '10445 connect(9, {sa_family=AF_INET, sin_port=htons(8345), sin_addr=inet_addr("127.0.0.1")'
        "}, 16) = 0"
    )
    assert outside_traffic(line) == [line]
    assert outside_traffic(loopback) == []


def _env(tmp_path: Path) -> dict[str, str]:
    env = companion_env(tmp_path)
    env.pop("ORT_DISABLE_TELEMETRY", None)  # Veil must set it itself
    return env


def test_serve_and_a_cloak_make_no_outside_connection(tmp_path: Path) -> None:
    import http.client

    env = _env(tmp_path)
    trace, log_path = tmp_path / "serve.strace", tmp_path / "serve.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        # Its own process group: SIGTERM to strace alone detaches it and leaves the traced
        # `veil serve` running after the test, so the whole group is signalled.
        server = subprocess.Popen(
            _strace_command(trace, "serve", "--port", "0"),
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        port = 0
        while time.monotonic() - started < START_TIMEOUT_S and server.poll() is None:
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log_path.read_text())
            if found:
                port = int(found.group(1))
                break
            time.sleep(0.2)
        assert port, log_path.read_text()
        pairing = subprocess.run(
            [sys.executable, "-m", "veil.cli", "pair", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        code = "".join(re.findall(r"Pairing code: (\d{3}) (\d{3})", pairing.stdout)[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.request("POST", "/v1/pair", body=json.dumps({"code": code}).encode())
        token = json.loads(conn.getresponse().read())["token"]
        conn.request(
            "POST",
            "/v1/cloak",
            body=face_photo(480),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"},
        )
        reply = conn.getresponse()
        reply.read()
        assert reply.status == 200
        assert int(reply.headers["X-Veil-Faces"]) >= 1
        conn.close()
        time.sleep(max(0.0, WATCH_S - (time.monotonic() - started)))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    recorded = trace.read_text()
    assert "sendto(" in recorded, "strace saw the server answer (it traced the server)"
    assert outside_traffic(recorded) == []
    assert os.listdir(env["TMPDIR"]) == [], "nothing written to TMPDIR (no telemetry .ses)"


def test_cli_cloak_makes_no_outside_connection(tmp_path: Path) -> None:
    env = _env(tmp_path)
    src = tmp_path / "face.jpg"
    src.write_bytes(face_photo(480))
    trace = tmp_path / "cloak.strace"
    done = subprocess.run(
        _strace_command(trace, "cloak", str(src), "-o", str(tmp_path / "out")),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "faces=1" in done.stdout
    assert outside_traffic(trace.read_text()) == []
    assert os.listdir(env["TMPDIR"]) == [], "nothing written to TMPDIR (no telemetry .ses)"
