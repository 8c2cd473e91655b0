"""Animated images (GIF, animated WebP, APNG) through `Engine.cloak_bytes` and the server.

The animations are made at test time from a real corpus face panned and zoomed over a few
frames (`animated_samples`), written by Pillow. Checked on each: the format, frame count,
durations and loop kept (GIF: header, palettes, disposal, transparency and delays block for
block); every frame's face changed (against the frames' own ground-truth landmarks, not the
detector; no face-frame left identical to the input); one cloak per track (the per-frame
brightness change on the aligned face correlates strongly across frames, where cloaks
computed frame by frame do not). Hostile files (decompression bombs announcing 10,000
frames, truncated files, frames outside the canvas) get their typed errors before anything
is decoded.
"""

from __future__ import annotations

import io
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image

from animated_samples import make_apng, make_gif, make_webp, pan_frames
from corpus import require_faces
from engine_support import enrol_matt_damon
from metadata_samples import EXIFTOOL, exiftool_tags
from veil.align import alignment_matrix, warp_crop
from veil.animated import gif, pillowframes
from veil.commands.cloak import collect
from veil.engine import Engine
from veil.errors import CorruptImageError, ImageTooLargeError
from veil.imageio import probe
from veil.results import CloakResult
from video_samples import load_rgb

pytestmark = pytest.mark.faces

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
FRAMES = 8
SIZE = (240, 240)
DURATIONS = [80, 120, 80, 60, 100, 80, 140, 90]
COVERAGE = 0.99
ORIGIN = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"


@dataclass(frozen=True)
class Pan:
    frames: list[U8]
    truth: list[list[F64]]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


@pytest.fixture(scope="module")
def pan(engine: Engine) -> Pan:
    photo = load_rgb(require_faces() / "photos" / "Scarlett_Johansson" / "img49.jpg", 1200)
    faces = [f.landmarks for f in engine.find_faces(photo)]
    assert len(faces) == 1
    frames, truth = pan_frames(photo, faces, FRAMES, SIZE)
    assert all(len(t) == 1 for t in truth)
    return Pan(frames, truth)


def shown(data: bytes) -> list[U8]:
    """Every frame as a browser shows it (RGBA): our GIF compositor, Pillow for the rest."""
    if gif.is_gif(data):
        return list(gif.composites(gif.parse(data, max_frames=10_000)))
    with Image.open(io.BytesIO(data)) as image:
        return pillowframes.decode(data, getattr(image, "n_frames", 1)).frames


def play(data: bytes) -> tuple[str, int, list[int], int]:
    """(format, frames, durations in ms, loop) as Pillow reads them."""
    with Image.open(io.BytesIO(data)) as image:
        durations = []
        for index in range(image.n_frames):
            image.seek(index)
            durations.append(int(image.info.get("duration", 0)))
        return str(image.format), image.n_frames, durations, int(image.info.get("loop", 1))


def face_frames_changed(before: list[U8], after: list[U8], truth: list[list[F64]]) -> float:
    """Share of (frame, face) pairs whose face (eyes-to-mouth box of the true landmarks,
    grown by half) has any pixel changed."""
    changed = total = 0
    for a, b, faces in zip(before, after, truth, strict=True):
        for marks in faces:
            lo, hi = marks.min(axis=0), marks.max(axis=0)
            grow = (hi - lo) / 2
            x0, y0 = np.maximum(np.floor(lo - grow), 0).astype(int)
            x1, y1 = np.ceil(hi + grow).astype(int)
            total += 1
            changed += int(not np.array_equal(a[y0:y1, x0:x1], b[y0:y1, x0:x1]))
    return changed / total


def aligned_changes(engine: Engine, before: list[U8], after: list[U8]) -> list[F64]:
    """Per frame, the brightness change on the face aligned as the engine aligns it (the
    detector's landmarks on the input frame), smoothed a little (sigma 1.5 crop pixels: the
    palette's or codec's per-pixel noise is not the cloak)."""
    out = []
    for a, b in zip(before, after, strict=True):
        found = engine.find_faces(np.ascontiguousarray(a[:, :, :3]))
        assert found
        matrix = alignment_matrix(max(found, key=lambda f: f.box.width).landmarks, 112)
        change = (warp_crop(b[:, :, :3], matrix, 112) - warp_crop(a[:, :, :3], matrix, 112)).mean(
            axis=2
        )
        out.append(np.asarray(cv2.GaussianBlur(change, (0, 0), 1.5), np.float64))
    return out


