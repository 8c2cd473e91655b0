"""`veil cloak PATH... [-o DIR] [--mode low|mid|high] [--aligned] [--in-place] [--keep-metadata]
[--max-video-seconds S] [--max-video-bytes N]`

Files and folders (recursive): photos, animated images (GIF, APNG, animated WebP: every
frame, one cloak per face track), and videos (MP4, MOV, WebM, MKV: every tracked face
cloaked, audio copied, see docs/video.md). Outputs keep their file names: in `-o DIR`
(folders keep their relative layout there), in place with `--in-place`, else next to the input as
`name.cloaked.ext`. Every write is atomic. One result line per file on stdout, a progress bar
on stderr when it is a terminal; a failing file is reported and the batch goes on; the exit
status is 1 when some file failed, 2 when the models cannot be loaded.
"""

from __future__ import annotations

import argparse
import errno
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from veil.animated import ANIMATED_SUFFIXES
from veil.commands.tmpfiles import remove_stale_temporaries
from veil.config import config_dir
from veil.errors import ErrorCode, VeilError
from veil.results import DEFAULT_MODE, CloakResult, Mode
from veil.video import VIDEO_SUFFIXES

if TYPE_CHECKING:
    from veil.video.limits import VideoLimits
    from veil.video.result import VideoCloakResult

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".mpo", ".png", ".webp", ".heic", ".heif", ".avif"}
IMAGE_SUFFIXES |= ANIMATED_SUFFIXES  # GIF and APNG (animated WebP and PNG are .webp, .png)
CLOAKED_TAG = ".cloaked"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cloak",
        help="cloak the faces in photos (files or folders)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("-o", "--output", type=Path, metavar="DIR", help="write outputs here")
    parser.add_argument(
        "--mode",
        choices=[m.value for m in Mode],
        default=DEFAULT_MODE.value,
        help="low: faintest; mid (default): hard to see; high: more protection, visible side by "
        "side (README, Modes)",
    )
    parser.add_argument(
        "--aligned",
        action="store_true",
        help="inputs are ArcFace-aligned 112x112 face crops (no detection)",
    )
    parser.add_argument("--in-place", action="store_true", help="replace the input files")
    parser.add_argument(
        "--keep-metadata", action="store_true", help="keep GPS, serial numbers, owner names"
    )
    parser.add_argument("--models", type=Path, metavar="DIR", help="models folder")
    parser.add_argument(
        "--max-video-seconds",
        type=float,
        default=None,
        metavar="S",
        help="refuse longer videos (default 900)",
    )
    parser.add_argument(
        "--max-video-bytes",
        type=int,
        default=None,
        metavar="N",
        help="refuse larger video files (default 4 GiB)",
    )


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


def collect(paths: Iterable[Path], output: Path | None, in_place: bool) -> Iterator[Job | str]:
    """Jobs in a stable order; a string is an input that cannot even be listed."""
    out_root = output.resolve() if output else None
    for path in paths:
        if path.is_dir():
            for src in sorted(p for p in path.rglob("*") if p.is_file()):
                suffix = src.suffix.lower()
                if suffix not in IMAGE_SUFFIXES | VIDEO_SUFFIXES or CLOAKED_TAG in src.name:
                    continue
                if out_root and out_root in src.resolve().parents:
                    continue  # never re-cloak our own outputs
                yield Job(src, destination(src, output, in_place, src.relative_to(path)))
        elif path.exists():
            yield Job(path, destination(path, output, in_place, Path(path.name)))
        else:
            yield f"{path}: no such file or folder"


def destination(src: Path, output: Path | None, in_place: bool, relative: Path) -> Path:
    if in_place:
        return src
    if output is not None:
        return output / relative
    return src.with_name(f"{src.stem}{CLOAKED_TAG}{src.suffix}")


