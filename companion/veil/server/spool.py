"""Private temporary files for video uploads: the body and the cloaked output on disk.

Photos stay in memory; a video (up to 2 GiB) is streamed to disk instead. Layout, all
owner-only (folders 0700, files 0600 created exclusively):

    <config dir>/video-spool/              the spool (0700; refused if a link or not ours)
        proc-<random>/                     one per running `veil serve`
            .lock                          flock()ed for the process's whole life
            job-<random>/input, output     one folder per video request

Every job folder is deleted when the last of its holders lets go of it (the request's
handler and, while it runs, the worker thread: `JobFiles.hold` / `release`), on every path:
success (after the output was opened for streaming; the open descriptor keeps the data
until sent), typed error, cancel, time-out, client gone, exception. A process killed with
kill -9 cannot clean up: its kernel lock dies with it, and the next `veil serve` that opens
the spool deletes every process folder whose lock it can take (`sweep`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import stat
import threading
import time
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
LOCK_NAME = ".lock"
UNLOCKED_GRACE_S = 60.0
"""A process folder without a lock file is another server's that is starting (it creates
the folder, then the lock): only older ones are leftovers."""


class SpoolError(OSError):
    """The spool folder cannot be made private (a link, another owner)."""


def private_folder(path: Path) -> Path:
    """Create `path` 0700 (or make an existing one 0700) and check that it is a real folder
    owned by this user: never follow a link planted there."""
    path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=PRIVATE_DIR)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise SpoolError(f"{path} is not a folder (a link?); remove it and start again")
    if info.st_uid != os.getuid():
        raise SpoolError(f"{path} belongs to another user; remove it and start again")
    if stat.S_IMODE(info.st_mode) != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)
    return path


def create_private_file(path: Path) -> int:
    """A new file only this user can read (O_EXCL: never an existing file or a link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.open(path, flags | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _owner_alive(folder: Path) -> bool:
    """Whether a live process holds `folder`'s lock (or may be about to create it)."""
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        try:
            return time.time() - os.lstat(folder).st_mtime < UNLOCKED_GRACE_S
        except FileNotFoundError:
            return False
    except OSError:
        return False  # a link or something else odd: not a live server's lock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the lock we may have taken
    return False


def sweep(root: Path) -> int:
    """Delete what dead processes left in the spool; returns how many entries went."""
    removed = 0
    for entry in list(root.iterdir()):
        if entry.is_dir() and not entry.is_symlink() and _owner_alive(entry):
            continue
        _remove(entry)
        removed += 1
    return removed


class JobFiles:
    """One video request's private folder: `input` (the body) and `output` (the cloaked
    video). Deleted when the last holder releases it; the creator holds it from the start."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.input = folder / "input"
        self.output = folder / "output"
        self._lock = threading.Lock()
        self._holders = 1
        self._removed = False

    def hold(self) -> bool:
        """Hold the folder for a worker; False if it is already gone (job abandoned)."""
        with self._lock:
            if self._removed:
                return False
            self._holders += 1
            return True

    def release(self) -> None:
        with self._lock:
            if self._removed or self._holders == 0:
                return
            self._holders -= 1
            if self._holders:
                return
            self._removed = True
        _remove(self.folder)

    @property
    def removed(self) -> bool:
        return self._removed


class Spool:
    """This process's spool folder (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = private_folder(root)
        self.swept = sweep(self.root)
        self.folder = self.root / f"proc-{secrets.token_hex(8)}"
        self.folder.mkdir(mode=PRIVATE_DIR)
        self._lock_fd = create_private_file(self.folder / LOCK_NAME)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def new_job(self) -> JobFiles:
        folder = self.folder / f"job-{secrets.token_hex(8)}"
        folder.mkdir(mode=PRIVATE_DIR)
        return JobFiles(folder)

    def close(self) -> None:
        """Delete this process's folder (clean shutdown; kill -9 leaves it to `sweep`)."""
        _remove(self.folder)
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)
