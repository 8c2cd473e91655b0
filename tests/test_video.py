"""Videos through `veil.video`: clips made at test time from the face corpus (pan and zoom
over real photos, phone metadata), in every container and codec Veil re-encodes.

Checked on each: the same container, codec, pixel format, size, frame count, timestamps
(variable frame rate), rotation and duration; audio packets bit-identical; every frame of
every face covered by a track (against the clip's own ground truth, not the detector);
the cloak really in the output (the face's luma differs from a plain re-encode's and the
recogniser's cosine to the original drops); no location, serial or owner field left
(exiftool). Hostile inputs: test_video_hostile.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest

from corpus import in_ci, require_faces
from engine_support import enrol_matt_damon
from metadata_samples import EXIFTOOL, exiftool_tags
from veil.align import alignment_matrix, warp_crop
from veil.engine import Engine
from veil.video.codecs import LARGE_FRAME, encoder_available, plan_encoder
from veil.video.frames import FrameCopy, luma_plane
from veil.video.pipeline import cloak_video_file
from veil.video.result import VideoCloakResult
from video_samples import (
    FFMPEG,
    FFPROBE,
    OWNER,
    SERIAL,
    Clip,
    hdr10_av1_clip,
    hdr10_clip,
    hdr_side_data,
    load_rgb,
    make_clip,
)

pytestmark = pytest.mark.faces
COVERAGE = 0.99


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


@pytest.fixture(scope="module")
def portrait(engine: Engine) -> tuple[npt.NDArray[np.uint8], list[npt.NDArray[np.float64]]]:
    photo = load_rgb(require_faces() / "photos" / "Scarlett_Johansson" / "img49.jpg", 1600)
    faces = [f.landmarks for f in engine.find_faces(photo)]
    assert len(faces) == 1
    return photo, faces


@pytest.fixture(scope="module")
def couple(engine: Engine) -> tuple[npt.NDArray[np.uint8], list[npt.NDArray[np.float64]]]:
    photo = load_rgb(require_faces() / "scenes" / "couple.jpg", 1600)
    faces = [f.landmarks for f in engine.find_faces(photo)]
    assert len(faces) == 2
    return photo, faces


def decoded(path: Path) -> Iterator[av.VideoFrame]:
    with av.open(str(path)) as container:
        yield from container.decode(video=0)


def frame_table(path: Path) -> list[tuple[float, int, str, int, int]]:
    """(time, rotation, pixel format, width, height) of every frame."""
    return [
        (round(float(f.time or 0), 4), f.rotation, f.format.name, f.width, f.height)
        for f in decoded(path)
    ]


def audio_packets(path: Path) -> list[list[tuple[int | None, int | None, bytes]]]:
    with av.open(str(path)) as container:
        streams = list(container.streams.audio)
        out: list[list[tuple[int | None, int | None, bytes]]] = [[] for _ in streams]
        for packet in container.demux(*streams):
            if packet.size:
                out[streams.index(packet.stream)].append((packet.pts, packet.dts, bytes(packet)))
    return out


def coverage(clip: Clip, result: VideoCloakResult) -> tuple[int, int]:
    """(face-frames covered, face-frames): a face is covered on a frame when a track pasted
    there with landmarks within a quarter of the eye distance of the true ones."""
    covered = total = 0
    for index, faces in enumerate(clip.truth):
        for truth in faces:
            total += 1
            iod = float(np.linalg.norm(truth[1] - truth[0]))
            for path in result.paths:
                marks = path.at(index, clip.times[index])
                if marks is not None and np.abs(marks - truth).mean() < 0.25 * iod:
                    covered += 1
                    break
    return covered, total


def luma(frame: av.VideoFrame) -> npt.NDArray[np.float32]:
    plane = frame.to_ndarray(format="gray16le" if "10" in frame.format.name else "gray")
    return np.asarray(plane, np.float32) / (4.0 if "10" in frame.format.name else 1.0)


@dataclass(frozen=True)
class Comparison:
    cloak_diff: float  # mean |luma change| over the face boxes, cloaked vs plain re-encode
    cos_cloaked: float  # mean recogniser cosine, original face vs cloaked output face
    cos_plain: float  # ... vs the plain re-encode (the yardstick)


def compare(engine: Engine, clip: Clip, cloaked: Path, plain: Path) -> Comparison:
    diffs, cloaked_cos, plain_cos = [], [], []
    surrogate = engine.surrogates[0]
    frames = zip(decoded(clip.path), decoded(cloaked), decoded(plain), clip.truth, strict=True)
    for index, (a, b, c, faces) in enumerate(frames):
        if not faces or index % 6:
            continue
        lb, lc = luma(b), luma(c)
        ra, rb, rc = (f.to_ndarray(format="rgb24") for f in (a, b, c))
        for truth in faces:
            x0, y0 = np.maximum(truth.min(axis=0).astype(int), 0)
            x1, y1 = truth.max(axis=0).astype(int)
            diffs.append(float(np.abs(lb[y0:y1, x0:x1] - lc[y0:y1, x0:x1]).mean()))
            m = alignment_matrix(truth, 112)
            emb = surrogate.embed(np.stack([warp_crop(r, m, 112) for r in (ra, rb, rc)]))
            cloaked_cos.append(float(emb[0] @ emb[1]))
            plain_cos.append(float(emb[0] @ emb[2]))
    return Comparison(float(np.mean(diffs)), float(np.mean(cloaked_cos)), float(np.mean(plain_cos)))


CASES: dict[str, dict[str, Any]] = {
    "h264.mp4": {"codec": "libx264", "vfr": True, "rotation": 90},
    "h264-2audio.mov": {"codec": "libx264", "audio_tracks": 2, "rotation": -90},
    "hevc10.mp4": {
        "codec": "libx265",
        "pix_fmt": "yuv420p10le",
        "options": {"x265-params": "log-level=error"},
    },
    "vp9.webm": {"codec": "libvpx-vp9", "audio": "libopus", "options": {"cpu-used": "8"}},
    "av1.webm": {"codec": "libsvtav1", "audio": "libopus", "options": {"preset": "12"}},
    "h264.mkv": {"codec": "libx264", "audio": "libopus"},
}
EXPECTED_CODEC = {"libx264": "h264", "libx265": "hevc", "libvpx-vp9": "vp9", "libsvtav1": "av1"}
PHONE = {
    "title": "holiday",
    "creation_time": "2024-05-01T08:20:30Z",
    "location": "+48.8577+002.2950/",
    "artist": OWNER,
    "comment": SERIAL,
}


@pytest.mark.parametrize("name", list(CASES))
def test_clip_round_trip(name: str, engine: Engine, portrait: Any, tmp_path: Path) -> None:
    photo, faces = portrait
    settings = CASES[name]
    clip = make_clip(tmp_path / name, photo, faces, seconds=1.5, tags=PHONE, **settings)
    out = tmp_path / f"cloaked-{name}"
    result = cloak_video_file(engine, clip.path, out)

    assert result.reencoded and result.frames == clip.frames
    assert result.codec == EXPECTED_CODEC[settings["codec"]]
    assert frame_table(out) == frame_table(clip.path)  # times (VFR), rotation, format, size
    with av.open(str(out)) as a, av.open(str(clip.path)) as b:
        assert a.format.name == b.format.name
        va, vb = a.streams.video[0].codec_context, b.streams.video[0].codec_context
        assert va.codec.canonical_name == result.codec
        colour = ("color_range", "color_primaries", "color_trc", "colorspace", "pix_fmt")
        assert [getattr(va, k) for k in colour] == [getattr(vb, k) for k in colour]
        if result.codec == "hevc":
            assert va.codec_tag == "hvc1"  # plays in QuickTime and iOS
        frame_time = 1 / float(b.streams.video[0].average_rate or 30)
        assert abs((a.duration or 0) - (b.duration or 0)) / 1e6 <= frame_time + 1e-3
    assert audio_packets(out) == audio_packets(clip.path)
    assert len(audio_packets(out)) == settings.get("audio_tracks", 1)

    covered, total = coverage(clip, result)
    print(f"{name}: tracks={len(result.tracks)} face-frames covered {covered}/{total}")
    assert total > 0 and covered / total >= COVERAGE
    assert len(result.tracks) == 1  # one person, one track, one cloak
    with av.open(str(out)) as container:
        tags = {k.lower(): v for k, v in container.metadata.items()}
    assert "location" not in tags and "artist" not in tags and "comment" not in tags
    assert tags.get("title") == "holiday" and "creation_time" in tags


def test_cloak_reaches_the_output(engine: Engine, portrait: Any, tmp_path: Path) -> None:
    """The face's luma differs from a plain re-encode's and the recogniser sees the cloaked
    face further from the original than the re-encoded one (same encoder settings)."""
    photo, faces = portrait
    clip = make_clip(tmp_path / "face.mp4", photo, faces, size=(480, 360), seconds=1.5)
    cloaked, plain = tmp_path / "cloaked.mp4", tmp_path / "plain.mp4"
    shares: list[float] = []
    cloak_video_file(engine, clip.path, cloaked, progress=shares.append)
    cloak_video_file(engine, clip.path, plain, cloak=False)
    assert shares and shares == sorted(shares) and shares[0] >= 0 and shares[-1] <= 1
    found = compare(engine, clip, cloaked, plain)
    print(found)
    assert found.cloak_diff > 0.3
    # Measured on this clip: about 0.95 against 0.999 for the plain re-encode (mobilefacenet);
    # per-frame independent cloaks reach about 0.87 on the same crops (docs/video.md).
    assert found.cos_cloaked < found.cos_plain - 0.02


def test_two_people_two_tracks(engine: Engine, couple: Any, tmp_path: Path) -> None:
    photo, faces = couple
    clip = make_clip(tmp_path / "couple.mp4", photo, faces, size=(480, 320), seconds=1.5)
    result = cloak_video_file(engine, clip.path, tmp_path / "out.mp4")
    covered, total = coverage(clip, result)
    print(f"couple: tracks={len(result.tracks)} face-frames covered {covered}/{total}")
    assert covered / total >= COVERAGE
    assert len(result.tracks) == 2  # one track per person, not one per detection round


def test_video_without_faces_is_copied(engine: Engine, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    photo = cv2_blur(rng.integers(0, 255, (600, 800, 3), dtype=np.uint8))
    fake = [np.array([[300, 250], [360, 250], [330, 290], [305, 320], [355, 320]], float)]
    clip = make_clip(tmp_path / "wall.mp4", photo, fake, seconds=1.0, tags=PHONE, rotation=90)
    out = tmp_path / "out.mp4"
    result = cloak_video_file(engine, clip.path, out)
    assert not result.reencoded and not result.tracks

    def packets(path: Path) -> list[bytes]:
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]

    assert packets(out) == packets(clip.path)
    assert frame_table(out) == frame_table(clip.path)  # rotation kept by the remux too
    assert audio_packets(out) == audio_packets(clip.path)
    assert "location" in result.metadata_removed


def cv2_blur(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    import cv2

    return np.asarray(cv2.GaussianBlur(pixels, (0, 0), 3), np.uint8)


@pytest.mark.skipif(EXIFTOOL is None and not in_ci(), reason="exiftool not installed")
@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
def test_phone_metadata_removed(engine: Engine, portrait: Any, tmp_path: Path, suffix: str) -> None:
    """exiftool reads no location, serial number or owner in the output; make, model and
    dates stay (the photos' rules)."""
    photo, faces = portrait
    clip = make_clip(tmp_path / f"phone{suffix}", photo, faces, seconds=1.0, tags={"title": "t"})
    out = tmp_path / f"out{suffix}"
    cloak_video_file(engine, clip.path, out)
    before = exiftool_tags([clip.path])[clip.path.name]
    after = exiftool_tags([out])[out.name]
    identifying = (
        "GPS",
        "Location",
        "Serial",
        "Author",
        "Artist",
        "Owner",
        "DisplayName",
        "Comment",
    )
    assert any(any(w in key for w in identifying) for key in before), before
    leaked = {k: v for k, v in after.items() if any(w in k for w in identifying)}
    assert not leaked, leaked
    text = out.read_bytes()
    for needle in (SERIAL, OWNER, "Tour Eiffel", "+48.8577"):
        assert needle.encode() not in text
    assert after.get("Keys:Model") == "iPhone 15 Pro"
    assert "QuickTime:CreateDate" in after


def test_enrolled_person_gets_their_personal_cloak(engine: Engine, tmp_path: Path) -> None:
    """A clip of an enrolled person: their track gets their personal cloak; a clip of
    someone else: the default cloak (never another person's)."""
    from veil.profiles import ProfileBook

    folder = require_faces() / "photos" / "Matt_Damon"
    engine.profiles = ProfileBook.fixed([enrol_matt_damon(engine)])
    try:
        results = {}
        for name, path in (
            ("matt", folder / "img33.jpg"),
            ("scarlett", require_faces() / "photos/Scarlett_Johansson/img49.jpg"),
        ):
            photo = load_rgb(path, 1600)
            marks = [max(engine.find_faces(photo), key=lambda f: f.box.width).landmarks]
            clip = make_clip(tmp_path / f"{name}.mp4", photo, marks, size=(400, 300), seconds=1.0)
            results[name] = (clip, cloak_video_file(engine, clip.path, tmp_path / f"o-{name}.mp4"))
    finally:
        engine.profiles = None
    clip, matt = results["matt"]
    main = max(matt.tracks, key=lambda t: t.sightings)
    assert main.profile == "me" and main.strength == "medium"
    covered, total = coverage(clip, matt)
    assert covered / total >= COVERAGE
    assert all(t.profile is None for t in results["scarlett"][1].tracks)


@pytest.mark.skipif(EXIFTOOL is None and not in_ci(), reason="exiftool not installed")
def test_keep_metadata_keeps_location(engine: Engine, portrait: Any, tmp_path: Path) -> None:
    """`--keep-metadata`: the personal fields (location, author) stay, as for photos."""
    photo, faces = portrait
    clip = make_clip(tmp_path / "phone.mov", photo, faces, seconds=0.5, tags={"title": "t"})
    out = tmp_path / "out.mov"
    cloak_video_file(engine, clip.path, out, keep_metadata=True)
    after = exiftool_tags([out])[out.name]
    assert any("GPS" in key for key in after), after
    assert after.get("Keys:Author") == OWNER


@pytest.mark.skipif(
    (FFMPEG is None or FFPROBE is None) and not in_ci(), reason="ffmpeg not installed"
)
@pytest.mark.parametrize(
    ("codec", "max_cll"),
    [
        ("hevc", "1000,400"),
        ("hevc", "0,0"),
        ("hevc", None),
        ("av1", "1000,400"),
        ("av1", None),
    ],
    ids=["hevc-cll", "hevc-cll-0", "hevc-no-cll", "av1-cll", "av1-no-cll"],
)
def test_hdr10_static_metadata_survives(
    engine: Engine, portrait: Any, tmp_path: Path, codec: str, max_cll: str | None
) -> None:
    """10-bit HEVC (x265's SEI messages, MP4) or AV1 (SVT-AV1's metadata OBUs, WebM) PQ
    with a mastering display (and light levels: given, all zero, absent), re-encoded with
    its face cloaked: ffprobe reads the same mastering display and light levels on the
    output's first frame as on the input's (and no light levels where the input had none),
    and the same colour tags."""
    photo, faces = portrait
    face = make_clip(tmp_path / "face.mp4", photo, faces, seconds=1.0)
    suffix = ".mp4" if codec == "hevc" else ".webm"
    if codec == "hevc":
        src = hdr10_clip(face.path, tmp_path / f"hdr{suffix}", max_cll=max_cll)
    else:
        src = hdr10_av1_clip(face.path, tmp_path / f"hdr{suffix}", max_cll=max_cll)
    before = hdr_side_data(src)
    assert [d["side_data_type"] for d in before] == [
        "Mastering display metadata",
        *(["Content light level metadata"] if max_cll else []),
    ]
    out = tmp_path / f"out{suffix}"
    result = cloak_video_file(engine, src, out)
    assert result.reencoded and result.tracks  # re-encoded, not remuxed
    assert hdr_side_data(out) == before
    with av.open(str(out)) as a, av.open(str(src)) as b:
        va, vb = a.streams.video[0].codec_context, b.streams.video[0].codec_context
        colour = ("color_range", "color_primaries", "color_trc", "colorspace", "pix_fmt")
        assert [getattr(va, k) for k in colour] == [getattr(vb, k) for k in colour]


@pytest.mark.parametrize(
    ("codec", "muxer", "pix_fmt"),
    [("h264", "mp4", "yuv420p"), ("hevc", "mp4", "yuv420p10le"), ("hevc", "mov", "yuv420p")],
)
def test_large_frame_encoder_settings_are_accepted(codec: str, muxer: str, pix_fmt: str) -> None:
    """The settings for 1440p and up (a shorter look-ahead for memory) open the encoder:
    x265 refuses a look-ahead no longer than its run of B-frames, which would fail every
    4K HEVC video at the encoding stage."""
    for width, height in ((2560, 1440), (3840, 2160)):
        assert width * height >= LARGE_FRAME
        plan = plan_encoder(codec, muxer, pix_fmt, width * height)
        if not encoder_available(plan.encoder):
            pytest.skip(f"no {plan.encoder} in this FFmpeg")
        ctx = av.codec.CodecContext.create(plan.encoder, "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, plan.pix_fmt
        ctx.time_base = Fraction(1, 30)
        ctx.options = dict(plan.options)
        ctx.open()  # raises av.error.InvalidDataError on settings the encoder refuses


# Run in a fresh interpreter: x265's peak RSS growth while it encodes 16 synthetic 4K frames
# with the large-frame settings (no decoder, no models), in MB.
_X265_4K_PEAK = """
import io, sys
import av, numpy as np
from veil.memory import share_one_malloc_arena
from veil.video.codecs import plan_encoder

def hwm():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) // 1024 for l in status if l.startswith("VmHWM:"))

share_one_malloc_arena()  # as the companion runs
plan = plan_encoder("hevc", "mp4", sys.argv[1], 3840 * 2160)
frame = av.VideoFrame(3840, 2160, plan.pix_fmt)
depth = np.uint16 if plan.pix_fmt.endswith("10le") else np.uint8
luma = np.frombuffer(memoryview(frame.planes[0]), depth).reshape(2160, -1)
for plane in frame.planes[1:]:
    np.frombuffer(memoryview(plane), depth)[:] = 512 if depth is np.uint16 else 128
ramp = np.add.outer(np.arange(2160), np.arange(luma.shape[1])) // 4
base = hwm()
with av.open(io.BytesIO(), "w", format="mp4") as out:
    stream = out.add_stream(plan.encoder, rate=30, options=plan.options)
    stream.width, stream.height, stream.pix_fmt = 3840, 2160, plan.pix_fmt
    for i in range(16):
        luma[...] = (ramp + 3 * i) % 200 + 20  # a moving ramp: cheap to encode
        frame.pts = i
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
print(hwm() - base)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_4k_hevc_encoder_keeps_few_frames_in_flight() -> None:
    """x265 holds each 4K frame it has queued or still references at 50-140 MB (10-bit;
    docs/video.md, HEVC memory), so from 1440p up it runs without B-frames, with 1 frame of
    look-ahead, one frame thread and at most 8 worker threads. Measured here: about 820 MB
    of growth for 4K 10-bit; 1 B-frame and 2 frames of look-ahead took about 1,050 MB,
    x265's defaults (3 and 10) far more."""
    if not encoder_available("libx265"):
        pytest.skip("no libx265 in this FFmpeg")
    run = subprocess.run(
        [sys.executable, "-c", _X265_4K_PEAK, "yuv420p10le"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    grown = int(run.stdout.split()[-1])
    assert 300 < grown <= 900, run.stdout  # 300: the encoder really ran at 4K


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "options"),
    [
        ("libx264", "yuv420p", {}),
        ("libx265", "yuv420p10le", {"x265-params": "log-level=error"}),
    ],
)
def test_pasted_frames_are_copies_in_one_reused_buffer(
    portrait: Any, tmp_path: Path, codec: str, pix_fmt: str, options: dict[str, str]
) -> None:
    """Pass 2 pastes on a copy of each decoded frame (the decoder may still predict later
    frames from its own), and every copy goes into the same buffer: the encoder has let go
    of it once `encode` returns, so no frame costs a new allocation (a fresh 4K copy a
    frame cost about 100 MB of peak RSS, docs/video.md). The copy has the frame's pixels,
    timing and colour tags; the decoder's frame is left as it was."""
    photo, faces = portrait
    clip = make_clip(
        tmp_path / "in.mp4", photo, faces, codec=codec, pix_fmt=pix_fmt, seconds=0.5,
        audio=None, options=options,
    )  # fmt: skip
    copy = FrameCopy()
    buffers = set()
    with av.open(str(clip.path)) as src, av.open(str(tmp_path / "out.mp4"), "w") as out:
        stream = out.add_stream(codec, rate=30, options=options)
        stream.width, stream.height, stream.pix_fmt = 320, 240, pix_fmt
        for frame in src.decode(video=0):
            pixels = frame.to_ndarray()
            own = copy.of(frame)
            assert np.array_equal(own.to_ndarray(), pixels)
            timing = ("pts", "time_base", "duration", "colorspace", "color_range", "color_trc")
            assert [getattr(own, k) for k in timing] == [getattr(frame, k) for k in timing]
            luma_plane(own)[:16, :16] ^= 1  # what a paste does: write into the copy
            assert np.array_equal(frame.to_ndarray(), pixels)
            buffers.add(own.planes[0].buffer_ptr)
            out.mux(stream.encode(own))
        out.mux(stream.encode(None))
    assert len(buffers) == 1
