"""Value types that cross module boundaries: strength modes and cloak results."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Mode(StrEnum):
    """Cloak strength. Budgets and measured protection per mode are in the README."""

    LOW = "low"
    MID = "mid"
    HIGH = "high"


DEFAULT_MODE = Mode.MID


@dataclass(frozen=True)
class FaceReport:
    """One face the engine found and cloaked, in original-image pixel coordinates."""

    box: tuple[int, int, int, int]  # x, y, width, height
    score: float
    crop_ssim: float  # SSIM of the face region at output resolution, cloaked vs original
    # SSIMULACRA2 of the same region (100 identical, 90 visually lossless, 70 high quality),
    # None where the region is under 8x8 pixels
    ssimulacra2: float | None = None
    # The enrolled person this face was recognised as, and the strength of their personal
    # cloak it got; None for everyone else (the default cloak of the request's mode).
    profile: str | None = None
    strength: str | None = None


@dataclass(frozen=True)
class CloakResult:
    """What the engine returns for one photo: the encoded cloaked file and how it went."""

    data: bytes
    media_type: str  # e.g. "image/jpeg"; always the input's format
    width: int
    height: int
    faces: tuple[FaceReport, ...]
    seconds: float
    ssim: float | None  # whole-image SSIM, None when no face was changed
    metadata_removed: tuple[str, ...] = field(default=())  # e.g. ("GPS", "thumbnail")
    frames: int = 1  # animations (GIF, APNG, animated WebP): frames in and out
    face_frames: int = 0  # animations: (frame, face track) pairs that got the track's cloak

    @property
    def face_ssimulacra2(self) -> float | None:
        """The lowest face SSIMULACRA2 (the most visible cloak), None without one."""
        scores = [f.ssimulacra2 for f in self.faces if f.ssimulacra2 is not None]
        return min(scores) if scores else None

    @property
    def face_count(self) -> int:
        return len(self.faces)
