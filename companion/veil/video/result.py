"""What cloaking one video returns (the CLI prints it as one line)."""

from __future__ import annotations

from dataclasses import dataclass, field

from veil.video.tracking import TrackPath


@dataclass(frozen=True)
class TrackReport:
    """One tracked face: where it was seen and which cloak it got."""

    track_id: int
    first_frame: int  # first and last frame the cloak was pasted on (padding included)
    last_frame: int
    sightings: int  # detections linked to the track
    keyframes: tuple[int, ...]  # frames the cloak was optimised on
    scale: float  # share of the optimised change kept (crop SSIM floor)
    profile: str | None = None  # enrolled person whose personal cloak it got
    strength: str | None = None


@dataclass(frozen=True)
class VideoCloakResult:
    media_type: str  # "video/mp4", ...; always the input's container
    width: int
    height: int
    codec: str  # the video codec, in and out
    frames: int
    duration: float  # seconds (last frame's time + one frame)
    tracks: tuple[TrackReport, ...]
    face_frames: int  # (frame, track) pairs that got a cloak
    detection_rounds: int
    reencoded: bool  # False: no face, video packets copied untouched
    audio_packets: int  # copied bit-identical
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage
    metadata_removed: tuple[str, ...] = ()
    # Each track's landmarks on every frame it was pasted on (for coverage checks).
    paths: tuple[TrackPath, ...] = field(default=(), repr=False)

    @property
    def face_count(self) -> int:
        return len(self.tracks)
