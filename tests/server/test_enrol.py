"""The "Protect my face" API in process: `create_app` with the real engine on real photos
(`/v1/profiles`, `/v1/enrol`, `/v1/enrol/{job}`, save, cancel, `X-Veil-Face-Profiles`).

The engine is loaded once for the module; each test gets its own config folder, so its
profiles start empty. Enrolment runs with 2 optimiser steps (the product's
default takes minutes): what is tested is the API around the core, not the cloak's quality
(that is `veil-research personal`). A `GatedBackend` holds the real enrolment at its start
until the test lets it go, so busy, progress and cancel are read from states, not sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import stat
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from PIL import Image

from corpus import require_faces
from veil.engine import Engine
from veil.enrolment import FoundFace
from veil.personal import EnrolPlan
from veil.profiles import PROFILES_FOLDER, Profile, ProfileBook, load_profile
from veil.server.app import create_app
from veil.server.backend import EngineBackend
from veil.server.pairing import issue_code
from veil.server.settings import ServerConfig
from veil.server.state import ENROL_KEY
from veil.server.tokens import TOKENS_FILE, FileTokenStore

from .companion import small_jpeg
from .test_app import ORIGIN, Clock, EchoBackend, jpeg

pytestmark = [pytest.mark.faces]

STEPS = 2
Client = TestClient[web.Request, web.Application]
PERSON = "Jack_Dorsey"
ENROL_PHOTOS = ("img16.jpg", "img17.jpg", "img61.jpg")


@pytest.fixture(scope="module")
def faces() -> Path:
    return require_faces()


@pytest.fixture(scope="module")
def loaded_engine(faces: Path) -> Engine:
    return Engine.load()


@pytest.fixture(scope="module")
def enrol_photos(faces: Path) -> list[tuple[str, bytes]]:
    folder = faces / "photos" / PERSON
    return [(name, (folder / name).read_bytes()) for name in ENROL_PHOTOS]


class GatedBackend(EngineBackend):
    """The real engine; `enrol_profile` waits for `release` first (stopping when asked),
    and records which threads the slow work ran on."""

    def __init__(self, engine: Engine, *, gated: bool = True) -> None:
        super().__init__(engine)
        self.release = threading.Event()
        if not gated:
            self.release.set()
        self.entered = threading.Event()
        self.stopped = threading.Event()
        self.threads: list[str] = []

    def enrol_faces(self, photos: Sequence[Any]) -> list[FoundFace]:
        self.threads.append(threading.current_thread().name)
        return super().enrol_faces(photos)

    def enrol_profile(
        self,
        faces: Sequence[FoundFace],
        name: str,
        *,
        plan: EnrolPlan | None,
        progress: Callable[[float], None],
        should_stop: Callable[[], bool],
    ) -> Profile:
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        while not self.release.wait(0.02):
            if should_stop():
                self.stopped.set()
                raise_cancelled()
        try:
            return super().enrol_profile(
                faces, name, plan=plan, progress=progress, should_stop=should_stop
            )
        except Exception:
            self.stopped.set()
            raise


def raise_cancelled() -> None:
    from veil.cancel import checkpoint

    checkpoint()  # the job's token is bound to this thread: raises JobCancelledError
    raise AssertionError("should_stop() said stop but the job's token was not cancelled")


MakeClient = Callable[..., Awaitable[tuple[Client, GatedBackend, Path]]]


@pytest.fixture
def make_client(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    tmp_path: Path,
    loaded_engine: Engine,
) -> MakeClient:
    async def make(
        *, gated: bool = False, clock: Clock | None = None, **settings: Any
    ) -> tuple[Client, GatedBackend, Path]:
        config_dir = tmp_path / "config"
        config_dir.mkdir(mode=0o700, exist_ok=True)
        base = loaded_engine
        book = ProfileBook(config_dir, base.profiles.fingerprints if base.profiles else None)
        engine = Engine(base.detector, base.surrogates, max_pixels=base.max_pixels, profiles=book)
        backend = GatedBackend(engine, gated=gated)
        config = ServerConfig(
            config_dir=config_dir,
            **{"workers": 1, "queue": 2, "enrol_steps": STEPS, **settings},
        )
        app = create_app(
            config,
            backend,
            token_store=FileTokenStore(config_dir / TOKENS_FILE),
            clock=clock or Clock(),
        )
        return await aiohttp_client(app), backend, config_dir

    return make


async def new_token(client: Client, config_dir: Path) -> str:
    code = issue_code(config_dir)[0]
    reply = await client.post(
        "/v1/pair", json={"code": code, "client": "pytest"}, headers={"Origin": ORIGIN}
    )
    assert reply.status == 200
    return str((await reply.json())["token"])


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Origin": ORIGIN}


def form(photos: Sequence[tuple[str, bytes]], **fields: str) -> FormData:
    data = FormData()
    for name, content in photos:
        data.add_field("photo", content, filename=name, content_type="image/jpeg")
    for key, value in fields.items():
        data.add_field(key, value)
    return data


async def answer(reply: Any) -> tuple[int, Any]:
    return reply.status, await reply.json()


def code_of(body: Any) -> str:
    return str(body["error"]["code"])


async def start(
    client: Client, token: str, photos: Sequence[tuple[str, bytes]], query: str = "?name=me"
) -> str:
    status, body = await answer(
        await client.post(f"/v1/enrol{query}", data=form(photos), headers=auth(token))
    )
    assert status == 202, body
    return str(body["job"])


async def wait_finished(
    client: Client, token: str, job: str, seen: list[float] | None = None
) -> Any:
    for _ in range(3000):  # 5 minutes at most
        status, body = await answer(await client.get(f"/v1/enrol/{job}", headers=auth(token)))
        assert status == 200, body
        if seen is not None:
            seen.append(body["progress"])
        if body["state"] != "running":
            return body
        await asyncio.sleep(0.1)
    raise AssertionError("the enrolment never finished")


def profile_files(config_dir: Path) -> list[Path]:
    return sorted((config_dir / PROFILES_FOLDER).glob("*.npz"))


def decoded(url: str) -> Image.Image:
    prefix = "data:image/jpeg;base64,"
    assert url.startswith(prefix)
    image = Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :])))
    image.load()
    return image


async def test_every_enrolment_path_needs_the_token_and_an_extension_origin(
    make_client: MakeClient, enrol_photos: list[tuple[str, bytes]]
) -> None:
    client, backend, config_dir = await make_client()
    calls = [
        ("GET", "/v1/profiles", None),
        ("PATCH", "/v1/profiles/0123456789abcdef", {"strength": "light"}),
        ("DELETE", "/v1/profiles/0123456789abcdef", None),
        ("GET", "/v1/enrol/whatever", None),
        ("DELETE", "/v1/enrol/whatever", None),
        ("POST", "/v1/enrol/whatever/save", {"strength": "light"}),
    ]
    for method, path, body in calls:
        reply = await client.request(method, path, json=body, headers={"Origin": ORIGIN})
        assert (reply.status, code_of(await reply.json())) == (401, "unauthorized"), path
        reply = await client.request(
            method, path, json=body, headers={"Authorization": "Bearer veil_nope"}
        )
        assert reply.status == 401, path
    reply = await client.post("/v1/enrol", data=form(enrol_photos), headers={"Origin": ORIGIN})
    assert (reply.status, code_of(await reply.json())) == (401, "unauthorized")
    token = await new_token(client, config_dir)
    # A web page's origin is refused before anything else, token or not.
    web_page = {"Authorization": f"Bearer {token}", "Origin": "https://evil.example"}
    for method, path in (("GET", "/v1/profiles"), ("POST", "/v1/enrol")):
        reply = await client.request(method, path, headers=web_page)
        assert (reply.status, code_of(await reply.json())) == (403, "forbidden_origin")
    assert backend.threads == [], "nothing reached the engine"


async def test_bad_uploads_are_typed_errors_and_start_nothing(
    make_client: MakeClient, enrol_photos: list[tuple[str, bytes]], faces: Path
) -> None:
    client, backend, config_dir = await make_client(max_enrol_body_bytes=4 * 1024 * 1024)
    token = await new_token(client, config_dir)
    headers = auth(token)

    async def post(data: Any, query: str = "?name=me", **extra: str) -> tuple[int, str]:
        reply = await client.post(f"/v1/enrol{query}", data=data, headers={**headers, **extra})
        return reply.status, code_of(await reply.json())

    assert await post(b"not multipart", **{"Content-Type": "image/jpeg"}) == (400, "bad_request")
    broken = b"--xyz\r\nContent-Disposition: form-data; name=photo\r\n\r\nabc"  # never ends
    assert await post(broken, **{"Content-Type": "multipart/form-data; boundary=xyz"}) == (
        400,
        "bad_request",
    )
    no_boundary = {"Content-Type": "multipart/form-data"}
    assert await post(b"--a\r\n\r\n", **no_boundary) == (400, "bad_request")
    assert await post(form(enrol_photos[:2])) == (422, "enrol_too_few_photos")
    assert await post(form(enrol_photos * 7)) == (422, "enrol_too_few_photos")  # 21
    assert await post(form(enrol_photos, other="x")) == (400, "bad_request")
    assert await post(form(enrol_photos, face_0="left")) == (400, "bad_request")
    assert await post(form(enrol_photos, face_5="0")) == (400, "bad_request")  # no photo 6
    assert await post(form(enrol_photos), "?name=%0a") == (400, "bad_request")
    assert await post(form(enrol_photos), "?name=" + "x" * 61) == (400, "bad_request")
    text = [*enrol_photos[:2], ("notes.jpg", b"just some text, not a photo")]
    assert await post(form(text)) == (415, "unsupported_format")
    empty = [*enrol_photos[:2], ("empty.jpg", b"")]
    assert await post(form(empty)) == (422, "corrupt_image")
    truncated = [*enrol_photos[:2], ("cut.jpg", enrol_photos[2][1][:20])]
    assert await post(form(truncated)) in {(422, "corrupt_image"), (415, "unsupported_format")}
    big = (faces / "photos" / "George_Clooney" / "img40.jpg").read_bytes()  # 1.2 MB
    assert await post(form([*enrol_photos, ("a", big), ("b", big), ("c", big), ("d", big)])) == (
        413,
        "payload_too_large",
    )
    assert backend.threads == [], "no bad upload reached the engine"
    assert client.app is not None and not client.app[ENROL_KEY].busy, "no job is held"
    assert profile_files(config_dir) == []
    # And the server still takes a good one.
    job = await start(client, token, enrol_photos)
    done = await wait_finished(client, token, job)
    assert done["state"] == "done"


async def test_progress_then_done_then_save_writes_a_private_profile(
    make_client: MakeClient, enrol_photos: list[tuple[str, bytes]], faces: Path
) -> None:
    client, backend, config_dir = await make_client(gated=True)
    token = await new_token(client, config_dir)
    job = await start(client, token, enrol_photos)
    assert await asyncio.to_thread(backend.entered.wait, 60)
    status, running = await answer(await client.get(f"/v1/enrol/{job}", headers=auth(token)))
    assert status == 200 and running["state"] == "running"
    assert 0 < running["progress"] < 1 and running["previews"] is None
    assert [s["strength"] for s in running["strengths"]] == ["light", "medium", "strong"]
    # Nothing is on disk while it computes, nor once it is done: only Save writes.
    assert profile_files(config_dir) == []
    backend.release.set()
    seen: list[float] = []
    done = await wait_finished(client, token, job, seen)
    assert done["state"] == "done" and done["progress"] == 1.0 and done["error"] is None
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    assert all(name.startswith("veil-enrol") for name in backend.threads), backend.threads
    assert set(done["previews"]) == {"original", "light", "medium", "strong"}
    for views in done["previews"].values():
        feed, face = decoded(views["feed"]), decoded(views["face"])
        assert max(feed.size) <= 1080 and face.size[0] > 32
    assert done["previews"]["original"]["face"] != done["previews"]["strong"]["face"]
    assert sum(1 for s in done["strengths"] if s["recommended"]) == 1
    assert profile_files(config_dir) == []

    status, body = await answer(
        await client.post(f"/v1/enrol/{job}/save", json={"strength": "bold"}, headers=auth(token))
    )
    assert (status, code_of(body)) == (400, "bad_request")
    status, saved = await answer(
        await client.post(f"/v1/enrol/{job}/save", json={"strength": "light"}, headers=auth(token))
    )
    assert status == 200, saved
    summary = saved["profile"]
    assert summary["name"] == "me" and summary["strength"] == "light" and summary["photos"] == 3
    assert set(summary) == {"id", "name", "strength", "created", "photos"}, "no biometrics out"
    [path] = profile_files(config_dir)
    assert path.stem == summary["id"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_profile(path).strength.value == "light"
    # Saved: the job is gone from memory; saving twice is a typed 404.
    status, body = await answer(
        await client.post(f"/v1/enrol/{job}/save", json={"strength": "light"}, headers=auth(token))
    )
    assert (status, code_of(body)) == (404, "enrol_job_not_found")
    status, listed = await answer(await client.get("/v1/profiles", headers=auth(token)))
    assert status == 200 and listed["profiles"] == [summary]
    assert len(listed["strengths"]) == 3

    # The running engine sees the new profile on its next photo: the person's other photo
    # gets their personal cloak, a stranger the default one, and the header says which.
    own = small_jpeg(faces / "photos" / PERSON / "img59.jpg", long_side=800)
    stranger = (faces / "photos" / "Katy_Perry" / "img46.jpg").read_bytes()
    me = {"profile": "me", "strength": "light"}
    for photo, recognised in ((own, 1), (stranger, 0)):
        reply = await client.post(
            "/v1/cloak", data=photo, headers={**auth(token), "Content-Type": "image/jpeg"}
        )
        assert reply.status == 200, await reply.text()
        assert "X-Veil-Face-Profiles" in reply.headers["Access-Control-Expose-Headers"]
        profiles = json.loads(reply.headers["X-Veil-Face-Profiles"])
        boxes = json.loads(reply.headers["X-Veil-Face-Boxes"])
        assert len(profiles) == len(boxes) and set(map(json.dumps, profiles)) <= {
            "null",
            json.dumps(me),
        }
        assert profiles.count(me) == recognised, profiles

    # Enrolling the same name again and saving replaces the older profile.
    second = await start(client, token, enrol_photos[::-1], "?name=ME")
    assert (await wait_finished(client, token, second))["state"] == "done"
    status, saved_again = await answer(
        await client.post(
            f"/v1/enrol/{second}/save", json={"strength": "strong"}, headers=auth(token)
        )
    )
    assert status == 200 and saved_again["replaced"] == 1
    [path] = profile_files(config_dir)
    assert path.stem == saved_again["profile"]["id"] != summary["id"]


async def test_strength_change_and_forget(
    make_client: MakeClient, enrol_photos: list[tuple[str, bytes]]
) -> None:
    client, _, config_dir = await make_client()
    token = await new_token(client, config_dir)
    job = await start(client, token, enrol_photos, "?name=Alex%20B")
    assert (await wait_finished(client, token, job))["state"] == "done"
    _, saved = await answer(
        await client.post(f"/v1/enrol/{job}/save", json={"strength": "medium"}, headers=auth(token))
    )
    profile_id = saved["profile"]["id"]
    assert saved["profile"]["name"] == "Alex B"
    [path] = profile_files(config_dir)

    url = f"/v1/profiles/{profile_id}"
    status, changed = await answer(
        await client.patch(url, json={"strength": "strong"}, headers=auth(token))
    )
    assert status == 200 and changed["profile"]["strength"] == "strong"
    assert load_profile(path).strength.value == "strong"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for body in ({"strength": "max"}, {"level": "strong"}, ["strong"]):
        status, error = await answer(await client.patch(url, json=body, headers=auth(token)))
        assert (status, code_of(error)) == (400, "bad_request"), body
    reply = await client.patch(url, data=b"{not json", headers=auth(token))
    assert (reply.status, code_of(await reply.json())) == (400, "bad_request")
    for other in ("0123456789abcdef", "Alex B", "..%2F..%2Ftokens"):
        status, error = await answer(
            await client.patch(
                f"/v1/profiles/{other}", json={"strength": "light"}, headers=auth(token)
            )
        )
        assert (status, code_of(error)) == (404, "profile_not_found"), other

    status, gone = await answer(await client.delete(url, headers=auth(token)))
    assert status == 200 and gone == {"forgotten": True, "id": profile_id, "name": "Alex B"}
    assert not path.exists() and profile_files(config_dir) == []
    status, error = await answer(await client.delete(url, headers=auth(token)))
    assert (status, code_of(error)) == (404, "profile_not_found")
    _, listed = await answer(await client.get("/v1/profiles", headers=auth(token)))
    assert listed["profiles"] == []

    # A damaged profile is listed as unusable (not hiding the others) and can be forgotten.
    damaged = config_dir / PROFILES_FOLDER / "00000000deadbeef.npz"
    damaged.write_bytes(b"not a profile")
    _, listed = await answer(await client.get("/v1/profiles", headers=auth(token)))
    [entry] = listed["profiles"]
    assert entry["id"] == "00000000deadbeef" and "damaged" in entry["unusable"]
    status, error = await answer(
        await client.patch(
            "/v1/profiles/00000000deadbeef", json={"strength": "light"}, headers=auth(token)
        )
    )
    assert (status, code_of(error)) == (503, "profile_unreadable")
    status, _ = await answer(
        await client.delete("/v1/profiles/00000000deadbeef", headers=auth(token))
    )
    assert status == 200 and not damaged.exists()


async def test_one_enrolment_at_a_time_and_cancel_stops_it(
    make_client: MakeClient, enrol_photos: list[tuple[str, bytes]]
) -> None:
    client, backend, config_dir = await make_client(gated=True)
    token = await new_token(client, config_dir)
    job = await start(client, token, enrol_photos)
    assert await asyncio.to_thread(backend.entered.wait, 60)
    reply = await client.post("/v1/enrol?name=me", data=form(enrol_photos), headers=auth(token))
    assert (reply.status, code_of(await reply.json())) == (503, "busy")
    assert int(reply.headers["Retry-After"]) >= 1

    status, body = await answer(await client.delete(f"/v1/enrol/{job}", headers=auth(token)))
    assert status == 200 and body["state"] == "cancelled"
    assert await asyncio.to_thread(backend.stopped.wait, 30), "the work did not stop"
    status, body = await answer(await client.get(f"/v1/enrol/{job}", headers=auth(token)))
    assert body["state"] == "cancelled" and body["previews"] is None
    status, body = await answer(
        await client.post(f"/v1/enrol/{job}/save", json={"strength": "light"}, headers=auth(token))
    )
    assert (status, code_of(body)) == (409, "enrol_not_ready")
    # Once the cancelled work has stopped, the next enrolment is accepted.
    jobs = client.app[ENROL_KEY] if client.app else None
    assert jobs is not None
    for _ in range(200):
        if not jobs.busy:
            break
        await asyncio.sleep(0.05)
    backend.release.set()
    second = await start(client, token, enrol_photos)
    assert (await wait_finished(client, token, second))["state"] == "done"
    # Discarding a finished job drops its result; nothing was ever written.
    status, body = await answer(await client.delete(f"/v1/enrol/{second}", headers=auth(token)))
    assert body["state"] == "cancelled"
    _, body = await answer(await client.get(f"/v1/enrol/{second}", headers=auth(token)))
    assert body["previews"] is None
    assert profile_files(config_dir) == []


async def test_jobs_expire_and_belong_to_their_token(
    make_client: MakeClient, enrol_photos: list[tuple[str, bytes]]
) -> None:
    clock = Clock()
    client, _, config_dir = await make_client(clock=clock, enrol_job_ttl_s=900)
    token = await new_token(client, config_dir)
    other = await new_token(client, config_dir)
    job = await start(client, token, enrol_photos)
    assert (await wait_finished(client, token, job))["state"] == "done"
    for who, path in ((other, f"/v1/enrol/{job}"), (token, "/v1/enrol/nosuchjob")):
        status, body = await answer(await client.get(path, headers=auth(who)))
        assert (status, code_of(body)) == (404, "enrol_job_not_found")
    status, body = await answer(await client.delete(f"/v1/enrol/{job}", headers=auth(other)))
    assert (status, code_of(body)) == (404, "enrol_job_not_found")
    clock.advance(899)
    assert (await client.get(f"/v1/enrol/{job}", headers=auth(token))).status == 200
    clock.advance(2)
    status, body = await answer(await client.get(f"/v1/enrol/{job}", headers=auth(token)))
    assert (status, code_of(body)) == (404, "enrol_job_not_found")
    jobs = client.app[ENROL_KEY] if client.app else None
    assert jobs is not None and not jobs._jobs, "dropped from memory"


async def test_several_faces_ask_which_one_then_the_choice_is_used(
    make_client: MakeClient, enrol_photos: list[tuple[str, bytes]], faces: Path
) -> None:
    client, _, config_dir = await make_client()
    token = await new_token(client, config_dir)
    couple = ("couple.jpg", (faces / "scenes" / "couple.jpg").read_bytes())
    job = await start(client, token, [*enrol_photos, couple])
    failed = await wait_finished(client, token, job)
    assert failed["state"] == "failed" and failed["previews"] is None
    error = failed["error"]
    assert error["code"] == "enrol_face_ambiguous" and error["photo"] == 3
    assert "couple.jpg" in error["message"]
    assert len(error["faces"]) == 2
    for face in error["faces"]:
        assert len(face["box"]) == 4
        assert max(decoded(face["thumbnail"]).size) <= 160
    # The person says which face is them; the same photos go again with the choice.
    data = form([*enrol_photos, couple], face_3="1")
    status, body = await answer(
        await client.post("/v1/enrol?name=me", data=data, headers=auth(token))
    )
    assert status == 202
    done = await wait_finished(client, token, body["job"])
    assert done["state"] == "done", done["error"]
    # A choice of a face that is not there fails the job with a typed error.
    data = form([*enrol_photos, couple], face_3="7")
    _, body = await answer(await client.post("/v1/enrol?name=me", data=data, headers=auth(token)))
    failed = await wait_finished(client, token, body["job"])
    assert failed["state"] == "failed" and failed["error"]["code"] == "enrol_no_face"


async def test_a_photo_without_a_face_fails_the_job_with_a_typed_error(
    make_client: MakeClient, enrol_photos: list[tuple[str, bytes]]
) -> None:
    client, _, config_dir = await make_client()
    token = await new_token(client, config_dir)
    job = await start(client, token, [*enrol_photos[:2], ("wall.jpg", jpeg(320, 240))])
    failed = await wait_finished(client, token, job)
    assert failed["state"] == "failed"
    assert failed["error"]["code"] == "enrol_no_face" and "wall.jpg" in failed["error"]["message"]


async def test_a_backend_that_cannot_enrol_answers_404(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], tmp_path: Path
) -> None:
    app = create_app(
        ServerConfig(config_dir=tmp_path, workers=1, queue=0),
        EchoBackend(),
        token_store=FileTokenStore(tmp_path / TOKENS_FILE),
    )
    client = await aiohttp_client(app)
    token = await new_token(client, tmp_path)
    status, body = await answer(await client.get("/v1/profiles", headers=auth(token)))
    assert (status, code_of(body)) == (404, "not_found")
