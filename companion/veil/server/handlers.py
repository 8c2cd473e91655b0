"""The v1 endpoints (docs/api.md). Guards and error-to-JSON run around them as middlewares."""

from __future__ import annotations

import asyncio
import json
import math
from functools import partial
from typing import Any

from aiohttp import web
from aiohttp.http import HttpVersion11

from veil import __version__
from veil import progress as job_progress
from veil.errors import CloakFailedError, UnsupportedFormatError
from veil.results import DEFAULT_MODE, CloakResult, Mode
from veil.server.auth import authenticate
from veil.server.error_responses import error_response
from veil.server.http_errors import (
    BadRequestError,
    BusyError,
    ClientGoneError,
    PayloadTooLargeError,
    RequestTimeoutError,
)
from veil.server.jobs import JOB_HEADER, CloakCancelledError, CloakJob, run_until_stopped
from veil.server.limits import check_image, read_body, too_large_message
from veil.server.pool import Slot, estimate_job_bytes
from veil.server.state import (
    BACKEND_KEY,
    BODIES_KEY,
    CONFIG_KEY,
    GATE_KEY,
    JOBS_KEY,
    POOL_KEY,
    TOKENS_KEY,
)
from veil.server.tokens import issue_token, revoke_token
from veil.server.video_cloak import cloak_video
from veil.server.video_upload import read_head, video_too_large
from veil.video.sniff import sniff

API_VERSION = 1
PAIR_BODY_LIMIT = 4096
CLIENT_LABEL_MAX = 100
MAX_BOXES_IN_HEADER = 200  # keeps the header under ~8 KB, aiohttp's default line limit
_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


