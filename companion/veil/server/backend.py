"""What the server needs from the engine; `veil.engine.Engine` satisfies it.

The app factory takes the backend as a parameter, so the server module never loads models
on import and `veil serve` decides when the (heavy) load happens: once, at start-up.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from veil import progress as job_progress
from veil.results import CloakResult, Mode

if TYPE_CHECKING:
    from veil.engine import Engine
    from veil.enrolment import EnrolPhoto, FoundFace
    from veil.optimizer import Surrogate
    from veil.personal import EnrolPlan
    from veil.profiles import Profile
    from veil.video.limits import VideoLimits
    from veil.video.result import VideoCloakResult


class CloakBackend(Protocol):
    @property
    def model_names(self) -> tuple[str, ...]:
        """Names of the loaded models, detector first (reported by /v1/health)."""
        ...

    def cloak_bytes(self, data: bytes, *, mode: Mode, keep_metadata: bool) -> CloakResult:
        """Cloak one encoded photo; thread-safe; raises `veil.errors.VeilError` subclasses."""
        ...


@runtime_checkable
class VideoBackend(Protocol):
    """What `POST /v1/cloak` needs for videos (`veil.video.pipeline.cloak_video_file`)."""

    def cloak_video(
        self,
        src: Path,
        dst: Path,
        *,
        mode: Mode,
        keep_metadata: bool,
        limits: VideoLimits,
        progress: Callable[[float], None],
        stage: Callable[[str], None],
    ) -> VideoCloakResult:
        """Cloak the video file `src` into `dst` (same container); slow: a worker thread
        only. Raises `veil.errors.VeilError` subclasses; stops at `veil.cancel` checks."""
        ...


# A photo's coarse stages, from the engine's timer laps: the stage a lap ends -> what the
# engine does next and how far it is (a photo has no finer progress than this).
_PHOTO_STAGES: dict[str, tuple[str, float]] = {
    "decode_preview": ("scanning", 0.05),
    "detect": ("cloaking", 0.15),
    "optimize": ("cloaking", 0.8),
    "metadata": ("encoding", 0.9),
    "paste": ("encoding", 0.85),
    "encode": ("encoding", 0.99),
}


@runtime_checkable
class EnrolBackend(Protocol):
    """What "Protect my face" needs from the engine (`veil.enrolment`, `veil.strengths`).

    Every method is slow or parses photos: the server calls them from its enrolment thread
    only, never on the event loop. Raises `veil.errors.VeilError` subclasses.
    """

    @property
    def max_pixels(self) -> int:
        """The largest photo (width x height) the engine decodes."""
        ...

    @property
    def profile_fingerprints(self) -> Mapping[str, str]:
        """recogniser -> fingerprint of the installed model; a profile made with others is
        listed as unusable."""
        ...

    def enrol_faces(self, photos: Sequence[EnrolPhoto]) -> list[FoundFace]:
        """The person's face in each photo (`veil.enrolment.enrolment_faces`)."""
        ...

    def enrol_profile(
        self,
        faces: Sequence[FoundFace],
        name: str,
        *,
        plan: EnrolPlan | None,
        progress: Callable[[float], None],
        should_stop: Callable[[], bool],
    ) -> Profile:
        """The person's profile and personal cloak at every strength (not saved)."""
        ...

    def enrol_previews(self, profile: Profile, data: bytes) -> dict[str, dict[str, bytes]]:
        """JPEG previews of one photo: original and every strength, feed size and face."""
        ...


class EngineBackend:
    """The real engine as a `CloakBackend` and an `EnrolBackend`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        detector = getattr(engine.detector, "name", type(engine.detector).__name__)
        self._names = (str(detector), *(s.name for s in engine.surrogates))
        self._everyone: list[Surrogate] | None = None
        self._everyone_lock = threading.Lock()

    @property
    def model_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def max_faces(self) -> int:
        return self._engine.max_faces

    def cloak_bytes(self, data: bytes, *, mode: Mode, keep_metadata: bool) -> CloakResult:
        from veil.engine import StageTimer

        class ReportingTimer(StageTimer):
            """Tells the job bound to this thread (`veil.progress`) each coarse stage (an
            animation reports measured figures instead, which these then leave alone)."""

            def lap(self, stage: str) -> None:
                super().lap(stage)
                if stage in _PHOTO_STAGES:
                    job_progress.step(*_PHOTO_STAGES[stage])

        job_progress.step("scanning", 0.0)
        return self._engine.cloak_bytes(
            data, mode=mode, keep_metadata=keep_metadata, timer=ReportingTimer()
        )

    def cloak_video(
        self,
        src: Path,
        dst: Path,
        *,
        mode: Mode,
        keep_metadata: bool,
        limits: VideoLimits,
        progress: Callable[[float], None],
        stage: Callable[[str], None],
    ) -> VideoCloakResult:
        from veil.video.pipeline import cloak_video_file

        return cloak_video_file(
            self._engine,
            src,
            dst,
            mode=mode,
            keep_metadata=keep_metadata,
            limits=limits,
            progress=progress,
            stage=stage,
        )

    # -- enrolment ("Protect my face") ----------------------------------------------------

    @property
    def max_pixels(self) -> int:
        return self._engine.max_pixels

    @property
    def profile_fingerprints(self) -> Mapping[str, str]:
        from veil.profiles import profile_fingerprints

        book = self._engine.profiles
        if book is not None:
            return dict(book.fingerprints)
        return profile_fingerprints(list(self._engine.surrogates))

    def _enrolment_surrogates(self) -> list[Surrogate]:
        """Every recogniser in the manifest (as `veil enrol`): enrolment runs once and may
        spend minutes. Loaded at the first enrolment, not at start-up."""
        with self._everyone_lock:
            if self._everyone is None:
                self._everyone = self._engine.all_recognizers()
            return self._everyone

    def enrol_faces(self, photos: Sequence[EnrolPhoto]) -> list[FoundFace]:
        from veil.enrolment import enrolment_faces

        return enrolment_faces(self._engine, photos)

    def enrol_profile(
        self,
        faces: Sequence[FoundFace],
        name: str,
        *,
        plan: EnrolPlan | None,
        progress: Callable[[float], None],
        should_stop: Callable[[], bool],
    ) -> Profile:
        from veil.enrolment import build_profile
        from veil.strengths import recommended_strength

        return build_profile(
            self._engine,
            faces,
            name,
            strength=recommended_strength(),
            surrogates=self._enrolment_surrogates(),
            plan=plan,
            progress=progress,
            should_stop=should_stop,
        )

    def enrol_previews(self, profile: Profile, data: bytes) -> dict[str, dict[str, bytes]]:
        from veil.strengths import preview_images

        # preview_images swaps the engine's enrolled people for this one profile while it
        # cloaks: on a copy, so that the photos other workers cloak meanwhile keep seeing
        # the people enrolled on disk (and never this unsaved profile).
        sibling = copy.copy(self._engine)
        return preview_images(sibling, profile, data)
