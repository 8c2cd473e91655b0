"""Tiny real clips with a face for the browser tests (built with tests/video_samples.py from
the face corpus, phone-style metadata written by exiftool), and the checks on what a site
received: a cloak of the clip, not the original, in the same container, with no location."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt
from harness import ROOT
from PIL import Image

from metadata_samples import EXIFTOOL, exiftool_tags
from video_samples import SERIAL, load_rgb, make_clip

YUNET = ROOT / "models" / "face_detection_yunet_2023mar.onnx"
# Location, serial and owner tags as exiftool names them (-G1: "Group:Tag"); make and model
# follow the photo policy (docs/metadata.md) and are not checked here.
LEAKY_TAG = ("gps", "location", "serial", "xyz", "author", "artist", "owner")


def _detect(rgb: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float32]]:
    """YuNet rows (box, 5 landmarks, score) on an RGB image, independently of the companion."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    height, width = bgr.shape[:2]
    detector = cv2.FaceDetectorYN.create(str(YUNET), "", (width, height), 0.7)
    _, found = detector.detect(bgr)
    return [] if found is None else list(found)


def landmarks(rgb: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float64]]:
    """Each face's 5 landmarks [5, 2] (eyes, nose, mouth corners) as make_clip wants them."""
    return [row[4:14].reshape(5, 2).astype(np.float64) for row in _detect(rgb)]


@dataclass(frozen=True)
class FaceClip:
    path: Path
    frames: int


def face_clip(
    photo: Path,
    dest: Path,
    *,
    seconds: float = 1.0,
    size: tuple[int, int] = (320, 240),
    fps: int = 15,
    codec: str = "libx264",
) -> FaceClip:
    """A short pan-and-zoom clip over `photo` (one face), with audio and, for MP4/MOV, phone
    metadata (GPS, make, serial, owner) written by exiftool."""
    rgb = load_rgb(photo, 1200)
    faces = landmarks(rgb)
    assert len(faces) == 1, f"{photo} should show one face, found {len(faces)}"
    tags = {"title": "holiday", "location": "+48.8577+002.2950/", "comment": SERIAL}
    clip = make_clip(dest, rgb, faces, codec=codec, size=size, seconds=seconds, fps=fps, tags=tags)
    return FaceClip(clip.path, clip.frames)


def frames_of(path: Path) -> list[npt.NDArray[np.uint8]]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def container_of(path: Path) -> tuple[str, str, int, int]:
    with av.open(str(path)) as container:
        video = container.streams.video[0].codec_context
        return container.format.name, video.codec.canonical_name, video.width, video.height


def leaky_tags(path: Path) -> dict[str, Any]:
    """The location, device, serial and owner tags exiftool still finds in the file."""
    tags = exiftool_tags([path])[path.name]
    return {
        key: value
        for key, value in tags.items()
        if not key.startswith(("System:", "File:", "ExifTool:"))
        and (any(word in key.lower() for word in LEAKY_TAG) or SERIAL in str(value))
    }


def assert_cloaked_video(original: Path, received: bytes, scratch: Path) -> dict[str, float]:
    """`received` is a cloak of the clip at `original`: other bytes, a valid video of the same
    container, codec, size and frame count, no location, serial or owner left (exiftool), and
    changed in the face far more than elsewhere (so neither the original nor a plain
    re-encode). Returns the measured change, inside and outside the face."""
    assert received != original.read_bytes(), "the site received the ORIGINAL video"
    out = scratch / f"received-{original.name}"
    out.write_bytes(received)
    assert container_of(out) == container_of(original), "not the same kind of video"
    before, after = frames_of(original), frames_of(out)
    assert len(after) == len(before), f"{len(after)} frames arrived, the clip has {len(before)}"
    if EXIFTOOL:
        assert original.suffix.lower() not in {".mp4", ".mov"} or leaky_tags(original), (
            "the test clip carries no phone metadata to remove"
        )
        left = leaky_tags(out)
        assert not left, f"location, device or owner data reached the site: {left}"
    middle = len(before) // 2
    rows = _detect(before[middle])
    assert rows, "the clip's middle frame shows no face the detector finds"
    diff = np.abs(after[middle].astype(np.float32) - before[middle].astype(np.float32)).mean(axis=2)
    mask = np.zeros(diff.shape, dtype=bool)
    for row in rows:
        x, y, w, h = (int(v) for v in row[:4])
        mask[max(0, y) : y + h, max(0, x) : x + w] = True
    inside = float(diff[mask].mean())
    outside = float(diff[~mask].mean())
    assert inside > 0.5, f"the face is unchanged (mean |diff| {inside:.3f})"
    assert inside > 1.5 * outside, (
        f"change not concentrated on the face: {inside:.3f} vs {outside:.3f}"
    )
    return {"inside": inside, "outside": outside}


def fake_video(dest: Path, megabytes: int) -> Path:
    """A file named and typed as a video but far larger than the Port path takes (its bytes
    never reach the companion in the test that uses it)."""
    with dest.open("wb") as out:
        out.truncate(megabytes * 1024 * 1024)
    return dest


def unsupported_codec_clip(photo: Path, dest: Path) -> Path:
    """Half a second of MJPEG in a MOV, as old cameras write: the companion has no encoder for
    it and refuses it (unsupported_codec)."""
    rgb = load_rgb(photo, 1200)
    make_clip(dest, rgb, landmarks(rgb), codec="mjpeg", pix_fmt="yuvj420p", seconds=0.5, audio=None)
    return dest


def animated_gif(source: Path, dest: Path, frames: int) -> Path:
    """An animated GIF of `frames` frames spread over the clip at `source` (a reaction GIF)."""
    decoded = frames_of(source)
    step = max(1, len(decoded) // frames)
    images = [Image.fromarray(frame) for frame in decoded[::step][:frames]]
    images[0].save(dest, save_all=True, append_images=images[1:], duration=120, loop=0)
    return dest


def first_frame_png(gif: bytes) -> bytes:
    """The first frame of a GIF, as PNG bytes (what harness.assert_cloaked compares)."""
    out = io.BytesIO()
    with Image.open(io.BytesIO(gif)) as image:
        image.convert("RGB").save(out, "PNG")
    return out.getvalue()
