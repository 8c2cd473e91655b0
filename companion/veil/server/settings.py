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
    config_dir: Path = field(default_factory=config_dir)
