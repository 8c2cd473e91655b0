"""`POST /v1/cloak` for a video: body to a private file, probe, cloak in a worker, stream back.

Photos stay in memory (handlers.py); a video's bytes go to `JobFiles.input` as they arrive
(`video_upload.spool_body`), the engine writes `JobFiles.output`, and the response streams
that file from an open descriptor after the job's folder was deleted. Every exit (success,
typed error, cancel, time-out, client gone, exception) releases the folder; the worker holds
it too while it runs, so it goes when the last of them lets go (veil.server.spool).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from functools import partial
from typing import IO

from aiohttp import web

from veil.cancel import JobCancelledError
from veil.errors import CloakFailedError, UnsupportedFormatError
from veil.results import Mode
from veil.server.backend import VideoBackend
from veil.server.http_errors import RequestTimeoutError
from veil.server.jobs import CloakJob
from veil.server.pool import Slot, estimate_video_job_bytes
from veil.server.spool import JobFiles
from veil.server.state import BACKEND_KEY, CONFIG_KEY, JOBS_KEY, POOL_KEY, SPOOL_KEY
from veil.server.video_upload import spool_body
from veil.video.limits import VideoLimits
from veil.video.result import VideoCloakResult

log = logging.getLogger("veil.server")

STREAM_CHUNK = 1024 * 1024


async def cloak_video(
    request: web.Request,
    slot: Slot,
    job: CloakJob,
    head: bytes,
    body_done: Callable[[], None],
    *,
    mode: Mode,
    keep_metadata: bool,
) -> web.StreamResponse:
    backend = request.app[BACKEND_KEY]
    if not isinstance(backend, VideoBackend):
        body_done()
        raise UnsupportedFormatError("This companion's engine does not cloak videos.")
    files = await asyncio.to_thread(request.app[SPOOL_KEY].new_job)
    output: IO[bytes]
    try:
        try:
            await _receive(request, files, head)
        finally:
            body_done()
        job.queued()
        result = await _cloak(request, slot, job, files, backend, mode, keep_metadata)
        if result.face_count and not result.reencoded:
            # A safety net under the pipeline's own checks: never pass the original off as
            # cloaked.
            raise CloakFailedError("The engine copied the video although it found faces.")
        output = await asyncio.to_thread(open, files.output, "rb")
    finally:
        # From here the data live only in the open descriptor: nothing is left on disk
        # whatever happens while it is sent.
        await asyncio.to_thread(files.release)
    try:
        request.app[JOBS_KEY].finish(job, "done")
        return await _stream(request, output, result)
    finally:
        await asyncio.to_thread(output.close)


async def _receive(request: web.Request, files: JobFiles, head: bytes) -> None:
    config = request.app[CONFIG_KEY]
    limit_s = config.video_body_timeout_s(request.content_length)
    try:
        async with asyncio.timeout(limit_s) as deadline:
            await spool_body(request, files.input, config.max_video_bytes, head)
    except TimeoutError as exc:
        if not deadline.expired():
            raise
        raise RequestTimeoutError(f"The video did not arrive within {limit_s:.0f} s.") from exc


async def _cloak(
    request: web.Request,
    slot: Slot,
    job: CloakJob,
    files: JobFiles,
    backend: VideoBackend,
    mode: Mode,
    keep_metadata: bool,
) -> VideoCloakResult:
    from veil.video.probe import probe

    config = request.app[CONFIG_KEY]
    pool = request.app[POOL_KEY]
    limits = VideoLimits(max_bytes=config.max_video_bytes, max_seconds=config.max_video_seconds)
    loop = asyncio.get_running_loop()
    limit_s = config.video_timeout_s(None)
    try:
        async with asyncio.timeout(limit_s) as deadline:
            # The container header, within the caps, in the probe pool (never on the loop).
            info = await pool.probe(partial(probe, files.input, limits))
            limit_s = config.video_timeout_s(info.duration)
            deadline.reschedule(loop.time() + limit_s)
            slot.reserve_memory(estimate_video_job_bytes(info.width, info.height, info.codec))

            def work() -> VideoCloakResult:
                if not files.hold():  # abandoned while queued: the files are gone
                    raise JobCancelledError("the request went away before its video was cloaked")
                try:
                    job.report("scanning", 0.0)
                    return backend.cloak_video(
                        files.input,
                        files.output,
                        mode=mode,
                        keep_metadata=keep_metadata,
                        limits=limits,
                        progress=job.report_share,
                        stage=job.report_stage,
                    )
                finally:
                    files.release()

            return await slot.run(work)
    except TimeoutError as exc:
        if not deadline.expired():
            raise
        raise RequestTimeoutError(
            f"Cloaking the video took longer than {limit_s:.0f} s (veil serve --timeout, plus "
            "10 s a second of video)."
        ) from exc


def video_headers(result: VideoCloakResult) -> dict[str, str]:
    spans = sum(t.last_frame - t.first_frame + 1 for t in result.tracks)
    headers = {
        "X-Veil-Faces": str(result.face_count),
        "X-Veil-Seconds": f"{result.seconds:.3f}",
        # Face-frames (a tracked face on a frame) that got the cloak / all of them.
        "X-Veil-Face-Frames": f"{result.face_frames}/{spans}",
    }
    if result.tracks:
        profiles = [
            None if t.profile is None else {"profile": t.profile, "strength": t.strength}
            for t in result.tracks
        ]
        headers["X-Veil-Face-Profiles"] = json.dumps(profiles, separators=(",", ":"))
    if result.metadata_removed:
        headers["X-Veil-Metadata-Removed"] = ", ".join(result.metadata_removed)
    return headers


async def _stream(
    request: web.Request, output: IO[bytes], result: VideoCloakResult
) -> web.StreamResponse:
    size = await asyncio.to_thread(lambda: os.fstat(output.fileno()).st_size)
    response = web.StreamResponse(headers=video_headers(result))
    response.content_type = result.media_type
    response.content_length = size
    try:
        await response.prepare(request)
        while chunk := await asyncio.to_thread(output.read, STREAM_CHUNK):
            await response.write(chunk)
        await response.write_eof()
    except ConnectionError:
        # Headers are sent: no error answer is possible any more, and nobody reads one.
        log.info("client closed the connection while its cloaked video was being sent")
    return response
