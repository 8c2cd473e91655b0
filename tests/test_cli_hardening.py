"""`veil cloak` failures carry the right error code, and interrupted writes leave nothing."""

from __future__ import annotations

import argparse
import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import veil.engine
from engine_support import jpeg_bytes, textured
from veil.commands.cloak import Job, cloak_one
from veil.commands.tmpfiles import STALE_AFTER_S, stale_temporaries
from veil.engine import Engine

VEIL = Path(sys.executable).with_name("veil")


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


def _args(**overrides: object) -> argparse.Namespace:
    values = {"mode": "low", "keep_metadata": False, "aligned": False, "in_place": False}
    values.update(overrides)
    return argparse.Namespace(**values)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errno.ENOSPC, "disk_full"),
        (errno.EDQUOT, "disk_full"),
        (errno.EROFS, "output_not_writable"),
        (errno.EACCES, "output_not_writable"),
    ],
)
def test_write_failures_have_their_own_codes(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int, code: str
) -> None:
    """Root ignores permissions and no test can fill a real disk, so the write fails by
    injection at the one place outputs are written."""
    src = tmp_path / "in.jpg"
    src.write_bytes(jpeg_bytes(textured(64, 48)))

    def failing_write(path: Path, data: bytes, **_: object) -> None:
        raise OSError(error, os.strerror(error), str(path))

    monkeypatch.setattr(veil.engine, "write_atomically", failing_write)
    line = cloak_one(engine, Job(src, tmp_path / "out" / "in.jpg"), _args(), set())
    assert line.startswith("FAIL") and f": {code}: " in line, line


def test_unreadable_input_is_a_bad_request(engine: Engine, tmp_path: Path) -> None:
    src = tmp_path / "missing.jpg"
    line = cloak_one(engine, Job(src, tmp_path / "out.jpg"), _args(), set())
    assert ": bad_request: " in line, line


def test_two_inputs_to_one_output_is_a_bad_request(engine: Engine, tmp_path: Path) -> None:
    src = tmp_path / "in.jpg"
    src.write_bytes(jpeg_bytes(textured(64, 48)))
    dst = tmp_path / "out.jpg"
    line = cloak_one(engine, Job(src, dst), _args(), {dst.resolve()})
    assert ": bad_request: two inputs would both be written" in line, line


def test_stale_temporaries_of_a_killed_in_place_run_are_removed(tmp_path: Path) -> None:
    photo = tmp_path / "holiday.jpg"
    photo.write_bytes(jpeg_bytes(textured(64, 48)))
    stale = tmp_path / ".holiday.jpg.ab12_x9Q.tmp"  # what write_atomically leaves when killed
    stale.write_bytes(b"half a photo")
    old = time.time() - STALE_AFTER_S - 5
    os.utime(stale, (old, old))
    live = tmp_path / ".holiday.jpg.zz99yy88.tmp"  # another writer's, just created
    live.write_bytes(b"being written")
    other = tmp_path / ".notes.txt.ab12cd34.tmp"  # not ours to judge
    other.write_bytes(b"x")
    os.utime(other, (old, old))
    assert stale_temporaries(photo) == [stale]
    done = subprocess.run(
        [str(VEIL), "cloak", "--in-place", "--mode", "low", str(photo)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not stale.exists()
    assert live.exists() and other.exists()
