"""One video end to end: probe, scan (pass 1), one cloak per track, write (pass 2).

`cloak_video_file(engine, src, dst)` writes `dst` atomically (the old file or the whole new
one, with `src`'s permission bits), as `Engine.cloak_file` does for photos. The input is
read twice from its file (pass 1 finds and tracks the faces, pass 2 re-encodes), so the
whole video is never in memory; see `docs/video.md`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from veil.cancel import checkpoint
from veil.errors import CloakFailedError
from veil.fileio import write_atomically
from veil.imaging.metadata import MetadataReport, Policy
from veil.memory import release_free_memory
from veil.results import DEFAULT_MODE, Mode
from veil.video.cloaks import TrackCloak, cloak_track
from veil.video.limits import VideoLimits
from veil.video.probe import probe
from veil.video.result import TrackReport, VideoCloakResult
from veil.video.scan import scan
from veil.video.tracking import TrackPath
from veil.video.writer import Plan, WriteStats, write_video

if TYPE_CHECKING:
    from veil.engine import Engine, StageTimer

SCAN_SHARE = 0.15
"""Share of the progress figure pass 1 takes (decode and detect: about an eighth of the
work on a 10 s 1080p clip, docs/video.md)."""
CLOAK_SHARE = 0.25
"""Share of the progress figure the tracks' cloaks take (one optimisation a track, about
5 s each whatever the length: most of the work on a short clip, a fifth on 10 s)."""

DETECT_EVERY = 5
"""Frames between detection rounds (every 5th frame: 6 rounds a second at 30 fps)."""
MAX_MISSED = 2
"""Detection rounds a track survives without a sighting."""


def cloak_video_file(
    engine: Engine,
    src: Path,
    dst: Path,
    *,
    mode: Mode = DEFAULT_MODE,
    keep_metadata: bool = False,
    limits: VideoLimits | None = None,
    detect_every: int = DETECT_EVERY,
    timer: StageTimer | None = None,
    progress: Callable[[float], None] | None = None,
    stage: Callable[[str], None] | None = None,
    cloak: bool = True,
) -> VideoCloakResult:
    """Cloak every tracked face of the video `src` into `dst` (see the module docstring).

    `progress` gets one figure from 0 to 1 that only rises (pass 1, then the tracks'
    cloaks, then pass 2, weighted by `SCAN_SHARE` and `CLOAK_SHARE`); `stage` gets
    "scanning", "cloaking" and "encoding" as each begins. Both are called from the thread
    that runs this function.

    `cloak=False` re-encodes through the same path without pasting anything: the yardstick
    the benchmark and tests compare the cloak's visibility against."""
    from veil.engine import StageTimer

    mode = Mode(mode)
    limits = limits or VideoLimits()
    timer = timer or StageTimer()
    start = time.perf_counter()
    src = Path(src)
    meter = _Meter(progress, stage)
    meter.enter("scanning")
    info = probe(src, limits)
    timer.lap("probe")
    found = scan(
        engine,
        src,
        info,
        limits,
        every=detect_every,
        max_missed=MAX_MISSED,
        timer=timer,
        progress=meter.part(0.0, SCAN_SHARE),
    )
    tracks = [t for t in found.tracks if t.sightings]
    cloaks: dict[int, TrackCloak] = {}
    meter.enter("cloaking", SCAN_SHARE)
    todo = tracks if cloak else []
    for done, track in enumerate(todo):
        checkpoint()
        share = CLOAK_SHARE / len(todo)
        cloaks[track.id] = cloak_track(
            engine,
            track,
            mode,
            (info.width, info.height),
            meter.part(SCAN_SHARE + share * done, share),
        )
        meter.report(SCAN_SHARE + share * (done + 1))
    timer.lap("optimize")
    release_free_memory()  # pass 1's and the optimiser's leftovers, before the encoder's frames
    meter.enter("encoding", SCAN_SHARE + CLOAK_SHARE)
    pad = detect_every * (MAX_MISSED + 1) - 1
    paths = [TrackPath.of(t, pad) for t in tracks]
    plan = Plan(
        paths=paths if cloak else [],
        cloaks=cloaks,
        display_matrix=found.display_matrix,
        reencode=bool(tracks) or not cloak,
        decoder_options=limits.decoder_options(),
        frames=found.frames,
        hdr=found.hdr,
    )
    report = MetadataReport()
    policy = Policy(keep_metadata=keep_metadata, cloaked=bool(tracks))
    stats: list[WriteStats] = []

    def write(handle: IO[bytes]) -> None:
        stats.append(
            write_video(
                src,
                handle,
                info,
                plan,
                policy,
                report,
                timer,
                meter.part(SCAN_SHARE + CLOAK_SHARE, 1.0 - SCAN_SHARE - CLOAK_SHARE),
            )
        )

    write_atomically(Path(dst), write, like=src)
    written = stats[0]
    if written.frames != found.frames and plan.reencode:
        raise CloakFailedError(
            f"pass 2 decoded {written.frames} frames where pass 1 found {found.frames}"
        )
    if written.frames != found.video_packets and not plan.reencode:
        raise CloakFailedError(
            f"the remux copied {written.frames} video packets where pass 1 read "
            f"{found.video_packets}"
        )
    meter.report(1.0)
    rate = float(info.average_rate) if info.average_rate else 0.0
    if not cloak:
        tracks, paths = [], []
    reports = tuple(
        TrackReport(
            path.track_id,
            max(path.first, 0),
            min(path.last, found.frames - 1),
            len(track.sightings),
            cloaks[track.id].keyframes,
            cloaks[track.id].scale,
            cloaks[track.id].profile,
            cloaks[track.id].strength,
        )
        for path, track in zip(paths, tracks, strict=True)
    )
    return VideoCloakResult(
        media_type=info.media_type,
        width=info.width,
        height=info.height,
        codec=info.codec,
        frames=found.frames,
        duration=found.last_time - found.first_time + (1.0 / rate if rate else 0.0),
        tracks=reports,
        face_frames=written.face_frames,
        detection_rounds=found.rounds,
        reencoded=plan.reencode,
        audio_packets=written.audio_packets,
        seconds=time.perf_counter() - start,
        stages=dict(timer.seconds),
        metadata_removed=tuple(report.removed),
        paths=tuple(paths),
    )


class _Meter:
    """The progress figure and stage of one video: weighted parts of one 0..1 figure that
    never goes back (a part's estimate may: pass 1 counts against the header's frame count
    or duration, which may be off)."""

    def __init__(
        self, progress: Callable[[float], None] | None, stage: Callable[[str], None] | None
    ) -> None:
        self._progress = progress
        self._stage = stage
        self._best = -1.0  # nothing reported yet

    def enter(self, stage: str, at: float = 0.0) -> None:
        if self._stage is not None:
            self._stage(stage)
        self.report(at)

    def report(self, value: float) -> None:
        value = min(1.0, max(0.0, value))
        if value > self._best:
            self._best = value
            if self._progress is not None:
                self._progress(value)

    def part(self, offset: float, weight: float) -> Callable[[float], None]:
        return lambda share: self.report(offset + weight * min(1.0, max(0.0, share)))
