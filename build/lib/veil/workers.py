"""The process's cores as seen by Veil, and one shared thread pool for CPU-bound work.

The optimiser's gradient calls (ONNX Runtime) and the SSIM map's strips (OpenCV, numpy)
release the GIL, so they scale over threads. They share one pool sized to the physical
cores: two pools would each assume the whole machine. A task running on the pool must
never wait on another task of the same pool (it could wait forever).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def physical_cores() -> int:
    """Cores worth one compute thread each (SMT siblings share FP units)."""
    try:
        siblings: set[str] = set()
        for cpu in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology/thread_siblings_list"):
            siblings.add(cpu.read_text().strip())
        if siblings:
            return max(1, min(len(siblings), len(os.sched_getaffinity(0))))
    except (OSError, AttributeError):
        pass
    return max(1, (os.cpu_count() or 2) // 2 or 1)


def compute_pool() -> ThreadPoolExecutor:
    """The shared pool (created on first use), one thread per physical core."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(physical_cores(), thread_name_prefix="veil-compute")
        return _POOL
