"""The server's own logic, in process: `create_app(config, backend)` with test backends.

No models and no subprocess: a backend that returns its input unchanged, one that raises,
one that blocks until the test lets it go; an injected clock for pairing codes and the
pairing lock. What a test proves is read from responses and events, never from a sleep.
The real `veil serve` (real models, real sockets) is covered by test_security.py and
test_load.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image

from veil.errors import CorruptImageError
from veil.results import CloakResult, FaceReport, Mode
from veil.server.app import create_app
from veil.server.pairing import CODE_LIFETIME_S, issue_code
from veil.server.settings import ServerConfig
from veil.server.state import POOL_KEY
from veil.server.tokens import TOKENS_FILE, FileTokenStore, TokenRecord

ORIGIN = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"
LOCK_S = 300.0
Client = TestClient[web.Request, web.Application]


def jpeg(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (120, 90, 60)).save(out, "JPEG", quality=90)
    return out.getvalue()


class Clock:
    """Unix time that moves only when the test says so."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class EchoBackend:
    """Returns the photo unchanged, claiming `faces` faces (0: a photo without faces)."""

    model_names = ("test-detector", "test-surrogate")

    def __init__(self, faces: int = 0) -> None:
        self.faces = faces
        self.calls: list[tuple[Mode, bool]] = []

    def cloak_bytes(self, data: bytes, *, mode: Mode, keep_metadata: bool) -> CloakResult:
        self.calls.append((mode, keep_metadata))
        reports = tuple(FaceReport((0, 0, 8, 8), 0.9, 0.99) for _ in range(self.faces))
        return CloakResult(data, "image/jpeg", 64, 48, reports, 0.001, None)


class RaisingBackend:
    model_names = ("test-detector",)

    def __init__(self, error: Exception) -> None:
        self.error = error

    def cloak_bytes(self, data: bytes, *, mode: Mode, keep_metadata: bool) -> CloakResult:
        raise self.error


class BlockingBackend(EchoBackend):
    """Holds each photo until `release` is set; `started` / `finished` report where it is."""

    def __init__(self) -> None:
        super().__init__(faces=0)
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()

    def cloak_bytes(self, data: bytes, *, mode: Mode, keep_metadata: bool) -> CloakResult:
        self.started.set()
        assert self.release.wait(30), "the test never released the backend"
        try:
            return super().cloak_bytes(data, mode=mode, keep_metadata=keep_metadata)
        finally:
            self.finished.set()