async def health(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    return web.json_response(
        {
            "name": "veil",
            "version": __version__,
            "api": API_VERSION,
            "models": list(request.app[BACKEND_KEY].model_names),
            "paired": bool(await asyncio.to_thread(request.app[TOKENS_KEY].load)),
            "modes": [mode.value for mode in Mode],
            "default_mode": DEFAULT_MODE.value,
            "limits": {
                "max_body_bytes": config.max_body_bytes,
                "max_pixels": config.max_pixels,
                # The engine's face cap (a backend without one reports null).
                "max_faces": getattr(request.app[BACKEND_KEY], "max_faces", None),
                "max_video_bytes": config.max_video_bytes,
                "max_video_seconds": config.max_video_seconds,
            },
        }
    )


def _parse_pair_body(raw: bytes) -> tuple[str, str]:
    try:
        body: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequestError('The body must be JSON: {"code": "123456"}.') from exc
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        raise BadRequestError('The body must be JSON with a string "code".')
    client = body.get("client", "")
    if not isinstance(client, str):
        raise BadRequestError('"client" must be a string.')
    return body["code"], client[:CLIENT_LABEL_MAX]


async def pair(request: web.Request) -> web.Response:
    code, client = _parse_pair_body(await read_body(request, PAIR_BODY_LIMIT))
    request.app[GATE_KEY].redeem(code)
    origin = request.headers.get("Origin")  # the guard let only extension origins through
    # In a thread: a keyring write can block (unlock prompt); the code is already used up.
    token, record = await asyncio.to_thread(
        issue_token, request.app[TOKENS_KEY], client=client, origin=origin
    )
    return web.json_response(
        {"token": token, "token_id": record.token_id, "origin": origin, "api": API_VERSION}
    )


async def token_info(request: web.Request) -> web.Response:
    record = await authenticate(request, request.app[TOKENS_KEY])
    return web.json_response(
        {
            "valid": True,
            "token_id": record.token_id,
            "client": record.client,
            "origin": record.origin,
            "created": record.created,
        }
    )


async def unpair(request: web.Request) -> web.Response:
    store = request.app[TOKENS_KEY]
    record = await authenticate(request, store)
    await asyncio.to_thread(revoke_token, store, record.token_id)
    return web.json_response({"revoked": True, "token_id": record.token_id})


def _parse_mode(value: str | None) -> Mode:
    if value is None or value == "":
        return DEFAULT_MODE
    try:
        return Mode(value.lower())
    except ValueError as exc:
        allowed = ", ".join(mode.value for mode in Mode)
        raise BadRequestError(f"mode must be one of {allowed}.") from exc


def _parse_flag(name: str, value: str | None) -> bool:
    if value is None or value == "":
        return False
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise BadRequestError(f"{name} must be true or false.")


def _check_content_type(content_type: str) -> None:
    # aiohttp reports a missing Content-Type as application/octet-stream. The type only
    # says "a photo or a video": the bytes decide which (`veil.video.sniff`).
    if not (
        content_type.startswith(("image/", "video/")) or content_type == "application/octet-stream"
    ):
        raise UnsupportedFormatError(
            "Send the file's bytes with its image or video Content-Type (e.g. image/jpeg, "
            "video/mp4)."
        )


def _declared_limit(request: web.Request) -> PayloadTooLargeError | None:
    """The 413 a body's Content-Length earns before a byte of it is read, if any.

    The bytes decide photo or video, but the header may only tighten the limit: a body sent
    as `image/*` is held to the photos' cap at once (the extension sends videos as
    `video/*` or `application/octet-stream`), any other to the larger of the two caps; the
    exact cap applies once the first bytes have told which it is."""
    config = request.app[CONFIG_KEY]
    declared = request.content_length
    if declared is None:
        return None
    if request.content_type.startswith("image/") and declared > config.max_body_bytes:
        return PayloadTooLargeError(too_large_message(config.max_body_bytes))
    if declared > max(config.max_body_bytes, config.max_video_bytes):
        if config.max_video_bytes >= config.max_body_bytes:
            return video_too_large(config.max_video_bytes)
        return PayloadTooLargeError(too_large_message(config.max_body_bytes))
    return None


def _cloak_response(result: CloakResult) -> web.Response:
    headers = {
        "X-Veil-Faces": str(result.face_count),
        "X-Veil-Seconds": f"{result.seconds:.3f}",
    }
    if result.faces:
        shown = result.faces[:MAX_BOXES_IN_HEADER]
        boxes = [list(face.box) for face in shown]
        headers["X-Veil-Face-Boxes"] = json.dumps(boxes, separators=(",", ":"))
        # Which faces were recognised as an enrolled person, and the strength of the personal
        # cloak each got (null: the default cloak), in the order of the boxes. ASCII JSON:
        # names are escaped, so the header stays valid whatever the name.
        profiles = [
            None if face.profile is None else {"profile": face.profile, "strength": face.strength}
            for face in shown
        ]
        headers["X-Veil-Face-Profiles"] = json.dumps(profiles, separators=(",", ":"))
    if result.frames > 1:
        # An animation: every (frame, face track) pair got its track's cloak; the engine
        # checks each on the re-decoded output and refuses the file otherwise, so the
        # count is both halves of the video's "cloaked / all" figure.
        headers["X-Veil-Face-Frames"] = f"{result.face_frames}/{result.face_frames}"
    if result.ssim is not None:
        headers["X-Veil-SSIM"] = f"{result.ssim:.4f}"
    if result.face_ssimulacra2 is not None:
        headers["X-Veil-Face-SSIMULACRA2"] = f"{result.face_ssimulacra2:.1f}"
    if result.metadata_removed:
        headers["X-Veil-Metadata-Removed"] = ", ".join(result.metadata_removed)
    return web.Response(body=result.data, content_type=result.media_type, headers=headers)


async def expect_cloak_body(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue` (curl, not browsers): refuse an oversized body before it is sent."""
    refused = _declared_limit(request)
    if refused is not None:
        return error_response(refused.code, refused.message)
    if request.version != HttpVersion11:
        return None
    if request.headers.get("Expect", "").lower() != "100-continue":
        raise BadRequestError("Only `Expect: 100-continue` is understood.")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the interim reply is not part of the response size
    return None


async def cloak(request: web.Request) -> web.StreamResponse:
    """One photo (in memory) or one video (streamed to a private file), told apart by its
    first bytes; optionally named by `X-Veil-Job` for progress and cancel."""
    record = await authenticate(request, request.app[TOKENS_KEY])  # before reading the body
    mode = _parse_mode(request.query.get("mode"))
    keep_metadata = _parse_flag("keep_metadata", request.query.get("keep_metadata"))
    _check_content_type(request.content_type)
    refused = _declared_limit(request)
    if refused is not None:
        raise refused
    jobs = request.app[JOBS_KEY]
    job = jobs.start(record.token_id, request.headers.get(JOB_HEADER))
    try:
        work = _cloak_job(request, record.token_id, job, mode, keep_metadata)
        response = await run_until_stopped(job, work, lambda: _connection_closed(request))
    except (CloakCancelledError, ClientGoneError, asyncio.CancelledError):
        # CancelledError: aiohttp cancels the handler of a lost connection when its server
        # was made with handler_cancellation (the test server is); the watcher covers the rest.
        jobs.finish(job, "cancelled")
        raise
    except BaseException:
        jobs.finish(job, "failed")
        raise
    jobs.finish(job, "done")
    return response


def _connection_closed(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


class _BodyTicket:
    """One of the token's `max_bodies_per_token` bodies in flight, until `release()`."""

    def __init__(self, request: web.Request, token_id: str) -> None:
        config = request.app[CONFIG_KEY]
        self._bodies = request.app[BODIES_KEY]
        self._token_id = token_id
        if self._bodies.get(token_id, 0) >= config.max_bodies_per_token:
            raise BusyError(
                "Too many uploads from this extension are still arriving; retry shortly.",
                retry_after=max(1, math.ceil(config.body_timeout_s / 10)),
            )
        self._bodies[token_id] = self._bodies.get(token_id, 0) + 1
        self._held = True

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        self._bodies[self._token_id] -= 1
        if not self._bodies[self._token_id]:
            del self._bodies[self._token_id]


async def _cloak_job(
    request: web.Request, token_id: str, job: CloakJob, mode: Mode, keep_metadata: bool
) -> web.StreamResponse:
    config = request.app[CONFIG_KEY]
    slot = request.app[POOL_KEY].admit()  # 503 busy before reading the body, too
    ticket: _BodyTicket | None = None
    try:
        ticket = _BodyTicket(request, token_id)
        try:
            async with asyncio.timeout(config.body_timeout_s) as head_deadline:
                head = await read_head(request)
        except TimeoutError as exc:
            if not head_deadline.expired():
                raise
            raise RequestTimeoutError(
                f"The upload did not start within {config.body_timeout_s:g} s."
            ) from exc
        if sniff(head) is not None:
            return await cloak_video(
                request, slot, job, head, ticket.release, mode=mode, keep_metadata=keep_metadata
            )
        return await _cloak_photo(request, slot, job, head, ticket, mode, keep_metadata)
    finally:
        if ticket is not None:
            ticket.release()
        # Timed out, cancelled, client gone or finished: running work stops at its next
        # check instead of computing for nobody; the slot is freed when it has.
        slot.cancel()
        slot.close()


async def _cloak_photo(
    request: web.Request,
    slot: Slot,
    job: CloakJob,
    head: bytes,
    ticket: _BodyTicket,
    mode: Mode,
    keep_metadata: bool,
) -> web.Response:
    config = request.app[CONFIG_KEY]
    pool = request.app[POOL_KEY]
    try:
        async with asyncio.timeout(config.request_timeout_s) as deadline:
            data = await _read_photo_body(request, head, ticket)
            job.queued()
            # The header probe walks the container within its work bounds, in the probe
            # pool: nothing that parses a photo runs on the event loop.
            info = await pool.probe(partial(check_image, data, config.max_pixels))
            slot.reserve_memory(estimate_job_bytes(info, len(data)))
            backend = request.app[BACKEND_KEY]

            def work() -> CloakResult:
                with job_progress.bound(job.report):
                    return backend.cloak_bytes(data, mode=mode, keep_metadata=keep_metadata)

            result = await slot.run(work)
    except TimeoutError as exc:
        if not deadline.expired():
            raise
        raise RequestTimeoutError(
            f"Cloaking took longer than {config.request_timeout_s:g} s; try a smaller photo "
            "or a lower mode."
        ) from exc
    if result.face_count and result.data == data:
        # A safety net under the engine's own checks: never pass the original off as cloaked.
        raise CloakFailedError("The engine returned the photo unchanged although it found faces.")
    return _cloak_response(result)


async def _read_photo_body(request: web.Request, head: bytes, ticket: _BodyTicket) -> bytes:
    """The photo's body, within `body_timeout_s`, counted against the token's bodies in
    flight: slow bodies cannot hold every worker slot for the whole time-out."""
    config = request.app[CONFIG_KEY]
    try:
        async with asyncio.timeout(config.body_timeout_s) as body_deadline:
            return await read_body(request, config.max_body_bytes, prefix=head)
    except TimeoutError as exc:
        if not body_deadline.expired():
            raise
        raise RequestTimeoutError(
            f"The photo did not arrive within {config.body_timeout_s:g} s."
        ) from exc
    finally:
        ticket.release()


async def job_status(request: web.Request) -> web.Response:
    record = await authenticate(request, request.app[TOKENS_KEY])
    job = request.app[JOBS_KEY].get(record.token_id, request.match_info["job"])
    return web.json_response(job.as_json())


async def cancel_job(request: web.Request) -> web.Response:
    record = await authenticate(request, request.app[TOKENS_KEY])
    job = request.app[JOBS_KEY].cancel(record.token_id, request.match_info["job"])
    return web.json_response({"job": job.id, "state": job.state})
