"""Videos through `POST /v1/cloak`, jobs (`X-Veil-Job`, `GET`/`DELETE /v1/jobs/{id}`) and the
private spool, in process: `create_app` with the real engine on real clips made from the
face corpus (`tests/video_samples.py`), through aiohttp's test client and raw sockets.

What is checked: a video comes back cloaked in its own container without its location;
progress rises to 1 while a real cloak runs and `/v1/health` keeps answering; a cancel
answers 409 at once and stops the work; a client that goes away stops it too; every path
leaves the spool empty; oversized, too long, unsupported and damaged videos get their typed
errors; another token sees nothing; folders are 0700 and files 0600; a `veil serve` killed
with SIGKILL mid-upload leaves a file that the next start deletes.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from corpus import in_ci, require_faces
from metadata_samples import EXIFTOOL, exiftool_tags
from veil.engine import Engine
from veil.server.app import create_app
from veil.server.backend import EngineBackend
from veil.server.pairing import issue_code
from veil.server.settings import ServerConfig
from veil.server.spool import LOCK_NAME
from veil.server.state import JOBS_KEY, POOL_KEY, SPOOL_KEY
from veil.server.tokens import TOKENS_FILE, FileTokenStore
from video_samples import FFMPEG, OWNER, SERIAL, cut, faststart, load_rgb, make_clip

from .companion import STUCK_S, start_companion, stop_companion
from .test_app import ORIGIN, EchoBackend

pytestmark = [pytest.mark.faces]

Client = TestClient[web.Request, web.Application]
JOB = "job-0123456789abcdef"
# The clip every job test uses: long enough (about 10 s of work on the shared 2-core machine)
# that a cancel or a disconnect lands mid-way.
SIZE = (480, 360)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


@dataclass(frozen=True)
class Clips:
    phone: bytes  # MP4 with one face and phone metadata (GPS, serial, owner) by exiftool
    long: bytes  # MP4, one face, 3 s
    mpeg4: bytes  # MPEG-4 Part 2: no encoder here
    path: Path  # where `phone` came from


@pytest.fixture(scope="module")
def clips(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Clips:
    folder = tmp_path_factory.mktemp("clips")
    photo = load_rgb(require_faces() / "photos" / "Scarlett_Johansson" / "img49.jpg", 1600)
    faces = [f.landmarks for f in engine.find_faces(photo)]
    assert len(faces) == 1
    phone = make_clip(folder / "phone.mp4", photo, faces, size=SIZE, seconds=1.0, tags={"a": "b"})
    long = make_clip(folder / "long.mp4", photo, faces, size=SIZE, seconds=3.0)
    old = folder / "old.mp4"
    with av.open(str(old), "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=24)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for _ in range(4):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return Clips(phone.path.read_bytes(), long.path.read_bytes(), old.read_bytes(), phone.path)


MakeClient = Callable[..., Awaitable[tuple[Client, str]]]


@pytest.fixture
def make_client(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    tmp_path: Path,
    engine: Engine,
) -> MakeClient:
    async def make(**settings: Any) -> tuple[Client, str]:
        config_dir = tmp_path / "config"
        config_dir.mkdir(mode=0o700, exist_ok=True)
        config = ServerConfig(config_dir=config_dir, **{"workers": 1, "queue": 2, **settings})
        app = create_app(
            config, EngineBackend(engine), token_store=FileTokenStore(config_dir / TOKENS_FILE)
        )
        client = await aiohttp_client(app)
        return client, await new_token(client, config_dir)

    return make


async def new_token(client: Client, config_dir: Path) -> str:
    code = issue_code(config_dir)[0]
    reply = await client.post(
        "/v1/pair", json={"code": code, "client": "pytest"}, headers={"Origin": ORIGIN}
    )
    assert reply.status == 200
    return str((await reply.json())["token"])


def auth(token: str, job: str | None = None, content_type: str = "video/mp4") -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}", "Origin": ORIGIN, "Content-Type": content_type}
    if job:
        headers["X-Veil-Job"] = job
    return headers


def spool_entries(client: Client) -> list[Path]:
    """Every job folder and file in the spool (the process's own lock file aside)."""
    spool = client.app[SPOOL_KEY]
    return [p for p in spool.root.rglob("*") if p != spool.folder and p.name != LOCK_NAME]


async def job_state(client: Client, token: str, job: str = JOB) -> dict[str, Any]:
    reply = await client.get(f"/v1/jobs/{job}", headers=auth(token))
    assert reply.status == 200, await reply.text()
    body: dict[str, Any] = await reply.json()
    return body


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "condition never met"
        await asyncio.sleep(0.05)


async def work_released(client: Client) -> bool:
    """The worker has really stopped: its memory reservation is given back."""
    return client.app[POOL_KEY].memory_reserved == 0


async def until_job(
    client: Client, token: str, post: asyncio.Future[Any], ready: Callable[[dict[str, Any]], bool]
) -> None:
    """Poll `JOB` until `ready(state)`; the POST must not have answered before."""

    async def check() -> bool:
        assert not post.done(), await (await post).text()
        reply = await client.get(f"/v1/jobs/{JOB}", headers=auth(token))
        return ready(await reply.json() if reply.status == 200 else {"state": "not yet"})

    await until(check)


async def cancel_job(
    client: Client, token: str, post: asyncio.Future[Any]
) -> tuple[Any, float, float]:
    """DELETE `JOB` while `post` works: the DELETE says cancelled, the POST answers 409
    `cancelled`. Returns the POST's answer, the seconds until it came and the seconds until
    the worker had really stopped (its memory given back)."""
    started = time.monotonic()
    reply = await client.delete(f"/v1/jobs/{JOB}", headers=auth(token))
    assert reply.status == 200
    assert await reply.json() == {"job": JOB, "state": "cancelled"}
    answer = await post
    answered_s = time.monotonic() - started
    assert answer.status == 409
    assert (await answer.json())["error"]["code"] == "cancelled"
    await until(lambda: work_released(client), 10)
    return answer, answered_s, time.monotonic() - started


async def spool_empty(client: Client) -> bool:
    return not spool_entries(client)


async def slow_body(data: bytes, gate: asyncio.Event, first: int) -> AsyncIterator[bytes]:
    """`data[:first]`, then the rest once `gate` is set (an upload caught mid-way)."""
    yield data[:first]
    await gate.wait()
    yield data[first:]


def video_tags(data: bytes, tmp: Path, name: str) -> tuple[str, str, dict[str, Any]]:
    path = tmp / name
    path.write_bytes(data)
    with av.open(str(path)) as container:
        codec = container.streams.video[0].codec_context.name
        fmt = container.format.name
    tags = exiftool_tags([path])[name] if EXIFTOOL else {}
    return fmt, codec, tags


IDENTIFYING = ("GPS", "Location", "Serial", "Author", "Artist", "Owner", "DisplayName")


@pytest.mark.skipif(EXIFTOOL is None and not in_ci(), reason="exiftool not installed")
async def test_video_round_trip_with_progress(
    make_client: MakeClient, clips: Clips, tmp_path: Path
) -> None:
    """Cloaked, same container and codec, faces reported, no location left; progress rises
    to 1 through the stages while the real cloak runs, and health keeps answering."""
    client, token = await make_client()
    post = asyncio.ensure_future(
        client.post("/v1/cloak?mode=mid", data=clips.phone, headers=auth(token, JOB))
    )
    seen: list[tuple[str, float, str]] = []
    health_s: list[float] = []
    while not post.done():
        reply = await client.get(f"/v1/jobs/{JOB}", headers=auth(token))
        if reply.status == 200:
            body = await reply.json()
            seen.append((body["state"], body["progress"], body["stage"]))
        started = time.monotonic()
        health = await client.get("/v1/health")
        assert health.status == 200
        health_s.append(time.monotonic() - started)
        await asyncio.sleep(0.05)
    reply = await post
    data = await reply.read()
    assert reply.status == 200, data[:300]
    assert reply.headers["Content-Type"] == "video/mp4"
    assert reply.headers["X-Veil-Faces"] == "1"
    cloaked, total = map(int, reply.headers["X-Veil-Face-Frames"].split("/"))
    assert total > 0 and cloaked / total >= 0.99
    assert reply.headers["X-Veil-Face-Profiles"] == "[null]"
    assert "location" in reply.headers["X-Veil-Metadata-Removed"].lower()
    exposed = reply.headers["Access-Control-Expose-Headers"]
    assert "X-Veil-Face-Frames" in exposed and "X-Veil-Face-Profiles" in exposed
    assert data != clips.phone and len(data) > 1000

    before = video_tags(clips.phone, tmp_path, "in.mp4")
    after = video_tags(data, tmp_path, "out.mp4")
    assert after[:2] == before[:2] == ("mov,mp4,m4a,3gp,3g2,mj2", "h264")
    assert any(any(w in k for w in IDENTIFYING) for k in before[2]), before[2]
    leaked = {k: v for k, v in after[2].items() if any(w in k for w in IDENTIFYING)}
    assert not leaked, leaked
    for needle in (SERIAL, OWNER, "+48.8577"):
        assert needle.encode() not in data

    final = await job_state(client, token)
    assert final == {"job": JOB, "state": "done", "progress": 1.0, "stage": "done"}
    figures = [p for _, p, _ in seen]
    print(f"progress seen: {seen}")
    print(f"health while cloaking: worst {max(health_s) * 1000:.0f} ms of {len(health_s)}")
    assert figures == sorted(figures), "progress went back"
    assert any(0 < p < 1 for p in figures), "no figure seen mid-way"
    assert {"scanning", "cloaking", "encoding"} & {s for _, _, s in seen}
    assert max(health_s) < STUCK_S
    assert spool_entries(client) == []


async def test_cancel_mid_way_answers_409_at_once(make_client: MakeClient, clips: Clips) -> None:
    client, token = await make_client()
    post = asyncio.ensure_future(
        client.post("/v1/cloak", data=clips.long, headers=auth(token, JOB))
    )

    await until_job(
        client, token, post, lambda state: state["state"] == "working" and state["progress"] > 0
    )
    assert spool_entries(client), "the video's files should be in the spool while it works"
    _, answered_s, stopped_s = await cancel_job(client, token, post)
    print(f"cancel: 409 after {answered_s:.2f} s, work stopped after {stopped_s:.2f} s")
    assert answered_s < 1.5
    assert stopped_s < 3.0  # one frame, one model call or one detection round at most
    assert spool_entries(client) == []
    assert (await job_state(client, token))["state"] == "cancelled"


async def test_client_gone_stops_the_work_and_deletes_the_files(
    make_client: MakeClient, clips: Clips
) -> None:
    client, token = await make_client()
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    head = (
        f"POST /v1/cloak HTTP/1.1\r\nHost: 127.0.0.1:{client.server.port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: video/mp4\r\nX-Veil-Job: {JOB}\r\n"
        f"Content-Length: {len(clips.long)}\r\n\r\n"
    )
    writer.write(head.encode() + clips.long)
    await writer.drain()

    async def working() -> bool:
        reply = await client.get(f"/v1/jobs/{JOB}", headers=auth(token))
        return reply.status == 200 and (await reply.json())["state"] == "working"

    await until(working)
    writer.close()  # the tab closed mid-cloak
    await until(lambda: work_released(client), 10)
    await until(lambda: spool_empty(client), 5)
    assert (await job_state(client, token))["state"] == "cancelled"
    assert client.app[POOL_KEY].memory_reserved == 0
    del reader


async def test_spool_is_private_and_a_cancel_while_receiving_empties_it(
    make_client: MakeClient, clips: Clips
) -> None:
    client, token = await make_client()
    gate = asyncio.Event()
    post = asyncio.ensure_future(
        client.post("/v1/cloak", data=slow_body(clips.long, gate, 4096), headers=auth(token, JOB))
    )

    async def arrived() -> bool:
        # (Written to disk by the MiB: the file may still be empty; nothing is in memory.)
        return any(p.name == "input" for p in spool_entries(client))

    await until(arrived, 30)
    assert (await job_state(client, token))["state"] == "receiving"
    spool = client.app[SPOOL_KEY]
    modes = {
        str(p.relative_to(spool.root.parent)): stat.S_IMODE(p.lstat().st_mode)
        for p in [spool.root, spool.folder, *spool_entries(client)]
    }
    print(modes)
    for path, mode in modes.items():
        assert mode == (0o600 if path.endswith("input") else 0o700), (path, oct(mode))
    reply = await client.delete(f"/v1/jobs/{JOB}", headers=auth(token))
    assert reply.status == 200
    answer = await post
    assert answer.status == 409 and (await answer.json())["error"]["code"] == "cancelled"
    gate.set()
    assert spool_entries(client) == []


async def test_oversize_is_refused_without_reading_it(
    make_client: MakeClient, clips: Clips
) -> None:
    limit = 256 * 1024
    client, token = await make_client(max_video_bytes=limit)
    port = client.server.port
    # Announced too large: 413 before a byte of the body is read.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"POST /v1/cloak HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: video/mp4\r\n"
            f"Content-Length: {3 * 1024**3}\r\n\r\n"
        ).encode()
        + clips.long[:1024]
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    assert status.startswith(b"HTTP/1.1 413"), status
    writer.close()

    # Streamed without a length: refused as soon as it passes the cap.
    sent = [0]
    total = 512 * 1024 * 1024

    async def endless() -> AsyncIterator[bytes]:
        yield clips.long
        chunk = bytes(64 * 1024)
        while sent[0] < total:
            sent[0] += len(chunk)
            yield chunk

    try:
        reply = await client.post("/v1/cloak", data=endless(), headers=auth(token))
        assert reply.status == 413
        assert (await reply.json())["error"]["code"] == "payload_too_large"
    except (ConnectionError, OSError):
        pass  # the server closed while the client was still sending: refused too
    print(f"streamed before the 413: {sent[0] / 1e6:.1f} MB of {total / 1e6:.0f}")
    assert sent[0] < 64 * 1024 * 1024
    await until(lambda: spool_empty(client), 5)


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("mpeg4", 415, "unsupported_codec"),
        ("corrupt", 422, "corrupt_image"),
        ("truncated", 422, "corrupt_image"),
        ("too_long", 413, "video_too_long"),
    ],
)
async def test_typed_errors_leave_nothing_behind(
    make_client: MakeClient, clips: Clips, kind: str, status: int, code: str
) -> None:
    client, token = await make_client(max_video_seconds=2.0)
    body = {
        "mpeg4": clips.mpeg4,
        "corrupt": b"\x00\x00\x00\x18ftypisom" + b"\xff" * 50_000,
        "truncated": clips.phone[:40],
        "too_long": clips.long,
    }[kind]
    reply = await client.post("/v1/cloak", data=body, headers=auth(token, JOB))
    answer = await reply.json()
    assert (reply.status, answer["error"]["code"]) == (status, code), answer
    if code == "corrupt_image":
        assert "video" in answer["error"]["message"]
    assert (await job_state(client, token))["state"] == "failed"
    assert spool_entries(client) == []


