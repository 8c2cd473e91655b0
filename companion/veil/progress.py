"""Progress of the job running on this thread, for whoever watches it (the server's jobs).

Like `veil.cancel`'s token, a reporter is bound to the worker thread for one job (`bound`),
so that code deep in the engine can say how far it is without every signature in between
carrying a callback. Without a bound reporter (CLI, tests) `report` does nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Reporter = Callable[[str, float], None]
"""Called with a stage name ("scanning", "cloaking", "encoding") and a figure, 0 to 1."""

_local = threading.local()


@contextmanager
def bound(reporter: Reporter) -> Iterator[None]:
    """Make `reporter` the current thread's reporter for the duration of one job."""
    previous: Reporter | None = getattr(_local, "reporter", None)
    _local.reporter = reporter
    try:
        yield
    finally:
        _local.reporter = previous


def report(stage: str, share: float) -> None:
    reporter: Reporter | None = getattr(_local, "reporter", None)
    if reporter is not None:
        reporter(stage, share)
