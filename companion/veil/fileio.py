"""One atomic file writer for the whole project (photos, tokens, caches).

A reader sees either the old file or the whole new one, never a partial write: the data go
to a temporary file in the same folder (so the final rename cannot cross file systems),
which is flushed and fsynced, given its permission bits, renamed over the target, and the
folder is fsynced so the rename itself survives a crash. On any error the temporary file
is removed and the target is untouched.

Permission bits: `mode` when given (secrets: 0o600); else those of `like` (a cloaked photo
keeps its input's bits); else those of the file being replaced; else what a plain `open`
would give (0o666 minus the umask). The temporary file is created 0o600, so data are never
readable by others before the final bits are set.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _target_mode(path: Path, mode: int | None, like: Path | None) -> int:
    if mode is not None:
        return mode
    for source in (like, path):
        if source is None:
            continue
        try:
            return stat.S_IMODE(os.stat(source).st_mode)
        except FileNotFoundError:
            continue
    return 0o666 & ~_umask()


def write_atomically(
    path: Path,
    data: bytes | Callable[[BinaryIO], None],
    *,
    mode: int | None = None,
    like: Path | None = None,
) -> None:
    """Write `data` (bytes, or a function that writes to a binary handle) to `path`
    atomically; see the module docstring for the permission bits."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    final_mode = _target_mode(path, mode, like)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, bytes):
                handle.write(data)
            else:
                data(handle)
            handle.flush()
            os.fchmod(handle.fileno(), final_mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - folders that cannot be opened (some platforms)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems without directory fsync
        pass
    finally:
        os.close(fd)
