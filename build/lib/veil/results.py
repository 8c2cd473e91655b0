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

    @property
    def face_count(self) -> int:
        return len(self.faces)