class Progress:
    """A plain carriage-return bar on stderr, silent when stderr is not a terminal."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream = total, stream
        self.enabled = stream.isatty()

    def show(self, done: int, name: str) -> None:
        if not self.enabled:
            return
        width = 30
        filled = width * done // max(self.total, 1)
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\r[{bar}] {done}/{self.total} {name[:40]:<40}")
        self.stream.flush()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 80 + "\r")
            self.stream.flush()


def result_line(job: Job, result: CloakResult) -> str:
    ssim = f"{result.ssim:.4f}" if result.ssim is not None else "-"
    removed = ",".join(result.metadata_removed) or "none"
    personal = [f"{f.profile}/{f.strength}" for f in result.faces if f.profile is not None]
    mine = f"  personal={','.join(personal)}" if personal else ""
    frames = (
        f"  frames={result.frames}  face-frames={result.face_frames}" if result.frames > 1 else ""
    )
    return (
        f"ok    {job.src} -> {job.dst}  faces={result.face_count}  "
        f"{result.seconds:.2f}s  ssim={ssim}  removed={removed}{frames}{mine}"
    )


def video_result_line(job: Job, result: VideoCloakResult) -> str:
    removed = ",".join(result.metadata_removed) or "none"
    personal = [f"{t.profile}/{t.strength}" for t in result.tracks if t.profile is not None]
    mine = f"  personal={','.join(personal)}" if personal else ""
    copied = "" if result.reencoded else "  video=copied"
    return (
        f"ok    {job.src} -> {job.dst}  faces={result.face_count}  tracks={len(result.tracks)}  "
        f"frames={result.frames}  face-frames={result.face_frames}  {result.seconds:.2f}s  "
        f"removed={removed}{copied}{mine}"
    )


def video_limits(args: argparse.Namespace) -> VideoLimits:
    from veil.video.limits import VideoLimits

    limits = VideoLimits()
    if getattr(args, "max_video_seconds", None) is not None:
        limits = replace(limits, max_seconds=float(args.max_video_seconds))
    if getattr(args, "max_video_bytes", None) is not None:
        limits = replace(limits, max_bytes=int(args.max_video_bytes))
    return limits


def run(args: argparse.Namespace) -> int:
    from veil.engine import Engine

    if args.in_place and args.output:
        print("veil cloak: --in-place and -o cannot be combined", file=sys.stderr)
        return 2
    jobs = list(collect(args.paths, args.output, args.in_place))
    try:
        engine = Engine.load(args.models, config_dir=config_dir())
    except VeilError as exc:
        print(f"veil cloak: {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    progress = Progress(len(jobs), sys.stderr)
    failures = 0
    written: set[Path] = set()
    for index, job in enumerate(jobs):
        if isinstance(job, str):
            progress.clear()
            print(f"FAIL  {job}", flush=True)
            failures += 1
            continue
        progress.show(index, job.src.name)
        line = cloak_one(engine, job, args, written)
        progress.clear()
        print(line, flush=True)
        failures += line.startswith("FAIL")
    progress.show(len(jobs), "done")
    progress.clear()
    print(f"{len(jobs) - failures} cloaked, {failures} failed", file=sys.stderr)
    return 1 if failures else 0


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR}


def os_error_code(exc: OSError, job: Job) -> ErrorCode:
    """What a failed read or write means for the user: the input is unreadable (bad_request),
    or the output cannot be written (disk_full, output_not_writable)."""
    if exc.errno in _DISK_FULL:
        return ErrorCode.DISK_FULL
    reading = exc.filename is not None and Path(exc.filename).resolve() == job.src.resolve()
    if reading and job.src.resolve() != job.dst.resolve():
        return ErrorCode.BAD_REQUEST  # reading the input failed
    if exc.errno in _NOT_WRITABLE:
        return ErrorCode.OUTPUT_NOT_WRITABLE
    return ErrorCode.BAD_REQUEST


def cloak_one(engine: object, job: Job, args: argparse.Namespace, written: set[Path]) -> str:
    from veil.engine import Engine

    assert isinstance(engine, Engine)
    started = time.perf_counter()
    target = job.dst.resolve()
    try:
        if target == job.src.resolve() and not args.in_place:
            raise VeilError(
                "refusing to overwrite the input (use --in-place)", code=ErrorCode.BAD_REQUEST
            )
        if target in written:
            raise VeilError(
                f"two inputs would both be written to {job.dst}", code=ErrorCode.BAD_REQUEST
            )
        remove_stale_temporaries(job.dst)
        if not args.aligned and is_video(job.src):
            from veil.video.pipeline import cloak_video_file

            video = cloak_video_file(
                engine,
                job.src,
                job.dst,
                mode=Mode(args.mode),
                keep_metadata=args.keep_metadata,
                limits=video_limits(args),
            )
            written.add(target)
            return video_result_line(job, video)
        result = engine.cloak_file(
            job.src,
            job.dst,
            mode=Mode(args.mode),
            keep_metadata=args.keep_metadata,
            aligned=args.aligned,
        )
        written.add(target)
        return result_line(job, result)
    except VeilError as exc:
        return f"FAIL  {job.src}: {exc.code}: {exc.message}"
    except OSError as exc:
        return f"FAIL  {job.src}: {os_error_code(exc, job)}: {exc.strerror or exc}"
    except Exception as exc:  # a bug must not stop the batch; it is still reported as a failure
        seconds = time.perf_counter() - started
        return (
            f"FAIL  {job.src}: {ErrorCode.INTERNAL}: {type(exc).__name__}: {exc} ({seconds:.2f}s)"
        )


def is_video(path: Path) -> bool:
    """Whether a file is a video, by its first bytes (a photo named .mp4 is still a photo)."""
    from veil.video.sniff import is_video_file

    return is_video_file(path)
