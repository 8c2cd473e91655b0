"""Process-wide memory policy: one malloc arena for all threads (glibc).

The optimiser runs the surrogates' backward passes on several threads at once (see
`veil.optimizer`). glibc gives each thread its own malloc arena, and memory freed in one
arena is not reused by another, so every photo left a few hundred MB of freed but resident
memory per thread. One arena keeps reuse across threads: measured on a 12.6 MP photo, peak
RSS 475 MB with one arena against 528 MB with two and 584-684 MB with glibc's default (8
per core), at the same speed (the threads allocate a few large buffers per step, so the
arena lock is not contended). Trimming freed memory eagerly instead (trim threshold 0) cut
the peak further but doubled the cloaking time: every step then faults its pages in again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_ARENA_MAX = -8  # glibc mallopt() parameter number (malloc.h)
_applied = False


def share_one_malloc_arena() -> bool:
    """Limit glibc to one malloc arena (call before worker threads start); False if not glibc."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = bool(mallopt(_M_ARENA_MAX, 1))
    return _applied


def release_free_memory() -> bool:
    """Hand memory malloc holds freed back to the system (glibc `malloc_trim`); False if
    not glibc.

    For the step between two phases that allocate differently: a video's pass 1 (frames
    converted to RGB) and its cloaks (the optimiser's buffers) leave freed chunks between
    live ones, which the encoder's frames in pass 2 cannot reuse, so they would count in
    the peak on top of it (4K: see docs/video.md). One call costs a few milliseconds."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True
