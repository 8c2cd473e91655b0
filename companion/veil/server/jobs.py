"""Cloak jobs: progress and cancel of a pending `POST /v1/cloak` (`X-Veil-Job`).

The client names each upload with a random id of its own (`X-Veil-Job`, photo or video);
`GET /v1/jobs/{id}` reads its state, stage and progress, `DELETE /v1/jobs/{id}` stops it
(the pending request then answers 409 `cancelled`). A job belongs to the token that sent it:
jobs are keyed by (token id, job id), so another token's lookups find nothing (404), as for
an id that never existed. Finished jobs stay readable for `FINISHED_TTL_S`.

State is written from the event loop (receiving, queued, finished) and from the worker
thread (stage and progress while it works), under one lock; `stopped` is an asyncio event,
set on the event loop only.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from veil.errors import ErrorCode
from veil.server.http_errors import BadRequestError, ClientGoneError, HttpVeilError

T = TypeVar("T")

JOB_HEADER = "X-Veil-Job"
JOB_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
FINISHED_TTL_S = 60.0
MAX_FINISHED_PER_TOKEN = 64
"""Finished jobs kept per token (the oldest go first): memory stays bounded whatever the
client sends."""

FINISHED_STATES = frozenset({"done", "failed", "cancelled"})


class JobNotFoundError(HttpVeilError):
    code = ErrorCode.NOT_FOUND


class CloakCancelledError(HttpVeilError):
    """The client cancelled the job (`DELETE /v1/jobs/{id}`) while the request was pending."""

    code = ErrorCode.CANCELLED


class CloakJob:
    def __init__(self, job_id: str, token_id: str) -> None:
        self.id = job_id
        self.token_id = token_id
        self.state = "receiving"
        self.stage = "receiving"
        self.progress = 0.0
        self.finished_at: float | None = None
        self.stopped = asyncio.Event()
        self._lock = threading.Lock()

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def queued(self) -> None:
        with self._lock:
            if not self.finished:
                self.state = self.stage = "queued"

    def report(self, stage: str, share: float) -> None:
        """From the worker: what it does now and how far it is (the figure only rises)."""
        with self._lock:
            if self.finished:
                return
            self.state = "working"
            self.stage = stage
            self.progress = max(self.progress, min(1.0, max(0.0, share)))

    def report_share(self, share: float) -> None:
        self.report(self.stage if self.state == "working" else "scanning", share)

    def report_stage(self, stage: str) -> None:
        self.report(stage, self.progress)

    def finish(self, state: str, now: float) -> None:
        with self._lock:
            if self.finished:
                return
            self.state = state
            self.finished_at = now
            if state == "done":
                self.stage, self.progress = "done", 1.0

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "job": self.id,
                "state": self.state,
                "progress": round(self.progress, 4),
                "stage": self.stage,
            }


class CloakJobs:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._jobs: dict[tuple[str, str], CloakJob] = {}

    def start(self, token_id: str, job_id: str | None) -> CloakJob:
        """A new job for this request: registered under `job_id` when the client gave one
        (else private to the request: disconnect still cancels it, nobody can watch it)."""
        self.sweep()
        if job_id is None:
            return CloakJob("", token_id)
        if not JOB_ID.fullmatch(job_id):
            raise BadRequestError(
                f"{JOB_HEADER} must be 16 to 64 characters of A-Z, a-z, 0-9, _ and -."
            )
        key = (token_id, job_id)
        running = self._jobs.get(key)
        if running is not None and not running.finished:
            raise BadRequestError(f"{JOB_HEADER} names a job still running: use a new id.")
        job = CloakJob(job_id, token_id)
        self._jobs[key] = job
        return job

    def get(self, token_id: str, job_id: str) -> CloakJob:
        self.sweep()
        job = self._jobs.get((token_id, job_id))
        if job is None:
            raise JobNotFoundError("No such job for this token (never started, or expired).")
        return job

    def cancel(self, token_id: str, job_id: str) -> CloakJob:
        """Stop the job: its request answers 409 `cancelled` and its work stops. A job that
        has finished keeps its state."""
        job = self.get(token_id, job_id)
        if not job.finished:
            job.finish("cancelled", self._clock())
            job.stopped.set()
        return job

    def finish(self, job: CloakJob, state: str) -> None:
        job.finish(state, self._clock())

    def sweep(self) -> None:
        now = self._clock()
        expired = [
            key
            for key, job in self._jobs.items()
            if job.finished_at is not None and now - job.finished_at > FINISHED_TTL_S
        ]
        for key in expired:
            del self._jobs[key]
        finished: dict[str, list[tuple[float, tuple[str, str]]]] = {}
        for key, job in self._jobs.items():
            if job.finished_at is not None:
                finished.setdefault(job.token_id, []).append((job.finished_at, key))
        for entries in finished.values():
            entries.sort()
            for _, key in entries[: max(0, len(entries) - MAX_FINISHED_PER_TOKEN)]:
                del self._jobs[key]

    def __len__(self) -> int:
        return len(self._jobs)


async def run_until_stopped(
    job: CloakJob,
    work: Awaitable[T],
    client_gone: Callable[[], bool],
    *,
    poll_s: float = 0.2,
) -> T:
    """Await `work` unless the job is cancelled (`DELETE /v1/jobs/{id}`: 409 `cancelled`)
    or the client goes away (`ClientGoneError`) first; either way `work` is cancelled and
    its clean-up has run (the slot tells running work to stop, files are released) before
    this returns. aiohttp does not cancel a handler whose client left, so the connection is
    watched here."""
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(job.stopped.wait())
    gone = asyncio.ensure_future(_wait_gone(client_gone, poll_s))
    try:
        await asyncio.wait({task, stop, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        gone.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})  # its clean-up runs; its own errors do not matter
    if job.stopped.is_set():
        if not task.cancelled():
            task.exception()  # retrieved: the answer is 409 whatever the work did
        raise CloakCancelledError("The job was cancelled (DELETE /v1/jobs/{id}).")
    if not task.cancelled():
        return task.result()
    raise ClientGoneError("The client closed the connection; its job was cancelled.")


async def _wait_gone(client_gone: Callable[[], bool], poll_s: float) -> None:
    while not client_gone():
        await asyncio.sleep(poll_s)
