"""Animated images as jobs (`X-Veil-Job`, `GET`/`DELETE /v1/jobs/{id}`), in process: the
real engine cloaks a real animated GIF (a corpus face panned over its frames,
`animated_samples`) through `create_app` and aiohttp's test client.

What is checked: the job's figure rises from 0 to 1 through scanning, cloaking and encoding
while the GIF is cloaked, with measured figures inside each stage (not the photo's coarse
steps); the engine reports the same stages for an animated WebP; a `DELETE` mid-way answers
409 `cancelled` at once and the worker stops.
"""

from __future__ import annotations

import asyncio

import pytest

from animated_samples import make_gif, make_webp, pan_frames
from corpus import require_faces
from veil import progress
from veil.engine import Engine
from veil.results import Mode
from veil.server.backend import EngineBackend
from video_samples import load_rgb

from .test_video_upload import (
    JOB,
    MakeClient,
    auth,
    cancel_job,
    engine,
    job_state,
    make_client,
    until_job,
)

# Fixtures of test_video_upload.py, used here by name.
__all__ = ["engine", "make_client"]

pytestmark = [pytest.mark.faces]

FRAMES = 24
"""Frames of the test GIF: about 8 s of work on the shared 2-core machine, long enough to
poll each stage several times and to cancel mid-way."""
SIZE = (240, 240)
STAGES = ("scanning", "cloaking", "encoding")


@pytest.fixture(scope="module")
def animation(engine: Engine) -> tuple[bytes, bytes]:
    """(GIF, lossy animated WebP) of FRAMES frames with one face."""
    photo = load_rgb(require_faces() / "photos" / "Scarlett_Johansson" / "img49.jpg", 1200)
    faces = [f.landmarks for f in engine.find_faces(photo)]
    assert len(faces) == 1
    frames, truth = pan_frames(photo, faces, FRAMES, SIZE)
    assert all(len(t) == 1 for t in truth)
    return make_gif(frames, [80] * FRAMES), make_webp(frames[:8], [80] * 8, lossless=False)


def gif_headers(token: str, job: str | None = JOB) -> dict[str, str]:
    return auth(token, job, "image/gif")


async def test_gif_progress_rises_through_the_stages_to_1(
    make_client: MakeClient, animation: tuple[bytes, bytes]
) -> None:
    client, token = await make_client()
    post = asyncio.ensure_future(
        client.post("/v1/cloak?mode=mid", data=animation[0], headers=gif_headers(token))
    )
    seen: list[tuple[str, float, str]] = []
    while not post.done():
        reply = await client.get(f"/v1/jobs/{JOB}", headers=auth(token))
        if reply.status == 200:
            body = await reply.json()
            seen.append((body["state"], body["progress"], body["stage"]))
        await asyncio.sleep(0.05)
    reply = await post
    data = await reply.read()
    assert reply.status == 200, data[:300]
    assert reply.headers["Content-Type"] == "image/gif"
    assert reply.headers["X-Veil-Faces"] == "1"
    assert reply.headers["X-Veil-Face-Frames"] == f"{FRAMES}/{FRAMES}"
    assert data != animation[0]
    final = await job_state(client, token)
    assert final == {"job": JOB, "state": "done", "progress": 1.0, "stage": "done"}

    working = [(p, s) for state, p, s in seen if state == "working"]
    print(f"progress seen ({len(seen)} polls): {seen}")
    figures = [p for _, p, _ in seen]
    assert figures == sorted(figures), "progress went back"
    assert working and working[0][0] < 0.15, "the first figure seen is past the scan"
    stages = [s for _, s in working]
    assert [s for s in STAGES if s in stages] == list(STAGES), f"stages seen: {set(stages)}"
    assert stages == sorted(stages, key=STAGES.index), "the stages came out of order"
    # Measured figures, not the photo's coarse steps (0.05, 0.15, 0.8, 0.85, 0.9, 0.99):
    # several different figures inside the stages, and none of the coarse 0.8 in cloaking.
    inside = {p for p, _ in working if 0 < p < 1}
    assert len(inside) >= 4, f"too few figures mid-way: {sorted(inside)}"
    assert all(p <= 0.40 for p, s in working if s == "cloaking"), working
    assert all(p >= 0.40 for p, s in working if s == "encoding"), working


def test_engine_reports_measured_stages_for_an_animated_webp(
    engine: Engine, animation: tuple[bytes, bytes]
) -> None:
    """What the worker tells its job (`veil.progress`) for a WebP: Pillow's formats report
    through the same stages, and the coarse photo steps stay out."""
    seen: list[tuple[str, float]] = []
    with progress.bound(lambda stage, share: seen.append((stage, share))):
        result = EngineBackend(engine).cloak_bytes(animation[1], mode=Mode.MID, keep_metadata=False)
    assert result.face_count == 1 and result.media_type == "image/webp"
    shares = [share for _, share in seen]
    print(f"webp: {seen}")
    assert shares == sorted(shares), "progress went back"
    assert shares[0] == 0.0 and shares[-1] >= 0.99
    stages = [stage for stage, _ in seen]
    assert stages == sorted(stages, key=STAGES.index)
    assert set(stages) == set(STAGES)
    assert all(share <= 0.40 for stage, share in seen if stage != "encoding")
    assert 0.8 not in shares, "a coarse photo step came through"


async def test_cancel_of_an_animated_gif_answers_409_and_stops_the_work(
    make_client: MakeClient, animation: tuple[bytes, bytes]
) -> None:
    client, token = await make_client()
    post = asyncio.ensure_future(
        client.post("/v1/cloak", data=animation[0], headers=gif_headers(token))
    )

    await until_job(
        client,
        token,
        post,
        lambda state: state["state"] == "working" and state["stage"] == "cloaking",
    )
    answer, answered_s, stopped_s = await cancel_job(client, token, post)
    assert answer.headers.get("Connection", "").lower() == "close"
    print(f"GIF cancel: 409 after {answered_s:.2f} s, work stopped after {stopped_s:.2f} s")
    assert answered_s < 1.5
    assert stopped_s < 3.0  # one model call or one frame at most
    assert (await job_state(client, token))["state"] == "cancelled"
    # The worker is free again: the next GIF is cloaked.
    reply = await client.post("/v1/cloak", data=animation[0], headers=gif_headers(token, None))
    assert reply.status == 200 and reply.headers["X-Veil-Faces"] == "1"
