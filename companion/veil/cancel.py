"""Cooperative cancellation of one cloak job: a timed-out request stops its work.

A worker thread cannot be killed, so the work must stop itself. The server binds a
`CancelToken` to the worker thread for the job (`bound`); the engine checks it between its
stages (`checkpoint`) and the optimiser's surrogates check it before every ONNX Runtime call
(`guard_surrogates`, which also covers the compute-pool threads the optimiser fans out to).
Every stage between two checks is bounded by the pixel, face and parsing limits, so a
cancelled job stops within about one model call or one full-resolution decode/encode
(tests/test_cancel.py measures it). Without a bound token (CLI, tests) nothing changes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from veil.errors import ErrorCode, VeilError

if TYPE_CHECKING:
    from veil.optimizer import F32, Surrogate


class JobCancelledError(VeilError):
    """The job's request timed out or went away; whatever it computed is thrown away."""

    code = ErrorCode.TIMEOUT


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise JobCancelledError("the request was cancelled (time-out or client gone)")


_local = threading.local()


def current() -> CancelToken | None:
    token: CancelToken | None = getattr(_local, "token", None)
    return token


@contextmanager
def bound(token: CancelToken) -> Iterator[CancelToken]:
    """Make `token` the current thread's token for the duration of one job."""
    previous = current()
    _local.token = token
    try:
        yield token
    finally:
        _local.token = previous


def checkpoint() -> None:
    """Raise JobCancelledError if the current job was cancelled."""
    token = current()
    if token is not None:
        token.check()


class _CheckedSurrogate:
    """A surrogate that checks the job's token before each call (any thread)."""

    def __init__(self, inner: Surrogate, token: CancelToken) -> None:
        self._inner = inner
        self._token = token

    @property
    def name(self) -> str:
        return self._inner.name

    def embed(self, crops: F32) -> F32:
        self._token.check()
        return self._inner.embed(crops)

    def loss_and_grad(self, crops: F32, targets: F32) -> tuple[F32, F32, F32]:
        self._token.check()
        return self._inner.loss_and_grad(crops, targets)


def guard_surrogates(surrogates: Sequence[Surrogate]) -> Sequence[Surrogate]:
    """The surrogates, wrapped to check the current job's token (unchanged without one)."""
    token = current()
    if token is None:
        return surrogates
    return tuple(_CheckedSurrogate(s, token) for s in surrogates)
