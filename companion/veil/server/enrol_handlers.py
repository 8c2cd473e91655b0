"""The "Protect my face" endpoints (docs/api.md, "Enrolment and profiles").

Token-authenticated and origin-guarded like `/v1/cloak` (the guard middleware runs first).
Photos are parsed only in the probe pool and the enrolment thread; profile files are read
and written only in worker threads (`asyncio.to_thread`); nothing here runs the engine on
the event loop. What leaves the companion about a profile is `Profile.summary()` (id, name,
strength, date, photo count): never embeddings or cloaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

from veil.errors import (
    ProfileNotFoundError,
    VeilError,
)
from veil.personal import Strength
from veil.server.auth import authenticate
from veil.server.enrol_jobs import EnrolJobs
from veil.server.enrol_upload import read_enrol_upload
from veil.server.http_errors import BadRequestError, RequestTimeoutError
from veil.server.limits import check_image, read_body
from veil.server.pool import estimate_job_bytes
from veil.server.state import CONFIG_KEY, ENROL_KEY, POOL_KEY, TOKENS_KEY
from veil.strengths import figures_json

JSON_BODY_LIMIT = 4096
DEFAULT_NAME = "me"
PROFILE_ID = re.compile(r"[0-9a-f]{16}")


def _jobs(request: web.Request) -> EnrolJobs:
    jobs = request.app[ENROL_KEY]
    if jobs.backend is None:  # a backend without enrolment (tests): as if the path did not exist
        raise web.HTTPNotFound()
    return jobs


def _strengths() -> list[dict[str, Any]]:
    return figures_json()


def _name(value: str | None) -> str:
    from veil.profiles import check_name

    try:
        return check_name(DEFAULT_NAME if value is None else value)
    except VeilError as exc:
        raise BadRequestError(f"name: {exc.message}.") from exc


def _strength(body: Any) -> Strength:
    allowed = ", ".join(s.value for s in Strength)
    if not isinstance(body, dict) or not isinstance(body.get("strength"), str):
        raise BadRequestError(f'The body must be JSON: {{"strength": one of {allowed}}}.')
    try:
        return Strength(body["strength"])
    except ValueError as exc:
        raise BadRequestError(f"strength must be one of {allowed}.") from exc


async def _json_body(request: web.Request) -> Any:
    raw = await read_body(request, JSON_BODY_LIMIT)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequestError("The body must be JSON.") from exc


def _profile_id(request: web.Request) -> str:
    profile_id = request.match_info["profile"]
    if not PROFILE_ID.fullmatch(profile_id):
        raise ProfileNotFoundError("No enrolled person has that id.")
    return profile_id


# -- profiles ---------------------------------------------------------------------------------


async def list_profiles(request: web.Request) -> web.Response:
    await authenticate(request, request.app[TOKENS_KEY])
    jobs = _jobs(request)
    from veil.profiles import profile_summaries

    assert jobs.backend is not None
    config_dir = request.app[CONFIG_KEY].config_dir
    fingerprints = dict(jobs.backend.profile_fingerprints)
    summaries = await asyncio.to_thread(profile_summaries, config_dir, fingerprints)
    return web.json_response({"profiles": summaries, "strengths": _strengths()})


def _set_strength(
    jobs: EnrolJobs,
    config_dir: Path,
    profile_id: str,
    strength: Strength,
    fingerprints: dict[str, str],
) -> Any:
    """Rewrite this one profile with another strength (instant: every strength's cloak is in
    the file). Only this file is read, so a damaged profile of someone else does not stop it."""
    from dataclasses import replace

    from veil.profiles import PROFILES_FOLDER, load_profile, save_profile

    path = config_dir / PROFILES_FOLDER / f"{profile_id}.npz"
    with jobs.profiles_lock:
        if not path.is_file():
            raise ProfileNotFoundError("No enrolled person has that id.")
        profile = replace(load_profile(path, fingerprints), strength=strength)
        save_profile(config_dir, profile)
    return profile.summary()


async def patch_profile(request: web.Request) -> web.Response:
    await authenticate(request, request.app[TOKENS_KEY])
    jobs = _jobs(request)
    profile_id = _profile_id(request)
    strength = _strength(await _json_body(request))
    config_dir = request.app[CONFIG_KEY].config_dir
    assert jobs.backend is not None
    fingerprints = dict(jobs.backend.profile_fingerprints)
    summary = await asyncio.to_thread(
        _set_strength, jobs, config_dir, profile_id, strength, fingerprints
    )
    return web.json_response({"profile": summary})


def _forget(jobs: EnrolJobs, config_dir: Path, profile_id: str) -> dict[str, Any]:
    from veil.profiles import forget_profile

    with jobs.profiles_lock:
        gone = forget_profile(config_dir, profile_id)
    return {"forgotten": True, "id": profile_id, "name": gone.name}


async def delete_profile(request: web.Request) -> web.Response:
    await authenticate(request, request.app[TOKENS_KEY])
    jobs = _jobs(request)
    profile_id = _profile_id(request)
    config_dir = request.app[CONFIG_KEY].config_dir
    return web.json_response(await asyncio.to_thread(_forget, jobs, config_dir, profile_id))


# -- enrolment jobs ---------------------------------------------------------------------------


async def start_enrolment(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    pool = request.app[POOL_KEY]
    record = await authenticate(request, request.app[TOKENS_KEY])  # before reading the body
    jobs = _jobs(request)
    assert jobs.backend is not None
    name = _name(request.query.get("name"))
    reservation = jobs.reserve()  # 503 busy before reading the body, too
    memory = None
    try:
        try:
            async with asyncio.timeout(config.body_timeout_s) as deadline:
                upload = await read_enrol_upload(
                    request,
                    max_body=config.max_enrol_body_bytes,
                    max_photo=config.max_body_bytes,
                )
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            raise RequestTimeoutError(
                f"The photos did not arrive within {config.body_timeout_s:g} s."
            ) from exc
        from veil.enrolment import EnrolPhoto

        largest = 0
        for photo in upload.photos:
            try:
                # Header only, in the probe pool: nothing parses a photo on the event loop.
                info = await pool.probe(partial(check_image, photo.data, config.max_pixels))
            except VeilError as exc:
                raise VeilError(f"{photo.label}: {exc.message}", code=exc.code) from exc
            largest = max(largest, estimate_job_bytes(info, 0))
        # The enrolment decodes one photo at a time, while it holds all their bytes.
        body_bytes = sum(len(photo.data) for photo in upload.photos)
        memory = pool.hold_memory(largest + body_bytes)
        photos = [
            EnrolPhoto(photo.label, photo.data, upload.faces.get(i))
            for i, photo in enumerate(upload.photos)
        ]
        job = jobs.start(
            reservation, token_id=record.token_id, name=name, photos=photos, memory=memory
        )
    except BaseException:
        reservation.release()
        if memory is not None:
            memory.release()
        raise
    return web.json_response({"job": job.job_id, "state": job.state.value}, status=202)


async def enrolment_status(request: web.Request) -> web.Response:
    record = await authenticate(request, request.app[TOKENS_KEY])
    job = _jobs(request).get(request.match_info["job"], record.token_id)
    return web.json_response({**job.view(), "strengths": _strengths()})


async def cancel_enrolment(request: web.Request) -> web.Response:
    record = await authenticate(request, request.app[TOKENS_KEY])
    job = _jobs(request).cancel(request.match_info["job"], record.token_id)
    return web.json_response({"job": job.job_id, "state": job.state.value})


def _save(jobs: EnrolJobs, config_dir: Path, profile: Any) -> dict[str, Any]:
    """Write the profile (0600), then forget older profiles of the same name."""
    from veil.profiles import forget_profile, profile_summaries, save_profile

    with jobs.profiles_lock:
        older = [
            str(entry["id"])
            for entry in profile_summaries(config_dir)
            if str(entry.get("name", "")).lower() == profile.name.lower()
            and entry["id"] != profile.profile_id
        ]
        save_profile(config_dir, profile)
        for old in older:
            with contextlib.suppress(ProfileNotFoundError):
                forget_profile(config_dir, old)
    return {"profile": profile.summary(), "replaced": len(older)}


async def save_enrolment(request: web.Request) -> web.Response:
    record = await authenticate(request, request.app[TOKENS_KEY])
    jobs = _jobs(request)
    strength = _strength(await _json_body(request))
    job, profile = jobs.take_result(request.match_info["job"], record.token_id)
    from dataclasses import replace

    chosen = replace(profile, strength=strength)
    config_dir = request.app[CONFIG_KEY].config_dir
    answer = await asyncio.to_thread(_save, jobs, config_dir, chosen)
    jobs.drop(job.job_id)  # on disk now; the copy in memory goes
    return web.json_response(answer)