@pytest.mark.skipif(FFMPEG is None and not in_ci(), reason="ffmpeg not installed")
@pytest.mark.parametrize("share", [0.5, 0.99])
async def test_a_truncated_video_is_refused_and_leaves_nothing_behind(
    make_client: MakeClient, clips: Clips, tmp_path: Path, share: float
) -> None:
    """The phone clip with its index first (as phones write it), cut at half or 99% of its
    bytes: 422 `corrupt_image` about the video, never the first part cloaked (before the
    damage checks: 200 with a shorter video), and the spool empty."""
    whole = faststart(clips.path, tmp_path / "whole.mp4")
    body = cut(whole, tmp_path / "cut.mp4", share).read_bytes()
    client, token = await make_client()
    reply = await client.post("/v1/cloak", data=body, headers=auth(token, JOB))
    answer = await reply.json()
    assert (reply.status, answer["error"]["code"]) == (422, "corrupt_image"), answer
    assert "video" in answer["error"]["message"] and "truncated" in answer["error"]["message"]
    assert (await job_state(client, token))["state"] == "failed"
    await until(lambda: work_released(client), 10)
    assert spool_entries(client) == []


async def test_time_out_leaves_nothing_behind(
    make_client: MakeClient, clips: Clips, monkeypatch: pytest.MonkeyPatch
) -> None:
    """504 `timeout` once the video's time-out (here: 1 s, no time per second of video)
    has passed; the work stops and its files go."""
    from veil.server import settings

    monkeypatch.setattr(settings, "VIDEO_WORK_S_PER_S", 0.0)
    client, token = await make_client(request_timeout_s=1.0)
    reply = await client.post("/v1/cloak", data=clips.long, headers=auth(token, JOB))
    assert reply.status == 504 and (await reply.json())["error"]["code"] == "timeout"
    assert (await job_state(client, token))["state"] == "failed"
    await until(lambda: work_released(client), 10)
    assert spool_entries(client) == []


