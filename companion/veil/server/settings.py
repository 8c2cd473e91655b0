"""Server settings: one frozen value built by `veil serve` (or a test) and handed to create_app."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from veil.config import config_dir

DEFAULT_PORT = 8345
DEFAULT_HOST = "127.0.0.1"
MAX_BODY_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 100_000_000
DEFAULT_TIMEOUT_S = 180.0
# Waiting photos hold their bodies (up to 50 MB each) in memory: keep the queue short; the
# extension retries after Retry-After.
DEFAULT_QUEUE = 8
PAIRING_MAX_FAILURES = 5
PAIRING_LOCK_S = 300.0
# Connections (docs/api.md, "Limits, queue and time-outs"). A connection that has not sent
# a whole request head within IDLE_TIMEOUT_S of opening (or of its last response) is
# closed; past MAX_CONNECTIONS the oldest idle connection is closed to make room.
IDLE_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 256
# A cloak body must arrive within BODY_TIMEOUT_S of the request head (50 MB over loopback
# takes well under a second); one token may have MAX_BODIES_PER_TOKEN bodies in flight.
BODY_TIMEOUT_S = 30.0
MAX_BODIES_PER_TOKEN = 4
MEMORY_BUDGET_CAP = 4 * 1024**3
# Enrolment ("Protect my face", docs/api.md): 3-20 photos in one multipart body of at most
# MAX_ENROL_BODY_BYTES (each photo at most MAX_BODY_BYTES); a job's result stays in memory
# ENROL_JOB_TTL_S after it finished, then it is dropped unsaved.
MAX_ENROL_BODY_BYTES = 100 * 1024 * 1024
ENROL_JOB_TTL_S = 15 * 60.0
# Videos (docs/api.md, "Limits"): bodies stream to a private temporary file, so their cap is
# far above the photos'; a video's body time-out and work time-out grow with its size and
# its duration (`video_body_timeout_s`, `video_timeout_s`).
MAX_VIDEO_BYTES = 2 * 1024**3
MAX_VIDEO_SECONDS = 600.0
VIDEO_UPLOAD_BYTES_PER_S = 10 * 1024 * 1024
"""Slowest upload rate a video body is given time for (on top of the body time-out)."""
VIDEO_WORK_S_PER_S = 10.0
"""Seconds of work allowed per second of video (on top of the request time-out): 4K took
6.6 s a second on the loaded 2-core test machine, 1080p 2.4 (docs/video.md)."""
SPOOL_FOLDER = "video-spool"


def default_memory_budget(max_pixels: int = MAX_PIXELS) -> int:
    """A quarter of the machine's memory, at most 4 GB, but never less than one photo of
    `max_pixels` needs (else the pixel limit would be a lie)."""
    from veil.server.pool import BYTES_PER_PIXEL, JOB_OVERHEAD_BYTES

    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = 8 * 1024**3
    largest = max_pixels * BYTES_PER_PIXEL + JOB_OVERHEAD_BYTES + MAX_BODY_BYTES
    return max(largest, min(MEMORY_BUDGET_CAP, total // 4))


def default_workers() -> int:
    """Half the cores, between 2 and 4.

    Even on 2 cores, 2 workers cloak more photos per minute than 1 (build/bench/bench_server.py):
    one photo leaves cores idle between ONNX Runtime calls. A lone photo still gets every
    core, so the second worker costs no latency.
    """
    return max(2, min(4, (os.cpu_count() or 1) // 2))


@dataclass(frozen=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    allow_remote: bool = False
    workers: int = field(default_factory=default_workers)
    queue: int = DEFAULT_QUEUE
    request_timeout_s: float = DEFAULT_TIMEOUT_S
    max_body_bytes: int = MAX_BODY_BYTES
    max_pixels: int = MAX_PIXELS
    pairing_max_failures: int = PAIRING_MAX_FAILURES
    pairing_lock_s: float = PAIRING_LOCK_S
    memory_budget_bytes: int = field(default_factory=default_memory_budget)
    body_timeout_s: float = BODY_TIMEOUT_S
    max_bodies_per_token: int = MAX_BODIES_PER_TOKEN
    idle_timeout_s: float = IDLE_TIMEOUT_S
    max_connections: int = MAX_CONNECTIONS
    config_dir: Path = field(default_factory=config_dir)
    # Optimiser steps of an enrolment (None: veil.personal.EnrolPlan's default).
    enrol_steps: int | None = None
    max_enrol_body_bytes: int = MAX_ENROL_BODY_BYTES
    enrol_job_ttl_s: float = ENROL_JOB_TTL_S
    max_video_bytes: int = MAX_VIDEO_BYTES
    max_video_seconds: float = MAX_VIDEO_SECONDS
    # Where video bodies and outputs are spooled (None: `<config dir>/video-spool`).
    spool_dir: Path | None = None

    @property
    def video_spool_dir(self) -> Path:
        return self.spool_dir or self.config_dir / SPOOL_FOLDER

    def video_body_timeout_s(self, declared_bytes: int | None) -> float:
        """A video body's time to arrive: the body time-out plus its size (declared, else
        the cap) at `VIDEO_UPLOAD_BYTES_PER_S`."""
        size = self.max_video_bytes if declared_bytes is None else declared_bytes
        return self.body_timeout_s + size / VIDEO_UPLOAD_BYTES_PER_S

    def video_timeout_s(self, duration_s: float | None) -> float:
        """A video's time to be cloaked once it has arrived, queueing included: the request
        time-out plus `VIDEO_WORK_S_PER_S` per second of video (the cap when the header
        gives no duration)."""
        seconds = self.max_video_seconds if duration_s is None else duration_s
        return self.request_timeout_s + VIDEO_WORK_S_PER_S * seconds
