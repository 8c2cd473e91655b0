"""Enrolment jobs ("Protect my face"): the photos in, the person's profile out, off the loop.

`POST /v1/enrol` starts a job and answers at once; the work (find the face in every photo,
compute the personal cloak at every strength, previews of one photo) runs in this module's
own thread, never on the event loop and never on a cloak worker (it takes minutes). One job
computes at a time: a second gets 503 `busy` until the first has really stopped. The
profile stays in memory until the person saves it (`POST /v1/enrol/{job}/save`): nothing
is written to disk before. A job is visible only to the token that started it; it is
dropped from memory when saved or discarded, when newer jobs push it out (`MAX_KEPT_JOBS`)
and `ttl_s` after it finished (15 minutes by default).

Cancelling (`DELETE`, or the server shutting down) sets the job's `CancelToken`: the
optimiser polls it every step and the engine at every checkpoint, so the thread stops
within about one step; only then can the next job start.
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from veil.cancel import CancelToken, bound, checkpoint
from veil.errors import (
    EnrolFaceAmbiguousError,
    EnrolJobNotFoundError,
    EnrolNotReadyError,
    ErrorCode,
    VeilError,
)
from veil.server.http_errors import BusyError

if TYPE_CHECKING:
    from veil.enrolment import EnrolPhoto
    from veil.personal import EnrolPlan
    from veil.profiles import Profile
    from veil.server.backend import EnrolBackend
    from veil.server.pool import MemoryHold

log = logging.getLogger("veil.server")

MAX_KEPT_JOBS = 4
"""Finished jobs kept at once (each holds a profile and its previews, about 1-3 MB)."""
BUSY_RETRY_S = 10
THUMBNAIL_EDGE = 160
# Share of the progress bar each stage takes (the cloak dominates: minutes for 20 photos).
FACES_SHARE = 0.05
PREVIEW_SHARE = 0.05


class JobState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class EnrolJob:
    job_id: str
    token_id: str
    name: str
    photos: int
    started: float
    cancel: CancelToken = field(default_factory=CancelToken)
    state: JobState = JobState.RUNNING
    progress: float = 0.0
    finished: float | None = None
    error: dict[str, Any] | None = None
    profile: Profile | None = None
    previews: dict[str, dict[str, str]] | None = None

    def view(self) -> dict[str, Any]:
        """The job as `GET /v1/enrol/{job}` shows it (no embedding, no cloak)."""
        return {
            "job": self.job_id,
            "state": self.state.value,
            "progress": round(self.progress, 4),
            "name": self.name,
            "photos": self.photos,
            "error": self.error,
            "previews": self.previews,
        }


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def face_thumbnails(
    data: bytes, boxes: Sequence[tuple[int, int, int, int]], max_pixels: int
) -> list[bytes]:
    """A small JPEG of each face box (with a margin), for the person to say which is them."""
    import cv2
    import numpy as np

    from veil import imageio

    decoded = imageio.decode(data, max_pixels=max_pixels)
    pixels = np.asarray(decoded.pixels)
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    height, width = pixels.shape[:2]
    out = []
    for x, y, w, h in boxes:
        margin = int(0.25 * max(w, h))
        x0, y0 = max(0, x - margin), max(0, y - margin)
        x1, y1 = min(width, x + w + margin), min(height, y + h + margin)
        crop = np.ascontiguousarray(pixels[y0:y1, x0:x1, :3])
        if crop.size == 0:
            crop = np.zeros((8, 8, 3), np.uint8)
        scale = min(1.0, THUMBNAIL_EDGE / max(crop.shape[:2]))
        if scale < 1.0:
            size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
            crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        ok, buffer = cv2.imencode(".jpg", crop[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
        if not ok:
            raise VeilError("could not encode a face thumbnail")
        out.append(bytes(buffer.tobytes()))
    return out


class Reservation:
    """The right to start the one enrolment, taken before the body is read (so that a second
    upload is refused before the companion reads 100 MB for nothing)."""

    def __init__(self, jobs: EnrolJobs) -> None:
        self._jobs = jobs
        self.used = False

    def release(self) -> None:
        if not self.used:
            self.used = True
            self._jobs._unreserve()


class EnrolJobs:
    def __init__(
        self,
        backend: EnrolBackend | None,
        *,
        plan: EnrolPlan | None,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.plan = plan
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, EnrolJob] = OrderedDict()
        self._busy = False  # reserved, or a job's thread has not finished yet
        self._running: EnrolJob | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="veil-enrol")
        # Saving, forgetting and changing profiles read-modify-write files: one at a time.
        self.profiles_lock = threading.Lock()

    # -- admission ------------------------------------------------------------------------

    def reserve(self) -> Reservation:
        with self._lock:
            if self._busy:
                raise BusyError(
                    "The companion is already computing an enrolment; wait for it to finish "
                    "or cancel it.",
                    retry_after=BUSY_RETRY_S,
                )
            self._busy = True
        return Reservation(self)

    def _unreserve(self) -> None:
        with self._lock:
            self._busy = False

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._busy

    def start(
        self,
        reservation: Reservation,
        *,
        token_id: str,
        name: str,
        photos: Sequence[EnrolPhoto],
        memory: MemoryHold | None = None,
    ) -> EnrolJob:
        """Start computing; the reservation passes to the job's thread, which frees it."""
        if self.backend is None or reservation.used:
            raise RuntimeError("start() needs an enrolment backend and a fresh reservation")
        reservation.used = True
        job = EnrolJob(
            job_id=secrets.token_urlsafe(16),
            token_id=token_id,
            name=name,
            photos=len(photos),
            started=self.clock(),
        )
        with self._lock:
            self._jobs[job.job_id] = job
            self._running = job
        self._trim()
        try:
            self._executor.submit(self._run, job, list(photos), memory)
        except RuntimeError:  # shutting down
            self._finish(job, JobState.CANCELLED)
            self._thread_done(memory)
            raise
        return job

    # -- lookup -----------------------------------------------------------------------------

    def get(self, job_id: str, token_id: str) -> EnrolJob:
        """The caller's own job; 404 `enrol_job_not_found` for any other id (no oracle)."""
        self.sweep()
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or not secrets.compare_digest(job.token_id, token_id):
            raise EnrolJobNotFoundError(
                "No such enrolment: it expired, was saved or discarded, or never existed. "
                "Start again."
            )
        return job

    def cancel(self, job_id: str, token_id: str) -> EnrolJob:
        """Stop a running job and discard what any job computed (it stays listed as
        cancelled until it expires)."""
        job = self.get(job_id, token_id)
        job.cancel.cancel()
        with self._lock:
            if job.state is not JobState.CANCELLED:
                job.state = JobState.CANCELLED
                job.finished = job.finished or self.clock()
            job.profile = None
            job.previews = None
        return job

    def take_result(self, job_id: str, token_id: str) -> tuple[EnrolJob, Profile]:
        """The finished job's profile, for saving."""
        job = self.get(job_id, token_id)
        with self._lock:
            profile = job.profile
            state = job.state
        if state is not JobState.DONE or profile is None:
            raise EnrolNotReadyError(
                f"This enrolment is {state.value}: there is no profile to save yet."
                if state is JobState.RUNNING
                else f"This enrolment is {state.value}: there is no profile to save."
            )
        return job, profile

    def drop(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def sweep(self) -> int:
        """Drop the jobs that finished more than `ttl_s` ago; returns how many."""
        now = self.clock()
        with self._lock:
            expired = [
                job_id
                for job_id, job in self._jobs.items()
                if job.finished is not None and now - job.finished >= self.ttl_s
            ]
            for job_id in expired:
                del self._jobs[job_id]
        return len(expired)

    def _trim(self) -> None:
        with self._lock:
            finished = [j for j in self._jobs.values() if j.state is not JobState.RUNNING]
            for job in finished[: max(0, len(finished) - MAX_KEPT_JOBS)]:
                del self._jobs[job.job_id]

    def shutdown(self) -> None:
        with self._lock:
            running = self._running
        if running is not None:
            running.cancel.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- the work (enrolment thread) ----------------------------------------------------------

    def _set_progress(self, job: EnrolJob, share: float) -> None:
        with self._lock:
            if job.state is JobState.RUNNING:
                job.progress = max(job.progress, min(1.0, max(0.0, share)))

    def _finish(self, job: EnrolJob, state: JobState, **result: Any) -> None:
        with self._lock:
            if job.state is not JobState.RUNNING:
                return  # cancelled meanwhile: whatever was computed is thrown away
            job.state = state
            job.finished = self.clock()
            if state is JobState.DONE:
                job.progress = 1.0
            for key, value in result.items():
                setattr(job, key, value)

    def _thread_done(self, memory: MemoryHold | None) -> None:
        if memory is not None:
            memory.release()
        with self._lock:
            self._running = None
            self._busy = False

    def _run(self, job: EnrolJob, photos: list[EnrolPhoto], memory: MemoryHold | None) -> None:
        backend = self.backend
        assert backend is not None
        try:
            with bound(job.cancel):
                self._compute(backend, job, photos)
        except EnrolFaceAmbiguousError as exc:
            self._finish(job, JobState.FAILED, error=self._ambiguous(backend, exc, photos))
        except VeilError as exc:
            if job.cancel.cancelled:
                self._finish(job, JobState.CANCELLED)
            else:
                error = {"code": exc.code.value, "message": exc.message}
                self._finish(job, JobState.FAILED, error=error)
        except Exception:
            # The traceback goes to the log; the photos and their names do not.
            log.exception("enrolment failed unexpectedly")
            message = "Unexpected error in the Veil companion while enrolling."
            self._finish(
                job, JobState.FAILED, error={"code": ErrorCode.INTERNAL.value, "message": message}
            )
        finally:
            photos.clear()
            self._thread_done(memory)

    def _compute(self, backend: EnrolBackend, job: EnrolJob, photos: list[EnrolPhoto]) -> None:
        faces = backend.enrol_faces(photos)
        checkpoint()
        self._set_progress(job, FACES_SHARE)
        cloak_share = 1.0 - FACES_SHARE - PREVIEW_SHARE
        profile = backend.enrol_profile(
            faces,
            job.name,
            plan=self.plan,
            progress=lambda share: self._set_progress(job, FACES_SHARE + cloak_share * share),
            should_stop=lambda: job.cancel.cancelled,
        )
        checkpoint()
        self._set_progress(job, 1.0 - PREVIEW_SHARE)
        images = backend.enrol_previews(profile, photos[faces[0].photo].data)
        previews = {
            version: {view: data_url(jpeg) for view, jpeg in views.items()}
            for version, views in images.items()
        }
        checkpoint()
        self._finish(job, JobState.DONE, profile=profile, previews=previews)

    def _ambiguous(
        self, backend: EnrolBackend, exc: EnrolFaceAmbiguousError, photos: Sequence[EnrolPhoto]
    ) -> dict[str, Any]:
        """The error with a thumbnail of each face, so that the person can say which."""
        try:
            thumbnails = face_thumbnails(photos[exc.photo].data, exc.boxes, backend.max_pixels)
        except Exception:
            log.exception("could not make the face thumbnails")
            thumbnails = []
        faces = [
            {"box": list(box), "thumbnail": data_url(thumb) if thumb else None}
            for box, thumb in zip(exc.boxes, thumbnails or [b""] * len(exc.boxes), strict=True)
        ]
        return {"code": exc.code.value, "message": exc.message, "photo": exc.photo, "faces": faces}