class ExplodingBackend(EngineBackend):
    """Writes part of an output, then fails the way a bug would (not a VeilError)."""

    def cloak_video(self, src: Path, dst: Path, **_: Any) -> Any:
        dst.write_bytes(b"half an output")
        raise RuntimeError("boom")


async def test_unexpected_error_leaves_nothing_behind(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    engine: Engine,
    clips: Clips,
    tmp_path: Path,
) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir(mode=0o700)
    store = FileTokenStore(config_dir / TOKENS_FILE)
    config = ServerConfig(config_dir=config_dir, workers=1, queue=0)
    client = await aiohttp_client(create_app(config, ExplodingBackend(engine), token_store=store))
    token = await new_token(client, config_dir)
    reply = await client.post("/v1/cloak", data=clips.phone, headers=auth(token))
    assert reply.status == 500 and (await reply.json())["error"]["code"] == "internal_error"
    assert spool_entries(client) == []


async def test_another_token_cannot_see_or_cancel_a_job(
    make_client: MakeClient, clips: Clips
) -> None:
    client, token = await make_client()
    config_dir = client.app[SPOOL_KEY].root.parent
    other = await new_token(client, config_dir)
    post = asyncio.ensure_future(
        client.post("/v1/cloak", data=clips.phone, headers=auth(token, JOB))
    )
    await until(lambda: _exists(client, token))
    for method in ("GET", "DELETE"):
        reply = await client.request(method, f"/v1/jobs/{JOB}", headers=auth(other))
        assert reply.status == 404 and (await reply.json())["error"]["code"] == "not_found"
    reply = await client.get(f"/v1/jobs/{JOB}", headers={"Origin": ORIGIN})
    assert reply.status == 401
    # The same id under another token is another job: no clash, no leak.
    assert (await post).status == 200
    assert (await job_state(client, token))["state"] == "done"


