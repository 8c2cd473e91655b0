"""Hostile-upload benchmark for the companion: bombs, health latency, and a long fuzz.

    .venv/bin/python build/bench/fuzz_companion.py bombs             # peak RSS / time per bomb
    .venv/bin/python build/bench/fuzz_companion.py health            # /v1/health latency while
                                                                     # each bomb is uploaded
    .venv/bin/python build/bench/fuzz_companion.py fuzz --cases 2000 # HTTP + CLI mutation fuzz

`bombs` runs each bomb (tests/hostile_inputs.py) through `Engine.cloak_bytes` in a fresh
process and prints the outcome, the seconds and the peak RSS above the loaded engine's.
`health` starts a real `veil serve`, uploads each bomb and polls /v1/health every 50 ms
meanwhile, printing the worst latency. `fuzz` mutates real JPEG/PNG/WebP photos (fixed seed)
and sends them to a real `veil serve`, counting replies by status and code; a 5xx, a
non-JSON error or a dead server is a failure (exit 1). Uses ../shared/faces.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

import hostile_inputs  # noqa: E402

FACES = Path(os.environ.get("VEIL_FACES_DIR", REPO.parent / "shared" / "faces"))
BOMB_TIMEOUT_S = 300

_CHILD = r"""
import resource, sys, time
sys.path.insert(0, {tests!r})
import hostile_inputs
from veil.engine import Engine
from veil.errors import VeilError
engine = Engine.load()
data = hostile_inputs.BOMBS[{name!r}]()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import os
with open("/proc/self/status") as f:
    rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
started = time.perf_counter()
try:
    result = engine.cloak_bytes(data)
    outcome = f"200 faces={{result.face_count}}"
except VeilError as exc:
    outcome = f"{{exc.http_status}} {{exc.code}}"
