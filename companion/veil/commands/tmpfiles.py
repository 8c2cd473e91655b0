"""Stale temporaries of an interrupted `veil cloak`.

Every output is written to a hidden `.NAME.XXXXXXXX.tmp` next to it and renamed over it
(`veil.engine.write_atomically`). A `veil cloak --in-place` killed mid-write (kill -9,
power loss) leaves that file behind, hidden and the size of a photo. Before writing NAME,
`veil cloak` removes such leftovers of NAME that are older than STALE_AFTER_S, so a
concurrent writer's live temporary (a write takes well under a second) is never touched.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

STALE_AFTER_S = 60.0


def stale_temporaries(dst: Path, *, now: float | None = None) -> list[Path]:
    """Leftover temporaries of `dst` (tempfile.mkstemp's 8-character names) old enough."""
    pattern = re.compile(rf"^\.{re.escape(dst.name)}\.[A-Za-z0-9_]{{8}}\.tmp$")
    moment = time.time() if now is None else now
    found = []
    with contextlib.suppress(OSError):
        for entry in dst.parent.iterdir():
            if pattern.match(entry.name) and entry.is_file() and not entry.is_symlink():
                with contextlib.suppress(OSError):
                    if moment - entry.stat().st_mtime > STALE_AFTER_S:
                        found.append(entry)
    return found


def remove_stale_temporaries(dst: Path) -> int:
    removed = 0
    for path in stale_temporaries(dst):
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    return removed