async def _exists(client: Client, token: str) -> bool:
    reply = await client.get(f"/v1/jobs/{JOB}", headers=auth(token))
    return reply.status == 200


async def test_photo_jobs_report_stages_and_bad_ids_are_refused(
    make_client: MakeClient, clips: Clips, engine: Engine
) -> None:
    from .companion import small_jpeg

    client, token = await make_client()
    photo = small_jpeg(require_faces() / "photos" / "Scarlett_Johansson" / "img49.jpg")
    reply = await client.post("/v1/cloak", data=photo, headers=auth(token, JOB, "image/jpeg"))
    assert reply.status == 200 and reply.headers["X-Veil-Faces"] == "1"
    assert await job_state(client, token) == {
        "job": JOB,
        "state": "done",
        "progress": 1.0,
        "stage": "done",
    }
    for bad in ("short", "x" * 65, "has space in it 0123", "bad/slash-0123456789"):
        reply = await client.post("/v1/cloak", data=photo, headers=auth(token, bad, "image/jpeg"))
        assert reply.status == 400, bad
    reply = await client.get("/v1/jobs/unknown-0123456789abc", headers=auth(token))
    assert reply.status == 404
    assert len(client.app[JOBS_KEY]) == 1

    # The coarse stages a photo goes through, as the worker reports them to its job.
    from veil import progress
    from veil.results import Mode

    seen: list[tuple[str, float]] = []
    with progress.bound(lambda stage, share: seen.append((stage, share))):
        EngineBackend(engine).cloak_bytes(photo, mode=Mode.MID, keep_metadata=False)
    assert [stage for stage, _ in seen][:3] == ["scanning", "scanning", "cloaking"]
    assert seen[-1][0] == "encoding"
    assert [share for _, share in seen] == sorted(share for _, share in seen)