except Exception as exc:
    outcome = f"CRASH {{type(exc).__name__}}"
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RESULT", len(data), outcome.replace(" ", "_"), f"{{seconds:.2f}}", (peak - rss) // 1024)
"""


def bombs(names: list[str]) -> None:
    print(f"{'bomb':<22} {'upload':>9} {'outcome':<28} {'seconds':>8} {'peak RSS +MiB':>14}")
    for name in names:
        code = _CHILD.format(tests=str(REPO / "tests"), name=name)
        try:
            done = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                timeout=BOMB_TIMEOUT_S,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
            line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT")), None)
            if line is None:
                print(f"{name:<22} {'':>9} {'died rc=' + str(done.returncode):<28}")
                print(done.stderr[-400:])
                continue
            _, size, outcome, seconds, peak = line.split()
            print(f"{name:<22} {int(size) / 1e6:>7.1f}MB {outcome:<28} {seconds:>8} {peak:>14}")
        except subprocess.TimeoutExpired:
            print(f"{name:<22} {'':>9} {'killed after ' + str(BOMB_TIMEOUT_S) + ' s':<28}")
        sys.stdout.flush()


# -- a real `veil serve` ----------------------------------------------------------------


class Server:
    def __init__(self, tmp: Path, *extra: str) -> None:
        (tmp / "config").mkdir(mode=0o700)
        (tmp / "tmpdir").mkdir()
        self.env = {
            **os.environ,
            "VEIL_CONFIG_DIR": str(tmp / "config"),
            "VEIL_TOKEN_STORE": "file",
            "TMPDIR": str(tmp / "tmpdir"),
            "PYTHONUNBUFFERED": "1",
        }
        self.log_path = tmp / "serve.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "veil.cli", "serve", "--port", "0", *extra],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        self.port = 0
        while time.monotonic() < deadline and self.process.poll() is None:
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.log_path.read_text())
            if found:
                self.port = int(found.group(1))
                break
            time.sleep(0.2)
        if not self.port:
            raise SystemExit("veil serve did not start:\n" + self.log_path.read_text())
        pairing = subprocess.run(
            [sys.executable, "-m", "veil.cli", "pair", "--port", str(self.port)],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        code = "".join(re.findall(r"Pairing code: (\d{3}) (\d{3})", pairing.stdout)[0])
        _status, body, _ = self.request("POST", "/v1/pair", json.dumps({"code": code}).encode())
        self.token = json.loads(body)["token"]

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 600
    ) -> tuple[int, bytes, float]:
        headers = {"Content-Type": "application/octet-stream"}
        if path.startswith("/v1/cloak"):
            headers["Authorization"] = f"Bearer {getattr(self, 'token', '')}"
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            reply = conn.getresponse()
            return reply.status, reply.read(), time.perf_counter() - started
        finally:
            conn.close()

    def rss_mib(self, field: str = "VmHWM") -> float:
        text = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(rf"^{field}:\s+(\d+)", text, re.MULTILINE).group(1)) / 1024  # type: ignore[union-attr]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def _error_code(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "-"


def _upload_watching_health(server: Server, data: bytes) -> tuple[int, bytes, float, list[float]]:
    """Upload `data` while polling /v1/health every 50 ms on fresh connections."""
    latencies: list[float] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            try:
                latencies.append(server.request("GET", "/v1/health", timeout=120)[2])
            except OSError:
                latencies.append(float("inf"))
            time.sleep(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.2)
    try:
        status, body, seconds = server.request("POST", "/v1/cloak", data)
    finally:
        time.sleep(0.2)
        done.set()
        poller.join()
    return status, body, seconds, latencies


def health(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), "--workers", "2", "--queue", "2")
        print(f"{'bomb':<22} {'status':<26} {'upload s':>9} {'health max s':>13} {'polls':>6}")
        try:
            for name in names:
                data = hostile_inputs.BOMBS[name]()
                status, body, seconds, latencies = _upload_watching_health(server, data)
                worst = max(latencies) if latencies else float("nan")
                print(
                    f"{name:<22} {status} {_error_code(body):<22} {seconds:>9.2f} "
                    f"{worst:>13.3f} {len(latencies):>6}"
                )
                sys.stdout.flush()
            print(f"server peak RSS {server.rss_mib():.0f} MiB")
        finally:
            server.stop()


def _seed_photos() -> list[bytes]:
    from PIL import Image

    photos = sorted((FACES / "photos").glob("*/*.jpg"))[:6]
    seeds = []
    for index, path in enumerate(photos):
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((256, 256))
            out = io.BytesIO()
            image.save(out, ("JPEG", "PNG", "WEBP")[index % 3])
            seeds.append(out.getvalue())
    return seeds


def fuzz(cases: int, seed: int) -> int:
    seeds = _seed_photos()
    counts: Counter[str] = Counter()
    worst_health = 0.0
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), "--workers", "2", "--queue", "2", "--timeout", "60")
        try:
            started = time.perf_counter()
            for name, data in hostile_inputs.mutations(seeds, cases, seed):
                status, body, _ = server.request("POST", "/v1/cloak?mode=low", data)
                code = "image" if status == 200 else _error_code(body)
                counts[f"{status} {code}"] += 1
                if (status >= 500 and code not in ("busy", "timeout")) or (
                    code == "-" and status != 200
                ):
                    failures += 1
                    print(f"FAIL {name}: {status} {body[:200]!r}")
                worst_health = max(worst_health, server.request("GET", "/v1/health")[2])
            elapsed = time.perf_counter() - started
            alive = server.process.poll() is None
        finally:
            server.stop()
    print(f"{cases} cases (seed {seed}) in {elapsed:.0f} s; server alive: {alive}")
    for key, value in sorted(counts.items()):
        print(f"  {key:<32} {value:>6}")
    print(f"worst /v1/health latency between cases: {worst_health:.3f} s")
    return 1 if failures or not alive else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("bombs", "health"):
        p = sub.add_parser(command)
        p.add_argument("names", nargs="*", default=list(hostile_inputs.BOMBS))
    p = sub.add_parser("fuzz")
    p.add_argument("--cases", type=int, default=2000)
    p.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if args.command == "bombs":
        bombs(args.names)
    elif args.command == "health":
        health(args.names)
    else:
        return fuzz(args.cases, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
