"""The pool's memory admission and the engine's cooperative cancellation, in-process."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from engine_support import face_photo
from veil.cancel import CancelToken, JobCancelledError, bound
from veil.engine import Engine
from veil.errors import ImageTooLargeError
from veil.imageio import ImageInfo
from veil.server.http_errors import BusyError
from veil.server.pool import CloakPool, estimate_job_bytes

MB = 1024 * 1024


def test_estimate_grows_with_header_pixels() -> None:
    small = ImageInfo("JPEG", "image/jpeg", 1000, 1000, "RGB", False)
    huge = ImageInfo("WEBP", "image/webp", 10_000, 10_000, "RGB", False)
    assert estimate_job_bytes(small, 0) < 300 * MB
    assert estimate_job_bytes(huge, 38) > 1500 * MB


async def test_memory_admission_refuses_what_does_not_fit() -> None:
    pool = CloakPool(workers=4, queue=4, memory_budget=1000 * MB)
    first, second, third = pool.admit(), pool.admit(), pool.admit()
    first.reserve_memory(600 * MB)
    with pytest.raises(BusyError):  # fits alone, not next to the first: retry later
        second.reserve_memory(600 * MB)
    second.close()
    with pytest.raises(ImageTooLargeError):  # would not fit even alone
        third.reserve_memory(1001 * MB)
    third.close()
    release = threading.Event()
    running = asyncio.ensure_future(first.run(release.wait))
    await asyncio.sleep(0.05)
    assert pool.memory_reserved == 600 * MB
    release.set()
    await running
    await asyncio.sleep(0.05)
    assert pool.memory_reserved == 0  # given back when the work finished
    again = pool.admit()
    again.reserve_memory(900 * MB)
    again.close()
    assert pool.memory_reserved == 0
    pool.shutdown()


def test_a_cancelled_cloak_stops_within_a_model_call() -> None:
    engine = Engine.load()
    photo = face_photo(1200)
    token = CancelToken()
    outcome: list[BaseException | None] = []

    def job() -> None:
        with bound(token):
            try:
                engine.cloak_bytes(photo, mode="high")  # type: ignore[arg-type]
                outcome.append(None)
            except JobCancelledError as exc:
                outcome.append(exc)

    worker = threading.Thread(target=job)
    worker.start()
    time.sleep(1.5)  # well into the optimiser (high takes several seconds on this machine)
    cancelled_at = time.perf_counter()
    token.cancel()
    worker.join(timeout=30)
    stopped_after = time.perf_counter() - cancelled_at
    assert not worker.is_alive()
    assert outcome and isinstance(outcome[0], JobCancelledError), "it ran to the end"
    assert stopped_after < 2.0, f"took {stopped_after:.2f} s to stop"
    print(f"\ncancelled cloak stopped {stopped_after:.3f} s after cancel()")
