"""Phone photos in, nothing identifying out: every format / variant of the sample corpus
(tests/format_samples.py, built at test time from a real face photo) through the engine,
`veil cloak` and `POST /v1/cloak`.

For each output: same format, size and name; faces cloaked; the metadata policy applied
(read back by exiftool); and nothing that held the uncloaked face left in the file: every
JPEG stream anywhere in the bytes (EXIF thumbnails, MPF images, frames inside a video
trailer) is decoded and searched with the detector, and each face found must be no closer
to the original face (recogniser cosine) than the cloaked primary is. A kept gain map is
checked on its own HDR rendition, computed here with the Ultra HDR formula.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from corpus import in_ci
from engine_support import faces_dir, jpeg_bytes, textured
from format_samples import CORPUS, fake_mp4, motion_photo, ultra_hdr
from metadata_samples import EXIFTOOL, exiftool_tags
from veil import imageio
from veil.align import alignment_matrix, warp_crop
from veil.engine import Engine
from veil.errors import UnsupportedFormatError
from veil.fileio import write_atomically
from veil.imaging import jpeg
from veil.imaging.metadata import MetadataReport

VEIL = Path(sys.executable).with_name("veil")
# Under CI a missing exiftool fails the run (exiftool_tags asserts) instead of skipping.
pytestmark = pytest.mark.skipif(EXIFTOOL is None and not in_ci(), reason="exiftool not installed")
# Tags the default policy must remove, as exiftool names them (a sample of every group).
MUST_GO = [
    "GPS:GPSLatitude",
    "IFD0:Artist",
    "ExifIFD:SerialNumber",
    "ExifIFD:ImageUniqueID",
    "ExifIFD:UserComment",
    "IFD1:ThumbnailImage",
    "XMP-exifEX:ImageUniqueID",
    "XMP-exif:UserComment",
    "XMP-photoshop:City",
    "XMP-iptcExt:LocationCreatedCity",
    "XMP-mwg-rs:RegionName",
    "XMP-dc:Creator",
    "XMP-GCamera:MotionPhoto",
    "XMP-GCamera:MicroVideo",
    "IPTC:By-line",
    "IPTC:City",
    "JUMBF:JUMDLabel",
    "XMP-GImage:ImageData",
    "XMP-xmpNote:HasExtendedXMP",
]
MUST_STAY = ["IFD0:Make", "IFD0:Model", "ExifIFD:ExposureTime", "ExifIFD:DateTimeOriginal"]
EMBEDDED_MARGIN = 0.05  # an embedded face may be at most this much closer than the primary


def available(name: str) -> bool:
    if name.endswith(".heic"):
        return imageio.HEIF_AVAILABLE
    if name.endswith(".avif"):
        return "AVIF" in imageio.MEDIA_TYPES
    return True


NAMES = [n for n in CORPUS if available(n)]


@pytest.fixture(scope="module")
def engine() -> Engine:
    faces_dir()
    return Engine.load()


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    faces_dir()
    return {name: CORPUS[name][0]() for name in NAMES}


@pytest.fixture(scope="module")
def sface(engine: Engine) -> Any:
    return next(s for s in engine.surrogates if s.name == "sface")


def decode_rgb(data: bytes) -> npt.NDArray[np.uint8]:
    decoded = imageio.decode(data)
    pixels = decoded.pixels
    return (pixels >> 8).astype(np.uint8) if pixels.dtype == np.uint16 else pixels


def face_embeddings(engine: Engine, model: Any, rgb: npt.NDArray[np.uint8]) -> list[Any]:
    out = []
    for face in engine.find_faces(rgb):
        crop = warp_crop(rgb, alignment_matrix(face.landmarks, 112), 112)
        out.append(model.embed(crop[None])[0])
    return out


def embedded_jpegs(data: bytes) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """Every decodable JPEG stream that starts anywhere after byte 0 (RGB)."""
    pos = data.find(b"\xff\xd8\xff", 1)
    while pos != -1:
        image = cv2.imdecode(np.frombuffer(data[pos:], np.uint8), cv2.IMREAD_COLOR)
        if image is not None and min(image.shape[:2]) >= 24:
            yield pos, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        pos = data.find(b"\xff\xd8\xff", pos + 3)


def closest_embedded_face(engine: Engine, model: Any, data: bytes, reference: Any) -> float:
    """Highest cosine to `reference` of any face in any embedded JPEG (-1: none found)."""
    best = -1.0
    for _, rgb in embedded_jpegs(data):
        for embedding in face_embeddings(engine, model, rgb):
            best = max(best, float(embedding @ reference))
    return best


def primary_cosine(engine: Engine, model: Any, before: bytes, after: bytes) -> tuple[Any, float]:
    original = face_embeddings(engine, model, decode_rgb(before))
    assert original, "the sample's face is not found"
    cloaked = face_embeddings(engine, model, decode_rgb(after))
    assert cloaked, "the output's face is not found"
    return original[0], max(float(c @ original[0]) for c in cloaked)


def assert_clean(
    engine: Engine, model: Any, name: str, before: bytes, after: bytes, tags: dict[str, Any]
) -> None:
    """Same format and size, face cloaked, policy applied, no uncloaked copy left."""
    info_in, info_out = imageio.probe(before), imageio.probe(after)
    assert info_out.media_type == info_in.media_type == CORPUS[name][1]
    assert (info_out.width, info_out.height) == (info_in.width, info_in.height)
    reference, cos_primary = primary_cosine(engine, model, before, after)
    assert cos_primary < 0.8, f"{name}: the primary face barely moved ({cos_primary:.2f})"
    closest = closest_embedded_face(engine, model, after, reference)
    assert closest <= cos_primary + EMBEDDED_MARGIN, (
        f"{name}: an embedded image holds the face at cosine {closest:.2f} "
        f"(cloaked primary: {cos_primary:.2f})"
    )
    assert b"ftyp" not in after[-len(after) // 2 :] or not name.startswith("motion")
    assert b"GImage" not in after and b"xmp/extension" not in after
    left = [t for t in MUST_GO if t in tags]
    assert left == [], f"{name}: {left}"
    kept = [t for t in MUST_STAY if t in tags]
    assert kept == MUST_STAY or name.endswith(".png"), f"{name}: only {kept} kept"
    if name.endswith(".heic"):
        import pillow_heif

        heif = pillow_heif.open_heif(io.BytesIO(after), convert_hdr_to_8bit=False)
        assert len(heif) == 1
        source = pillow_heif.open_heif(io.BytesIO(before), convert_hdr_to_8bit=False)
        assert heif.info["bit_depth"] == source.info["bit_depth"]  # 10-bit stays 10-bit
        assert not heif.info.get("thumbnails") and not heif.info.get("depth_images")
        assert not heif.info.get("aux")


# -- the sample corpus itself ---------------------------------------------------------------


def test_samples_hide_the_uncloaked_face_where_the_checks_look(
    engine: Engine, sface: Any, corpus: dict[str, bytes]
) -> None:
    """Without this the leak checks below could pass by finding nothing."""
    for name in ("plain.jpg", "stereo.mpo.jpg", "motion.jpg"):
        reference = face_embeddings(engine, sface, decode_rgb(corpus[name]))[0]
        assert closest_embedded_face(engine, sface, corpus[name], reference) > 0.7, name
    assert b"GImage:Data" in corpus["plain.jpg"]  # the original photo, base64, extended XMP
    assert jpeg.layout(corpus["ultrahdr.jpg"]).gain_map is not None
    assert len(jpeg.layout(corpus["stereo.mpo.jpg"]).secondaries) == 2
    if imageio.HEIF_AVAILABLE:
        import pillow_heif

        heif = pillow_heif.open_heif(io.BytesIO(corpus["iphone.heic"]), convert_hdr_to_8bit=False)
        assert heif.info["thumbnails"] and heif.info["bit_depth"] == 10
        assert b"grid" in corpus["iphone.heic"][:4096]


# -- the engine -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine_outputs(
    engine: Engine, corpus: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("engine")
    results = {}
    for name, data in corpus.items():
        result = engine.cloak_bytes(data)
        results[name] = result
        (root / name).write_bytes(result.data)
    return {"results": results, "tags": exiftool_tags(sorted(root.iterdir()))}


@pytest.mark.parametrize("name", NAMES)
def test_engine_cloaks_every_format_and_leaves_nothing_behind(
    engine: Engine,
    sface: Any,
    corpus: dict[str, bytes],
    engine_outputs: dict[str, Any],
    name: str,
) -> None:
    result = engine_outputs["results"][name]
    assert result.face_count == 1
    assert_clean(engine, sface, name, corpus[name], result.data, engine_outputs["tags"][name])


def test_mpo_views_and_previews_go_and_the_file_is_a_plain_jpeg(
    engine_outputs: dict[str, Any],
) -> None:
    result = engine_outputs["results"]["stereo.mpo.jpg"]
    assert jpeg.layout(result.data).secondaries == ()
    assert "MPF stereo / multi-view image" in result.metadata_removed
    assert "MPF preview image" in result.metadata_removed
    assert "MPF0:NumberOfImages" not in engine_outputs["tags"]["stereo.mpo.jpg"]


def test_motion_photo_video_goes(engine_outputs: dict[str, Any]) -> None:
    result = engine_outputs["results"]["motion.jpg"]
    assert "motion-photo video" in result.metadata_removed
    assert b"ftyp" not in result.data and result.data.endswith(b"\xff\xd9")


def hdr_face_cosines(
    engine: Engine, models: list[Any], before: bytes, after: bytes
) -> dict[str, tuple[float, float]]:
    """{model: (cosine at the HDR view's exposure, HDR cosine)} between the original and
    the output's faces, the output's gain map applied to both (Ultra HDR formula, hdrgm
    values of format_samples, one exposure for the whole photo). The first figure shows the
    SDR faces with one constant gain (the face's mean): what the HDR view would be if the
    gain map held no shading of its own over the face."""
    gain = jpeg.layout(after).gain_map
    assert gain is not None
    sdr_before, sdr_after = decode_rgb(before), decode_rgb(after)
    height, width = sdr_before.shape[:2]
    g = cv2.imdecode(np.frombuffer(gain.data, np.uint8), cv2.IMREAD_GRAYSCALE)
    g = cv2.resize(g, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    boost = np.exp2(2.0 * g)[:, :, None]  # GainMapMin 0, GainMapMax 2, Gamma 1

    def linear(rgb: Any) -> Any:
        x = rgb.astype(np.float32) / 255
        return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)

    def tone(hdr: Any, scale: float) -> npt.NDArray[np.uint8]:
        y = np.clip(hdr / scale, 0, 1)
        srgb = np.where(y <= 0.0031308, y * 12.92, 1.055 * y ** (1 / 2.4) - 0.055)
        return np.rint(srgb * 255).astype(np.uint8)

    scale = float(np.percentile((linear(sdr_before) + 1 / 64) * boost - 1 / 64, 99.5))
    face = engine.find_faces(sdr_before)[0]
    b = face.box
    mean_boost = float(boost[max(b.y0, 0) : b.y1, max(b.x0, 0) : b.x1].mean())
    images = [
        tone((linear(sdr_before) + 1 / 64) * mean_boost - 1 / 64, scale),
        tone((linear(sdr_after) + 1 / 64) * mean_boost - 1 / 64, scale),
        tone((linear(sdr_before) + 1 / 64) * boost - 1 / 64, scale),
        tone((linear(sdr_after) + 1 / 64) * boost - 1 / 64, scale),
    ]
    matrix = alignment_matrix(face.landmarks, 112)
    crops = np.stack([warp_crop(img, matrix, 112) for img in images])
    out = {}
    for model in models:
        e = model.embed(crops)
        out[model.name] = (float(e[0] @ e[1]), float(e[2] @ e[3]))
    return out


HDR_TOLERANCE = 0.08  # the engine's margin (0.05) plus rendering differences (exposure)


@pytest.mark.parametrize("mode", ["low", "mid", "high"])
def test_gain_map_is_kept_only_when_the_hdr_rendition_carries_the_cloak(
    engine: Engine, corpus: dict[str, bytes], mode: str
) -> None:
    data = corpus["ultrahdr.jpg"]
    result = engine.cloak_bytes(data, mode=mode)  # type: ignore[arg-type]
    layout = jpeg.layout(result.data)
    kept = layout.gain_map is not None
    assert kept == ("gain map (HDR)" not in result.metadata_removed)
    models = list(engine.all_recognizers())
    surrogates = {s.name for s in engine.surrogates}
    # The original gain map on the cloaked primary: its shading brings the HDR face back
    # toward the original (why the engine flattens the gain map's face regions).
    raw = hdr_face_cosines(engine, models, data, _with_gain_map_of(result.data, data))
    print(f"\n{mode}, original gain map: " + _line(raw))
    assert any(h > e + HDR_TOLERANCE for n, (e, h) in raw.items() if n in surrogates)
    assert kept, f"{mode}: the flattened gain map was expected to pass"
    assert layout.gain_map is not None
    cosines = hdr_face_cosines(engine, models, data, result.data)
    print(f"{mode}, written gain map: " + _line(cosines))
    for name, (exposed, hdr) in cosines.items():
        if name in surrogates:
            assert hdr <= exposed + HDR_TOLERANCE, (name, exposed, hdr)
    # Seen alone, the written gain map shows no face.
    gain = cv2.imdecode(np.frombuffer(layout.gain_map.data, np.uint8), cv2.IMREAD_COLOR)
    big = cv2.resize(gain, (result.width, result.height), interpolation=cv2.INTER_LINEAR)
    assert engine.find_faces(cv2.cvtColor(big, cv2.COLOR_BGR2RGB)) == []
    tags = _tags_of(result.data)
    assert tags.get("MPF0:NumberOfImages") == 2
    assert tags.get("MPImage2:MPImageLength") == len(layout.gain_map.data)
    assert tags.get("XMP-hdrgm:Version") is not None
    assert tags.get("XMP-Container:DirectoryItemLength") == len(layout.gain_map.data)


def _line(cosines: dict[str, tuple[float, float]]) -> str:
    return "; ".join(f"{n}: exposed SDR {s:+.3f} HDR {h:+.3f}" for n, (s, h) in cosines.items())


def _with_gain_map_of(output: bytes, original: bytes) -> bytes:
    from format_samples import MP_UNDEFINED, with_mpf

    gain = jpeg.layout(original).gain_map
    assert gain is not None
    return with_mpf(output, [(MP_UNDEFINED, gain.data)])


def _tags_of(data: bytes) -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.jpg"
        path.write_bytes(data)
        return exiftool_tags([path])["x.jpg"]


def test_keep_metadata_never_keeps_copies_of_a_cloaked_face(
    engine: Engine, sface: Any, corpus: dict[str, bytes]
) -> None:
    for name in ("plain.jpg", "stereo.mpo.jpg", "motion.jpg"):
        result = engine.cloak_bytes(corpus[name], keep_metadata=True)
        reference, cos_primary = primary_cosine(engine, sface, corpus[name], result.data)
        closest = closest_embedded_face(engine, sface, result.data, reference)
        assert closest <= cos_primary + EMBEDDED_MARGIN, (name, closest, cos_primary)
        assert b"ftyp" not in result.data
        tags = _tags_of(result.data)
        assert "GPS:GPSLatitude" in tags  # the user asked to keep the personal fields
        assert "IFD1:ThumbnailImage" not in tags and "XMP-mwg-rs:RegionName" not in tags


def test_without_a_face_keep_metadata_keeps_video_and_gain_map_consistent() -> None:
    scene = textured(480, 320)
    for data in (motion_photo(scene), ultra_hdr(scene)):
        report = MetadataReport()
        out = imageio.rewrite_metadata(data, "JPEG", keep_metadata=True, report=report)
        assert out is not None
        before, after = jpeg.layout(data), jpeg.layout(out)
        assert after.trailer == before.trailer
        assert [s.data for s in after.secondaries] == [s.data for s in before.secondaries]
        assert jpeg.split(out).structure == jpeg.split(data).structure
        tags = _tags_of(out)
        if before.gain_map is not None:
            assert tags["MPImage2:MPImageLength"] == len(before.gain_map.data)
            # exiftool reports the start as a file offset (it resolves MPF's relative one)
            assert out[tags["MPImage2:MPImageStart"] :].startswith(before.gain_map.data)
        else:
            assert out.endswith(fake_mp4(scene))
            assert tags.get("XMP-GCamera:MicroVideoOffset") == len(fake_mp4(scene))
    # By default (no face) the gain map stays, the video goes.
    report = MetadataReport()
    out = imageio.rewrite_metadata(ultra_hdr(scene), "JPEG", keep_metadata=False, report=report)
    assert out is not None and jpeg.layout(out).gain_map is not None
    report = MetadataReport()
    out = imageio.rewrite_metadata(motion_photo(scene), "JPEG", keep_metadata=False, report=report)
    assert out is not None and b"ftyp" not in out and "motion-photo video" in report.removed


@pytest.mark.skipif(not imageio.HEIF_AVAILABLE, reason="pillow-heif is not installed")
def test_heic_with_an_appended_video_is_re_encoded_without_it() -> None:
    scene = textured(320, 240)
    buffer = io.BytesIO()
    scene.save(buffer, "HEIF", quality=90)
    clean = buffer.getvalue()
    report = MetadataReport()
    assert imageio.rewrite_metadata(clean, "HEIF", keep_metadata=False, report=report) == clean
    video = fake_mp4(scene)
    report = MetadataReport()
    assert (
        imageio.rewrite_metadata(clean + video, "HEIF", keep_metadata=False, report=report) is None
    )
    assert "motion-photo video" in report.removed
    decoded = imageio.decode(clean + video)
    out = imageio.encode(decoded, decoded.pixels, keep_metadata=False, report=report, cloaked=False)
    assert b"ftypisom" not in out and imageio.probe(out).media_type == "image/heic"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"II*\x00\x08\x00\x00\x00" + b"\x00" * 64, "TIFF"),
        (b"\x00\x00\x00\x0cJXL \r\n\x87\n" + b"\x00" * 64, "JPEG XL"),
        (b"%PDF-1.7\n" + b"\x00" * 64, "PDF"),
        (b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64, "MP4"),
        (b"BM" + b"\x00" * 64, "BMP"),
    ],
)
def test_unsupported_files_are_refused_by_name(data: bytes, named: str) -> None:
    with pytest.raises(UnsupportedFormatError, match=named):
        imageio.probe(data)


# -- veil cloak ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_run(
    corpus: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    if not VEIL.exists():
        pytest.skip(f"{VEIL} not installed")
    root = tmp_path_factory.mktemp("cli")
    inputs, out = root / "in", root / "out"
    inputs.mkdir()
    for index, (name, data) in enumerate(corpus.items()):
        (inputs / name).write_bytes(data)
        os.chmod(inputs / name, 0o644 if index % 2 else 0o640)
    run = subprocess.run(
        [str(VEIL), "cloak", str(inputs), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return inputs, out, run


def test_veil_cloak_keeps_names_and_modes_and_cleans_every_format(
    engine: Engine, sface: Any, cli_run: tuple[Path, Path, subprocess.CompletedProcess[str]]
) -> None:
    inputs, out, run = cli_run
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)
    tags = exiftool_tags(sorted(out.iterdir()))
    for name in NAMES:
        assert stat.S_IMODE((out / name).stat().st_mode) == stat.S_IMODE(
            (inputs / name).stat().st_mode
        ), name
        before, after = (inputs / name).read_bytes(), (out / name).read_bytes()
        assert_clean(engine, sface, name, before, after, tags[name])


def test_in_place_keeps_the_photos_mode(tmp_path: Path) -> None:
    if not VEIL.exists():
        pytest.skip(f"{VEIL} not installed")
    photo = tmp_path / "beach.jpg"
    photo.write_bytes(jpeg_bytes(textured(200, 150), quality=90))
    os.chmod(photo, 0o644)
    run = subprocess.run(
        [str(VEIL), "cloak", "--in-place", str(photo)], capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert stat.S_IMODE(photo.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["beach.jpg"]  # no temporary file left


# -- the one atomic writer ---------------------------------------------------------------


def test_atomic_writer_modes(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    write_atomically(target, b"one", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_bytes() == b"one"
    os.chmod(target, 0o640)
    write_atomically(target, b"two")  # replacing keeps the file's bits
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_bytes() == b"two"
    source = tmp_path / "src.jpg"
    source.write_bytes(b"x")
    os.chmod(source, 0o604)
    other = tmp_path / "sub" / "b.bin"
    write_atomically(other, lambda handle: handle.write(b"three"), like=source)
    assert stat.S_IMODE(other.stat().st_mode) == 0o604 and other.read_bytes() == b"three"
    fresh = tmp_path / "c.bin"
    write_atomically(fresh, b"four")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask


def test_atomic_writer_leaves_the_old_file_and_no_temporary_on_error(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")

    def fails(handle: Any) -> None:
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(target, fails)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


# -- POST /v1/cloak ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_outputs(
    corpus: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    from server.companion import start_companion, stop_companion

    companion = start_companion(tmp_path_factory.mktemp("companion"))
    try:
        token = companion.pair()
        root = tmp_path_factory.mktemp("served")
        replies = {}
        for name, data in corpus.items():
            reply = companion.cloak(data, token, content_type=CORPUS[name][1])
            replies[name] = reply
            if reply.status == 200:
                (root / name).write_bytes(reply.body)
        yield {"replies": replies, "tags": exiftool_tags(sorted(root.iterdir()))}
    finally:
        stop_companion(companion)


@pytest.mark.parametrize("name", NAMES)
def test_post_cloak_cleans_every_format(
    engine: Engine,
    sface: Any,
    corpus: dict[str, bytes],
    server_outputs: dict[str, Any],
    name: str,
) -> None:
    reply = server_outputs["replies"][name]
    assert reply.status == 200, reply.body[:300]
    assert reply.headers["Content-Type"].startswith(CORPUS[name][1])
    assert_clean(engine, sface, name, corpus[name], reply.body, server_outputs["tags"][name])


def test_exiftool_is_there_under_ci() -> None:
    if in_ci():
        assert EXIFTOOL is not None and shutil.which("exiftool")


def test_hostile_mpf_indexes_never_crash() -> None:
    """Mutated MPF segments (offsets, sizes, counts): a typed error or a file without the
    bogus images, never an exception of another kind."""
    from format_samples import MP_PREVIEW, with_mpf
    from veil.errors import VeilError

    scene = textured(160, 120)
    data = with_mpf(
        jpeg_bytes(scene, quality=90), [(MP_PREVIEW, jpeg_bytes(scene.resize((40, 30))))]
    )
    at = data.index(b"MPF\x00")
    rng = np.random.default_rng(14)
    for _ in range(300):
        mutated = bytearray(data)
        for position in rng.integers(at + 4, at + 80, size=int(rng.integers(1, 6))):
            mutated[int(position)] = int(rng.integers(0, 256))
        for keep in (False, True):
            try:
                out = imageio.rewrite_metadata(
                    bytes(mutated), "JPEG", keep_metadata=keep, report=MetadataReport()
                )
            except VeilError:
                continue
            assert out is not None and jpeg.split(out).structure == jpeg.split(data).structure
