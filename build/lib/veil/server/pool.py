"""Bounded worker pool: inference runs off the event loop, and the backlog has a hard cap.

ONNX Runtime and NumPy release the GIL, so threads give real parallelism without copying
photos between processes. At most `workers + queue` photos are admitted at once; the next one
is refused at once with 503 `busy` and a Retry-After estimate, instead of piling up memory.
A slot is freed only when its thread really finishes: a request that timed out keeps its slot
until the engine returns, so the cap holds even then.
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

from veil.server.http_errors import BusyError

T = TypeVar("T")

_RECENT = 20  # photos whose durations feed the Retry-After estimate
_DEFAULT_SECONDS = 5.0  # estimate before anything has been timed
RETRY_AFTER_MAX_S = 60


class CloakPool:
    def __init__(self, *, workers: int, queue: int) -> None:
        if workers < 1 or queue < 0:
            raise ValueError("workers must be >= 1 and queue >= 0")
        self.workers = workers
        self.capacity = workers + queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="veil-cloak")
        self._lock = threading.Lock()
        self._admitted = 0
        self._durations: deque[float] = deque(maxlen=_RECENT)

    def retry_after(self) -> int:
        with self._lock:
            per_photo = (
                sum(self._durations) / len(self._durations) if self._durations else _DEFAULT_SECONDS
            )
            backlog = self._admitted
        return min(RETRY_AFTER_MAX_S, max(1, math.ceil(per_photo * backlog / self.workers)))

    def admit(self) -> Slot:
        """Reserve a place for one photo, or raise BusyError when workers and queue are full.

        Reserve before reading the body, so at most `capacity` bodies are ever held in memory.
        """
        with self._lock:
            full = self._admitted >= self.capacity
            if not full:
                self._admitted += 1
        if full:
            raise BusyError(
                "The companion is busy with other photos; retry after the given seconds.",
                retry_after=self.retry_after(),
            )
        return Slot(self)

    def _timed(self, work: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return work()
        finally:
            with self._lock:
                self._durations.append(time.perf_counter() - started)

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class Slot:
    """One admitted photo. Its place is given back when its work finishes, or on `close()`
    if the work was never started (bad input, time-out while reading the body)."""

    def __init__(self, pool: CloakPool) -> None:
        self._pool = pool
        self._state = "reserved"  # -> "running" (thread owns the release) or "closed"

    async def run(self, work: Callable[[], T]) -> T:
        """Run `work` in a worker thread. Cancelling the caller (time-out) cancels the work
        if it has not started yet; work already running finishes and then frees the slot."""
        if self._state != "reserved":
            raise RuntimeError("a slot runs one piece of work")
        future = self._pool._executor.submit(self._pool._timed, work)
        self._state = "running"
        future.add_done_callback(self._finished)
        return await asyncio.wrap_future(future)

    def _finished(self, _future: Future[Any]) -> None:
        self._pool._release()

    def close(self) -> None:
        if self._state == "reserved":
            self._state = "closed"
            self._pool._release()
