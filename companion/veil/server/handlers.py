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
from veil.errors import CloakFailedError, ErrorCode, UnsupportedFormatError
from veil.results import DEFAULT_MODE, CloakResult, Mode
from veil.server.auth import authenticate
from veil.server.error_responses import error_response
from veil.server.http_errors import BadRequestError, BusyError, RequestTimeoutError
from veil.server.limits import check_image, read_body, too_large_message
from veil.server.pool import estimate_job_bytes
from veil.server.state import (
    BACKEND_KEY,
    BODIES_KEY,
    CONFIG_KEY,
    GATE_KEY,
    POOL_KEY,
    TOKENS_KEY,
)
from veil.server.tokens import issue_token, revoke_token

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
    # aiohttp reports a missing Content-Type as application/octet-stream.
    if not (content_type.startswith("image/") or content_type == "application/octet-stream"):
        raise UnsupportedFormatError(
            "Send the image file's bytes with its image Content-Type (e.g. image/jpeg)."
        )


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
    if result.ssim is not None:
        headers["X-Veil-SSIM"] = f"{result.ssim:.4f}"
    if result.face_ssimulacra2 is not None:
        headers["X-Veil-Face-SSIMULACRA2"] = f"{result.face_ssimulacra2:.1f}"
    if result.metadata_removed:
        headers["X-Veil-Metadata-Removed"] = ", ".join(result.metadata_removed)
    return web.Response(body=result.data, content_type=result.media_type, headers=headers)


async def expect_cloak_body(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue` (curl, not browsers): refuse an oversized body before it is sent."""
    declared = request.content_length
    limit = request.app[CONFIG_KEY].max_body_bytes
    if declared is not None and declared > limit:
        return error_response(ErrorCode.PAYLOAD_TOO_LARGE, too_large_message(limit))
    if request.version != HttpVersion11:
        return None
    if request.headers.get("Expect", "").lower() != "100-continue":
        raise BadRequestError("Only `Expect: 100-continue` is understood.")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the interim reply is not part of the response size
    return None


async def cloak(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    pool = request.app[POOL_KEY]
    record = await authenticate(request, request.app[TOKENS_KEY])  # before reading the body
    mode = _parse_mode(request.query.get("mode"))
    keep_metadata = _parse_flag("keep_metadata", request.query.get("keep_metadata"))
    _check_content_type(request.content_type)
    slot = pool.admit()  # 503 busy before reading the body, too
    try:
        async with asyncio.timeout(config.request_timeout_s) as deadline:
            data = await _read_cloak_body(request, record.token_id)
            # The header probe walks the container within its work bounds, in the probe
            # pool: nothing that parses a photo runs on the event loop.
            info = await pool.probe(partial(check_image, data, config.max_pixels))
            slot.reserve_memory(estimate_job_bytes(info, len(data)))
            work = partial(
                request.app[BACKEND_KEY].cloak_bytes, data, mode=mode, keep_metadata=keep_metadata
            )
            result = await slot.run(work)
    except TimeoutError as exc:
        if not deadline.expired():
            raise
        raise RequestTimeoutError(
            f"Cloaking took longer than {config.request_timeout_s:g} s; try a smaller photo "
            "or a lower mode."
        ) from exc
    finally:
        # Timed out, client gone (task cancelled) or finished: running work stops at its
        # next check instead of computing for nobody; the slot is freed when it has.
        slot.cancel()
        slot.close()
    if result.face_count and result.data == data:
        # A safety net under the engine's own checks: never pass the original off as cloaked.
        raise CloakFailedError("The engine returned the photo unchanged although it found faces.")
    return _cloak_response(result)


async def _read_cloak_body(request: web.Request, token_id: str) -> bytes:
    """The body, within `body_timeout_s`, with at most `max_bodies_per_token` bodies of one
    token in flight: slow bodies cannot hold every worker slot for the whole time-out."""
    config = request.app[CONFIG_KEY]
    bodies = request.app[BODIES_KEY]
    if bodies.get(token_id, 0) >= config.max_bodies_per_token:
        raise BusyError(
            "Too many uploads from this extension are still arriving; retry shortly.",
            retry_after=max(1, math.ceil(config.body_timeout_s / 10)),
        )
    bodies[token_id] = bodies.get(token_id, 0) + 1
    try:
        async with asyncio.timeout(config.body_timeout_s) as body_deadline:
            return await read_body(request, config.max_body_bytes)
    except TimeoutError as exc:
        if not body_deadline.expired():
            raise
        raise RequestTimeoutError(
            f"The photo did not arrive within {config.body_timeout_s:g} s."
        ) from exc
    finally:
        bodies[token_id] -= 1
        if not bodies[token_id]:
            del bodies[token_id]
