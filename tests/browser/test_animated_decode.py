"""Cloaked animations as Chromium shows them: every frame decoded by Chromium's own image
decoders (WebCodecs `ImageDecoder`) against what Veil meant to show.

The GIF writer and the fail-closed check both rely on Veil's model of how a browser
composites GIF frames (disposal 0-3, transparency, frame rectangles); here Chromium decodes
the inputs and the cloaked outputs and every frame must equal Veil's model pixel for pixel
(lossy WebP too: Pillow and Chromium decode with the same libwebp). The frame count must be
Chromium's too.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image
from playwright.sync_api import Page, sync_playwright

from animated_samples import make_apng, make_gif, make_webp, pan_frames
from corpus import require_faces
from veil.animated import assemble, gif, pillowframes
from veil.engine import Engine
from video_samples import load_rgb

pytestmark = [pytest.mark.browser, pytest.mark.faces]

U8 = npt.NDArray[np.uint8]
ORIGIN = "https://veil.test/"  # a secure context: ImageDecoder is not exposed elsewhere

DECODE = """async ([b64, type]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const decoder = new ImageDecoder({ data: bytes, type });
  await decoder.tracks.ready;
  const out = [];
  for (let i = 0; i < decoder.tracks.selectedTrack.frameCount; i++) {
    const { image } = await decoder.decode({ frameIndex: i });
    const canvas = new OffscreenCanvas(image.displayWidth, image.displayHeight);
    const context = canvas.getContext("2d", { colorSpace: "srgb" });
    context.drawImage(image, 0, 0);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let text = "";
    for (let k = 0; k < data.length; k += 8192) {
      text += String.fromCharCode(...data.subarray(k, k + 8192));
    }
    out.push(btoa(text));
    image.close();
  }
  return out;
}"""


@pytest.fixture(scope="module")
def page(chromium_binary: str) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_binary, headless=True)
        tab = browser.new_page()
        tab.route(
            ORIGIN, lambda route: route.fulfill(body="<html></html>", content_type="text/html")
        )
        tab.goto(ORIGIN)
        yield tab
        browser.close()


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


@pytest.fixture(scope="module")
def frames(engine: Engine) -> list[U8]:
    photo = load_rgb(require_faces() / "photos" / "Scarlett_Johansson" / "img49.jpg", 1200)
    faces = [f.landmarks for f in engine.find_faces(photo)]
    out, _ = pan_frames(photo, faces, 6, (200, 200))
    return out


def chromium_frames(page: Page, data: bytes, media_type: str, shape: tuple[int, ...]) -> list[U8]:
    encoded: list[str] = page.evaluate(DECODE, [base64.b64encode(data).decode(), media_type])
    return [np.frombuffer(base64.b64decode(f), np.uint8).reshape(shape) for f in encoded]


def veil_frames(data: bytes) -> list[U8]:
    if gif.is_gif(data):
        return list(gif.composites(gif.parse(data, max_frames=1000)))
    with Image.open(io.BytesIO(data)) as image:
        return pillowframes.decode(data, getattr(image, "n_frames", 1)).frames


def still_face(frames: list[U8]) -> list[U8]:
    """The face stays; a bar moves below it (Pillow writes small rectangles)."""
    out = []
    for k in range(len(frames)):
        frame = frames[0].copy()
        frame[175:195, 10 + 20 * k : 40 + 20 * k] = (255, 0, 0)
        out.append(frame)
    return out


CASES: dict[str, Any] = {
    "gif-pan": (lambda f: make_gif(f, [80] * len(f)), "image/gif"),
    "gif-local-palettes": (
        lambda f: make_gif(f, [80] * len(f), colours=32, global_palette=False),
        "image/gif",
    ),
    "gif-rectangles": (lambda f: make_gif(still_face(f), [80] * len(f)), "image/gif"),
    "gif-disposal-2-transparent": (
        lambda f: make_gif(still_face(f), [80] * len(f), disposal=2, transparent_corner=True),
        "image/gif",
    ),
    "gif-disposal-3": (
        lambda f: make_gif(still_face(f), [80] * len(f), disposal=3),
        "image/gif",
    ),
    # Pillow writes a single-frame GIF interlaced: the re-encoded frame must be too.
    "gif-single-interlaced": (lambda f: make_gif(f[:1], [0]), "image/gif"),
    "apng": (lambda f: make_apng(f, [80] * len(f)), "image/apng"),
    "webp-lossless": (lambda f: make_webp(f, [80] * len(f), lossless=True), "image/webp"),
    "webp-lossy": (lambda f: make_webp(f, [80] * len(f), lossless=False), "image/webp"),
    # Frames repeated: Pillow and libwebp would merge them, so `assemble` writes these.
    "apng-repeated-frames": (
        lambda f: assemble.apng(repeated(f), [80] * len(f), 0, 3),
        "image/apng",
    ),
    "webp-repeated-frames": (
        lambda f: assemble.webp_animation(
            repeated(f), [80] * len(f), 0, None, {"lossless": True, "exact": True}, False
        ),
        "image/webp",
    ),
}


def repeated(frames: list[U8]) -> list[Image.Image]:
    """Frames 0, 0, 2, 2, 4, 4...: each shown twice in a row."""
    return [Image.fromarray(frames[i - i % 2]) for i in range(len(frames))]


@pytest.mark.parametrize("name", list(CASES))
def test_chromium_shows_what_veil_meant(
    name: str, page: Page, engine: Engine, frames: list[U8]
) -> None:
    make, media_type = CASES[name]
    data = make(frames)
    result = engine.cloak_bytes(data)
    assert result.face_count == 1
    count = len(veil_frames(data))
    for blob in (data, result.data):
        mine = veil_frames(blob)
        theirs = chromium_frames(page, blob, media_type, mine[0].shape)
        assert len(theirs) == len(mine) == count
        for index, (a, b) in enumerate(zip(mine, theirs, strict=True)):
            worst = int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())
            assert worst == 0, f"{name} frame {index}: off by {worst}"
