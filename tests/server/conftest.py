"""Fixtures: one real `veil serve` subprocess per test module (helpers in companion.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .companion import Companion, start_companion, stop_companion


@pytest.fixture(scope="module")
def companion_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Companion]]:
    started: list[Companion] = []

    def start(*extra: str) -> Companion:
        companion = start_companion(tmp_path_factory.mktemp("companion"), *extra)
        started.append(companion)
        return companion

    yield start
    for companion in started:
        stop_companion(companion)
