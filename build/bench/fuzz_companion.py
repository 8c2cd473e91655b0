"""Hostile-upload benchmark for the companion: bombs, health latency, and a long fuzz.

    .venv/bin/python build/bench/fuzz_companion.py bombs             # peak RSS / time per bomb
    .venv/bin/python build/bench/fuzz_companion.py health            # /v1/health latency while
                                                                     # each bomb is uploaded
    .venv/bin/python build/bench/fuzz_companion.py idle              # /v1/health latency with
                                                                     # 1,100 idle sockets open
    .venv/bin/python build/bench/fuzz_companion.py fuzz --cases 2000 # HTTP + CLI mutation fuzz

`bombs` runs each bomb (tests/hostile_inputs.py) through `Engine.cloak_bytes` in a fresh
process and prints the outcome, the seconds and the peak RSS above the loaded engine's.
`health` starts a real `veil serve`, uploads each bomb and polls /v1/health every 50 ms
meanwhile, printing the worst latency. `idle` holds 1,100 half-open connections against a
server limited to 1,024 descriptors and prints health's latency meanwhile. `fuzz` mutates
real JPEG/PNG/WebP photos (fixed seed) and sends them to a real `veil serve`, counting
replies by status and code; a 5xx, a non-JSON error or a dead server is a failure (exit 1).
Uses ../shared/faces. The servers are started and paired by the test suite's harness
(tests/server/companion.py).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import socket
import statistics
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
from server.companion import start_companion, stop_companion  # noqa: E402

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


# -- a real `veil serve` (the test suite's harness, tests/server/companion.py) ----------


class Server:
    """A paired `veil serve` subprocess; `request` returns (status, body, seconds)."""

    def __init__(self, tmp: Path, *extra: str, nofile: int | None = None) -> None:
        self.companion = start_companion(tmp, *extra, nofile=nofile)
        self.process = self.companion.process
        self.token = self.companion.pair()

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 600
    ) -> tuple[int, bytes, float]:
        headers = {"Content-Type": "application/octet-stream"}
        if path.startswith("/v1/cloak"):
            headers["Authorization"] = f"Bearer {self.token}"
        started = time.perf_counter()
        reply = self.companion.request(method, path, body=body, headers=headers, timeout=timeout)
        return reply.status, reply.body, time.perf_counter() - started

    def rss_mib(self, field: str = "VmHWM") -> float:
        return self.companion.rss_kib(field) / 1024

    def stop(self) -> None:
        stop_companion(self.companion)


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


def idle(sockets: int, seconds: float) -> None:
    """Health latency while `sockets` half-open connections sit on a server limited to
    1,024 descriptors (tests/server/test_hardening_server.py asserts only that it answers)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, sockets + 1024)), hard))
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), "--workers", "2", "--queue", "2", nofile=1024)
        held: list[socket.socket] = []
        try:
            quiet = [server.request("GET", "/v1/health")[2] for _ in range(20)]
            for _ in range(sockets):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", server.companion.port))
                held.append(sock)
            time.sleep(1.0)
            latencies: list[float] = []
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    status, _, took = server.request("GET", "/v1/health", timeout=120)
                    latencies.append(took if status == 200 else float("inf"))
                except OSError:
                    latencies.append(float("inf"))
                time.sleep(0.05)
            fds = len(os.listdir(f"/proc/{server.process.pid}/fd"))
        finally:
            for sock in held:
                sock.close()
            server.stop()
    print(f"load {os.getloadavg()[0]:.1f}, cpus {os.cpu_count()}")
    print(f"health, idle server: median {statistics.median(quiet):.3f} s, worst {max(quiet):.3f} s")
    print(
        f"health, {sockets} idle sockets: median {statistics.median(latencies):.3f} s, "
        f"worst {max(latencies):.3f} s, {len(latencies)} polls, "
        f"{latencies.count(float('inf'))} failed; server descriptors {fds}"
    )


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
    p = sub.add_parser("idle")
    p.add_argument("--sockets", type=int, default=1100)
    p.add_argument("--seconds", type=float, default=10.0)
    p = sub.add_parser("fuzz")
    p.add_argument("--cases", type=int, default=2000)
    p.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if args.command == "bombs":
        bombs(args.names)
    elif args.command == "health":
        health(args.names)
    elif args.command == "idle":
        idle(args.sockets, args.seconds)
    else:
        return fuzz(args.cases, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