async def test_leftovers_are_deleted_at_start(tmp_path: Path) -> None:
    """What a process killed with kill -9 left (its lock died with it) goes at the next
    start; a live server's folder stays."""
    config = ServerConfig(config_dir=tmp_path / "config", workers=1, queue=0)
    store = FileTokenStore(tmp_path / TOKENS_FILE)
    first = create_app(config, EchoBackend(), token_store=store)  # live: holds its lock
    live = first[SPOOL_KEY].folder
    dead = config.video_spool_dir / "proc-0000000000000000"
    (dead / "job-1").mkdir(parents=True)
    (dead / LOCK_NAME).touch()
    (dead / "job-1" / "input").write_bytes(b"half a video")
    stray = config.video_spool_dir / "stray.tmp"
    stray.write_bytes(b"x")
    second = create_app(config, EchoBackend(), token_store=store)
    assert second[SPOOL_KEY].swept == 2
    assert not dead.exists() and not stray.exists()
    assert live.is_dir()
    assert stat.S_IMODE(config.video_spool_dir.stat().st_mode) == 0o700
    for app in (first, second):
        app[SPOOL_KEY].close()
    assert list(config.video_spool_dir.iterdir()) == []


def test_real_server_disconnect_then_sigkill_then_restart(clips: Clips, tmp_path: Path) -> None:
    """A real `veil serve` (whose aiohttp does not cancel handlers of lost connections):
    a client that goes away mid-cloak stops the work and empties the spool; killed with
    SIGKILL while a video is arriving, it leaves the file, which the next `veil serve` with
    the same config folder deletes at start."""
    (tmp_path / "one").mkdir()
    companion = start_companion(tmp_path / "one")
    spool = companion.config_dir / "video-spool"
    try:
        token = companion.pair()
        gone = _upload(companion, token, clips.long, len(clips.long))
        _wait_for(lambda: _job(companion, token).get("state") == "working", 60)
        gone.close()
        _wait_for(lambda: not list(spool.glob("proc-*/job-*")), 10)
        assert _job(companion, token)["state"] == "cancelled"

        killed = _upload(companion, token, clips.long, len(clips.long) * 4)
        _wait_for(lambda: bool(list(spool.glob("proc-*/job-*/input"))), 30)
        companion.process.send_signal(signal.SIGKILL)
        companion.process.wait(10)
        killed.close()
        left = list(spool.rglob("*"))
        assert any(p.name == "input" for p in left), left
    finally:
        stop_companion(companion)
    again = _restart(companion.env, tmp_path / "two.log")
    try:
        assert [p.name for p in spool.iterdir()] == [_own_folder(spool)]
        assert [p.name for p in (spool / _own_folder(spool)).iterdir()] == [LOCK_NAME]
    finally:
        again.terminate()
        again.wait(20)
    assert list(spool.iterdir()) == []  # a clean stop deletes its own folder too