class OffLoopStore(FileTokenStore):
    """A file store that records every call made on the event loop's thread (a defect)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.on_loop: list[str] = []

    def _check(self, what: str) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # a worker thread: as it should be
        self.on_loop.append(what)

    def load(self) -> list[TokenRecord]:
        self._check("load")
        return super().load()

    def save(self, records: list[TokenRecord]) -> None:
        self._check("save")
        super().save(records)


MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def make_client(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], tmp_path: Path
) -> MakeClient:
    async def make(
        backend: Any, *, clock: Clock | None = None, store: Any = None, **settings: Any
    ) -> Client:
        config = ServerConfig(config_dir=tmp_path, **{"workers": 1, "queue": 0, **settings})
        app = create_app(
            config,
            backend,
            token_store=store or FileTokenStore(tmp_path / TOKENS_FILE),
            clock=clock or Clock(),
        )
        return await aiohttp_client(app)

    return make


async def pair(client: Client, tmp_path: Path, code: str | None = None) -> tuple[int, Any]:
    code = code if code is not None else issue_code(tmp_path)[0]
    reply = await client.post(
        "/v1/pair", json={"code": code, "client": "pytest"}, headers={"Origin": ORIGIN}
    )
    return reply.status, await reply.json()


async def paired_token(client: Client, tmp_path: Path) -> str:
    status, body = await pair(client, tmp_path)
    assert status == 200, body
    return str(body["token"])


async def cloak(client: Client, token: str, data: bytes, query: str = "") -> tuple[int, Any]:
    reply = await client.post(
        f"/v1/cloak{query}",
        data=data,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "image/jpeg",
            "Origin": ORIGIN,
        },
    )
    body = await reply.read()
    if reply.content_type == "application/json":
        return reply.status, json.loads(body)
    return reply.status, body


def code_of(body: Any) -> str:
    return str(body["error"]["code"])


async def test_health_names_the_backend_models_and_pairing(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = await make_client(EchoBackend())
    before = await (await client.get("/v1/health")).json()
    assert before["models"] == ["test-detector", "test-surrogate"] and before["paired"] is False
    await paired_token(client, tmp_path)
    assert (await (await client.get("/v1/health")).json())["paired"] is True


async def test_pairing_gives_an_origin_bound_token_and_unpair_revokes_it(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = await make_client(EchoBackend())
    token = await paired_token(client, tmp_path)
    auth = {"Authorization": f"Bearer {token}", "Origin": ORIGIN}
    info = await (await client.get("/v1/token", headers=auth)).json()
    assert info["origin"] == ORIGIN and info["client"] == "pytest"
    other = {**auth, "Origin": "chrome-extension://ponmlkjihgfedcbaponmlkjihgfedcba"}
    reply = await client.get("/v1/token", headers=other)
    assert (reply.status, code_of(await reply.json())) == (403, "forbidden_origin")
    assert (await client.post("/v1/unpair", headers=auth)).status == 200
    reply = await client.get("/v1/token", headers=auth)
    assert (reply.status, code_of(await reply.json())) == (401, "unauthorized")


async def test_a_pairing_code_expires_by_the_clock(make_client: MakeClient, tmp_path: Path) -> None:
    clock = Clock()
    client = await make_client(EchoBackend(), clock=clock)
    code, _ = issue_code(tmp_path)
    clock.advance(CODE_LIFETIME_S + 1)
    status, body = await pair(client, tmp_path, code)
    assert (status, code_of(body)) == (403, "pairing_code_invalid")


async def test_wrong_codes_lock_pairing_until_the_lock_ends(
    make_client: MakeClient, tmp_path: Path
) -> None:
    clock = Clock()
    client = await make_client(EchoBackend(), clock=clock, pairing_lock_s=LOCK_S)
    good, _ = issue_code(tmp_path)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    results = [await pair(client, tmp_path, wrong) for _ in range(5)]
    assert [(s, code_of(b)) for s, b in results[:4]] == [(403, "pairing_code_invalid")] * 4
    assert (results[4][0], code_of(results[4][1])) == (429, "pairing_locked")
    # Locked: the discarded code (and any guess) is refused, with the time left in
    # Retry-After. (A fresh `veil pair` code ends the lock at once: test_hardening_server.)
    clock.advance(LOCK_S - 10)
    reply = await client.post("/v1/pair", json={"code": good})
    assert reply.status == 429 and reply.headers["Retry-After"] == "10"
    clock.advance(11)
    # `veil pair` stamps codes with the real time; this one must outlive the fake lock.
    status, body = await pair(client, tmp_path, issue_code(tmp_path, lifetime_s=2 * LOCK_S)[0])
    assert status == 200, body


async def test_cloak_passes_mode_and_flag_to_the_backend(
    make_client: MakeClient, tmp_path: Path
) -> None:
    backend = EchoBackend(faces=0)
    client = await make_client(backend)
    token = await paired_token(client, tmp_path)
    photo = jpeg()
    status, body = await cloak(client, token, photo, "?mode=high&keep_metadata=true")
    assert status == 200 and body == photo  # no face: the photo is returned as it is
    assert backend.calls == [(Mode.HIGH, True)]
    status, body = await cloak(client, token, photo, "?mode=ultra")
    assert (status, code_of(body)) == (400, "bad_request")
    assert len(backend.calls) == 1, "a bad query never reaches the backend"


async def test_an_unchanged_photo_with_faces_is_never_passed_off_as_cloaked(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = await make_client(EchoBackend(faces=1))
    token = await paired_token(client, tmp_path)
    status, body = await cloak(client, token, jpeg())
    assert (status, code_of(body)) == (500, "cloak_failed")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (CorruptImageError("truncated"), 422, "corrupt_image"),
        (RuntimeError("secret detail /home/user/photo.jpg"), 500, "internal_error"),
    ],
)
async def test_backend_errors_become_typed_json(
    make_client: MakeClient, tmp_path: Path, error: Exception, status: int, code: str
) -> None:
    client = await make_client(RaisingBackend(error))
    token = await paired_token(client, tmp_path)
    got_status, body = await cloak(client, token, jpeg())
    assert (got_status, code_of(body)) == (status, code)
    assert "secret detail" not in json.dumps(body)
    assert (await client.get("/v1/health")).status == 200, "the server keeps serving"


async def test_time_out_answers_504_and_the_running_photo_keeps_its_slot(
    make_client: MakeClient, tmp_path: Path
) -> None:
    backend = BlockingBackend()
    client = await make_client(backend, workers=1, queue=0, request_timeout_s=0.2)
    token = await paired_token(client, tmp_path)
    status, body = await cloak(client, token, jpeg())
    assert (status, code_of(body)) == (504, "timeout")
    assert backend.started.is_set() and not backend.finished.is_set()
    # The photo still running holds the only worker: the next one is refused, not queued.
    status, body = await cloak(client, token, jpeg())
    assert (status, code_of(body)) == (503, "busy")
    backend.release.set()
    assert await asyncio.to_thread(backend.finished.wait, 10)
    pool = client.app[POOL_KEY] if client.app else None
    assert pool is not None
    for _ in range(200):  # the slot is given back by the worker thread right after
        if pool.retry_after() and pool._admitted == 0:
            break
        await asyncio.sleep(0.005)
    status, body = await cloak(client, token, jpeg())
    assert status == 200


async def test_a_full_pool_answers_503_with_retry_after(
    make_client: MakeClient, tmp_path: Path
) -> None:
    backend = BlockingBackend()
    client = await make_client(backend, workers=1, queue=0)
    token = await paired_token(client, tmp_path)
    first = asyncio.create_task(cloak(client, token, jpeg()))
    assert await asyncio.to_thread(backend.started.wait, 10)
    reply = await client.post(
        "/v1/cloak",
        data=jpeg(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"},
    )
    assert reply.status == 503 and int(reply.headers["Retry-After"]) >= 1
    backend.release.set()
    status, _ = await first
    assert status == 200


async def test_a_corrupt_token_file_is_a_typed_error_and_unpair_repairs_it(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = await make_client(EchoBackend())
    (tmp_path / TOKENS_FILE).write_text("{not json")
    headers = {"Authorization": "Bearer veil_whatever", "Origin": ORIGIN}
    for method, path in (("GET", "/v1/token"), ("POST", "/v1/cloak"), ("GET", "/v1/health")):
        reply = await client.request(method, path, headers=headers)
        assert (reply.status, code_of(await reply.json())) == (503, "token_store_unreadable")
    from veil.server.tokens import revoke_all

    assert revoke_all(FileTokenStore(tmp_path / TOKENS_FILE)) == 0  # what `veil unpair` runs
    assert (await paired_token(client, tmp_path)).startswith("veil_")


async def test_token_store_is_only_touched_off_the_event_loop(
    make_client: MakeClient, tmp_path: Path
) -> None:
    store = OffLoopStore(tmp_path / TOKENS_FILE)
    client = await make_client(EchoBackend(), store=store)
    token = await paired_token(client, tmp_path)
    auth = {"Authorization": f"Bearer {token}", "Origin": ORIGIN}
    await client.get("/v1/health")
    await client.get("/v1/token", headers=auth)
    await cloak(client, token, jpeg())
    await client.post("/v1/unpair", headers=auth)
    assert store.on_loop == []


async def test_limits_refuse_before_the_backend_runs(
    make_client: MakeClient, tmp_path: Path
) -> None:
    backend = EchoBackend()
    client = await make_client(backend, max_body_bytes=4096, max_pixels=64 * 48 - 1)
    token = await paired_token(client, tmp_path)
    status, body = await cloak(client, token, b"\xff\xd8" + bytes(8192))
    assert (status, code_of(body)) == (413, "payload_too_large")
    status, body = await cloak(client, token, jpeg(64, 48))  # one pixel over the cap
    assert (status, code_of(body)) == (413, "image_too_large")
    status, body = await cloak(client, token, jpeg(32, 24))
    assert status == 200
    assert len(backend.calls) == 1, "refused photos never reach the backend"
