"""What the server needs from the engine; `veil.engine.Engine` satisfies it.

The app factory takes the backend as a parameter, so the server module never loads models
on import and `veil serve` decides when the (heavy) load happens: once, at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from veil.results import CloakResult, Mode

if TYPE_CHECKING:
    from veil.engine import Engine


class CloakBackend(Protocol):
    @property
    def model_names(self) -> tuple[str, ...]:
        """Names of the loaded models, detector first (reported by /v1/health)."""
        ...

    def cloak_bytes(self, data: bytes, *, mode: Mode, keep_metadata: bool) -> CloakResult:
        """Cloak one encoded photo; thread-safe; raises `veil.errors.VeilError` subclasses."""
        ...


class EngineBackend:
    """The real engine as a `CloakBackend`: names its models and forwards `cloak_bytes`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        detector = getattr(engine.detector, "name", type(engine.detector).__name__)
        self._names = (str(detector), *(s.name for s in engine.surrogates))

    @property
    def model_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def max_faces(self) -> int:
        return self._engine.max_faces

    def cloak_bytes(self, data: bytes, *, mode: Mode, keep_metadata: bool) -> CloakResult:
        return self._engine.cloak_bytes(data, mode=mode, keep_metadata=keep_metadata)
