"""Hostile and unsupported videos: every one gets a typed `VeilError`, never a crash, never
the original passed through; `veil cloak` on a video (one line, atomic write). No faces
needed for the hostile part: the clips are made of noise."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from veil.engine import Engine
from veil.errors import (
    CorruptVideoError,
    UnsupportedCodecError,
    UnsupportedFormatError,
    VeilError,
    VideoTooLargeError,
    VideoTooLongError,
)
from veil.video.limits import VideoLimits
from veil.video.pipeline import cloak_video_file
from veil.video.sniff import sniff

VEIL = Path(sys.executable).with_name("veil")


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


def noise_clip(
    path: Path,
    codec: str = "libx264",
    frames: int = 12,
    size: int = 64,
    muxer: str | None = None,
    fps: int = 24,
) -> Path:
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format=muxer) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for _ in range(frames):
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def test_sniff_tells_videos_from_photos() -> None:
    assert sniff(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 8) == "mp4"
    assert sniff(b"\x00\x00\x00\x14ftypqt  " + b"\x00" * 8) == "mov"
    assert sniff(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 8) is None  # a HEIC photo
    assert sniff(b"\x1a\x45\xdf\xa3\x01\x00\x00\x00\x00\x00\x00\x1f\x42\x86\x81\x01webm") == "webm"
    assert sniff(b"GIF89a") is None and sniff(b"\xff\xd8\xff") is None


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda data: data[: len(data) // 3], VeilError),  # truncated
        (lambda data: data[:40], CorruptVideoError),  # header only
        (lambda data: data[:32] + bytes(len(data) - 32), CorruptVideoError),  # zeroed body
        (lambda data: b"\x00\x00\x00\x18ftypisom" + b"\xff" * 5000, CorruptVideoError),
        (lambda data: b"\x1a\x45\xdf\xa3" + b"\x00" * 64, CorruptVideoError),  # EBML stub
    ],
    ids=["truncated", "header-only", "zeroed", "garbage-mp4", "garbage-ebml"],
)
def test_malformed_containers(
    engine: Engine, tmp_path: Path, mutate: Callable[[bytes], bytes], error: type[VeilError]
) -> None:
    good = noise_clip(tmp_path / "good.mp4").read_bytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(mutate(good))
    out = tmp_path / "out.mp4"
    try:
        cloak_video_file(engine, bad, out)
    except VeilError as exc:
        assert isinstance(exc, error), exc
        assert not out.exists()  # nothing written, original never passed through
    else:
        assert error is VeilError  # a truncated file may still decode (fewer frames)


def test_random_byte_flips_never_crash(engine: Engine, tmp_path: Path) -> None:
    good = noise_clip(tmp_path / "good.mp4", frames=8).read_bytes()
    rng = np.random.default_rng(7)
    for k in range(12):
        data = bytearray(good)
        for offset in rng.integers(0, len(data), 24):
            data[int(offset)] = int(rng.integers(0, 256))
        path = tmp_path / f"flip{k}.mp4"
        path.write_bytes(bytes(data))
        with contextlib.suppress(VeilError):  # typed: fine; anything else fails the test
            cloak_video_file(engine, path, tmp_path / f"out{k}.mp4")


def test_caps(engine: Engine, tmp_path: Path) -> None:
    clip = noise_clip(tmp_path / "clip.mp4", frames=48, size=96)
    base = VideoLimits()
    cases: list[tuple[VideoLimits, type[VeilError]]] = [
        (replace(base, max_frame_pixels=64 * 64), VideoTooLargeError),  # absurd dimensions
        (replace(base, max_seconds=0.5), VideoTooLongError),  # header's duration
        (replace(base, max_frames=10), VideoTooLongError),  # counted while decoding
        (replace(base, max_bytes=100), VideoTooLargeError),
        (replace(base, max_pixel_rate=1.0, max_seconds=60), VideoTooLargeError),  # pixel bomb
    ]
    for limits, error in cases:
        with pytest.raises(error):
            cloak_video_file(engine, clip, tmp_path / "out.mp4", limits=limits)
    assert not (tmp_path / "out.mp4").exists()


def test_frame_count_bomb(engine: Engine, tmp_path: Path) -> None:
    """A small file of many tiny, nearly empty frames: stopped by the frame cap while
    decoding, whatever the header claims."""
    clip = tmp_path / "bomb.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=1000, options={"preset": "ultrafast"})
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        black = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        for i in range(3000):
            black.pts = i
            out.mux(stream.encode(black))
        out.mux(stream.encode(None))
    assert clip.stat().st_size < 200_000
    with pytest.raises(VideoTooLongError):
        cloak_video_file(
            engine, clip, tmp_path / "out.mp4", limits=VideoLimits(max_frames=1000, max_fps=2000)
        )


@pytest.mark.parametrize(
    ("codec", "muxer", "suffix"),
    [("mpeg4", "mp4", ".mp4"), ("mjpeg", "mov", ".mov")],
)
def test_unsupported_codecs_are_refused(
    engine: Engine, tmp_path: Path, codec: str, muxer: str, suffix: str
) -> None:
    clip = tmp_path / f"old{suffix}"
    with av.open(str(clip), "w", format=muxer) as out:
        stream = out.add_stream(codec, rate=24)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for _ in range(4):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(UnsupportedCodecError):
        cloak_video_file(engine, clip, tmp_path / f"out{suffix}")
    assert not (tmp_path / f"out{suffix}").exists()


def test_audio_only_file_is_refused(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "voice.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 48000
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(UnsupportedFormatError):
        cloak_video_file(engine, path, tmp_path / "out.mp4")


def test_cli_cloaks_a_video(tmp_path: Path) -> None:
    if not VEIL.exists():
        pytest.skip(f"{VEIL} not installed (run scripts/install)")
    clip = noise_clip(tmp_path / "clip.mp4", frames=24, size=96)
    clip.chmod(0o640)
    (tmp_path / "broken.mov").write_bytes(b"\x00\x00\x00\x14ftypqt  " + b"\x00" * 100)
    run = subprocess.run(
        [str(VEIL), "cloak", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = run.stdout.splitlines()
    assert run.returncode == 1, run.stdout + run.stderr
    ok = [line for line in lines if line.startswith("ok") and "clip.mp4" in line]
    assert ok and "tracks=0" in ok[0] and "frames=24" in ok[0] and "video=copied" in ok[0]
    assert any(line.startswith("FAIL") and "corrupt_image" in line for line in lines)
    out = tmp_path / "clip.cloaked.mp4"
    assert out.exists() and (out.stat().st_mode & 0o777) == 0o640
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_video_caps(tmp_path: Path) -> None:
    if not VEIL.exists():
        pytest.skip(f"{VEIL} not installed (run scripts/install)")
    clip = noise_clip(tmp_path / "long.mov", frames=48, size=64, muxer="mov")
    run = subprocess.run(
        [str(VEIL), "cloak", str(clip), "--max-video-seconds", "0.5"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 1
    assert "FAIL" in run.stdout and "video_too_long" in run.stdout, run.stdout
    assert not (tmp_path / "long.cloaked.mov").exists()


def test_header_smaller_than_the_stream(engine: Engine, tmp_path: Path) -> None:
    """A Matroska header announcing 64x64 over an H.264 stream of 1024x1024 frames, against
    a 128x128 cap: refused (by the header FFmpeg corrects while probing, or by the
    decoder's own pixel cap), never decoded at the stream's size."""
    clip = noise_clip(tmp_path / "big.mkv", frames=4, size=1024, muxer="matroska")
    data = clip.read_bytes()
    width = b"\xb0\x82\x04\x00"  # PixelWidth, 2-byte size, 1024
    height = b"\xba\x82\x04\x00"  # PixelHeight
    assert width in data and height in data
    data = data.replace(width, b"\xb0\x82\x00\x40").replace(height, b"\xba\x82\x00\x40")
    clip.write_bytes(data)
    with pytest.raises((VideoTooLargeError, CorruptVideoError)):
        cloak_video_file(
            engine, clip, tmp_path / "out.mkv", limits=VideoLimits(max_frame_pixels=128 * 128)
        )


def test_metadata_table() -> None:
    from veil.imaging.metadata import MetadataReport, Policy
    from veil.video import metadata

    tags = {
        "major_brand": "qt  ",
        "creation_time": "2024-05-01T08:20:30.000000Z",
        "com.apple.quicktime.make": "Apple",
        "com.apple.quicktime.location.ISO6709": "+48.8577+002.2950+035.000/",
        "location": "+48.8577+002.2950/",
        "location-eng": "+48.8577+002.2950/",
        "artist": "Jane",
        "artist-eng": "Jane",
        "com.samsung.android.serial": "R5CT1234",
        "com.vendor.secret": "x",
    }
    report = MetadataReport()
    kept = metadata.filter_tags(tags, metadata.CONTAINER_TAGS, Policy(False, True), report)
    assert kept == {"creation_time": tags["creation_time"], "com.apple.quicktime.make": "Apple"}
    assert set(report.removed) == {
        "com.apple.quicktime.location.ISO6709",
        "location",
        "artist",
        "com.samsung.android.serial",
        "com.vendor.secret",
    }
    kept = metadata.filter_tags(tags, metadata.CONTAINER_TAGS, Policy(True, True), MetadataReport())
    assert "location" in kept and "com.samsung.android.serial" in kept
    assert "location-eng" not in kept and "com.vendor.secret" not in kept