def _upload(companion: Any, token: str, data: bytes, length: int) -> socket.socket:
    """A raw upload of `data` announcing `length` bytes, left open."""
    sock = socket.create_connection(("127.0.0.1", companion.port))
    sock.sendall(
        (
            f"POST /v1/cloak HTTP/1.1\r\nHost: {companion.host}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: video/mp4\r\n"
            f"X-Veil-Job: {JOB}\r\nContent-Length: {length}\r\n\r\n"
        ).encode()
        + data
    )
    return sock


def _job(companion: Any, token: str) -> dict[str, Any]:
    reply = companion.request(
        "GET", f"/v1/jobs/{JOB}", headers={"Authorization": f"Bearer {token}"}
    )
    return dict(reply.json()) if reply.status == 200 else {}


def _wait_for(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.05)


def _own_folder(spool: Path) -> str:
    folders = [p.name for p in spool.iterdir()]
    assert len(folders) == 1, folders
    return folders[0]


def _restart(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "veil.cli", "serve", "--port", "0"],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while not re.search(r"listening on http://", log_path.read_text()):
        assert process.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.2)
    return process


def test_a_4k_hevc_job_reserves_what_x265_was_measured_to_take() -> None:
    """docs/video.md (HEVC memory), whole cloak, peak RSS: 4K HEVC 10-bit 1,254 MB, 888 MB
    above the models' 366 MB, and about 35 MB more with 8 x265 worker threads; 1080p HEVC
    10-bit 792 MB (x265's full look-ahead below 1440p); H.264 at 4K 845 MB. The
    reservation must cover each above the models."""
    from veil.server.pool import estimate_video_job_bytes

    mb = 1024**2  # the benchmark's MB are ru_maxrss / 1024
    assert estimate_video_job_bytes(3840, 2160, "hevc") >= (888 + 35) * mb
    assert estimate_video_job_bytes(1920, 1080, "hevc") >= (792 - 366) * mb
    assert estimate_video_job_bytes(3840, 2160, "h264") >= (845 - 366) * mb
