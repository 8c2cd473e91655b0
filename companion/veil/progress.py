"""Progress of the job running on this thread, for whoever watches it (the server's jobs).

Like `veil.cancel`'s token, a reporter is bound to the worker thread for one job (`bound`),
so that code deep in the engine can say how far it is without every signature in between
carrying a callback. Without a bound reporter (CLI, tests) `report` does nothing.

Two kinds of figures: `step` for coarse milestones (a photo's stages, from the engine's
timer laps) and `report` for work that measures itself (an animation's frames and optimiser
steps). Once a job has reported a measured figure its coarse steps are dropped: they name
fixed figures (0.8 after the optimiser) that a measured figure would otherwise be held at.
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
    previous_measured: bool = getattr(_local, "measured", False)
    _local.reporter = reporter
    _local.measured = False
    try:
        yield
    finally:
        _local.reporter = previous
        _local.measured = previous_measured


def report(stage: str, share: float) -> None:
    """A measured figure: from here on the job's coarse `step`s are ignored."""
    reporter: Reporter | None = getattr(_local, "reporter", None)
    if reporter is not None:
        _local.measured = True
        reporter(stage, share)


def step(stage: str, share: float) -> None:
    """A coarse milestone, unless the job reports measured figures of its own."""
    reporter: Reporter | None = getattr(_local, "reporter", None)
    if reporter is not None and not getattr(_local, "measured", False):
        reporter(stage, share)


def part(stage: str, start: float, weight: float) -> Callable[[float], None]:
    """A callback for one part of the job: its own share, 0 to 1, is reported as the job's
    figure `start + weight * share` in `stage`."""
    return lambda share: report(stage, start + weight * min(1.0, max(0.0, share)))