def correlations(changes: list[F64]) -> list[float]:
    values = []
    for i in range(len(changes)):
        for j in range(i + 1, len(changes)):
            u, v = changes[i] - changes[i].mean(), changes[j] - changes[j].mean()
            values.append(float((u * v).sum() / np.sqrt((u * u).sum() * (v * v).sum())))
    return values


SAMPLES: dict[str, Callable[[list[U8]], bytes]] = {
    "gif-global-256": lambda f: make_gif(f, DURATIONS),
    "gif-local-64": lambda f: make_gif(f, DURATIONS, colours=64, global_palette=False, loop=3),
    "webp-lossy": lambda f: make_webp(f, DURATIONS, lossless=False),
    "webp-lossless": lambda f: make_webp(f, DURATIONS, lossless=True, loop=2),
    "apng": lambda f: make_apng(f, DURATIONS, loop=0),
}
# Smallest mean / lowest pairwise correlation of the smoothed face change across frames;
# the palettes (GIF) and lossy WebP add their own per-frame noise to the one cloak.
MIN_CORRELATION = {
    "gif-global-256": (0.8, 0.6),
    "gif-local-64": (0.6, 0.3),
    "webp-lossy": (0.6, 0.3),
    "webp-lossless": (0.95, 0.9),
    "apng": (0.95, 0.9),
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_frame_cloaked_with_one_cloak(name: str, engine: Engine, pan: Pan) -> None:
    data = SAMPLES[name](pan.frames)
    result = engine.cloak_bytes(data)
    fmt, frames, durations, loop = play(data)
    assert play(result.data) == (fmt, frames, durations, loop)
    assert result.frames == FRAMES and result.face_count == 1
    assert result.media_type == {"GIF": "image/gif", "WEBP": "image/webp", "PNG": "image/apng"}[fmt]
    before, after = shown(data), shown(result.data)
    share = face_frames_changed(before, after, pan.truth)
    changes = aligned_changes(engine, before, after)
    values = correlations(changes)
    print(
        f"\n{name}: face-frames changed {share:.1%}, cloaked {result.face_frames}/{FRAMES}, "
        f"correlation of the face change across frames mean {np.mean(values):.2f} "
        f"min {min(values):.2f}, face change RMS "
        f"{np.mean([np.sqrt((c**2).mean()) for c in changes]) * 255:.2f} levels, "
        f"{len(data)} -> {len(result.data)} bytes, {result.seconds:.1f} s"
    )
    assert share >= COVERAGE
    assert all(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    mean_floor, min_floor = MIN_CORRELATION[name]
    assert np.mean(values) >= mean_floor and min(values) >= min_floor
    if fmt == "WEBP":
        assert pillowframes.is_lossless(result.data) == pillowframes.is_lossless(data)
    if fmt == "GIF":
        assert_gif_structure_kept(data, result)


def assert_gif_structure_kept(data: bytes, result: CloakResult) -> None:
    """Header (canvas, global palette flag and size), the global palette itself, and per
    frame: local palette (size and colours), interlacing, disposal, delay, transparency."""
    src, out = gif.parse(data, max_frames=100), gif.parse(result.data, max_frames=100)
    assert out.header == src.header and out.global_palette == src.global_palette
    assert out.loop == src.loop
    for a, b in zip(src.frames, out.frames, strict=True):
        assert b.local_palette == a.local_palette
        assert b.flags == a.flags
        assert (b.disposal, b.transparency) == (a.disposal, a.transparency)
        assert (b.control and b.control.delay) == (a.control and a.control.delay)


def test_frame_by_frame_cloaks_do_not_correlate(engine: Engine, pan: Pan) -> None:
    """The yardstick of the correlation test: frames cloaked one by one as photos (each its
    own optimised cloak) give a face change that barely correlates across frames."""
    picked = [0, FRAMES // 2, FRAMES - 1]
    before, after = [], []
    for index in picked:
        buffer = io.BytesIO()
        Image.fromarray(pan.frames[index]).save(buffer, "PNG")
        cloaked = engine.cloak_bytes(buffer.getvalue()).data
        before.append(np.dstack([pan.frames[index], np.full(SIZE[::-1], 255, np.uint8)]))
        after.append(np.asarray(Image.open(io.BytesIO(cloaked)).convert("RGBA")))
    values = correlations(aligned_changes(engine, before, after))
    print(f"\nper-frame photo cloaks: correlation mean {np.mean(values):.2f} max {max(values):.2f}")
    assert max(values) < 0.5


def still_face_frames(pan: Pan, count: int = 6) -> list[U8]:
    """The face stays still; a red bar moves under it (Pillow then writes each later frame
    as the bar's rectangle only: the face is not redrawn)."""
    out = []
    for k in range(count):
        frame = pan.frames[0].copy()
        frame[205:230, 10 + 20 * k : 40 + 20 * k] = (255, 0, 0)
        out.append(frame)
    return out


@pytest.mark.parametrize(
    "options",
    [
        {"disposal": 1},  # later frames are small rectangles over a kept canvas
        {"disposal": 2, "transparent_corner": True},  # cleared to transparent each time
    ],
)
def test_gif_rectangles_disposal_and_transparency(
    engine: Engine, pan: Pan, options: dict[str, Any]
) -> None:
    frames = still_face_frames(pan)
    data = make_gif(frames, [100] * len(frames), **options)
    result = engine.cloak_bytes(data)
    before, after = shown(data), shown(result.data)
    truth = [pan.truth[0]] * len(frames)
    assert face_frames_changed(before, after, truth) == 1.0
    src, out = gif.parse(data, max_frames=100), gif.parse(result.data, max_frames=100)
    assert [f.disposal for f in out.frames] == [f.disposal for f in src.frames]
    for a, b in zip(before, after, strict=True):
        # Transparent pixels stay transparent, and nothing changes away from the face.
        assert np.array_equal(a[:, :, 3] == 0, b[:, :, 3] == 0)
        assert np.array_equal(a[:60], b[:60]) and np.array_equal(a[200:], b[200:])


def test_single_frame_gif_is_cloaked_like_a_photo(engine: Engine, pan: Pan) -> None:
    data = make_gif(pan.frames[:1], [0])
    result = engine.cloak_bytes(data)
    assert result.face_count == 1 and result.frames == 1 and result.ssim is not None
    assert result.faces[0].ssimulacra2 is not None
    before, after = shown(data), shown(result.data)
    assert face_frames_changed(before, after, pan.truth[:1]) == 1.0
    assert_gif_structure_kept(data, result)


def test_animation_without_a_face_keeps_its_frames(engine: Engine) -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    for data in (
        make_gif(frames, [50] * 3),
        make_apng(frames, [50] * 3),
        make_webp(frames, [50] * 3, lossless=True),
    ):
        result = engine.cloak_bytes(data)
        assert result.face_count == 0 and result.frames == 3
        assert all(
            np.array_equal(a, b) for a, b in zip(shown(data), shown(result.data), strict=True)
        )


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" '
    b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreateDate="2024-05-01T10:20:30">'
    b"<dc:creator><rdf:Seq><rdf:li>Jane Veiltest</rdf:li></rdf:Seq></dc:creator>"
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
)


def with_xmp(data: bytes) -> bytes:
    """Insert an XMP application extension (with its magic trailer) after the header."""
    source = gif.parse(data, max_frames=100)
    head = len(source.header) + len(source.global_palette or b"")
    magic = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
    return data[:head] + b"\x21\xff\x0bXMP DataXMP" + XMP + magic + data[head:]


@pytest.mark.skipif(EXIFTOOL is None, reason="exiftool not installed")
def test_gif_metadata_allow_list(engine: Engine, pan: Pan, tmp_path: Path) -> None:
    """The comment (personal) and XMP creator (personal) go, the XMP date and the loop
    stay; with keep_metadata the comment stays too."""
    data = with_xmp(make_gif(pan.frames[:3], [100] * 3, comment=b"Jane Veiltest at home", loop=0))
    assert b"Jane Veiltest" in data
    for keep in (False, True):
        result = engine.cloak_bytes(data, keep_metadata=keep)
        path = tmp_path / f"out-{keep}.gif"
        path.write_bytes(result.data)
        tags = exiftool_tags([path])[path.name]
        text = " ".join(f"{k}={v}" for k, v in tags.items())
        assert "2024" in str(tags.get("XMP-xmp:CreateDate", "")), tags
        if keep:
            assert "Jane Veiltest at home" in text
        else:
            assert b"Jane Veiltest" not in result.data, text
            assert "GIF comment" in result.metadata_removed
        assert play(result.data)[3] == 0


# -- hostile files -----------------------------------------------------------------------


def gif_bomb(frames: int = 10_000, side: int = 4000) -> bytes:
    """A 4000x4000 canvas and 10,000 one-pixel frames: about 200 KB."""
    screen = side.to_bytes(2, "little") * 2
    one = b"\x2c" + bytes(4) + b"\x01\x00\x01\x00" + b"\x00" + b"\x02\x02\x4c\x01\x00"
    return b"GIF89a" + screen + b"\x80\x00\x00" + bytes(6) + one * frames + b";"


def apng_bomb(frames: int = 10_000, side: int = 4000) -> bytes:
    from veil.imaging.png import SIGNATURE, chunk

    ihdr = side.to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00"
    actl = frames.to_bytes(4, "big") + bytes(4)
    return SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"acTL", actl) + chunk(b"IEND", b"")


def webp_bomb(frames: int = 100, side: int = 4000) -> bytes:
    def part(kind: bytes, payload: bytes) -> bytes:
        return kind + len(payload).to_bytes(4, "little") + payload + b"\x00" * (len(payload) & 1)

    vp8x = b"\x02" + bytes(3) + (side - 1).to_bytes(3, "little") * 2
    anmf = bytes(6) + bytes(6) + (100).to_bytes(3, "little") + b"\x00"
    body = part(b"VP8X", vp8x) + part(b"ANIM", bytes(6)) + part(b"ANMF", anmf) * frames
    return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body


@pytest.mark.parametrize("bomb", [gif_bomb, apng_bomb, webp_bomb])
def test_decompression_bombs_refused_before_decoding(engine: Engine, bomb: Any) -> None:
    data = bomb()
    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError):
        probe(data)
    with pytest.raises(ImageTooLargeError):
        engine.cloak_bytes(data)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("name", ["gif-global-256", "webp-lossy", "apng"])
