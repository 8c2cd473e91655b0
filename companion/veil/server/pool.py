"""Bounded worker pool: inference runs off the event loop, and the backlog has a hard cap.

ONNX Runtime and NumPy release the GIL, so threads give real parallelism without copying
photos between processes. At most `workers + queue` photos are admitted at once; the next one
is refused at once with 503 `busy` and a Retry-After estimate, instead of piling up memory.

Admission is by memory too: once the header is probed (in a small probe pool, never on the
event loop), each photo reserves its estimated peak memory (`estimate_job_bytes`) against
`memory_budget`; a photo that does not fit next to the ones running waits outside with 503
`busy`, one that would not fit even alone is refused with 413 `image_too_large`.

A slot is freed (count and memory) only when its thread really finishes. A request that
times out or whose client goes away cancels its job (`veil.cancel`): the engine stops at its
next check, within about one model call, and only then gives the slot back.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from veil.cancel import CancelToken, bound
from veil.errors import ImageTooLargeError
from veil.imageio import ImageInfo
from veil.server.http_errors import BusyError
from veil.video.codecs import LARGE_FRAME

T = TypeVar("T")

_RECENT = 20  # photos whose durations feed the Retry-After estimate
_DEFAULT_SECONDS = 5.0  # estimate before anything has been timed
RETRY_AFTER_MAX_S = 60
PROBE_THREADS = 2

# Peak memory of one photo, measured with build/bench/fuzz_companion.py `bombs` (a 100 MP
# WebP: +1.5-1.8 GB, about 18 bytes a pixel: RGB and float copies, detection preview,
# encoder buffers) plus the optimiser's share for its faces and the body itself.
BYTES_PER_PIXEL = 18
JOB_OVERHEAD_BYTES = 200 * 1024 * 1024


def estimate_job_bytes(info: ImageInfo, body_bytes: int) -> int:
    """Estimated peak memory of cloaking one photo, from its header alone."""
    return info.pixels * BYTES_PER_PIXEL + JOB_OVERHEAD_BYTES + body_bytes


# Peak memory of one video over the loaded server: frames are streamed (decoder and
# encoder look-ahead, one frame copy for the paste, small RGB copies for detection), so it
# depends on the frame size, not on the file's size or length. Measured (docs/video.md,
# bench_video.py), above the models' 366 MB: about 260 MB at 1080p H.264, 480 MB at 4K.
# x265 holds 50-140 MB a 4K frame and keeps several in flight: 1080p HEVC 10-bit about
# 430 MB (x265's full look-ahead); from 1440p up, where x265 runs with one frame of
# look-ahead and no B-frames (`veil.video.codecs`), 4K HEVC 10-bit peaked at 1,254 MB, 890 MB
# above the models (8-bit 930 MB, 560 above), plus about 35 MB with 8 x265 worker threads.
VIDEO_BYTES_PER_PIXEL = 100
HEVC_VIDEO_BYTES_PER_PIXEL = 150
HEVC_LARGE_VIDEO_BYTES_PER_PIXEL = 110
VIDEO_JOB_OVERHEAD_BYTES = 150 * 1024 * 1024


def estimate_video_job_bytes(width: int, height: int, codec: str = "") -> int:
    """Estimated peak memory of cloaking one video, from its container header (`codec`:
    the input's, which the output is re-encoded in)."""
    per_pixel = VIDEO_BYTES_PER_PIXEL
    if codec == "hevc":
        large = width * height >= LARGE_FRAME
        per_pixel = HEVC_LARGE_VIDEO_BYTES_PER_PIXEL if large else HEVC_VIDEO_BYTES_PER_PIXEL
    return width * height * per_pixel + VIDEO_JOB_OVERHEAD_BYTES


def _run_bound(token: CancelToken, work: Callable[[], T]) -> T:
    with bound(token):
        return work()


class CloakPool:
    def __init__(self, *, workers: int, queue: int, memory_budget: int | None = None) -> None:
        if workers < 1 or queue < 0:
            raise ValueError("workers must be >= 1 and queue >= 0")
        self.workers = workers
        self.capacity = workers + queue
        self.memory_budget = memory_budget
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="veil-cloak")
        self._probe_executor = ThreadPoolExecutor(
            max_workers=PROBE_THREADS, thread_name_prefix="veil-probe"
        )
        self._lock = threading.Lock()
        self._admitted = 0
        self._memory_reserved = 0
        self._durations: deque[float] = deque(maxlen=_RECENT)

    def retry_after(self) -> int:
        with self._lock:
            per_photo = (
                sum(self._durations) / len(self._durations) if self._durations else _DEFAULT_SECONDS
            )
            backlog = self._admitted
        return min(RETRY_AFTER_MAX_S, max(1, math.ceil(per_photo * backlog / self.workers)))

    @property
    def memory_reserved(self) -> int:
        with self._lock:
            return self._memory_reserved

    def admit(self) -> Slot:
        """Reserve a place for one photo, or raise BusyError when workers and queue are full.

        Reserve before reading the body, so at most `capacity` bodies are ever held in memory.
        """
        with self._lock:
            full = self._admitted >= self.capacity
            if not full:
                self._admitted += 1
        if full:
            raise self._busy()
        return Slot(self)

    def _busy(self) -> BusyError:
        return BusyError(
            "The companion is busy with other photos; retry after the given seconds.",
            retry_after=self.retry_after(),
        )

    async def probe(self, work: Callable[[], T]) -> T:
        """Run a (bounded) header probe off the event loop."""
        return await asyncio.wrap_future(self._probe_executor.submit(work))

    def _reserve_memory(self, nbytes: int) -> None:
        budget = self.memory_budget
        if budget is None:
            return
        if nbytes > budget:
            raise ImageTooLargeError(
                f"this photo needs about {nbytes / 2**30:.1f} GB to cloak; the companion's "
                f"memory budget is {budget / 2**30:.1f} GB (veil serve --memory-budget-mb)"
            )
        with self._lock:
            fits = self._memory_reserved + nbytes <= budget
            if fits:
                self._memory_reserved += nbytes
        if not fits:
            raise self._busy()

    def _timed(self, work: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return work()
        finally:
            with self._lock:
                self._durations.append(time.perf_counter() - started)

    def _release(self, memory: int) -> None:
        with self._lock:
            self._admitted -= 1
            self._memory_reserved -= memory

    def hold_memory(self, nbytes: int) -> MemoryHold:
        """Reserve memory for work that runs outside the pool's workers (an enrolment, in
        its own thread), so that it counts against the same budget as the photos being
        cloaked: BusyError when it does not fit next to them, ImageTooLargeError when it
        would not fit even alone. Give it back with `MemoryHold.release()`."""
        self._reserve_memory(nbytes)
        return MemoryHold(self, nbytes if self.memory_budget is not None else 0)

    def _release_memory(self, memory: int) -> None:
        with self._lock:
            self._memory_reserved -= memory

    def shutdown(self) -> None:
        self._probe_executor.shutdown(wait=False, cancel_futures=True)
        self._executor.shutdown(wait=False, cancel_futures=True)


class Slot:
    """One admitted photo. Its place is given back when its work finishes, or on `close()`
    if the work was never started (bad input, time-out while reading the body)."""

    def __init__(self, pool: CloakPool) -> None:
        self._pool = pool
        self._state = "reserved"  # -> "running" (thread owns the release) or "closed"
        self._memory = 0
        self.token = CancelToken()

    def reserve_memory(self, nbytes: int) -> None:
        """Reserve the photo's estimated peak memory; BusyError or ImageTooLargeError."""
        if self._state != "reserved" or self._memory:
            raise RuntimeError("memory is reserved once, before the work runs")
        self._pool._reserve_memory(nbytes)
        self._memory = nbytes if self._pool.memory_budget is not None else 0

    async def run(self, work: Callable[[], T]) -> T:
        """Run `work` in a worker thread with this slot's cancel token bound. Cancelling the
        caller (time-out, client gone) cancels work that has not started; work already
        running is told to stop (`cancel`) and frees the slot when it has."""
        if self._state != "reserved":
            raise RuntimeError("a slot runs one piece of work")
        future = self._pool._executor.submit(self._pool._timed, _bound(self.token, work))
        self._state = "running"
        future.add_done_callback(self._finished)
        return await asyncio.wrap_future(future)

    def cancel(self) -> None:
        """Tell running work to stop at its next check (harmless once it has finished)."""
        self.token.cancel()

    def _finished(self, _future: Future[Any]) -> None:
        self._pool._release(self._memory)

    def close(self) -> None:
        if self._state == "reserved":
            self._state = "closed"
            self._pool._release(self._memory)


class MemoryHold:
    """Memory reserved by `CloakPool.hold_memory`; `release()` gives it back (once)."""

    def __init__(self, pool: CloakPool, nbytes: int) -> None:
        self._pool = pool
        self._nbytes = nbytes
        self._released = threading.Lock()
        self._done = False

    def release(self) -> None:
        with self._released:
            if self._done:
                return
            self._done = True
        self._pool._release_memory(self._nbytes)


def _bound(token: CancelToken, work: Callable[[], T]) -> Callable[[], T]:
    return lambda: _run_bound(token, work)
