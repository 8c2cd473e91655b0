"""Mutation fuzz of real JPEG/PNG/WebP photos (fixed seed) over the HTTP API and the CLI.

HTTP: an in-process server (`create_app`) whose backend is the real engine (real probe,
decode, face detector, alignment, paste, encoder and metadata code) with one cheap linear
surrogate in place of the ONNX recognisers, so a few hundred cases fit in seconds; the
recognisers' cost is not what a fuzz of the parsers explores. Asserted: no 5xx, every
error is JSON with a typed 4xx code, and /v1/health, polled all along on the same event
loop, answers every poll throughout and never stalls like a stuck server (the latency
itself is a benchmark figure). CLI: the real `veil cloak` over a folder of mutants:
one typed line per file, exit status 0 or 1, no traceback.

The longer fuzz is `build/bench/fuzz_companion.py fuzz` (real recognisers, real server).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

import hostile_inputs as hostile
from corpus import require_faces
from veil.engine import Engine
from veil.errors import ErrorCode
from veil.server.app import create_app
from veil.server.backend import EngineBackend
from veil.server.settings import ServerConfig
from veil.server.tokens import FileTokenStore, issue_token

from .companion import STUCK_S

SEED = 13
HTTP_CASES = 300
CLI_CASES = 36
TYPED_4XX = {code.value for code in ErrorCode}
F32 = npt.NDArray[np.float32]


class LinearSurrogate:
    """A recogniser stand-in: a fixed random projection of the crop, with the exact gradient
    of its cosine loss (what the optimiser needs), in microseconds instead of ONNX calls."""

    name = "linear-test-surrogate"

    def __init__(self, dim: int = 16) -> None:
        rng = np.random.default_rng(0)
        self._weights = rng.normal(0, 1, (112 * 112 * 3, dim)).astype(np.float32) / 100

    def embed(self, crops: F32) -> F32:
        out = crops.reshape(len(crops), -1).astype(np.float32) @ self._weights
        norm = np.linalg.norm(out, axis=1, keepdims=True) + 1e-6
        return np.asarray(out / norm, np.float32)

    def loss_and_grad(self, crops: F32, targets: F32) -> tuple[F32, F32, F32]:
        raw = crops.reshape(len(crops), -1).astype(np.float32) @ self._weights
        norm = np.linalg.norm(raw, axis=1, keepdims=True) + 1e-6
        unit = raw / norm
        loss = np.sum(unit * targets, axis=1)
        d_raw = (targets - loss[:, None] * unit) / norm
        grad = (d_raw @ self._weights.T).reshape(crops.shape)
        return unit.astype(np.float32), loss.astype(np.float32), grad.astype(np.float32)


def seed_photos(count: int = 6, long_side: int = 160) -> list[bytes]:
    """Real face photos, shrunk, as JPEG, PNG and WebP in turn (with EXIF on the JPEGs)."""
    faces = require_faces()
    seeds = []
    for index, path in enumerate(sorted((faces / "photos").glob("*/*.jpg"))[:count]):
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((long_side, long_side))
            out = io.BytesIO()
            fmt = ("JPEG", "PNG", "WEBP")[index % 3]
            options: dict[str, object] = {}
            if fmt == "JPEG":
                exif = Image.Exif()
                exif[0x010F], exif[0x013B], exif[0x0112] = "VeilCam", "Jane Doe", 6
                options = {"exif": exif.tobytes(), "quality": 90}
            image.save(out, fmt, **options)
            seeds.append(out.getvalue())
    return seeds


@pytest.fixture(scope="module")
def fast_engine() -> Engine:
    real = Engine.load()
    return Engine(real.detector, [LinearSurrogate()])


async def test_http_fuzz_no_5xx_typed_4xx_health_keeps_answering(
    fast_engine: Engine, tmp_path: Path
) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    token, _ = issue_token(store, client="fuzz", origin=None)
    config = ServerConfig(config_dir=tmp_path, workers=2, queue=4, request_timeout_s=30)
    app = create_app(config, EngineBackend(fast_engine), token_store=store)
    cases = list(hostile.mutations(seed_photos(), HTTP_CASES, SEED))
    counts: Counter[str] = Counter()
    problems: list[str] = []
    latencies: list[float] = []
    async with TestClient(TestServer(app)) as client:
        done = asyncio.Event()

        async def poll_health() -> None:
            while not done.is_set():
                started = time.perf_counter()
                reply = await client.get("/v1/health")
                await reply.read()
                latencies.append(
                    time.perf_counter() - started if reply.status == 200 else float("inf")
                )
                await asyncio.sleep(0.05)

        poller = asyncio.create_task(poll_health())
        started = time.perf_counter()
        for name, data in cases:
            reply = await client.post(
                "/v1/cloak?mode=low",
                data=data,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"},
            )
            body = await reply.read()
            if reply.status == 200:
                counts["200"] += 1
                continue
            try:
                code = json.loads(body)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = None
            counts[f"{reply.status} {code}"] += 1
            if reply.status >= 500 or code not in TYPED_4XX:
                problems.append(f"{name}: {reply.status} {body[:160]!r}")
        elapsed = time.perf_counter() - started
        done.set()
        await poller
    print(f"\nHTTP fuzz: {HTTP_CASES} cases in {elapsed:.1f} s: {dict(sorted(counts.items()))}")
    print(f"health: {len(latencies)} polls, worst {max(latencies):.3f} s")
    assert not problems, problems[:10]
    assert counts["200"] and len(counts) > 1, "the mutants reach both outcomes"
    assert len(latencies) >= 10
    assert float("inf") not in latencies, "a health poll failed"
    assert max(latencies) < STUCK_S


def test_cli_fuzz_every_file_typed_no_crash(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    suffix = {b"\xff\xd8": ".jpg", b"\x89P": ".png", b"RI": ".webp"}
    for name, data in hostile.mutations(seed_photos(long_side=96), CLI_CASES, SEED + 1):
        (folder / f"{name}{suffix.get(data[:2], '.jpg')}").write_bytes(data)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("veil")), "cloak", str(folder), "-o",
         str(tmp_path / "out"), "--mode", "low"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == CLI_CASES
    for line in lines:
        ok = line.startswith("ok ")
        typed = re.match(r"FAIL  .+?: ([a-z_]+): ", line)
        assert ok or (typed and typed.group(1) in TYPED_4XX), line
        assert "internal_error" not in line, line