def test_truncated_animations_are_corrupt(name: str, engine: Engine, pan: Pan) -> None:
    data = SAMPLES[name](pan.frames[:3])
    for cut in (len(data) // 3, len(data) * 2 // 3, len(data) - 7):
        with pytest.raises(CorruptImageError):
            engine.cloak_bytes(data[:cut])


def test_gif_frame_outside_its_canvas_is_corrupt(engine: Engine) -> None:
    frame = b"\x2c" + bytes(4) + b"\x20\x00\x01\x00" + b"\x00" + b"\x02\x02\x4c\x01\x00"
    data = b"GIF89a\x10\x00\x10\x00\x80\x00\x00" + bytes(6) + frame + b";"
    with pytest.raises(CorruptImageError):
        engine.cloak_bytes(data)
    with pytest.raises(CorruptImageError):
        engine.cloak_bytes(b"GIF89a\x10\x00\x10\x00\x80\x00\x00" + bytes(6) + b"\x99")


# -- the command line and the server ------------------------------------------------------


def test_veil_cloak_picks_up_animations(tmp_path: Path) -> None:
    for name in ("a.gif", "b.apng", "c.webp", "d.txt"):
        (tmp_path / name).write_bytes(b"x")
    names = sorted(job.src.name for job in collect([tmp_path], tmp_path / "out", False))
    assert names == ["a.gif", "b.apng", "c.webp"]


Client = TestClient[web.Request, web.Application]


async def test_gif_through_the_server(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    engine: Engine,
    pan: Pan,
    tmp_path: Path,
) -> None:
    from veil.server.app import create_app
    from veil.server.backend import EngineBackend
    from veil.server.pairing import issue_code
    from veil.server.settings import ServerConfig
    from veil.server.tokens import TOKENS_FILE, FileTokenStore

    config_dir = tmp_path / "config"
    config_dir.mkdir(mode=0o700)
    config = ServerConfig(config_dir=config_dir, workers=1, queue=2)
    app = create_app(
        config, EngineBackend(engine), token_store=FileTokenStore(config_dir / TOKENS_FILE)
    )
    client = await aiohttp_client(app)
    reply = await client.post(
        "/v1/pair",
        json={"code": issue_code(config_dir)[0], "client": "pytest"},
        headers={"Origin": ORIGIN},
    )
    token = (await reply.json())["token"]
    headers = {"Authorization": f"Bearer {token}", "Origin": ORIGIN, "Content-Type": "image/gif"}
    data = make_gif(pan.frames, DURATIONS)
    reply = await client.post("/v1/cloak", data=data, headers=headers)
    assert reply.status == 200, await reply.text()
    assert reply.headers["Content-Type"] == "image/gif"
    assert reply.headers["X-Veil-Faces"] == "1"
    cloaked, spans = reply.headers["X-Veil-Face-Frames"].split("/")
    assert int(cloaked) == int(spans) > 1
    body = await reply.read()
    assert play(body) == play(data)
    assert face_frames_changed(shown(data), shown(body), pan.truth) >= COVERAGE
    for hostile, status, code in (
        (gif_bomb(), 413, "image_too_large"),
        (data[: len(data) // 2], 422, "corrupt_image"),
    ):
        reply = await client.post("/v1/cloak", data=hostile, headers=headers)
        assert reply.status == status
        assert (await reply.json())["error"]["code"] == code
    assert (await client.get("/v1/health")).status == 200


def test_enrolled_person_gets_their_personal_cloak(engine: Engine) -> None:
    """A GIF of an enrolled person: their track gets their personal cloak on every frame;
    a GIF of someone else: the default cloak (never another person's)."""
    from veil.profiles import ProfileBook

    folder = require_faces() / "photos" / "Matt_Damon"
    engine.profiles = ProfileBook.fixed([enrol_matt_damon(engine)])
    try:
        results = {}
        for name, path in (
            ("matt", folder / "img33.jpg"),
            ("scarlett", require_faces() / "photos" / "Scarlett_Johansson" / "img49.jpg"),
        ):
            photo = load_rgb(path, 1200)
            marks = [max(engine.find_faces(photo), key=lambda f: f.box.width).landmarks]
            frames, truth = pan_frames(photo, marks, 6, SIZE)
            data = make_gif(frames, [100] * 6)
            result = engine.cloak_bytes(data)
            results[name] = result
            assert face_frames_changed(shown(data), shown(result.data), truth) >= COVERAGE
    finally:
        engine.profiles = None
    main = max(results["matt"].faces, key=lambda f: f.box[2] * f.box[3])
    assert (main.profile, main.strength) == ("me", "medium")
    assert all(f.profile is None for f in results["scarlett"].faces)


def test_apng_default_image_is_never_written_back(engine: Engine, pan: Pan) -> None:
    """An APNG's default image (shown by viewers without APNG support, not part of the
    animation) is a picture of its own: dropped, with or without faces in the frames."""
    rng = np.random.default_rng(2)
    noise = [rng.integers(0, 255, (240, 240, 3), dtype=np.uint8) for _ in range(2)]
    for frames in (pan.frames[:3], noise):
        images = [Image.fromarray(f) for f in [pan.frames[0], *frames]]
        buffer = io.BytesIO()
        images[0].save(buffer, "PNG", save_all=True, append_images=images[1:], default_image=True)
        result = engine.cloak_bytes(buffer.getvalue())
        assert result.frames == len(frames) and "APNG default image" in result.metadata_removed
        with Image.open(io.BytesIO(result.data)) as image:
            assert not image.info.get("default_image") and image.n_frames == len(frames)


def test_gif_parser_bomb_of_tiny_sub_blocks_is_refused_quickly(engine: Engine) -> None:
    """Image data in 1-byte sub-blocks: 2 million of them would be a long Python walk."""
    frame = b"\x2c" + bytes(4) + b"\x01\x00\x01\x00\x00" + b"\x02" + b"\x01\x00" * 2_000_000
    data = b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + bytes(6) + frame + b"\x00;"
    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError):
        engine.cloak_bytes(data)
    assert time.perf_counter() - started < 2.0
