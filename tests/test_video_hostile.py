"""Hostile and unsupported videos: every one gets a typed `VeilError`, never a crash, never
the original passed through; truncated and damaged videos are refused, never cloaked in
part, while the valid shapes that look alike (edit lists, fragments, audio shorter or longer
than the video) go through whole; `veil cloak` on a video (one line, atomic write). No
faces needed for the hostile part: the clips are made of noise."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from corpus import in_ci
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
from video_samples import (
    FFMPEG,
    cut,
    cut_before_moov,
    cut_between_fragments,
    cut_between_packets,
    cut_last_audio,
    damage_video,
    faststart,
    ffmpeg,
    fragmented_with_index,
    make_clip,
)

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
        (lambda data: data[: len(data) // 3], CorruptVideoError),  # truncated
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
    with pytest.raises(error):
        cloak_video_file(engine, bad, out)
    assert not out.exists()  # nothing written, original never passed through


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


needs_ffmpeg = pytest.mark.skipif(
    FFMPEG is None and not in_ci(), reason="ffmpeg not installed (apt install ffmpeg)"
)


def wall_clip(path: Path, **settings: Any) -> Path:
    """2 s over a blurred noise picture (no face: the video is remuxed, not re-encoded,
    which is where a short file came back as a short file) with a sine-tone audio track."""
    rng = np.random.default_rng(3)
    photo = np.asarray(
        cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (0, 0), 3),
        np.uint8,
    )
    fake = [np.array([[250, 200], [310, 200], [280, 240], [255, 270], [305, 270]], float)]
    return make_clip(path, photo, fake, seconds=2.0, **settings).path


@dataclass(frozen=True)
class Sources:
    mp4: Path  # H.264 + AAC, index first (faststart), 60 frames
    webm: Path  # VP9 + Opus
    mov: Path  # H.264 + AAC, index last (as PyAV writes it)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Sources:
    if FFMPEG is None and not in_ci():
        pytest.skip("ffmpeg not installed (apt install ffmpeg)")
    folder = tmp_path_factory.mktemp("sources")
    raw = wall_clip(folder / "raw.mp4")
    webm = wall_clip(
        folder / "src.webm", codec="libvpx-vp9", audio="libopus", options={"cpu-used": "8"}
    )
    return Sources(faststart(raw, folder / "src.mp4"), webm, wall_clip(folder / "src.mov"))


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# Measured before the damage checks (docs/video.md, *Damaged and truncated videos*): the
# 50% cut came back cloaked with 26 of 60 frames, the 99% cut without its last 2 audio
# packets, the 70% WebM with 40 of 60 frames, the damaged MP4 whole with the damage in it;
# the 90% cut was refused only by pass 2's decoder, after the cloak was optimised.
TRUNCATED: dict[str, Callable[[Sources, Path], Path]] = {
    "mp4-cut-50%": lambda s, d: cut(s.mp4, d / "cut.mp4", 0.5),
    "mp4-cut-90%": lambda s, d: cut(s.mp4, d / "cut.mp4", 0.9),
    "mp4-cut-99%": lambda s, d: cut(s.mp4, d / "cut.mp4", 0.99),
    "mp4-cut-between-packets": lambda s, d: cut_between_packets(s.mp4, d / "cut.mp4", 0.6),
    "mp4-audio-end-missing": lambda s, d: cut_last_audio(s.mp4, d / "cut.mp4"),
    "mp4-fragmented-cut-between-fragments": lambda s, d: cut_between_fragments(
        fragmented_with_index(s.mp4, d / "frag.mp4"), d / "cut.mp4"
    ),
    "webm-cut-70%": lambda s, d: cut(s.webm, d / "cut.webm", 0.7),
    "mp4-damaged-video-concealed": lambda s, d: damage_video(s.mp4, d / "bad.mp4", concealed=True),
    "mp4-damaged-video-undecodable": lambda s, d: damage_video(
        s.mp4, d / "bad.mp4", concealed=False
    ),
    "mov-cut-before-moov": lambda s, d: cut_before_moov(s.mov, d / "cut.mov"),
}


@pytest.mark.parametrize("shape", list(TRUNCATED))
def test_truncated_or_damaged_videos_are_refused(
    engine: Engine, sources: Sources, tmp_path: Path, shape: str
) -> None:
    """Refused with `corrupt_image` (a message about the video) and nothing written; never
    cloaked in part."""
    bad = TRUNCATED[shape](sources, tmp_path)
    out = tmp_path / f"out{bad.suffix}"
    with pytest.raises(CorruptVideoError, match="video") as caught:
        cloak_video_file(engine, bad, out)
    print(f"{shape}: {caught.value}")
    assert caught.value.code == "corrupt_image"
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def _ffmpeg_shape(name: str, src: Path, folder: Path) -> Path:
    """Valid files that differ from a plain recording the way edited or streamed ones do."""
    out = folder / name
    if name == "edit-list-cut.mp4":  # -ss/-t without re-encoding: a lead-in to drop
        ffmpeg("-ss", "0.7", "-t", "1.0", "-i", src, "-c", "copy", out)
    elif name == "fragmented.mp4":  # moof fragments, no sample count in the index
        ffmpeg("-i", src, "-c", "copy", "-movflags", "frag_keyframe+empty_moov", out)
    elif name == "audio-shorter.mp4":  # the sound stops 1 s before the picture
        ffmpeg("-i", src, "-t", "1", "-i", src, "-map", "0:v", "-map", "1:a", "-c", "copy", out)
    elif name == "audio-longer.mp4":  # the picture stops 1 s before the sound
        ffmpeg("-t", "1", "-i", src, "-i", src, "-map", "0:v", "-map", "1:a", "-c", "copy", out)
    elif name == "bframes-cut.mkv":  # Matroska with B-frames: packets without a DTS
        ffmpeg("-ss", "0.5", "-i", src, "-c", "copy", out)
    elif name == "hevc-open-gop-cut.mp4":  # x265's open GOPs, cut at a CRA picture
        whole = folder / "hevc.mp4"
        x265 = "keyint=20:min-keyint=20:open-gop=1:log-level=error"
        ffmpeg("-i", src, "-c:a", "copy", "-c:v", "libx265", "-x265-params", x265, whole)
        ffmpeg("-ss", "1.1", "-i", whole, "-c", "copy", "-tag:v", "hvc1", out)
    else:
        raise AssertionError(name)
    return out


@pytest.mark.parametrize(
    "shape",
    [
        "source.mp4",
        "source.webm",
        "source.mov",
        "edit-list-cut.mp4",
        "fragmented.mp4",
        "audio-shorter.mp4",
        "audio-longer.mp4",
        "bframes-cut.mkv",
        "hevc-open-gop-cut.mp4",
    ],
)
def test_valid_shapes_are_not_refused(
    engine: Engine, sources: Sources, tmp_path: Path, shape: str
) -> None:
    """The damage checks' tolerances: whole files that an edit, a stream or a recorder
    shaped differently come back whole (every frame, every audio packet)."""
    if shape.startswith("source"):
        src = getattr(sources, shape.split(".")[1])
    else:
        src = _ffmpeg_shape(shape, sources.mp4, tmp_path)
    out = tmp_path / f"out{src.suffix}"
    result = cloak_video_file(engine, src, out)
    with av.open(str(src)) as container:
        audio = sum(1 for p in container.demux(*container.streams.audio) if p.size)
    print(f"{shape}: {result.frames} frames, {result.audio_packets} audio packets")
    assert result.frames == decoded_frames(src) == decoded_frames(out) > 0
    assert result.audio_packets == audio


def test_matroska_remux_keeps_packets_without_a_decoding_time(
    engine: Engine, tmp_path: Path
) -> None:
    """An H.264 MKV with B-frames and no face is remuxed; its first packets carry no
    decoding time. Before: the remux left them out, the first keyframe with them, and the
    output decoded to 0 frames."""
    clip = noise_clip(tmp_path / "clip.mkv", frames=24, size=96, muxer="matroska")
    with av.open(str(clip)) as container:
        assert any(p.dts is None for p in container.demux(video=0) if p.size)
    out = tmp_path / "out.mkv"
    result = cloak_video_file(engine, clip, out)
    assert not result.reencoded
    assert decoded_frames(out) == decoded_frames(clip) == 24


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
